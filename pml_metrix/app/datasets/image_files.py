"""Image-file datasets of the paper's benchmarks: paths and labels, the paper's transforms, class splits."""

from collections.abc import Sequence
from typing import Callable, Optional

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def paper_transform(train: bool, image_size: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """Train: RandomResizedCrop + horizontal flip; eval: Resize 256 + CenterCrop 224 (scaled with
    ``image_size``); both ImageNet-normalised. Output 3 x image_size x image_size float32."""
    geometry = (
        [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
        if train
        else [transforms.Resize(round(image_size * 256 / 224)), transforms.CenterCrop(image_size)]
    )
    return transforms.Compose([*geometry, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def carve_classes(classes: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split sorted ``classes`` into (train, val) lists, val a seeded ``val_fraction`` (in [0, 1)) of them."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), the share of the training classes held out for validation, "
                         f"got {val_fraction!r}")
    classes = sorted(set(classes))
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed)).tolist()
    val = sorted(classes[i] for i in order[: round(val_fraction * len(classes))])
    return [c for c in classes if c not in set(val)], val


class ImageFiles(Dataset):
    """Images at ``paths`` with original class ids ``class_ids``, labelled by their rank in ``classes``
    (default: the sorted ids present).

    Items: ``(transform(RGB image), label)``; ``labels`` is the N LongTensor of those labels.
    """

    def __init__(
        self,
        paths: Sequence[str],
        class_ids: Sequence[int],
        transform: Callable[[Image.Image], torch.Tensor],
        classes: Optional[Sequence[int]] = None,
    ):
        self.class_ids = sorted(set(class_ids) if classes is None else classes)
        index_of = {class_id: index for index, class_id in enumerate(self.class_ids)}
        self.paths = list(paths)
        self.labels = torch.tensor([index_of[class_id] for class_id in class_ids], dtype=torch.long)
        self.num_classes = len(self.class_ids)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[index])


def select_classes(
    paths: Sequence[str],
    class_ids: Sequence[int],
    keep: Sequence[int],
    transform: Optional[Callable] = None,
    train: bool = False,
    image_size: int = 224,
) -> ImageFiles:
    """The items of ``paths`` / ``class_ids`` whose class is in ``keep``, with ``transform``
    (default: the paper's train or eval transform at ``image_size``)."""
    keep = set(keep)
    chosen = [(path, class_id) for path, class_id in zip(paths, class_ids) if class_id in keep]
    if not chosen:
        raise ValueError("No image in the chosen classes: the split is empty (is val_fraction 0?)")
    transform = transform or paper_transform(train, image_size)
    return ImageFiles([p for p, _ in chosen], [c for _, c in chosen], transform)

"""The paper's model: ImageNet ResNet-50 trunk, global average + max pooling, a linear embedding,
L2 normalisation; the same head on other torchvision backbones (ResNet-18/34/101, GoogLeNet), and a
small CNN for CPUs. Each trunk ends at a convolutional map, so feature-level Metrix mixes it."""

from typing import Dict, Optional
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn

from .datasets.image_files import IMAGENET_MEAN, IMAGENET_STD


class PoolingEmbedder(nn.Module):
    """B x C x H x W feature map -> B x embedding_size L2-normalised embeddings
    (global average pooling + global max pooling, then a linear layer)."""

    def __init__(self, in_channels: int, embedding_size: int = 512, normalize: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_channels, embedding_size)
        self.normalize = normalize

    def forward(self, feature_map: Tensor) -> Tensor:
        pooled = feature_map.mean(dim=(2, 3)) + feature_map.amax(dim=(2, 3))
        embeddings = self.linear(pooled)
        return nn.functional.normalize(embeddings, dim=1) if self.normalize else embeddings


BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "googlenet")
CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "googlenet": 1024}
HEADS = ("avgpool", "dropout", "fc")  # what follows the last convolutional map in torchvision's classifiers


class GoogLeNetInput(nn.Module):
    """torchvision's GoogLeNet ImageNet weights expect images scaled per channel from the ImageNet
    normalisation ``(x - mean) / std`` to ``(x - 0.5) / 0.5``: ``x std / 0.5 + (mean - 0.5) / 0.5``
    (its classifier's ``transform_input``, done in its own forward, which the trunk does not run)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) / 0.5)
        self.register_buffer("shift", (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) - 0.5) / 0.5)

    def forward(self, images: Tensor) -> Tensor:
        return images * self.scale + self.shift


class GrayscaleTrunk(nn.Sequential):
    """A backbone's trunk for grayscale images: B x 1 x H x W images, their one channel repeated into
    the 3 that a torchvision backbone and its ImageNet weights are built for (a view, no copy), then
    the trunk's layers. The same layers, and ``state_dict`` keys, as the trunk for RGB images.

    With ``imagenet_input`` (ImageNet weights), the images, in [0, 1] as the grayscale readers give
    them, are first normalised per channel as the weights' ImageNet images were, ``(x - mean) / std``,
    as the photo readers' transforms normalise theirs."""

    def __init__(self, *layers: nn.Module, imagenet_input: bool = False):
        super().__init__(*layers)
        self.imagenet_input = imagenet_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        images = images.expand(-1, 3, -1, -1)
        if self.imagenet_input:
            images = (images - self.mean) / self.std
        return super().forward(images)


def backbone_trunk(name: str = "resnet50", pretrained: bool = True, weights_path: Optional[str] = None) -> nn.Module:
    """A torchvision classifier (one of ``BACKBONES``) up to its last convolutional map:
    B x C x H/32 x W/32, C in ``CHANNELS``.

    Args:
        name: the torchvision model.
        pretrained: load torchvision's ImageNet weights (IMAGENET1K_V1; downloaded once into torch's cache).
        weights_path: load this local ``state_dict`` file of that torchvision model instead.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {name!r}")
    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    classifier = torchvision.models.get_model(name, weights=None, **options)
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    state = None
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    elif pretrained:
        try:
            state = weights.get_state_dict(progress=False)
        except (URLError, OSError) as error:
            raise RuntimeError(
                f"could not fetch the ImageNet {name} weights ({error}). Offline, either pass "
                "pretrained=False (random initialisation), or download "
                f"{weights.url} elsewhere and pass weights_path=<that file>"
            ) from error
    layers = [module for child, module in classifier.named_children() if child not in HEADS]
    if state is not None:
        aux = [key for key in state if key.startswith(("aux1.", "aux2."))]  # GoogLeNet's training heads
        classifier.load_state_dict({k: v for k, v in state.items() if k not in aux})
    if name == "googlenet":  # always, so that a trunk's weights load whether it was built pretrained or not
        layers.insert(0, GoogLeNetInput())
    return nn.Sequential(*layers)


def backbone(
    name: str = "resnet50",
    embedding_size: int = 512,
    pretrained: bool = True,
    weights_path: Optional[str] = None,
    in_channels: int = 3,
    imagenet_input: Optional[bool] = None,
) -> Dict[str, nn.Module]:
    """``{"trunk": ..., "embedder": ...}`` ready for PML trainers and testers: the backbone's last
    convolutional map (:func:`backbone_trunk`), average + max pooling, a linear embedding,
    L2 normalisation (:class:`PoolingEmbedder`). ``in_channels`` 1 (grayscale images, such as the
    fonts' glyphs) makes the trunk a :class:`GrayscaleTrunk`, its images normalised for ImageNet
    weights with ``imagenet_input`` (default: when it loads them, ``pretrained`` or ``weights_path``;
    a checkpoint's weights replacing them keep the form they were trained with)."""
    if in_channels not in (1, 3):
        raise ValueError(
            f"a torchvision backbone takes RGB images (3 channels) or grayscale ones (1, repeated into 3), but the "
            f"images have {in_channels} channels: use model small_cnn, which takes any number"
        )
    trunk = backbone_trunk(name, pretrained, weights_path)
    if in_channels == 1:
        imagenet_input = pretrained or weights_path is not None if imagenet_input is None else imagenet_input
        trunk = GrayscaleTrunk(*trunk, imagenet_input=imagenet_input)
    return {"trunk": trunk, "embedder": PoolingEmbedder(CHANNELS[name], embedding_size)}


def metrix_resnet50(
    embedding_size: int = 512, pretrained: bool = True, weights_path: Optional[str] = None
) -> Dict[str, nn.Module]:
    """The paper's model: :func:`backbone` with ResNet-50."""
    return backbone("resnet50", embedding_size, pretrained, weights_path)


def small_cnn(in_channels: int = 1, embedding_size: int = 128, width: int = 64) -> Dict[str, nn.Module]:
    """A small CNN for CPU runs (e.g. 32 x 32 glyphs): three conv blocks, then the same
    average + max pooling embedder as the paper's model, so feature-level mixing works alike."""
    layers, channels = [], in_channels
    for out_channels in (width, 2 * width, 4 * width):
        layers += [
            nn.Conv2d(channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        channels = out_channels
    return {"trunk": nn.Sequential(*layers), "embedder": PoolingEmbedder(channels, embedding_size)}

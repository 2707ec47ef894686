"""The paper's model: ImageNet ResNet-50 trunk, global average + max pooling, a linear embedding,
L2 normalisation. The trunk ends at the last convolutional map, so feature-level Metrix mixes it."""

from typing import Dict, Optional
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn


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


def resnet50_trunk(pretrained: bool = True, weights_path: Optional[str] = None) -> nn.Module:
    """ResNet-50 up to its last convolutional map (B x 2048 x H/32 x W/32).

    Args:
        pretrained: load torchvision's ImageNet weights (downloaded once into torch's cache).
        weights_path: load this local ``state_dict`` file of a torchvision ResNet-50 instead.
    """
    resnet = torchvision.models.resnet50(weights=None)
    if weights_path is not None:
        resnet.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    elif pretrained:
        weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
        try:
            resnet.load_state_dict(weights.get_state_dict(progress=False))
        except (URLError, OSError) as error:
            raise RuntimeError(
                f"could not fetch the ImageNet ResNet-50 weights ({error}). Offline, either pass "
                "pretrained=False (random initialisation), or download "
                f"{weights.url} elsewhere and pass weights_path=<that file>"
            ) from error
    return nn.Sequential(*list(resnet.children())[:-2])


def metrix_resnet50(
    embedding_size: int = 512, pretrained: bool = True, weights_path: Optional[str] = None
) -> Dict[str, nn.Module]:
    """``{"trunk": ..., "embedder": ...}`` ready for PML trainers and testers."""
    return {
        "trunk": resnet50_trunk(pretrained, weights_path),
        "embedder": PoolingEmbedder(2048, embedding_size),
    }


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

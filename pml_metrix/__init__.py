"""Metrix (mixup for deep metric learning) for pytorch-metric-learning."""

from . import functional, losses, reducers
from .losses import MetrixContrastiveLoss, MetrixMSLoss, MetrixProxyAnchorLoss
from .mixed_batch import MixedBatch, SoftPairs

__version__ = "0.1.0"

__all__ = [
    "MetrixContrastiveLoss",
    "MetrixMSLoss",
    "MetrixProxyAnchorLoss",
    "MixedBatch",
    "SoftPairs",
    "functional",
    "losses",
    "reducers",
]

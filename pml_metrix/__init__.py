"""Metrix (mixup for deep metric learning) for pytorch-metric-learning."""

from . import analysis, functional, losses, miners, models, reducers, trainers
from .losses import MetrixContrastiveLoss, MetrixMSLoss, MetrixProxyAnchorLoss
from .miners import MixupMiner
from .mixed_batch import MixedBatch, SoftPairs
from .mixing import MixingPlan

__version__ = "0.1.0"

__all__ = [
    "MetrixContrastiveLoss",
    "MetrixMSLoss",
    "MetrixProxyAnchorLoss",
    "MixedBatch",
    "MixingPlan",
    "MixupMiner",
    "SoftPairs",
    "analysis",
    "functional",
    "losses",
    "miners",
    "models",
    "reducers",
    "trainers",
]

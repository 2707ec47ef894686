"""Metrix (mixup for deep metric learning) for pytorch-metric-learning."""

from . import analysis, datasets, distributed, functional, losses, miners, models, reducers, testers, trainers
from .losses import MetrixContrastiveLoss, MetrixMSLoss, MetrixProxyAnchorLoss
from .miners import MixupMiner
from .mixed_batch import MixedBatch, SoftPairs
from .mixing import MixingPlan
from .testers import MetrixAccuracyCalculator, UtilizationTester

__version__ = "0.1.0"

__all__ = [
    "MetrixAccuracyCalculator",
    "MetrixContrastiveLoss",
    "MetrixMSLoss",
    "MetrixProxyAnchorLoss",
    "MixedBatch",
    "MixingPlan",
    "MixupMiner",
    "SoftPairs",
    "UtilizationTester",
    "analysis",
    "datasets",
    "distributed",
    "functional",
    "losses",
    "miners",
    "models",
    "reducers",
    "testers",
    "trainers",
]

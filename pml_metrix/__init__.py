"""Metrix (mixup for deep metric learning) for pytorch-metric-learning.

The names below load on first use (PEP 562), so that ``import pml_metrix`` and the command line's
``--help`` do not wait for torch.
"""

import importlib

__version__ = "0.2.0"

_NAMES = {
    "MetrixContrastiveLoss": "losses",
    "MetrixMSLoss": "losses",
    "MetrixNTXentLoss": "losses",
    "MetrixProxyAnchorLoss": "losses",
    "MetrixSupConLoss": "losses",
    "MixupMiner": "miners",
    "MixedBatch": "mixed_batch",
    "SoftPairs": "mixed_batch",
    "MixingPlan": "mixing",
    "MetrixAccuracyCalculator": "testers",
    "UtilizationTester": "testers",
}
_MODULES = ("analysis", "datasets", "distributed", "functional", "losses", "miners", "models", "testers", "trainers")

__all__ = sorted(_NAMES) + list(_MODULES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

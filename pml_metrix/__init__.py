"""Metrix (mixup for deep metric learning) for pytorch-metric-learning: the library.

The losses, the miner, the trainer, the testers and their functional core, for use inside PML's own
trainers, testers and loops. The application behind the ``pml-metrix`` command (run configuration,
datasets, models, runs, studies, reports) is :mod:`pml_metrix.app`, which imports the library and is
never imported by it.

The names below load on first use (PEP 562), so that ``import pml_metrix`` and the command line's
``--help`` do not wait for torch.
"""

import importlib

__version__ = "0.3.0"

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
_MODULES = ("analysis", "distributed", "functional", "label_sets", "losses", "miners", "names", "samplers", "testers", "trainers")

__all__ = sorted(_NAMES) + list(_MODULES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

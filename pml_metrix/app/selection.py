"""Which epoch's model a run tests: the evaluated epoch of best ``select_metric`` (Recall@1 by
default) on the selection split,
and patience, counted as PML's ``HookContainer`` counts it at its evaluations."""

from typing import Dict, List, Optional, Sequence

from .config import RunConfig


class Selection:
    """The selection split's metrics after each evaluated epoch (``history``, each with its ``epoch``)
    and what they decide: when to evaluate, the best epoch, when patience runs out."""

    def __init__(self, config: RunConfig, history: Sequence[Dict[str, float]] = ()):
        self.config = config
        self.history: List[Dict[str, float]] = list(history)

    def due(self, epoch: int) -> bool:
        """Whether the selection split is evaluated after ``epoch``: every ``test_interval``-th and the last."""
        config = self.config
        return config.select_split != "none" and (epoch % config.test_interval == 0 or epoch == config.epochs)

    def add(self, metrics: Dict[str, float], epoch: int) -> bool:
        """Record ``epoch``'s metrics; whether it is the best epoch so far."""
        self.history.append({**metrics, "epoch": epoch})
        return self.best_epoch() == epoch

    def best_epoch(self) -> Optional[int]:
        """The evaluated epoch of best selection metric (the first of ties); ``None`` before any."""
        if not self.history:
            return None
        metric = self.config.select_metric
        return max(self.history, key=lambda metrics: metrics[metric])["epoch"]  # max keeps the first

    def picked(self, last_epoch: int) -> int:
        """The epoch whose model is tested: the best one, or the last without a selection split."""
        return last_epoch if self.config.select_split == "none" else self.best_epoch()

    def evaluated(self, epoch: int) -> bool:
        """Whether the last evaluation recorded is ``epoch``'s."""
        return bool(self.history) and self.history[-1]["epoch"] == epoch

    def stopped(self, epoch: int) -> bool:
        """Whether ``patience`` epochs have passed since the best one at ``epoch``, if it was evaluated."""
        patience = self.config.patience
        return self.evaluated(epoch) and patience is not None and epoch - self.best_epoch() > patience

"""Evaluating a trunk and embedder on a split: PML's tester with the Metrix metrics."""

from typing import Callable, Dict, Optional

import torch
from torch.utils.data import Dataset

from .config import ConfigError, RunConfig
from ..testers import MetrixAccuracyCalculator, UtilizationTester

METRIC_PREFIXES = ("recall_at_", "mean_average_precision_at_r", "utilization", "alignment", "uniformity")


def metric_names(accuracies: Dict[str, float]) -> Dict[str, float]:
    """The tracked metrics of a tester's accuracies dict, without PML's ``_level0`` suffix."""
    return {
        name.replace("_level0", ""): float(value)
        for name, value in accuracies.items()
        if name.startswith(METRIC_PREFIXES)
    }


def check_evaluations(config: RunConfig, datasets: Dict[str, Dataset]) -> None:
    """Refuse an evaluation that cannot measure anything: a split of fewer than 2 classes (every
    query's neighbours are of its class: Recall@K is 1 whatever the model), or a Recall@K with K at
    least the number of references a query has (the reference split, less the query itself when a
    split retrieves from itself)."""
    pairs = [(config.eval_split, config.eval_reference or config.eval_split)]
    if config.select_split != "none":
        pairs.append((config.select_split, config.select_split))
    for split, reference in pairs:
        if int(datasets[split].num_classes) < 2:
            raise ConfigError(f"the {split} split of {config.dataset} holds {datasets[split].num_classes} class: "
                              "retrieval on it measures nothing; give it at least 2")
        neighbours = len(datasets[reference]) - (split == reference)
        if max(config.recall_at_k) >= neighbours:
            raise ConfigError(
                f"recall_at_k {max(config.recall_at_k)} cannot be measured on {split}: a query has {neighbours} "
                f"references in {reference}; give recall_at_k below that"
            )


def evaluate(
    config: RunConfig,
    datasets: Dict[str, Dataset],
    split: str,
    reference: Optional[str],
    epoch: int,
    trunk: torch.nn.Module,
    embedder: torch.nn.Module,
    device: torch.device,
    mixed_embeddings: Optional[torch.Tensor] = None,
    end_of_testing_hook: Optional[Callable] = None,
) -> Dict[str, float]:
    """Retrieval metrics of ``datasets[split]`` (against ``datasets[reference]``, or itself when
    ``None``), with utilization of ``datasets["train"]`` (plus ``mixed_embeddings``, M x d) by it.

    Recall@K for the config's ``recall_at_k``, MAP@R, alignment, uniformity, utilization; handed to
    ``end_of_testing_hook`` (PML's record-keeper hook) as PML's testers do.
    """
    calculator = MetrixAccuracyCalculator(
        recall_at_k=tuple(config.recall_at_k),
        include=tuple(f"recall_at_{k}" for k in config.recall_at_k)
        + ("mean_average_precision_at_r", "alignment", "uniformity"),
        k="max_bin_count",
    )
    tester = UtilizationTester(
        accuracy_calculator=calculator,
        end_of_testing_hook=end_of_testing_hook,
        dataloader_num_workers=config.num_workers,
        batch_size=config.eval_batch_size,
        data_device=device,
    )
    if mixed_embeddings is not None and len(mixed_embeddings):
        tester.mixed_embeddings = torch.nn.functional.normalize(mixed_embeddings, dim=1)
    tester.test(datasets, epoch, trunk, embedder, splits_to_eval=[(split, [reference or split])])
    return metric_names(tester.all_accuracies[split])

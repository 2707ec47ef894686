"""Evaluating a trunk and embedder on a split: PML's tester with the Metrix metrics."""

import math
from typing import Callable, Dict, Optional

import torch
from torch.utils.data import Dataset

from .config import ConfigError, RunConfig
from .datasets import has_label_sets
from ..label_sets import is_label_sets
from ..testers import MetrixAccuracyCalculator, UtilizationTester

METRIC_PREFIXES = ("recall_at_", "ndcg_at_", "mean_average_precision_at_r", "utilization", "alignment", "uniformity")
# collapsed embeddings (docs/metrics.md): every item at nearly one point, retrieval at chance
COLLAPSE_ALIGNMENT = 0.01  # below: positives' mean squared distance (0 to 4 on the unit sphere)
COLLAPSE_UNIFORMITY = -0.01  # above: log E exp(-2 ||x - y||^2), 0 at one point, about -4 spread over the sphere
COLLAPSE_CHANCE_FACTOR = 2.0
# the gains of nDCG@K on label sets: one similarity for every run, whatever label_similarity it trained
# with (shares_any's 0/1 gains would grade a run trained on it by its own rule)
EVAL_LABEL_SIMILARITY = "jaccard"  # Recall@1 at most this many times chance_recall_at_1


def metric_names(accuracies: Dict[str, float]) -> Dict[str, float]:
    """The tracked metrics of a tester's accuracies dict, without the level suffix (PML's ``_level0``,
    or ``_level_sets`` for label sets)."""
    return {
        name.replace("_level0", "").replace("_level_sets", ""): float(value)
        for name, value in accuracies.items()
        if name.startswith(METRIC_PREFIXES)
    }


def chance_recall_at_1(query_labels: torch.Tensor, reference_labels: Optional[torch.Tensor] = None) -> float:
    """Recall@1 of a retrieval that ranks the references at random: the mean over queries of the share
    of their references that are of their class (for label sets, N x C: that share a label with them).
    ``reference_labels`` ``None``: the split retrieves from itself, the query left out. As Recall@K
    does, queries with no relevant reference are left out; NaN when none is left."""
    itself = reference_labels is None
    references = query_labels if itself else reference_labels
    if is_label_sets(query_labels):  # through their distinct rows (a split holds few)
        query_rows, query_row = torch.unique(query_labels, dim=0, return_inverse=True)
        reference_rows, reference_count = torch.unique(references, dim=0, return_counts=True)
        shares = (query_rows.double() @ reference_rows.double().T) > 0
        relevant = (shares.double() @ reference_count.double())[query_row] - int(itself) * (query_labels.sum(1) > 0)
        counted = relevant > 0
        if not counted.any():
            return math.nan
        return float((relevant[counted] / (len(references) - int(itself))).mean())
    num_classes = int(max(query_labels.max(), references.max())) + 1 if len(query_labels) and len(references) else 0
    same_class = torch.bincount(references, minlength=num_classes)[query_labels] - int(itself)
    counted = same_class > 0
    if not counted.any():
        return math.nan
    return float((same_class[counted] / (len(references) - int(itself))).double().mean())


def collapsed(metrics: Dict[str, float]) -> bool:
    """Whether embeddings are collapsed: alignment below ``COLLAPSE_ALIGNMENT``, uniformity above
    ``COLLAPSE_UNIFORMITY`` (every item at nearly one point) and Recall@1 at most
    ``COLLAPSE_CHANCE_FACTOR`` x ``chance_recall_at_1`` (retrieval no better than chance). A NaN
    (a metric that could not be measured) is no evidence of collapse; label sets have no alignment
    (it needs classes), and there uniformity and Recall@1 decide."""
    uniformity, recall, chance = (metrics.get(name, math.nan) for name in ("uniformity", "recall_at_1", "chance_recall_at_1"))
    aligned = metrics["alignment"] < COLLAPSE_ALIGNMENT if "alignment" in metrics else True
    return aligned and uniformity > COLLAPSE_UNIFORMITY and recall <= COLLAPSE_CHANCE_FACTOR * chance


def check_evaluations(config: RunConfig, datasets: Dict[str, Dataset]) -> None:
    """Refuse an evaluation that cannot measure anything: a split of fewer than 2 classes (every
    query's neighbours are of its class: Recall@K is 1 whatever the model), or a Recall@K with K at
    least the number of references a query has (the reference split, less the query itself when a
    split retrieves from itself), on the evaluation, selection or training split (the last scored at
    the end, for the overfitting gap); or a ``select_metric`` the selection split does not have (nDCG
    needs label sets, MAP@R one class per item)."""
    if config.select_split != "none":
        label_sets = has_label_sets(datasets[config.select_split])
        if config.select_metric.startswith("ndcg_at_") and not label_sets:
            raise ConfigError(f"select_metric {config.select_metric} grades label sets, and {config.dataset} has one class "
                              "per item: select on recall_at_1")
        if config.select_metric == "mean_average_precision_at_r" and label_sets:
            raise ConfigError(f"select_metric {config.select_metric} is not measured on label sets ({config.dataset}: its R, "
                              "the references sharing a label, is nearly the whole split): select on recall_at_1 or ndcg_at_1")
    pairs = [(config.eval_split, config.eval_reference or config.eval_split), ("train", "train")]
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

    Recall@K for the config's ``recall_at_k``, MAP@R, alignment, uniformity, utilization (for label
    sets: relevance "shares a label", nDCG@K graded by Jaccard, ``EVAL_LABEL_SIMILARITY``, whatever
    ``label_similarity`` the run trained with, from the max(K) nearest references; no alignment, which
    needs classes, and no MAP@R, whose R, the references sharing a label with the query, is nearly the
    whole split where most pairs share one: a Q x Q x C table of neighbour labels); handed to
    ``end_of_testing_hook`` (PML's record-keeper hook) as PML's testers do. Plus
    ``chance_recall_at_1`` (:func:`chance_recall_at_1`), the scale of Recall@1 on this split.
    """
    label_sets = has_label_sets(datasets[split])  # graded by the set similarity; alignment needs classes
    calculator = MetrixAccuracyCalculator(
        recall_at_k=tuple(config.recall_at_k),
        include=tuple(f"recall_at_{k}" for k in config.recall_at_k)
        + (tuple(f"ndcg_at_{k}" for k in config.recall_at_k) if label_sets else ())
        + ("uniformity",) + (() if label_sets else ("mean_average_precision_at_r", "alignment")),
        k=max(config.recall_at_k) if label_sets else "max_bin_count",
        label_similarity=EVAL_LABEL_SIMILARITY if label_sets else None,
    )
    tester = UtilizationTester(
        accuracy_calculator=calculator,
        end_of_testing_hook=end_of_testing_hook,
        dataloader_num_workers=config.num_workers,
        batch_size=config.eval_batch_size,
        data_device=device,
        label_hierarchy_level="all" if label_sets else 0,  # label sets: their one level, as PML's hooks look it up
    )
    if mixed_embeddings is not None and len(mixed_embeddings):
        tester.mixed_embeddings = torch.nn.functional.normalize(mixed_embeddings, dim=1)
    tester.test(datasets, epoch, trunk, embedder, splits_to_eval=[(split, [reference or split])])
    itself = reference in (None, split)
    chance = chance_recall_at_1(datasets[split].labels, None if itself else datasets[reference].labels)
    return {**metric_names(tester.all_accuracies[split]), "chance_recall_at_1": chance}

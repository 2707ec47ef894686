"""The positivity of a trained Metrix run's mixes (the paper's figure): a batch of its training set,
mixed at the run's level by a fresh miner of its settings, scored by its loss."""

from dataclasses import replace
from typing import TYPE_CHECKING, Tuple

import torch

from .. import analysis
from .build import build_miner
from .datasets import has_label_sets, sampling_labels
from ..mixed_batch import MixedBatch
from ..trainers import mix_at_level

if TYPE_CHECKING:
    from .experiment import Run


def trained_mixed_batch(run: "Run", num_items: int = 200) -> Tuple[torch.Tensor, torch.Tensor, MixedBatch]:
    """For a trained Metrix run: the embeddings and labels of a batch of its training set
    (``num_items`` images, ``samples_per_class`` of each class) by its models in eval mode, and their
    MixedBatch, mixed at the run's level by a fresh miner of its settings (the same draws, resumed or
    not); in the graph of the models' parameters unless called under ``torch.no_grad()``."""
    dataset, config = run.parts.train_set, run.config
    per_class, drawn_by = config.samples_per_class, sampling_labels(dataset)
    classes = torch.unique(drawn_by)[: max(2, num_items // per_class)]
    index = torch.cat([torch.where(drawn_by == c)[0][:per_class] for c in classes])
    images = torch.stack([dataset[int(i)][0] for i in index]).to(run.device)
    labels = dataset.labels[index].to(run.device)
    trunk, embedder = run.parts.models["trunk"].eval(), run.parts.models["embedder"].eval()
    features = trunk(images)
    embeddings = embedder(features)
    miner = build_miner(config, int(dataset.num_classes), has_label_sets(dataset)).to(run.device)
    indices_tuple = miner.clean_tuple(embeddings, labels)
    plan = miner.plan(embeddings, labels)
    mixed = mix_at_level(plan, config.mix_level, images, features, embeddings, embedder, lambda x: embedder(trunk(x)))
    return embeddings, labels, plan.mixed_batch(mixed, indices_tuple)


def trained_pair_positivity(run: "Run", num_items: int = 200) -> analysis.PairPositivity:
    """Each mixed pair's positivity (:func:`~pml_metrix.analysis.pair_positivity`) on
    :func:`trained_mixed_batch`'s batch (built without a graph: positivity differentiates a copy),
    with the run's loss (its best epoch's proxies for proxy anchor)."""
    with torch.no_grad():
        embeddings, labels, mixed_batch = trained_mixed_batch(run, num_items)
    return analysis.pair_positivity(run.parts.loss, embeddings, labels, mixed_batch)


def positive_shares(run: "Run", num_items: int = 200) -> Tuple[analysis.PositiveShare, analysis.PositiveShare]:
    """Per lam bin, the share of :func:`trained_pair_positivity`'s pairs that the loss pulls towards
    their anchor, and the share whose soft label is above 0.5: mostly the anchor's class, the curve
    that a loss treating mixes as their labels say follows."""
    positivity = trained_pair_positivity(run, num_items)
    by_label = replace(positivity, is_positive=positivity.soft_label > 0.5)
    return analysis.positive_share_by_lam(positivity), analysis.positive_share_by_lam(by_label)

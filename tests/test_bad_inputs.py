"""Every row of docs/errors.md, run: the bad input gives the documented error and message.

Each row's id names a case below (``@case("id")``). A Python-API case makes the bad call; a CLI
case returns the ``pml-metrix`` arguments, run in-process. ``<root>`` in a documented message is
the case's folder (``tmp_path``); ``…`` separates the parts of a message shown in part.
"""

import builtins
import errno
import json
import re
import textwrap
import types
from pathlib import Path

import pytest
import torch
from pytorch_metric_learning import losses, miners
from torch.utils.data import TensorDataset

from pml_metrix import (
    MetrixContrastiveLoss, MetrixMSLoss, MetrixNTXentLoss, MetrixProxyAnchorLoss, MetrixSupConLoss, MixedBatch, MixupMiner, SoftPairs,
)
from pml_metrix.app import experiment, files, reproducible, run_folder
from pml_metrix.app.checkpoints import save_checkpoint
from pml_metrix.app.cli import main
from pml_metrix.app.config import RunConfig
from pml_metrix.app.datasets import fashion_mnist, get_dataset
from pml_metrix.app.datasets.fashion_mnist import FashionMNISTClasses
from pml_metrix.app.datasets.font_attributes import FontAttributes
from pml_metrix.app.datasets.fonts import FontGlyphs, split_families
from pml_metrix.app.datasets.pml_benchmarks import load_benchmark
from pml_metrix.app.models import backbone
from pml_metrix.losses import CrossBatchMemory, SelfSupervisedLoss
from pml_metrix.samplers import DistributedMPerClassSampler
from pml_metrix.testers import MetrixAccuracyCalculator, UtilizationTester, alignment, utilization

from .app.datasets.test_font_attributes import write_attribute_table
from .app.datasets.test_inshop import write_inshop
from .app.datasets.test_pml_benchmarks import write_cub, write_sop
from .app.test_yaml_input import aliases_of_aliases

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
ROW = re.compile(
    r"^\|\s*`(?P<id>[a-z0-9-]+)`\s*\|(?P<component>[^|]*)\|(?P<bad_input>.*)\|\s*(?P<seen>`[^`]+`: `[^`]+`)\s*\|$"
)
SEEN = re.compile(r"^`(?P<kind>[^`]+)`: `(?P<message>[^`]+)`$")

B, D, K = 6, 4, 5


def read_rows():
    """{id: (kind, message)} for each table row of docs/errors.md; kind is an exception name or 'exit 2'."""
    rows = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        match = ROW.match(line)
        assert match, f"a table row of {DOC.name} does not parse: {line}"
        row_id = match["id"]
        assert row_id not in rows, f"{row_id} has two rows"
        seen = SEEN.match(match["seen"])
        rows[row_id] = (seen["kind"], seen["message"])
    return rows


ROWS = read_rows()
CASES = {}


def case(row_id):
    def register(function):
        assert row_id not in CASES, f"two cases for {row_id}"
        CASES[row_id] = function
        return function

    return register


def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(B, D, generator=generator), torch.tensor([0, 0, 1, 1, 2, 2])


def mixed(**overrides):
    generator = torch.Generator().manual_seed(1)
    args = dict(
        embeddings=torch.randn(K, D, generator=generator),
        source_index=torch.randint(0, B, (K, 2), generator=generator),
        lam=torch.rand(K, generator=generator),
    )
    args.update(overrides)
    return MixedBatch(**args)


def class_dataset(classes, per_class, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(classes).repeat_interleave(per_class)
    return TensorDataset(torch.randn(len(labels), 8, generator=generator), labels)


def make_tester(**kwargs):
    kwargs.setdefault(
        "accuracy_calculator",
        MetrixAccuracyCalculator(include=("recall_at_1",), exclude=(), k="max_bin_count", device=torch.device("cpu")),
    )
    return UtilizationTester(dataloader_num_workers=0, data_device=torch.device("cpu"), **kwargs)


# ---- losses -------------------------------------------------------------------------------------


@case("loss-length-mismatch")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels[:-1])


@case("loss-nan-embeddings")
def _(ctx):
    embeddings, labels = batch()
    embeddings[2, 1] = float("nan")
    MetrixMSLoss()(embeddings, labels)


@case("loss-inf-embeddings")
def _(ctx):
    embeddings, labels = batch()
    embeddings[0, 0] = float("inf")
    MetrixContrastiveLoss()(embeddings, labels)


@case("loss-float-labels")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels.float())


@case("loss-empty-batch")
def _(ctx):
    embeddings, labels = batch()
    MetrixContrastiveLoss()(embeddings[:0], labels[:0])


@case("loss-1d-embeddings")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings[:, 0], labels)


def label_sets():
    """Label sets of the batch: 6 items over 3 labels, none empty."""
    return torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]])


@case("wrapper-memory-label-sets")
def _(ctx):
    embeddings, _ = batch()
    CrossBatchMemory(MetrixMSLoss(), D, memory_size=12)(embeddings, label_sets())


@case("wrapper-memory-soft-pairs")
def _(ctx):
    embeddings, labels = batch()
    CrossBatchMemory(MetrixMSLoss(), D, memory_size=12)(embeddings, labels, SoftPairs(embeddings, torch.eye(len(embeddings))))


@case("wrapper-views-pml-tuple")
def _(ctx):
    embeddings, _ = batch()
    pairs = torch.tensor([0, 1]), torch.tensor([6, 7]), torch.tensor([0, 1]), torch.tensor([2, 3])
    SelfSupervisedLoss(MetrixSupConLoss())(embeddings, embeddings + 0.1, pairs)


@case("wrapper-views-one-view-mixes")
def _(ctx):
    embeddings, labels = batch()
    SelfSupervisedLoss(MetrixSupConLoss())(embeddings, embeddings + 0.1, MixupMiner(seed=0)(embeddings, labels))


@case("wrapper-views-inner-miner")
def _(ctx):
    embeddings, _ = batch()
    both, labels = SelfSupervisedLoss.joined_views(embeddings, embeddings + 0.1)
    mixed_batch = MixupMiner(inner_miner=miners.MultiSimilarityMiner(), seed=0)(both, labels)
    SelfSupervisedLoss(MetrixSupConLoss())(embeddings, embeddings + 0.1, mixed_batch)


@case("wrapper-views-asymmetric-mixing")
def _(ctx):
    embeddings, _ = batch()
    both, labels = SelfSupervisedLoss.joined_views(embeddings, embeddings + 0.1)
    SelfSupervisedLoss(MetrixSupConLoss(), symmetric=False)(embeddings, embeddings + 0.1, MixupMiner(seed=0)(both, labels))


@case("labelsets-one-column")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss(label_similarity="shares_any")(embeddings, torch.tensor([[0], [0], [1], [1], [0], [1]]))


@case("labelsets-sparse")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, label_sets().to_sparse())


@case("labelsets-not-binary")
def _(ctx):
    embeddings, _ = batch()
    sets = label_sets()
    sets[0, 0] = 2
    MetrixMSLoss()(embeddings, sets)


@case("labelsets-length-mismatch")
def _(ctx):
    embeddings, _ = batch()
    MetrixContrastiveLoss()(embeddings, label_sets()[:5])


@case("labelsets-batch-soft-labels-shape")
def _(ctx):
    sets = label_sets()
    mixed().soft_pairs(sets, "jaccard", torch.ones(5, 5))


@case("labelsets-batch-soft-labels-class-labels")
def _(ctx):
    _, labels = batch()
    mixed().soft_pairs(labels, "jaccard", torch.ones(B, B))


@case("labelsets-empty-set")
def _(ctx):
    embeddings, _ = batch()
    sets = label_sets()
    sets[2] = 0
    MetrixMSLoss()(embeddings, sets)


@case("labelsets-unknown-similarity")
def _(ctx):
    MetrixMSLoss(label_similarity="overlap")


@case("labelsets-proxy-anchor")
def _(ctx):
    embeddings, _ = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, label_sets()[:, :2])


@case("labelsets-proxy-anchor-no-labels")
def _(ctx):
    embeddings, _ = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, label_sets()[:, :0])


@case("labelsets-class-weighted-reducer")
def _(ctx):
    from pytorch_metric_learning import reducers

    embeddings, _ = batch()
    MetrixContrastiveLoss(reducer=reducers.ClassWeightedReducer(torch.ones(3)))(embeddings, label_sets())


@case("class-weighted-reducer-without-labels")
def _(ctx):
    from pytorch_metric_learning import reducers

    embeddings, _ = batch()
    loss_fn = MetrixContrastiveLoss(reducer=reducers.ClassWeightedReducer(torch.ones(3)))
    loss_fn(embeddings, None, SoftPairs(embeddings, torch.eye(len(embeddings))))


@case("labelsets-with-ref-emb")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, label_sets(), ref_emb=embeddings[:5], ref_labels=label_sets()[:5])


@case("labelsets-with-a-pml-tuple")
def _(ctx):
    embeddings, _ = batch()
    pairs = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([4]))
    MetrixMSLoss()(embeddings, label_sets(), pairs)


@case("labelsets-miner-inner-miner")
def _(ctx):
    embeddings, _ = batch()
    MixupMiner(seed=0, inner_miner=miners.MultiSimilarityMiner())(embeddings, label_sets())


@case("labelsets-miner-num-classes")
def _(ctx):
    embeddings, _ = batch()
    MixupMiner(seed=0, num_classes=2)(embeddings, label_sets())


@case("labelsets-miner-threshold-zero")
def _(ctx):
    MixupMiner(positive_threshold=0)


@case("labelsets-miner-negative-threshold")
def _(ctx):
    MixupMiner(positive_threshold=0.5, negative_threshold=0.5)


@case("labelsets-other-label-count")
def _(ctx):
    from pml_metrix.label_sets import jaccard

    jaccard(label_sets(), torch.ones(2, 4))


@case("labelsets-calculator-not-binary")
def _(ctx):
    embeddings, _ = batch()
    sets = label_sets()
    sets[1, 2] = 2
    MetrixAccuracyCalculator(label_similarity="jaccard", device=torch.device("cpu")).get_accuracy(embeddings, sets)


@case("labelsets-calculator-one-column")
def _(ctx):
    embeddings, _ = batch()
    MetrixAccuracyCalculator(label_similarity="jaccard", device=torch.device("cpu")).get_accuracy(embeddings, label_sets()[:, 0])


@case("labelsets-calculator-column-of-classes")
def _(ctx):
    embeddings, labels = batch()
    calculator = MetrixAccuracyCalculator(label_similarity="jaccard", device=torch.device("cpu"))
    calculator.get_accuracy(embeddings, (labels % 2)[:, None])  # two classes as PML's tester hands them over


@case("labelsets-calculator-label-count")
def _(ctx):
    embeddings, _ = batch()
    sets = label_sets()
    MetrixAccuracyCalculator(label_similarity="jaccard", device=torch.device("cpu")).get_accuracy(embeddings, sets, embeddings, sets[:, :2])


@case("calc-label-sets-without-similarity")
def _(ctx):
    embeddings, _ = batch()
    MetrixAccuracyCalculator(device=torch.device("cpu")).get_accuracy(embeddings, label_sets())


@case("loss-per-anchor-reducer-more-mixes")
def _(ctx):
    from pytorch_metric_learning.reducers import PerAnchorReducer

    embeddings, labels = batch()
    MetrixContrastiveLoss(reducer=PerAnchorReducer())(embeddings, labels, MixupMiner(num_mixes=2, seed=0)(embeddings, labels))


@case("loss-2d-labels")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels[:, None])


@case("loss-no-labels-no-tuple")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, None)


@case("loss-negative-mix-weight")
def _(ctx):
    MetrixMSLoss(mix_weight=-1)


@case("loss-proxy-labels-too-large")
def _(ctx):
    embeddings, labels = batch()
    MetrixProxyAnchorLoss(2, D)(embeddings, labels)


@case("loss-proxy-negative-labels")
def _(ctx):
    embeddings, labels = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, labels - 1)


@case("loss-mixed-other-dim")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels, mixed(embeddings=torch.randn(K, D + 1)))


@case("loss-mixed-other-dtype")
def _(ctx):
    embeddings, labels = batch()
    MetrixContrastiveLoss()(embeddings, labels, mixed(embeddings=torch.randn(K, D, dtype=torch.float64)))


@case("loss-mixed-other-device")
def _(ctx):
    embeddings, labels = batch()
    meta = MixedBatch(
        torch.randn(K, D, device="meta"),
        torch.zeros(K, 2, dtype=torch.long, device="meta"),
        torch.rand(K, device="meta"),
    )
    MetrixMSLoss()(embeddings, labels, meta)


@case("loss-source-index-out-of-range")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels, mixed(source_index=torch.full((K, 2), B)))


@case("loss-source-index-negative")
def _(ctx):
    embeddings, labels = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, labels, mixed(source_index=torch.full((K, 2), -1)))


@case("loss-pair-mask-wrong-shape")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels, mixed(pair_mask=torch.ones(13, K, dtype=torch.bool)))


@case("loss-proxy-pair-mask-batch-rows")
def _(ctx):
    embeddings, labels = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, labels, mixed(pair_mask=torch.ones(B, K, dtype=torch.bool)))


@case("loss-mixed-batch-without-labels")
def _(ctx):
    embeddings, _ = batch()
    MetrixContrastiveLoss()(embeddings, None, mixed())


@case("loss-soft-pairs-wrong-rows")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, None, SoftPairs(torch.randn(4, D), torch.rand(7, 4)))


@case("loss-proxy-soft-pairs-wrong-rows")
def _(ctx):
    embeddings, _ = batch()
    MetrixProxyAnchorLoss(3, D)(embeddings, None, SoftPairs(torch.randn(4, D), torch.rand(B, 4)))


# ---- MixedBatch and SoftPairs -------------------------------------------------------------------


@case("mixed-lam-above-one")
def _(ctx):
    mixed(lam=torch.full((K,), 1.5))


@case("mixed-lam-negative")
def _(ctx):
    mixed(lam=torch.full((K,), -0.1))


@case("mixed-lam-nan")
def _(ctx):
    mixed(lam=torch.full((K,), float("nan")))


@case("mixed-lam-wrong-length")
def _(ctx):
    mixed(lam=torch.rand(K + 1))


@case("mixed-source-index-float")
def _(ctx):
    mixed(source_index=torch.zeros(K, 2))


@case("mixed-source-index-three-columns")
def _(ctx):
    mixed(source_index=torch.zeros(K, 3, dtype=torch.long))


@case("mixed-pair-mask-not-bool")
def _(ctx):
    mixed(pair_mask=torch.ones(B, K))


@case("mixed-lam-other-device")
def _(ctx):
    mixed(lam=torch.rand(K, device="meta"))


@case("mixed-nan-embeddings")
def _(ctx):
    mixed(embeddings=torch.full((K, D), float("nan")))


def soft_loss_of(soft_pairs):
    """A Metrix loss called with ``soft_pairs``: the moment a SoftPairs is checked."""
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, None, soft_pairs)


@case("soft-pairs-wrong-columns")
def _(ctx):
    soft_loss_of(SoftPairs(torch.randn(4, D), torch.rand(B, 5)))


@case("soft-pairs-out-of-range")
def _(ctx):
    soft_loss_of(SoftPairs(torch.randn(4, D), torch.rand(B, 4) + 1))


@case("soft-pairs-integer-labels")
def _(ctx):
    soft_loss_of(SoftPairs(torch.randn(4, D), torch.ones(B, 4, dtype=torch.long)))


@case("soft-pairs-pair-mask-wrong-shape")
def _(ctx):
    soft_loss_of(SoftPairs(torch.randn(4, D), torch.rand(B, 4), torch.ones(B, 3, dtype=torch.bool)))


@case("loss-misspelled-keyword")
def _(ctx):
    MetrixMSLoss(mixweight=0.4)


# ---- miner --------------------------------------------------------------------------------------


@case("miner-misspelled-keyword")
def _(ctx):
    MixupMiner(num_mix=2)


@case("miner-unknown-strategy")
def _(ctx):
    MixupMiner(strategies="mixup")


@case("miner-no-strategy")
def _(ctx):
    MixupMiner(strategies=[])


@case("miner-alpha-zero")
def _(ctx):
    MixupMiner(alpha=0)


@case("miner-alpha-negative")
def _(ctx):
    MixupMiner(alpha=-1.0)


@case("miner-unknown-mixes")
def _(ctx):
    MixupMiner(mixes="sometimes")


@case("miner-num-mixes-zero")
def _(ctx):
    MixupMiner(num_mixes=0)


@case("miner-num-mixes-float")
def _(ctx):
    MixupMiner(num_mixes=1.5)


@case("miner-unknown-negatives")
def _(ctx):
    MixupMiner(negatives="easy")


@case("miner-float-labels")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0)(embeddings, labels.float())


@case("miner-labels-too-large")
def _(ctx):
    embeddings, labels = batch()
    MetrixProxyAnchorLoss(2, D)(embeddings, labels, MixupMiner(num_classes=2, seed=0)(embeddings, labels))


@case("miner-ref-emb")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0)(embeddings, labels, embeddings)


@case("miner-length-mismatch")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0)(embeddings, labels[:-1])


@case("miner-nan-embeddings")
def _(ctx):
    embeddings, labels = batch()
    embeddings[-1] = float("nan")
    MixupMiner(seed=0)(embeddings, labels)


@case("miner-empty-batch")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0)(embeddings[:0], labels[:0])


@case("sampler-not-the-group-s-rank")
def _(ctx):
    torch.distributed.init_process_group("gloo", init_method=f"file://{ctx.root / 'group'}", rank=0, world_size=1)
    try:  # one process whose sampler is told it is one of two
        DistributedMPerClassSampler(batch()[1], m=2, batch_size=8, rank=1, world_size=2)
    finally:
        torch.distributed.destroy_process_group()


@case("sampler-batch-not-split")
def _(ctx):
    DistributedMPerClassSampler(batch()[1], m=2, batch_size=6, world_size=2)


# ---- calculator and tester ----------------------------------------------------------------------


@case("calc-recall-at-k-not-a-tuple")
def _(ctx):
    MetrixAccuracyCalculator(recall_at_k=4)


@case("calc-recall-at-k-zero")
def _(ctx):
    MetrixAccuracyCalculator(recall_at_k=(1, 0))


@case("calc-recall-at-k-float")
def _(ctx):
    MetrixAccuracyCalculator(recall_at_k=(1, 2.0))


@case("calc-recall-at-k-twice")
def _(ctx):
    MetrixAccuracyCalculator(recall_at_k=(4, 1, 4))


@case("calc-k-too-small")
def _(ctx):
    MetrixAccuracyCalculator(recall_at_k=(1, 8), k=4)


@case("calc-k-too-small-ndcg")
def _(ctx):
    MetrixAccuracyCalculator(label_similarity="jaccard", k=4, exclude=("recall_at_8",))


@case("calc-uniformity-max-items")
def _(ctx):
    MetrixAccuracyCalculator(uniformity_max_items=1)


@case("calc-label-comparison-with-alignment")
def _(ctx):
    MetrixAccuracyCalculator(label_comparison_fn=lambda a, b: a == b, exclude=("NMI", "AMI"))


@case("calc-unknown-metric")
def _(ctx):
    MetrixAccuracyCalculator(include=("recall_at_3",))


@case("tester-calculator-computes-utilization")
def _(ctx):
    make_tester(accuracy_calculator=MetrixAccuracyCalculator(device=torch.device("cpu")))


@case("tester-missing-train-split")
def _(ctx):
    make_tester().test({"val": class_dataset([6, 7], 4, seed=2)}, 1, torch.nn.Linear(8, 4))


@case("tester-nan-mixed-embeddings")
def _(ctx):
    make_tester().mixed_embeddings = torch.full((3, 4), float("nan"))


@case("tester-mixed-embeddings-other-dim")
def _(ctx):
    dataset_dict = {"train": class_dataset([0, 1, 2], 4, seed=1), "val": class_dataset([6, 7], 4, seed=2)}
    t = make_tester()
    t.mixed_embeddings = torch.randn(3, 5)
    t.test(dataset_dict, 1, torch.nn.Linear(8, 4), splits_to_eval=[("val", ["val"])])


@case("utilization-no-reference")
def _(ctx):
    utilization(torch.randn(3, 4))


@case("utilization-other-dim")
def _(ctx):
    utilization(torch.randn(3, 4), torch.randn(5, 3))


@case("utilization-empty-references")
def _(ctx):
    utilization(torch.randn(3, 4), torch.zeros(0, 4), torch.zeros(0, 4))


@case("alignment-label-length")
def _(ctx):
    embeddings, labels = batch()
    alignment(embeddings, labels[:-1])


@case("loss-mix-weight-unknown-strategy")
def _(ctx):
    MetrixMSLoss(mix_weight={"positive": 0.4})


@case("loss-mix-weight-per-strategy-unnamed-batch")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss(mix_weight={"positive_negative": 0.4, "anchor_negative": 0.3})(embeddings, labels, mixed())


@case("loss-nan-alpha")
def _(ctx):
    MetrixMSLoss(alpha=float("nan"))


@case("loss-inf-margin")
def _(ctx):
    MetrixContrastiveLoss(neg_margin=float("inf"))


@case("loss-unknown-mixed-form")
def _(ctx):
    MetrixMSLoss(mixed_form="pull")


@case("loss-class-rows-for-batch-anchors")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss()(embeddings, labels, mixed(pair_mask=torch.ones(B, K, dtype=torch.bool), num_classes=B))


@case("loss-soft-pairs-with-ref-emb")
def _(ctx):
    embeddings, _ = batch()
    MetrixMSLoss()(embeddings, None, SoftPairs(embeddings, torch.ones(B, B)), ref_emb=embeddings)


@case("loss-mixed-batch-tuple-with-ref-emb")
def _(ctx):
    embeddings, labels = batch()
    mixed_batch = MixupMiner(inner_miner=miners.MultiSimilarityMiner(epsilon=1.0), seed=0)(embeddings, labels)
    MetrixSupConLoss()(embeddings, labels, mixed_batch, embeddings + 1, labels)


@case("loss-mixed-batch-tuple-of-missing-ref-emb")
def _(ctx):
    embeddings, labels = batch()
    pairs = miners.MultiSimilarityMiner(epsilon=1.0)(embeddings, labels)
    MetrixMSLoss()(embeddings, labels, mixed(indices_tuple=pairs, tuple_references="ref_emb"))


@case("loss-ref-emb-without-ref-labels")
def _(ctx):
    embeddings, labels = batch()
    MetrixSupConLoss()(embeddings, labels, MixupMiner(seed=0)(embeddings, labels), embeddings + 1)


@case("mixed-tuple-references-unknown")
def _(ctx):
    mixed(tuple_references="memory")


@case("loss-option-not-a-number")
def _(ctx):
    MetrixSupConLoss(temperature=torch.tensor([0.1, 0.2]))


@case("loss-pml-given-a-mixed-batch")
def _(ctx):
    embeddings, labels = batch()
    losses.MultiSimilarityLoss()(embeddings, labels, mixed())


@case("mixed-num-classes-zero")
def _(ctx):
    mixed(num_classes=0)


@case("mixed-class-rows-wrong-count")
def _(ctx):
    mixed(pair_mask=torch.ones(B, K, dtype=torch.bool), num_classes=3)


@case("plan-mix-integer-batch")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0).plan(embeddings, labels).mix(torch.zeros(B, 1, 4, 4, dtype=torch.uint8))


@case("miner-unknown-shown-to")
def _(ctx):
    MixupMiner(shown_to="all")


@case("miner-unknown-lam-per")
def _(ctx):
    MixupMiner(lam_per="step")


@case("miner-strategy-per-step-not-bool")
def _(ctx):
    MixupMiner(strategy_per_step="yes")


@case("miner-repeated-strategy")
def _(ctx):
    MixupMiner(strategies=["positive_negative", "positive_negative"])


@case("miner-alpha-inf")
def _(ctx):
    MixupMiner(alpha=float("inf"))


@case("miner-state-without-seed")
def _(ctx):
    embeddings, labels = batch()
    seeded = MixupMiner(seed=1)
    seeded.plan(embeddings, labels)
    MixupMiner().load_state_dict(seeded.state_dict())


@case("sampler-state-of-another-run")
def _(ctx):
    state = DistributedMPerClassSampler(torch.arange(6).repeat_interleave(4), 4, 8, 24).state_dict()
    DistributedMPerClassSampler(torch.arange(4).repeat_interleave(4), 4, 8, 16).load_state_dict(state)


@case("data-fonts-train-fraction-zero")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    FontGlyphs("train", font_list=font_list, train_fraction=0, cache_dir=str(ctx.root))


@case("data-subset-max-classes-zero")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    get_dataset("fonts", "val", font_list=font_list, cache_dir=str(ctx.root), max_classes=0)


# ---- CLI (each returns the pml-metrix arguments) -------------------------------------------------


def train(ctx, *args):
    return ["train", *args, "--output", str(ctx.root / "run")]


@case("cli-unknown-loss")
def _(ctx):
    return train(ctx, "--loss", "triplet")


@case("cli-unknown-mix-level")
def _(ctx):
    return train(ctx, "--mix-level", "pixels")


@case("cli-negative-batch-size")
def _(ctx):
    return train(ctx, "--batch-size", "-8")


@case("cli-batch-size-not-an-int")
def _(ctx):
    return train(ctx, "--batch-size", "abc")


@case("cli-batch-not-multiple-of-samples")
def _(ctx):
    return train(ctx, "--batch-size", "30", "--samples-per-class", "4")


@case("cli-recall-at-k-zero")
def _(ctx):
    return train(ctx, "--recall-at-k", "0")


@case("cli-unknown-dataset")
def _(ctx):
    return train(ctx, "--dataset", "mnist")


@case("cli-negative-threshold-not-below")
def _(ctx):
    return train(ctx, "--negative-threshold", "0.6")


@case("cli-unknown-eval-split")
def _(ctx):
    return train(ctx, "--eval-split", "gallery")


@case("cli-missing-data-root")
def _(ctx):
    return ["train", "--dataset", "cub200", "--data-root", str(ctx.root), "--output", str(ctx.root / "run")]


@case("cli-batch-too-large")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    return train(ctx, "--dataset-options", f"font_list={font_list}", "--batch-size", "100", "--samples-per-class", "4")


@case("cli-batch-more-than-the-items")
def _(ctx):
    from tests.app.test_torchrun import write_tiny_fashion_mnist

    fashion = write_tiny_fashion_mnist(ctx.root / "fashion")  # 5 training classes, 3 images each below 4 per class
    return train(ctx, "--dataset", "fashion_mnist", "--data-root", fashion, "--dataset-options", "max_images_per_class=3")


@case("cli-select-ndcg-without-label-sets")
def _(ctx):
    return fonts(ctx, "--select-metric", "ndcg_at_1")


@case("cli-select-map-on-label-sets")
def _(ctx):
    font_list, faces = ctx.request.getfixturevalue("small_font_list")
    table = write_attribute_table(ctx.root / "attributes.tsv", faces)
    return train(ctx, "--dataset", "font_attributes", "--dataset-options", f"font_list={font_list}",
                 f"attribute_table={table}", "--select-metric", "mean_average_precision_at_r")


@case("cli-torchrun-batch-not-split")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    ctx.monkeypatch.setattr(experiment, "get_world_size", lambda: 2)  # a 2-process group: tests/app/test_torchrun.py has one
    return train(ctx, "--dataset-options", f"font_list={font_list}", "--batch-size", "12", "--samples-per-class", "4")


def config_file(ctx, name, text):
    path = ctx.root / name
    path.write_text(text)
    return train(ctx, "--config", str(path))


@case("cli-unknown-yaml-option")
def _(ctx):
    return config_file(ctx, "options.yaml", "learning_rate: 0.1\n")


@case("cli-study-file-to-train")
def _(ctx):
    return config_file(ctx, "study.yaml", "seeds: [0, 1]\nvariants: {baseline: {mix_level: none}}\n")


@case("cli-bad-yaml")
def _(ctx):
    return config_file(ctx, "bad.yaml", "loss: [ms\n")


@case("cli-yaml-not-a-mapping")
def _(ctx):
    return config_file(ctx, "list.yaml", "- ms\n")


@case("cli-missing-config")
def _(ctx):
    return train(ctx, "--config", str(ctx.root / "missing.yaml"))


@case("cli-resume-nothing")
def _(ctx):
    return ["train", "--resume", "--output", str(ctx.root)]


def truncated_checkpoint(ctx):
    path = ctx.root / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1, "models": {"trunk": torch.nn.Linear(4, 4).state_dict()}})
    path.write_bytes(path.read_bytes()[:200])
    return path


@case("cli-resume-truncated-checkpoint")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    RunConfig(
        dataset_options={"font_list": font_list}, batch_size=8, embedding_size=8, output=str(ctx.root)
    ).save(ctx.root / "config.yaml")
    truncated_checkpoint(ctx)
    return ["train", "--resume", "--output", str(ctx.root)]


@case("cli-eval-missing-checkpoint")
def _(ctx):
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-eval-truncated-checkpoint")
def _(ctx):
    return ["eval", str(truncated_checkpoint(ctx))]


@case("cli-eval-foreign-checkpoint")
def _(ctx):
    torch.save({"state_dict": torch.nn.Linear(4, 4).state_dict()}, ctx.root / "checkpoint.pth")
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-reproducible-without-avx2")
def _(ctx):
    ctx.monkeypatch.setattr(reproducible, "processor", lambda: {"model": "Old CPU", "machine": "x86_64", "flags": ["sse4_2"]})
    return train(ctx, "--reproducible")


@case("cli-reproducible-torch-loaded-first")
def _(ctx):
    for name in reproducible.PINNED_ENVIRONMENT:
        ctx.monkeypatch.delenv(name, raising=False)
    return train(ctx, "--reproducible")  # main in this process, which has loaded torch: as a script calling the app


@case("cli-torchrun-compare")
def _(ctx):
    ctx.monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # what torchrun sets in each process
    ctx.monkeypatch.setenv("WORLD_SIZE", "2")
    return ["compare", "--output", str(ctx.root)]


def fonts(ctx, *args):
    """``train`` on the small font list."""
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    return train(ctx, "--dataset-options", f"font_list={font_list}", *args)


@case("cli-output-holds-a-run")
def _(ctx):
    save_checkpoint(ctx.root / "run" / "checkpoint.pth", {"epoch": 1, "config": {}, "models": {}})
    return fonts(ctx, "--batch-size", "24")


@case("cli-output-holds-a-run-without-an-epoch")
def _(ctx):
    tiny_config(ctx, output=str(ctx.root / "run")).save(ctx.root / "run" / "config.yaml")  # its first write
    return fonts(ctx, "--batch-size", "24")


@case("cli-output-empty")
def _(ctx):
    return ["train", "--resume", "--output", ""]


@case("cli-overwrite-not-a-run")
def _(ctx):
    (ctx.root / "run" / "logs").mkdir(parents=True)
    (ctx.root / "run" / "logs" / "notes.txt").write_text("my notes")
    (ctx.root / "run" / "config.yaml").write_text("seeds: [0]\nvariants: {baseline: {}}\n")  # a study's file
    return fonts(ctx, "--batch-size", "24", "--overwrite")


@case("cli-resume-and-overwrite")
def _(ctx):
    return train(ctx, "--resume", "--overwrite")


@case("cli-bool-misspelled")
def _(ctx):
    return config_file(ctx, "bool.yaml", "freeze_bn: maybe\n")


@case("cli-epochs-not-integer")
def _(ctx):
    return train(ctx, "--epochs", "2.5")


@case("cli-nan-lr")
def _(ctx):
    return train(ctx, "--lr", "nan")


@case("cli-inf-mix-weight")
def _(ctx):
    return train(ctx, "--mix-weight", "inf")


@case("cli-nan-loss-param")
def _(ctx):
    return train(ctx, "--loss-params", "alpha=.nan")


@case("cli-repeated-recall-k")
def _(ctx):
    return train(ctx, "--recall-at-k", "1", "2", "1")


@case("cli-flag-empty-value")
def _(ctx):
    return fonts(ctx, "--dataset-options", "max_classes=")  # a shell variable that expanded to nothing


@case("cli-recall-k-too-large")
def _(ctx):
    return fonts(ctx, "--batch-size", "24", "--recall-at-k", "1", "100000")


@case("cli-select-on-test")
def _(ctx):
    return train(ctx, "--select-split", "test")


@case("cli-recall-at-k-without-1")
def _(ctx):
    return train(ctx, "--recall-at-k", "4")


@case("cli-patience-without-selection")
def _(ctx):
    return train(ctx, "--select-split", "none", "--patience", "2")


@case("cli-pretrained-small-cnn")
def _(ctx):
    return train(ctx, "--pretrained")


@case("cli-image-size-as-dataset-option")
def _(ctx):
    return train(ctx, "--dataset-options", "image_size=3")


@case("cli-one-sample-per-class")
def _(ctx):
    return train(ctx, "--samples-per-class", "1", "--batch-size", "10")


@case("cli-one-class-batch")
def _(ctx):
    return fonts(ctx, "--batch-size", "4", "--samples-per-class", "4")


@case("cli-mix-weight-per-strategy-alone")
def _(ctx):
    return train(ctx, "--mix-weight", "positive_negative=0.4")


@case("cli-yaml-key-twice")
def _(ctx):
    return config_file(ctx, "twice.yaml", "lr: 0.1\nepochs: 2\nlr: 0.01\n")


@case("cli-unknown-model")
def _(ctx):
    return train(ctx, "--model", "vgg16")


@case("model-backbone-channels")
def _(ctx):
    backbone("resnet18", pretrained=False, in_channels=2)


@case("cli-lr-decay-step-zero")
def _(ctx):
    return train(ctx, "--lr-decay-step", "0")


@case("cli-device-unavailable")
def _(ctx):
    ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return train(ctx, "--device", "cuda")


@case("cli-full-disk")
def _(ctx):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.monkeypatch.setattr(files.os, "fsync", full)
    return fonts(ctx, "--batch-size", "24", "--epochs", "1", "--embedding-size", "8", "--model-width", "8")


def tiny_config(ctx, **changes):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    values = dict(dataset_options={"font_list": font_list}, batch_size=24, model_width=8, embedding_size=8,
                  output=str(ctx.root))
    return RunConfig(**{**values, **changes})


def tiny_checkpoint(ctx, run_config, **changes):
    """A checkpoint (untrained weights) and config.yaml of a run of ``run_config`` in ``ctx.root``, its
    entries ``changes`` replaced."""
    state = {"format": "pml_metrix-checkpoint-v2", **experiment.Run(run_config).state(1), **changes}
    torch.save(state, ctx.root / "checkpoint.pth")
    run_config.save(ctx.root / "config.yaml")


@case("cli-resume-older-checkpoint")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx), format="pml_metrix-checkpoint-v1")
    return ["train", "--resume", "--output", str(ctx.root)]


@case("cli-eval-other-input-form")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx, model="resnet18"), trunk_input="imagenet")  # as a pretrained one on glyphs records it
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-eval-damaged-checkpoint")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    state = torch.load(ctx.root / "checkpoint.pth", weights_only=True)
    del state["models"]
    torch.save(state, ctx.root / "checkpoint.pth")
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-eval-weights-do-not-fit")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx), config=tiny_config(ctx, model_width=16).to_dict())
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-eval-other-dataset-channels")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))  # fonts: gray images
    write_cub(ctx.root / "cub", per_class=10)  # colour images, enough of each class for Recall@8
    return ["eval", str(ctx.root / "checkpoint.pth"), "--dataset", "cub200", "--data-root", str(ctx.root / "cub")]


def compare(ctx, *args, study=None):
    if study is not None:
        (ctx.root / "study.yaml").write_text(study)
        args = ("--config", str(ctx.root / "study.yaml"), *args)
    return ["compare", *args, "--output", str(ctx.root / "compare")]


@case("cli-compare-repeated-seeds")
def _(ctx):
    return compare(ctx, "--seeds", "0", "0")


def beside_a_baseline(ctx, variant: str):
    """``compare`` of a study of a baseline and ``variant`` (its YAML line, ``name: {options}``)."""
    return compare(ctx, study=f"variants:\n  baseline: {{mix_level: none}}\n  {variant}\n")


@case("cli-compare-baseline-not-first")
def _(ctx):
    return compare(ctx, study="variants:\n  metrix: {mix_level: feature}\n  baseline: {mix_level: none}\n")


@case("cli-compare-variant-unknown-option")
def _(ctx):
    return beside_a_baseline(ctx, "mx: {mix_levle: feature}")


@case("cli-compare-variant-bad-value")
def _(ctx):
    return beside_a_baseline(ctx, "mx: {mix_weight: lots}")


@case("cli-compare-unknown-variant")
def _(ctx):
    return compare(ctx, "--variants", "nope")


@case("cli-compare-variant-sets-seed")
def _(ctx):
    return beside_a_baseline(ctx, "fixed: {mix_level: feature, seed: 3}")


@case("cli-compare-variant-sets-reproducible")
def _(ctx):
    return beside_a_baseline(ctx, "pinned: {mix_level: feature, reproducible: true}")


@case("cli-compare-variant-sets-eval-split")
def _(ctx):
    return beside_a_baseline(ctx, "metrix: {mix_level: feature, eval_split: val}")


@case("cli-compare-into-a-training-run")
def _(ctx):
    save_checkpoint(ctx.root / "compare" / "checkpoint.pth", {"epoch": 1, "config": {}, "models": {}})
    return compare(ctx, "--resume")


@case("cli-compare-resume-result-without-checkpoint")
def _(ctx):
    (ctx.root / "compare" / "baseline" / "seed0").mkdir(parents=True)
    (ctx.root / "compare" / "baseline" / "seed0" / "results.json").write_text("{}")  # its checkpoint deleted to save space
    return compare(ctx, "--resume", "--variants", "baseline", "--seeds", "0")


@case("cli-compare-seed-in-study-file")
def _(ctx):
    return compare(ctx, study="seed: 5\nvariants:\n  baseline: {mix_level: none}\n")


@case("loss-alpha-zero")
def _(ctx):
    MetrixMSLoss(alpha=0)


@case("loss-temperature-zero")
def _(ctx):
    MetrixNTXentLoss(temperature=0.0)


@case("loss-mix-weight-empty")
def _(ctx):
    MetrixMSLoss(mix_weight={})


@case("mixed-unknown-strategy")
def _(ctx):
    embeddings, labels = batch()
    MetrixMSLoss(mix_weight={"positive_negative": 0.4})(embeddings, labels, mixed(strategy="positive"))


@case("plan-mix-other-batch")
def _(ctx):
    embeddings, labels = batch()
    MixupMiner(seed=0).plan(embeddings, labels).mix(torch.randn(8, D))


@case("miner-seed-not-int")
def _(ctx):
    MixupMiner(seed=1.5)


@case("data-font-list-malformed-line")
def _(ctx):
    (ctx.root / "fonts.txt").write_text("pkg\tfamily\tface\n")
    FontGlyphs("train", font_list=str(ctx.root / "fonts.txt"), cache_dir=str(ctx.root))


@case("data-font-list-file-twice")
def _(ctx):
    (ctx.root / "fonts.txt").write_text("pkg\tA\tA Regular\t/f.ttf\npkg\tB\tB Regular\t/f.ttf\n")
    FontGlyphs("train", font_list=str(ctx.root / "fonts.txt"), cache_dir=str(ctx.root))


@case("data-font-list-not-a-font")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    lines = []
    for number, line in enumerate(open(font_list).read().splitlines()):  # every face a text file
        (ctx.root / f"face{number}").mkdir()
        (ctx.root / f"face{number}" / "notes.txt").write_text("no font\n")
        lines.append("\t".join(line.split("\t")[:3] + [str(ctx.root / f"face{number}" / "notes.txt")]))
    (ctx.root / "fonts.txt").write_text("\n".join(lines) + "\n")
    FontGlyphs("train", font_list=str(ctx.root / "fonts.txt"), cache_dir=str(ctx.root))


@case("miner-alpha-too-small")
def _(ctx):
    MixupMiner(alpha=0.001)


@case("data-fonts-val-fraction-out-of-range")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    FontGlyphs("train", font_list=font_list, val_fraction=-0.5, cache_dir=str(ctx.root))


def font_attributes(ctx, edit=lambda text: text):
    """FontAttributes' train split on the small font list, its attribute table (made) changed by ``edit``."""
    font_list, faces = ctx.request.getfixturevalue("small_font_list")
    table = ctx.root / "attributes.tsv"
    table.write_text(edit(open(write_attribute_table(table, faces)).read()))
    FontAttributes("train", attribute_table=str(table), font_list=font_list, image_size=8, cache_dir=str(ctx.root))


def first_row(edit):
    """``edit`` applied to the first row of the table (its third line, after the comment and the header)."""
    def edit_table(text):
        lines = text.split("\n")
        lines[2] = edit(lines[2].split("\t"))
        return "\n".join(lines)

    return edit_table


@case("data-font-attributes-missing-table")
def _(ctx):
    font_list, _ = ctx.request.getfixturevalue("small_font_list")
    FontAttributes("train", attribute_table=str(ctx.root / "attributes.tsv"), font_list=font_list)


@case("data-font-attributes-missing-face")
def _(ctx):
    font_list, faces = ctx.request.getfixturevalue("small_font_list")
    first_train_face = next(face for face in faces if split_families(faces)[face.family] == "train")
    kept = [face for face in faces if face != first_train_face]
    FontAttributes("train", attribute_table=write_attribute_table(ctx.root / "attributes.tsv", kept),
                   font_list=font_list, image_size=8, cache_dir=str(ctx.root))


@case("data-font-attributes-bad-number")
def _(ctx):
    font_attributes(ctx, first_row(lambda fields: "\t".join([*fields[:2], "bold", *fields[3:]])))


@case("data-font-attributes-unknown-slant")
def _(ctx):
    font_attributes(ctx, first_row(lambda fields: "\t".join([*fields[:3], "50", *fields[4:]])))


@case("data-font-attributes-unknown-column")
def _(ctx):
    font_attributes(ctx, lambda text: text.replace("spacing\n", "spacing\tserif\n", 1))


@case("data-font-attributes-short-row")
def _(ctx):
    font_attributes(ctx, first_row(lambda fields: "\t".join(fields[:5])))


@case("cli-eval-reference-other-split")
def _(ctx):
    return train(ctx, "--eval-reference", "val")


@case("cli-loss-params-set-by-the-run")
def _(ctx):
    return train(ctx, "--loss-params", "mix_weight=5")


@case("cli-loss-params-alpha-zero")
def _(ctx):
    return train(ctx, "--loss-params", "alpha=0")


@case("cli-loss-params-temperature-zero")
def _(ctx):
    return train(ctx, "--loss", "supcon", "--loss-params", "temperature=0")


@case("cli-device-misspelled")
def _(ctx):
    return train(ctx, "--device", "cuda:x")


@case("cli-image-size-too-small")
def _(ctx):
    return train(ctx, "--image-size", "4")


@case("cli-num-mixes-too-many")
def _(ctx):
    return train(ctx, "--num-mixes", "1000000")


@case("cli-dict-key-twice")
def _(ctx):
    return train(ctx, "--loss-params", "alpha=1", "alpha=2")


@case("cli-unrecognized-argument")
def _(ctx):
    return train(ctx, "--lr", "0.1", "0.2")


@case("cli-dataset-options-unknown")
def _(ctx):
    return train(ctx, "--dataset-options", "colour=red")


@case("cli-compare-into-a-run")
def _(ctx):
    (ctx.root / "compare").mkdir()
    (ctx.root / "compare" / "config.yaml").write_text("seeds: [0]\n")
    return compare(ctx)


@case("cli-resume-nothing-finished")
def _(ctx):
    tiny_config(ctx).save(ctx.root / "config.yaml")
    return ["train", "--resume", "--output", str(ctx.root)]


@case("cli-eval-checkpoint-unknown-option")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx), config={**tiny_config(ctx).to_dict(), "learning_rate": 0.1})
    return ["eval", str(ctx.root / "checkpoint.pth")]


def resume(ctx, *args):
    return ["train", "--resume", "--output", str(ctx.root), *args]


@case("cli-resume-other-settings")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    return resume(ctx, "--loss", "contrastive")


@case("cli-resume-other-data")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx), train_data="0" * 64)  # the fonts' renders changed under the same list
    return resume(ctx)


@case("cli-resume-other-select-data")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx), select_data="0" * 64)  # the validation fonts changed, the training ones not
    return resume(ctx)


@case("cli-resume-past-epochs")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx, epochs=4), epoch=3)
    return resume(ctx, "--epochs", "2")


def ended_run(ctx, results=None, history=({"recall_at_1": 0.5, "epoch": 1},), epoch=1):
    """A run of 3 epochs in ``ctx.root`` that has ended at ``epoch`` (its checkpoint, config.yaml and
    results.json; results.json's text ``results`` when given, of the results without their digest,
    as an older pml_metrix wrote them, so that the edit meets the check behind the digest's)."""
    config, history = tiny_config(ctx), [dict(metrics) for metrics in history]
    tiny_checkpoint(ctx, config, history=history, epoch=epoch)
    best_epoch = max(history, key=lambda metrics: metrics["recall_at_1"])["epoch"]
    result = run_folder.RunResult(config, history, best_epoch, {"recall_at_1": 0.5}, ctx.root).to_dict()
    undigested = {key: value for key, value in result.items() if key != "digest"}
    (ctx.root / "results.json").write_text(json.dumps(result) if results is None else results(undigested))


@case("cli-resume-ended-other-settings")
def _(ctx):
    ended_run(ctx)
    return resume(ctx, "--patience", "1")


@case("cli-resume-damaged-results")
def _(ctx):
    ended_run(ctx, lambda result: json.dumps(result)[:40])
    return resume(ctx)


@case("cli-resume-results-without-a-key")
def _(ctx):
    ended_run(ctx, lambda result: json.dumps({**result, "final": {}}))
    return resume(ctx)


@case("cli-resume-results-bad-config")
def _(ctx):
    ended_run(ctx, lambda result: json.dumps({**result, "config": {**result["config"], "lr": -1}}))
    return resume(ctx)


@case("cli-resume-results-final-edited")
def _(ctx):
    ended_run(ctx)
    results = json.loads((ctx.root / "results.json").read_text())
    results["final"]["metrics"]["recall_at_1"] = 0.99  # a better test score typed in, the digest left
    (ctx.root / "results.json").write_text(json.dumps(results))
    return resume(ctx)


@case("cli-resume-results-of-another-run")
def _(ctx):
    ended_run(ctx, lambda result: json.dumps({**result, "history": [{"recall_at_1": 0.9, "epoch": 1}]}))
    return resume(ctx)


@case("cli-resume-best-replaced")
def _(ctx):
    ended_run(ctx, history=({"recall_at_1": 0.6, "epoch": 1}, {"recall_at_1": 0.5, "epoch": 2}), epoch=2)
    (ctx.root / "best.pth").write_bytes((ctx.root / "checkpoint.pth").read_bytes())  # epoch 2, not the best, 1
    return resume(ctx)


@case("cli-resume-config-gone")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    (ctx.root / "config.yaml").unlink()
    return resume(ctx)


@case("cli-loss-params-misspelled")
def _(ctx):
    return fonts(ctx, "--loss-params", "betta=3")


@case("cli-resume-best-missing")
def _(ctx):
    history = [{"recall_at_1": 0.6, "epoch": 1}, {"recall_at_1": 0.5, "epoch": 2}]
    tiny_checkpoint(ctx, tiny_config(ctx, epochs=3), history=history, epoch=2)  # best epoch 1, its best.pth gone
    return resume(ctx)


@case("cli-resume-damaged-logs-database")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    (ctx.root / "logs").mkdir()
    (ctx.root / "logs" / "logs.db").write_bytes(b"not a database" * 100)
    return resume(ctx)


@case("cli-resume-damaged-logs-csv")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    (ctx.root / "logs").mkdir()
    (ctx.root / "logs" / "loss_histories.csv").write_bytes(b"\xff\xfe~iteration~")
    return resume(ctx)


def held(ctx, folder):
    """``folder`` locked as another process's live run holds it (a lock of its own open file, kept
    open while the case runs)."""
    ctx.holder = run_folder.RunFolder(folder)
    assert ctx.holder.lock() is None


@case("cli-resume-in-use")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    held(ctx, ctx.root)
    return resume(ctx)


@case("cli-eval-in-use")
def _(ctx):
    tiny_checkpoint(ctx, tiny_config(ctx))
    held(ctx, ctx.root)  # a run training (or replacing its run) there
    return ["eval", str(ctx.root / "checkpoint.pth")]


@case("cli-overwrite-in-use")
def _(ctx):
    held(ctx, ctx.root / "run")
    return fonts(ctx, "--batch-size", "24", "--overwrite")


@case("cli-compare-in-use")
def _(ctx):
    held(ctx, ctx.root / "compare")
    return compare(ctx, "--resume")


# ---- dataset readers ----------------------------------------------------------------------------


@case("data-unknown-dataset")
def _(ctx):
    get_dataset("mnist", "train")


@case("data-unknown-split")
def _(ctx):
    get_dataset("inshop", "test", str(ctx.root))


@case("data-benchmark-unknown-split")
def _(ctx):
    get_dataset("cub200", "gallery", str(ctx.root))


@case("data-cub-missing")
def _(ctx):
    get_dataset("cub200", "train", str(ctx.root))


@case("data-cars-missing")
def _(ctx):
    get_dataset("cars196", "test", str(ctx.root))


@case("data-sop-missing")
def _(ctx):
    get_dataset("sop", "val", str(ctx.root))


@case("data-sop-missing-image")
def _(ctx):
    write_sop(ctx.root)
    (ctx.root / "Stanford_Online_Products" / "bicycle_final" / "11319_0.JPG").unlink()
    get_dataset("sop", "test", str(ctx.root))


@case("data-cub-annotations-disagree")
def _(ctx):
    write_cub(ctx.root)
    images = ctx.root / "CUB_200_2011" / "images.txt"
    lines = images.read_text().splitlines(keepends=True)
    images.write_text("".join(lines[:3] + lines[4:]))  # line 4 lost: PML's reader would skip the rest of its pairs
    get_dataset("cub200", "train", str(ctx.root))


@case("data-cub-missing-image")
def _(ctx):
    write_cub(ctx.root)
    (ctx.root / "CUB_200_2011" / "images" / "103.Bird_103" / "Bird_103_0001_103.jpg").unlink()  # a test image, not the first
    get_dataset("cub200", "test", str(ctx.root))


@case("data-inshop-partition-cut")
def _(ctx):
    write_inshop(ctx.root)
    partition = ctx.root / "list_eval_partition.txt"
    partition.write_text("".join(partition.read_text().splitlines(keepends=True)[:-4]))  # cut short: 4 rows lost
    get_dataset("inshop", "query", str(ctx.root))


@case("data-inshop-missing-partition")
def _(ctx):
    get_dataset("inshop", "query", str(ctx.root))


@case("data-inshop-missing-images")
def _(ctx):
    (ctx.root / "list_eval_partition.txt").write_text(
        "1\nimage_name item_id evaluation_status\nimg/WOMEN/Dresses/id_00000001/01_1_front.jpg id_00000001 train\n"
    )
    get_dataset("inshop", "train", str(ctx.root))


@case("data-fashion-mnist-offline")
def _(ctx):
    ctx.monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(ctx.root / "no_debian"))

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    ctx.monkeypatch.setattr(fashion_mnist, "FashionMNIST", offline)
    get_dataset("fashion_mnist", "train", str(ctx.root))


@case("data-fashion-mnist-unknown-split")
def _(ctx):
    FashionMNISTClasses("gallery", str(ctx.root))


@case("data-fonts-missing-font-list")
def _(ctx):
    FontGlyphs("train", font_list=str(ctx.root / "fonts.txt"))


@case("data-negative-val-fraction")
def _(ctx):
    write_cub(ctx.root)
    load_benchmark("cub200", "train", str(ctx.root), val_fraction=-0.3)


@case("data-empty-val-split")
def _(ctx):
    write_cub(ctx.root)
    load_benchmark("cub200", "val", str(ctx.root), val_fraction=0)


# ---- untrusted YAML and numbers the run cannot use (issue 25) -------------------------------------


@case("cli-yaml-billion-laughs")
def _(ctx):  # in dataset_options, whose values are the reader's own
    return config_file(ctx, "laughs.yaml", "dataset_options:\n" + textwrap.indent(aliases_of_aliases(5), "  "))


@case("cli-yaml-merge-bomb")
def _(ctx):
    lines = ["dataset_options:", "  m0: &m0 {x: 1}"]
    lines += [f"  m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], y{i}: 1}}" for i in range(1, 31)]
    return config_file(ctx, "merges.yaml", "\n".join(lines) + "\n")


@case("cli-yaml-deep-nesting")
def _(ctx):
    return config_file(ctx, "deep.yaml", "description: " + "[" * 100_000 + "]" * 100_000 + "\n")


@case("cli-yaml-recursive-alias")
def _(ctx):
    return config_file(ctx, "loop.yaml", "dataset_options: &a {x: *a}\n")


@case("cli-yaml-too-large")
def _(ctx):
    return config_file(ctx, "large.yaml", "# padding\n" * ((2 << 20) // 10))


@case("cli-yaml-merge-key-twice")
def _(ctx):
    return config_file(ctx, "merge.yaml", "dataset_options:\n  a: &a {x: 1}\n  b: &b {y: 2}\n  c: {<<: *a, z: 3, <<: *b}\n")


@case("cli-yaml-python-tag")
def _(ctx):
    return config_file(ctx, "tag.yaml", "description: !!python/object/apply:os.system ['echo pwned']\n")


@case("cli-yaml-two-documents")
def _(ctx):
    return config_file(ctx, "two.yaml", "lr: 0.1\n---\nlr: 0.2\n")


@case("cli-yaml-not-utf8")
def _(ctx):
    (ctx.root / "latin1.yaml").write_bytes("description: é\n".encode("latin-1"))
    return train(ctx, "--config", str(ctx.root / "latin1.yaml"))


@case("cli-yaml-undefined-alias")
def _(ctx):
    return config_file(ctx, "alias.yaml", "description: *nowhere\n")


@case("cli-yaml-huge-integer")
def _(ctx):
    return config_file(ctx, "digits.yaml", "epochs: 1" + "0" * 5000 + "\n")


@case("cli-config-a-folder")
def _(ctx):
    return train(ctx, "--config", str(ctx.root))


@case("cli-yaml-key-not-a-word")
def _(ctx):
    return config_file(ctx, "on.yaml", "on: 1\n")


@case("cli-yaml-many-unknown-keys")
def _(ctx):
    return config_file(ctx, "keys.yaml", "".join(f"k{i}: 1\n" for i in range(5000)))


@case("cli-flag-bad-yaml")
def _(ctx):
    return train(ctx, "--loss-params", "alpha=[1")


@case("cli-flag-recursive-alias")
def _(ctx):
    return train(ctx, "--mix-weight", "&a [*a]")


@case("cli-flag-deep-nesting")
def _(ctx):
    return train(ctx, "--dataset-options", "x=" + "[" * 5000 + "]" * 5000)


@case("cli-flag-pairs-and-a-long-list")
def _(ctx):
    return train(ctx, "--loss-params", "alpha=1", str(list(range(10_000))))


@case("cli-flag-python-tag")
def _(ctx):
    return train(ctx, "--dataset-options", "x=!!python/name:os.system")


@case("cli-compare-seeds-not-a-list")
def _(ctx):
    return compare(ctx, study="seeds: 5\n")


@case("cli-compare-variant-name-a-path")
def _(ctx):
    return beside_a_baseline(ctx, "../elsewhere: {mix_level: feature}")


@case("cli-lr-beyond-float32")
def _(ctx):
    return train(ctx, "--lr", "1e39")


@case("cli-grad-clip-below-float32")
def _(ctx):
    return train(ctx, "--grad-clip", "1e-320")


@case("cli-loss-param-beyond-float32")
def _(ctx):
    return train(ctx, "--loss-params", "beta=1e39")


@case("cli-mix-weight-per-strategy-beyond-float32")
def _(ctx):
    return train(ctx, "--strategy-per-step", "--mix-weight", "positive_negative=1e39")


@case("cli-float-option-huge-integer")
def _(ctx):
    return config_file(ctx, "decay.yaml", "weight_decay: 1" + "0" * 399 + "\n")


@case("cli-embedding-size-too-large")
def _(ctx):
    return train(ctx, "--embedding-size", "1000000000000")


@case("cli-model-width-too-large")
def _(ctx):
    return train(ctx, "--model-width", "1000000000")


@case("cli-image-size-too-large")
def _(ctx):
    return train(ctx, "--image-size", "1000000")


@case("cli-batch-size-too-large")
def _(ctx):
    return train(ctx, "--batch-size", "2000000000000")


@case("cli-epochs-too-many")
def _(ctx):
    return train(ctx, "--epochs", "1" + "0" * 30)


@case("cli-num-workers-too-many")
def _(ctx):
    return train(ctx, "--num-workers", "1000000")


@case("cli-seed-beyond-numpy")
def _(ctx):
    return train(ctx, "--seed", str(2**32))


@case("cli-integer-beyond-int64")
def _(ctx):
    return train(ctx, "--patience", str(2**70))


@case("cli-integer-of-many-digits")
def _(ctx):
    return config_file(ctx, "hex.yaml", "epochs: 0x" + "f" * 100_000 + "\n")


# ---- the checks ---------------------------------------------------------------------------------


def assert_shows(text, message, root):
    """Each ``…``-separated part of the documented message appears in ``text``, in order."""
    position = 0
    for part in message.replace("<root>", str(root)).split("…"):
        part = part.strip()
        found = text.find(part, position)
        assert found >= 0, f"expected {part!r} in {text!r}"
        position = found + len(part)


@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_bad_input_gives_the_documented_error(row_id, tmp_path, monkeypatch, request, capsys):
    kind, message = ROWS[row_id]
    assert row_id in CASES, f"docs/errors.md row {row_id} has no case in {Path(__file__).name}"
    ctx = types.SimpleNamespace(root=tmp_path, monkeypatch=monkeypatch, request=request)
    if kind == "exit 2":
        argv = CASES[row_id](ctx)
        capsys.readouterr()
        try:
            code, from_argparse = main(argv), False
        except SystemExit as exit_:  # argparse's own errors, printed after its usage lines
            code, from_argparse = exit_.code, True
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert from_argparse or len(lines) == 1, err  # one line, nothing else
        last_line = lines[-1]
        assert last_line.startswith(f"pml-metrix {argv[0]}: error: ")
        assert_shows(last_line, message, tmp_path)
    else:
        error_type = getattr(builtins, kind)
        assert isinstance(error_type, type) and issubclass(error_type, Exception), kind
        with pytest.raises(error_type) as raised:
            CASES[row_id](ctx)
        assert type(raised.value).__name__ == kind, repr(raised.value)
        assert_shows(str(raised.value), message, tmp_path)


def test_every_case_has_a_row_and_every_row_a_case():
    assert sorted(CASES) == sorted(ROWS)
    assert len(ROWS) >= 20
    components = {line.split("|")[2].strip() for line in DOC.read_text().splitlines() if line.startswith("| `")}
    assert {"losses", "miner", "calculator", "tester", "CLI", "datasets"} <= components


"""Mixed precision: the Metrix losses under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Autocast runs the similarity matmul in bfloat16, whose unit roundoff is u = 2^-9 ~ 2e-3: a cosine
similarity comes back with an absolute error of a few u (inputs and output rounded). The losses
upcast half-precision similarities to float32 before the margins, exponents and logs, and keep soft
labels in float32 (``pml_metrix.functional.loss_dtype``), so that rounding is the only error left.

Tolerances, derived then checked against measurement (8 seeds, drawn and extreme lam):

- loss ``LOSS_RTOL = 2e-3`` (~ u): the loss moves by its slope in s times the error in s, and for
  these losses slope / value stays below 1. Measured max 1.0e-3 (proxy anchor), 2.5e-4 (MS). Without
  the float32 upcast MS reaches 4.4e-3: alpha * (s - base) rounded in bf16 is off by up to 1/16.
- gradients ``GRAD_RTOL = 2.5e-2`` (~ 12 u) of the largest float32 entry: the error in s is scaled
  by beta = 75.66 (alpha = 32) inside the softmax weights and the cosine's tangent projection cancels.
  Measured max 1.3e-2; without the upcast 3.4e-2.

Contrastive's Lp distance runs in float32 under CPU autocast (cdist is on autocast's float32 list).
"""

import pytest
import torch

from pytorch_metric_learning import distances

import pml_metrix

LOSS_RTOL = 2e-3
GRAD_RTOL = 2.5e-2
NUM_CLASSES = 4
EXTREME_LAMS = (1e-6, 1 - 1e-6)
# Contrastive over a similarity has hinges at the margins and AvgNonZero counts the non-zero terms:
# a bf16 rounding of s moves a pair across a margin and the gradient jumps, so it is compared on the
# collapsed batch only, where each similarity is +-1, far from the margins.
SMOOTH = ["ms", "contrastive", "proxy_anchor"]

LOSSES = {
    "ms": lambda: pml_metrix.MetrixMSLoss(alpha=17.97, beta=75.66, base=0.77),
    "contrastive": lambda: pml_metrix.MetrixContrastiveLoss(neg_margin=0.5),
    "contrastive_cosine": lambda: pml_metrix.MetrixContrastiveLoss(
        pos_margin=0.9, neg_margin=0.3, distance=distances.CosineSimilarity()
    ),
    "proxy_anchor": lambda: pml_metrix.MetrixProxyAnchorLoss(NUM_CLASSES, 32, alpha=32.0, margin=0.1),
}


def extreme_batch(seed: int, batch_size: int = 24, dim: int = 32):
    """Unit embeddings where class 0 is one point (s = +1 between its members), class 1 its
    antipode (s = -1 against class 0) and classes 2, 3 are random."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size) % NUM_CLASSES
    embeddings = torch.randn(batch_size, dim, generator=g)
    pole = torch.randn(dim, generator=g)
    embeddings[labels == 0] = pole
    embeddings[labels == 1] = -pole
    return torch.nn.functional.normalize(embeddings, dim=1), labels


def collapsed_batch(seed: int, batch_size: int = 24, dim: int = 32):
    """Every similarity is +-1: each item is one point or its antipode."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size) % NUM_CLASSES
    pole = torch.nn.functional.normalize(torch.randn(dim, generator=g), dim=0)
    sign = torch.where(labels % 2 == 0, 1.0, -1.0)
    return sign[:, None] * pole, labels


def mixing_plan(name, embeddings, labels, lams):
    """A MixupMiner plan; ``lams`` (cycled) replaces the drawn factors when given."""
    miner = pml_metrix.MixupMiner(
        strategies=["positive_negative", "anchor_negative", "negative_negative"],
        num_classes=NUM_CLASSES if name == "proxy_anchor" else None,
        seed=7,
    )
    plan = miner.plan(embeddings, labels)
    if lams is not None:
        plan.lam = torch.tensor(lams, dtype=plan.lam.dtype).repeat(len(plan) // len(lams) + 1)[: len(plan)]
    return plan


def loss_and_grad(name, embeddings, labels, plan, autocast: bool):
    torch.manual_seed(0)  # the same proxies for both runs
    loss_fn = LOSSES[name]()
    embeddings = embeddings.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = loss_fn(embeddings, labels, plan.mixed_batch(plan.mix(embeddings)))
    (grad,) = torch.autograd.grad(loss, [embeddings])
    return loss.detach(), grad


def relative(a, b):
    return ((a.float() - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("lams", [None, EXTREME_LAMS], ids=["drawn_lam", "extreme_lam"])
@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autocast_bf16_matches_float32_at_the_extremes(name, lams, seed):
    embeddings, labels = extreme_batch(seed)
    plan = mixing_plan(name, embeddings, labels, lams)
    loss32, grad32 = loss_and_grad(name, embeddings, labels, plan, autocast=False)
    loss16, grad16 = loss_and_grad(name, embeddings, labels, plan, autocast=True)
    assert torch.isfinite(loss16) and torch.isfinite(grad16).all()
    assert loss16.dtype == torch.float32
    assert relative(loss16, loss32) <= LOSS_RTOL, (loss16, loss32)
    assert relative(grad16, grad32) <= GRAD_RTOL


@pytest.mark.parametrize("name", list(LOSSES))
def test_autocast_bf16_is_finite_on_a_collapsed_batch(name):
    """s = +-1 everywhere: the exact gradient of a cosine loss vanishes, bf16 leaves rounding noise;
    the value still agrees and nothing is NaN or infinite. (Soft labels cast to a bf16 similarity
    would round 1 - 1e-6 to 1 and drop contrastive terms that AvgNonZero counts: 12% off.)"""
    embeddings, labels = collapsed_batch(3)
    plan = mixing_plan(name, embeddings, labels, EXTREME_LAMS)
    loss32, grad32 = loss_and_grad(name, embeddings, labels, plan, autocast=False)
    loss16, grad16 = loss_and_grad(name, embeddings, labels, plan, autocast=True)
    assert torch.isfinite(loss16) and torch.isfinite(grad16).all()
    assert relative(loss16, loss32) <= LOSS_RTOL, (loss16, loss32)


@pytest.mark.parametrize("name", ["ms", "proxy_anchor"])
def test_bf16_embeddings_keep_float32_soft_labels(name):
    """Embeddings that come out of an autocast model are bfloat16, where 1 - 1e-6 rounds to 1: the
    mixing factors stay float32, so the loss of bf16 embeddings is the float32 loss of the same values
    (a label 1 - 1e-6 weighs a negative by 1e-6, times exp(beta (s - base)) up to e^17.4 for MS;
    rounded to 1 it moves MS's loss by 10%). The tolerance is 2u: PML returns the loss in the
    embeddings' dtype and casts the proxies to it, one bf16 rounding each."""
    embeddings, labels = extreme_batch(4)
    embeddings = embeddings.bfloat16()
    plan = mixing_plan(name, embeddings.float(), labels, EXTREME_LAMS)
    mixed = plan.mixed_batch(plan.mix(embeddings))
    torch.manual_seed(0)
    loss_fn = LOSSES[name]()
    assert mixed.lam.dtype == torch.float32
    assert loss_fn.mixed_soft_pairs(mixed, labels).soft_labels.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # cdist has no bf16 kernel, autocast runs it in float32
        loss16 = loss_fn(embeddings, labels, mixed)
    mixed32 = plan.mixed_batch(mixed.embeddings.float())
    torch.manual_seed(0)
    loss32 = LOSSES[name]()(embeddings.float(), labels, mixed32)
    assert torch.isfinite(loss16)
    assert relative(loss16, loss32) <= 2 * 2**-9, (loss16, loss32)

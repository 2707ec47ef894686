"""Positivity of mixed embeddings: which mixed items the mixed loss pulls towards their anchor.

A mixed item v acts as a positive for anchor a when the mixed loss would raise their similarity:
``d mixed_loss / d s(a, v) <= 0`` (the paper's definition; a zero gradient counts as positive).
PML distances with ``is_inverted=False`` (``LpDistance``) give a distance d, which falls as the
similarity rises, so there the rule reads ``d mixed_loss / d d(a, v) >= 0``: gradient descent
shrinks d. Either way v is a positive when a descent step on the pair matrix alone moves v towards a.

The gradient is taken by autograd on the pair matrix S (anchors x mixed items; for proxy anchor the
anchors are the proxies) as the loss's own soft path computes it: the loss runs unchanged on a copy
whose distance hands it S as a leaf tensor, so formulas, masks and reducers stay in one place. For
multi-similarity and proxy anchor the gradient of a pair depends on the other pairs of its anchor,
so it is read on the whole matrix, never pair by pair.

:func:`pair_positivity` gives one row per masked pair, :func:`positive_share_by_lam` the share of
positives per lam bin (the application's report plots it against lam, the paper's figure).
:func:`gradient_share` says how much of a step the mixed part drives: its gradient against the
clean part's, with respect to the model's parameters.
"""

import copy
import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

import torch
from pytorch_metric_learning.distances import BaseDistance
from torch import Tensor

from .checks import check_embeddings, check_same_device
from .losses import MetrixLossMixin, MetrixProxyAnchorLoss
from .mixed_batch import MixedBatch, SoftPairs

__all__ = [
    "GradientShare", "PairPositivity", "PositiveShare", "gradient_share", "pair_positivity", "positive_share_by_lam",
]


@dataclass(frozen=True)
class PairPositivity:
    """One entry per masked (anchor, mixed item) pair, P pairs in row-major order of the mask.

    Attributes:
        anchor_index: P long, the anchor's batch position (its class, i.e. proxy, for proxy anchor).
        mixed_index: P long, the mixed item's position in the ``MixedBatch``.
        lam: P, the mixed item's mixing factor.
        soft_label: P float64, ``y(a, v)``.
        distance: P float64, ``S[a, v]`` from the loss's distance (a similarity when ``is_inverted``).
        gradient: P float64, ``d mixed_loss / d S[a, v]``; mixed_loss is the part that ``mix_weight``
            multiplies, reduced by the loss's reducers.
        is_positive: P bool, ``gradient <= 0`` for a similarity, ``gradient >= 0`` for a distance.
        is_inverted: whether S is a similarity (PML's ``distance.is_inverted``).
    """

    anchor_index: Tensor
    mixed_index: Tensor
    lam: Tensor
    soft_label: Tensor
    distance: Tensor
    gradient: Tensor
    is_positive: Tensor
    is_inverted: bool


@dataclass(frozen=True)
class PositiveShare:
    """Share of positives per lam bin.

    Attributes:
        edges: num_bins + 1 float64 bin edges over [0, 1]; bin b holds ``edges[b] <= lam < edges[b + 1]``,
            the last bin also holds lam = 1.
        share: num_bins float64, positives / pairs in each bin; NaN for an empty bin.
        count: num_bins long, pairs in each bin.
    """

    edges: Tensor
    share: Tensor
    count: Tensor


class _LeafMatrix(BaseDistance):
    """Computes the pair matrix with ``distance`` and hands the loss a detached leaf that requires
    grad, kept in ``leaves`` so that the loss's gradient can be read on it."""

    def __init__(self, distance: BaseDistance):
        super().__init__(is_inverted=distance.is_inverted)
        self.distance = distance
        self.leaves: List[Tensor] = []

    def forward(self, query_emb: Tensor, ref_emb: Optional[Tensor] = None) -> Tensor:
        with torch.no_grad():
            leaf = self.distance(query_emb, ref_emb).requires_grad_()
        self.leaves.append(leaf)
        return leaf


def _mixed_loss_gradient(loss_fn: MetrixLossMixin, embeddings: Tensor, soft_pairs: SoftPairs) -> Tuple[Tensor, Tensor]:
    """The pair matrix S of the loss's soft path and ``d mixed_loss / d S``, both A x K (anchors x mixed).

    Runs on a deep copy, so that the caller's loss keeps its distance, stats and proxy dtype.
    """
    probe = copy.deepcopy(loss_fn)
    probe.distance = _LeafMatrix(probe.distance)
    with torch.enable_grad():
        mixed_loss = probe(embeddings, None, soft_pairs)
    if len(probe.distance.leaves) != 1:
        raise RuntimeError(
            f"{type(loss_fn).__name__}.soft_loss called its distance {len(probe.distance.leaves)} times; "
            "pair_positivity needs exactly one pair matrix"
        )
    (mat,) = probe.distance.leaves
    if mixed_loss.requires_grad:
        (gradient,) = torch.autograd.grad(mixed_loss, mat, allow_unused=True, materialize_grads=True)
    else:  # no term depends on S (every contrastive hinge is inactive): the loss is flat in S
        gradient = torch.zeros_like(mat)
    if isinstance(loss_fn, MetrixProxyAnchorLoss):  # PML's layout: mixed items x proxies
        return mat.detach().T, gradient.T
    return mat.detach(), gradient


def pair_positivity(
    loss_fn: MetrixLossMixin, embeddings: Tensor, labels: Tensor, mixed_batch: MixedBatch
) -> PairPositivity:
    """Lam, soft label, gradient and positivity of every masked (anchor, mixed item) pair.

    Args:
        loss_fn: a Metrix loss (``MetrixContrastiveLoss``, ``MetrixMSLoss``, ``MetrixProxyAnchorLoss``,
            ``MetrixSupConLoss``, ``MetrixNTXentLoss``).
        embeddings: B x d batch embeddings.
        labels: B class labels, or B x C label sets (the loss labels the mixes: by its
            ``label_similarity``; proxy anchor by the proxies' labels).
        mixed_batch: the mixed items and their plan; its ``indices_tuple`` (the clean part) is ignored.

    Computed in float64 on the embeddings' device, so that a weak pull does not underflow to a zero
    gradient, which the rule would count as positive. Nothing flows back into the model or the loss.
    """
    if not isinstance(loss_fn, MetrixLossMixin):
        raise ValueError(
            "loss_fn must be a Metrix loss (MetrixContrastiveLoss, MetrixMSLoss, MetrixProxyAnchorLoss, "
            f"MetrixSupConLoss, MetrixNTXentLoss), got {type(loss_fn).__name__}"
        )
    if not isinstance(mixed_batch, MixedBatch):
        raise ValueError(f"mixed_batch must be a pml_metrix.MixedBatch, got {type(mixed_batch).__name__}")
    check_embeddings(embeddings)
    if labels is None:
        raise ValueError("labels are required: the soft labels of mixed items come from the batch labels")
    loss_fn.check_batch_labels(labels, embeddings.shape[0])  # class labels or label sets; proxy anchor: a proxy each
    if mixed_batch.embeddings.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"MixedBatch.embeddings have dim {mixed_batch.embeddings.shape[1]} but the embeddings have dim "
            f"{embeddings.shape[1]}"
        )
    check_same_device(embeddings, labels=labels, mixed_embeddings=mixed_batch.embeddings)
    exact = mixed_batch.plan.mixed_batch(mixed_batch.embeddings.detach().double())
    soft_pairs = loss_fn.mixed_soft_pairs(exact, labels)
    pair_mask = soft_pairs.pair_mask
    if pair_mask is None:
        pair_mask = torch.ones_like(soft_pairs.soft_labels, dtype=torch.bool)
    if not pair_mask.any():
        raise ValueError(
            "the MixedBatch has no (anchor, mixed item) pair to analyse: it has no mixed item or its "
            "pair_mask is all False"
        )
    mat, gradient = _mixed_loss_gradient(loss_fn, embeddings.detach().double(), soft_pairs)
    anchor_index, mixed_index = pair_mask.nonzero(as_tuple=True)
    pair_gradient = gradient[anchor_index, mixed_index]
    is_inverted = bool(loss_fn.distance.is_inverted)
    return PairPositivity(
        anchor_index=anchor_index,
        mixed_index=mixed_index,
        lam=mixed_batch.lam[mixed_index],
        soft_label=soft_pairs.soft_labels[anchor_index, mixed_index],
        distance=mat[anchor_index, mixed_index],
        gradient=pair_gradient,
        is_positive=pair_gradient <= 0 if is_inverted else pair_gradient >= 0,
        is_inverted=is_inverted,
    )


@dataclass(frozen=True)
class GradientShare:
    """The gradients of a Metrix loss's two parts with respect to some parameters.

    Attributes:
        clean_norm: ``||g_clean||``, the clean part's gradient norm.
        mixed_norm: ``||g_mixed||``, the weighted mixed part's (``mix_weight * mixed``).
        cosine: ``cos(g_clean, g_mixed)``; NaN when either is zero.
    """

    clean_norm: float
    mixed_norm: float
    cosine: float

    @property
    def mixed_share(self) -> float:
        """``||g_mixed|| / (||g_clean|| + ||g_mixed||)``: 0 when the mixes move nothing, 1 when they move
        all; NaN when neither part moves anything."""
        total = self.clean_norm + self.mixed_norm
        return self.mixed_norm / total if total > 0 else math.nan


def gradient_share(
    loss_fn: MetrixLossMixin, embeddings: Tensor, labels: Tensor, mixed_batch: MixedBatch,
    parameters: Iterable[torch.nn.Parameter],
) -> GradientShare:
    """How much of a Metrix step comes from the mixes.

    With ``clean`` the PML loss of ``mixed_batch.indices_tuple`` and ``mixed`` the soft loss over the
    mixes, as the loss's forward computes them (forward = ``clean + mix_weight * mixed``):
    ``g_clean = d clean / d parameters`` and ``g_mixed = d (mix_weight * mixed) / d parameters``,
    flattened over ``parameters`` (those that require grad; one that a part does not reach counts 0).

    Args:
        loss_fn: a Metrix loss.
        embeddings: B x d batch embeddings, in the graph of ``parameters``.
        labels: B class labels.
        mixed_batch: the miner's MixedBatch, its mixes in the graph of ``parameters`` (at the feature or
            input level through the embedder; at the embedding level through ``embeddings``).
        parameters: the parameters to differentiate with respect to (a model's ``parameters()``).
    """
    if not isinstance(loss_fn, MetrixLossMixin) or not isinstance(mixed_batch, MixedBatch):
        raise ValueError(
            f"gradient_share takes a Metrix loss and a MixedBatch, got {type(loss_fn).__name__} and "
            f"{type(mixed_batch).__name__}"
        )
    parameters = [p for p in parameters if p.requires_grad]
    if not parameters:
        raise ValueError("parameters holds no tensor that requires grad: nothing to differentiate with respect to")
    clean = loss_fn(embeddings, labels, mixed_batch.indices_tuple)
    mixed = loss_fn.weight_of(mixed_batch) * loss_fn.reduced_soft_loss(
        embeddings, labels, loss_fn.mixed_soft_pairs(mixed_batch, labels)
    )
    gradients = []
    for part in (clean, mixed):
        grads = torch.autograd.grad(part, parameters, retain_graph=True, allow_unused=True, materialize_grads=True)
        gradients.append(torch.cat([g.flatten() for g in grads]).double())
    g_clean, g_mixed = gradients
    clean_norm, mixed_norm = g_clean.norm().item(), g_mixed.norm().item()
    cosine = (g_clean @ g_mixed).item() / (clean_norm * mixed_norm) if clean_norm * mixed_norm > 0 else float("nan")
    return GradientShare(clean_norm, mixed_norm, cosine)


def positive_share_by_lam(positivity: PairPositivity, num_bins: int = 10) -> PositiveShare:
    """Bin the pairs by lam into ``num_bins`` equal bins over [0, 1] and take the share of positives."""
    if not isinstance(positivity, PairPositivity):
        raise ValueError(f"positivity must be a PairPositivity, got {type(positivity).__name__}")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    lam = positivity.lam.to(torch.float64)
    edges = torch.linspace(0, 1, num_bins + 1, dtype=torch.float64, device=lam.device)
    bin_index = torch.bucketize(lam, edges[1:-1], right=True)
    count = torch.bincount(bin_index, minlength=num_bins)
    positives = torch.bincount(bin_index, weights=positivity.is_positive.to(torch.float64), minlength=num_bins)
    return PositiveShare(edges=edges, share=positives / count, count=count)

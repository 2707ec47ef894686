"""The Metrix math: pure tensor functions over a pair matrix, soft labels and a pair mask.

Every function here takes anchors along dim 0 and references along dim 1:

- ``mat``: A x R similarities or distances (``inverted=True`` for a similarity, as PML's
  ``distance.is_inverted``);
- ``soft_labels``: A x R labels ``y`` in [0, 1] (1: the reference is a positive for the anchor,
  0: a negative, in between: a mix). A bool tensor means binary labels;
- ``pair_mask``: A x R bool, which (anchor, reference) pairs count; ``None`` means all.

(:func:`proxy_anchor_terms` keeps PML's layout, references x proxies.)

Binary labels give PML's values and gradients bit for bit (:func:`weighted_logsumexp`); soft labels
weight each term of the masked log-sum-exp by ``y`` (or ``1 - y``), so ``y = 1`` is PML's term and
``y = 0`` drops it. The PML classes in :mod:`pml_metrix.losses` are thin wrappers around these
functions.

Half precision (``float16``, ``bfloat16``, e.g. the similarity matmul under ``torch.autocast``) is
upcast to float32 before the exponents and logs, and soft labels are kept in float32: see
:func:`loss_dtype`. float32 and float64 inputs run unchanged.
"""

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = [  # the functions users call; loss_dtype, label_weights, label_masks and kept_terms are helpers
    "weighted_logsumexp",
    "multi_similarity_loss",
    "multi_similarity_pos",
    "multi_similarity_neg",
    "contrastive_pos_terms",
    "contrastive_neg_terms",
    "proxy_anchor_terms",
]


def _margin(x: Union[Tensor, float], y: Union[Tensor, float], inverted: bool):
    """PML's ``distance.margin(x, y)``: ``x - y`` for a distance, ``y - x`` for a similarity."""
    return y - x if inverted else x - y


def loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the loss math and soft labels use for inputs of ``dtype``: float32 for half precision
    (float16, bfloat16), ``dtype`` itself otherwise.

    Half precision has 8 (bfloat16) or 11 (float16) significant bits: scaled by MS's beta 75.66 or
    proxy anchor's alpha 32 a rounded similarity or exponent is off by several percent, and a soft
    label 1 - 1e-6 rounds to 1, dropping a negative term that ``exp(beta (s - base))`` can make large.
    """
    return torch.promote_types(dtype, torch.float32)


def label_weights(soft_labels: Tensor) -> Tuple[Tensor, Tensor]:
    """Split labels into the weights of the positive and negative sums: ``(y, 1 - y)``, both A x R;
    bool in, bool out (``(y, ~y)``). The pair mask applies apart (:func:`kept_terms`)."""
    if soft_labels.dtype == torch.bool:
        return soft_labels, ~soft_labels
    return soft_labels, 1 - soft_labels


def label_masks(soft_labels: Tensor, pair_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The pairs of the positive and the negative sums, ``(y > 0, y < 1)`` within the pair mask: the
    :func:`kept_terms` of the :func:`label_weights`, both A x R bool."""
    if soft_labels.dtype == torch.bool:
        pos, neg = soft_labels, ~soft_labels
    else:
        pos, neg = soft_labels > 0, soft_labels < 1
    return kept_terms(pos, pair_mask), kept_terms(neg, pair_mask)


def kept_terms(weights: Tensor, pair_mask: Optional[Tensor] = None) -> Tensor:
    """The terms a sum with these weights has: ``w > 0`` (bool weights: themselves) within the pair
    mask, A x R bool."""
    keep = weights if weights.dtype == torch.bool else weights > 0
    return keep if pair_mask is None else keep & pair_mask


def weighted_logsumexp(logits: Tensor, weights: Tensor, dim: int = 1, pair_mask: Optional[Tensor] = None) -> Tensor:
    """``log(1 + sum_r w_r exp(logits_r))`` along ``dim`` over the masked terms, stably.

    Terms with ``w = 0`` or outside ``pair_mask`` are left out; a row with none gives 0. Returns the
    input shape with ``dim`` kept as 1.

    Bool (binary) weights set the left-out logits to ``-inf`` and take ``logsumexp`` with the term
    1 appended: PML's ``lmu.logsumexp(logits, keep_mask, add_one=True)``, value and gradient bit for
    bit (PML fills the left-out terms with the dtype's lowest value, whose exponent is as exactly 0,
    and slower to take).

    Float (soft) weights sum ``w exp(logits - shift)`` with ``shift`` the largest kept logit (at least
    0, the term 1), so no exponent overflows, and no term is ``-inf``: the left-out terms' exponents
    are multiplied by 0 and their weights zeroed. The same log-sum-exp as adding ``log w`` inside,
    without ``-inf`` or ``where()`` on the gradient's path (docs/benchmarks.md says what that buys).
    Left-out logits must be finite, as must all weights (``inf * 0`` is NaN), and the sum is taken
    in the promoted dtype of logits and weights.
    """
    dim = dim % logits.ndim
    keep = kept_terms(weights, pair_mask)
    if weights.dtype == torch.bool:
        logits = torch.where(keep, logits, -torch.inf)
        one = logits.new_zeros(logits.shape[:dim] + (1,) + logits.shape[dim + 1:])  # the term 1 = exp(0)
        return torch.logsumexp(torch.cat([logits, one], dim=dim), dim=dim, keepdim=True)
    logits = logits.to(torch.promote_types(logits.dtype, weights.dtype))  # float32 weights lift half precision
    if logits.shape[dim] == 0:  # no terms: log 1
        return logits.sum(dim=dim, keepdim=True)
    kept = keep.to(logits.dtype)
    shift = torch.where(keep, logits.detach(), -torch.inf).amax(dim=dim, keepdim=True).clamp_min(0)
    terms = (weights * kept) * torch.exp((logits - shift) * kept)
    return shift + torch.log(torch.exp(-shift) + terms.sum(dim=dim, keepdim=True))


def multi_similarity_loss(
    mat: Tensor,
    soft_labels: Union[Tensor, Tuple[Tensor, Tensor]],
    pair_mask: Optional[Tensor] = None,
    *,
    alpha: float,
    beta: float,
    base: float,
    inverted: bool = True,
) -> Tensor:
    """Multi-similarity loss of each anchor, A x 1 (the shape PML hands its reducer): the sum of
    :func:`multi_similarity_pos` and :func:`multi_similarity_neg`,

    ``(1/alpha) log(1 + sum y exp(-alpha (s - base))) + (1/beta) log(1 + sum (1-y) exp(beta (s - base)))``

    over the masked pairs, with PML's ``distance.margin`` sign convention. ``soft_labels`` may also
    be the weights of the two sums, ``(y, 1 - y)`` as :func:`label_weights` splits them: the clean
    path passes PML's positive and negative masks so.
    """
    mat = mat.to(loss_dtype(mat.dtype))  # once for both sums
    pos_weight, neg_weight = soft_labels if isinstance(soft_labels, tuple) else label_weights(soft_labels)
    pos_loss = multi_similarity_pos(mat, pos_weight, pair_mask, alpha=alpha, base=base, inverted=inverted)
    neg_loss = multi_similarity_neg(mat, neg_weight, pair_mask, beta=beta, base=base, inverted=inverted)
    return pos_loss + neg_loss


def multi_similarity_pos(
    mat: Tensor, pos_weight: Tensor, pair_mask: Optional[Tensor] = None, *, alpha: float, base: float, inverted: bool = True
) -> Tensor:
    """The positive sum of the multi-similarity loss, A x 1:
    ``(1/alpha) log(1 + sum w exp(-alpha (s - base)))`` over the masked pairs with weight ``w > 0``
    (``w = y``; bool: PML's positive mask). Alone, it only ever pulls pairs closer."""
    mat = mat.to(loss_dtype(mat.dtype))
    return (1.0 / alpha) * weighted_logsumexp(alpha * _margin(mat, base, inverted), pos_weight, pair_mask=pair_mask)


def multi_similarity_neg(
    mat: Tensor, neg_weight: Tensor, pair_mask: Optional[Tensor] = None, *, beta: float, base: float, inverted: bool = True
) -> Tensor:
    """The negative sum of the multi-similarity loss, A x 1:
    ``(1/beta) log(1 + sum w exp(beta (s - base)))`` over the masked pairs with weight ``w > 0``
    (``w = 1 - y``; bool: PML's negative mask)."""
    mat = mat.to(loss_dtype(mat.dtype))
    return (1.0 / beta) * weighted_logsumexp(beta * _margin(base, mat, inverted), neg_weight, pair_mask=pair_mask)


def contrastive_pos_terms(
    mat: Tensor, soft_labels: Optional[Tensor] = None, *, pos_margin: float, inverted: bool = False
) -> Tensor:
    """Positive contrastive terms ``y * [d - m_pos]_+``, elementwise (any shape); ``soft_labels=None``
    for binary positives (``y = 1``: PML's ``[d - m_pos]_+`` itself)."""
    terms = torch.nn.functional.relu(_margin(mat, pos_margin, inverted))
    return terms if soft_labels is None else soft_labels * terms


def contrastive_neg_terms(
    mat: Tensor, soft_labels: Optional[Tensor] = None, *, neg_margin: float, inverted: bool = False
) -> Tensor:
    """Negative contrastive terms ``(1 - y) * [m_neg - d]_+``, elementwise (any shape);
    ``soft_labels=None`` for binary negatives (``y = 0``: PML's ``[m_neg - d]_+`` itself)."""
    terms = torch.nn.functional.relu(_margin(neg_margin, mat, inverted))
    return terms if soft_labels is None else (1 - soft_labels) * terms


def proxy_anchor_terms(
    mat: Tensor,
    soft_labels: Tensor,
    pair_mask: Optional[Tensor] = None,
    *,
    alpha: float,
    margin: float,
    inverted: bool = True,
    ref_log_weights: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Proxy-anchor positive and negative terms of each proxy, each of shape P.

    The anchors are the proxies and the sums run over references, so, unlike the other functions
    and as in PML, ``mat``, ``soft_labels`` and ``pair_mask`` are R x P (references x proxies).
    ``ref_log_weights`` (R) is added to every exponent of reference r (PML's miner weights minus one).
    """
    mat = mat.to(loss_dtype(mat.dtype))
    pos_weight, neg_weight = label_weights(soft_labels)
    pos_logits = alpha * _margin(mat, margin, inverted)
    neg_logits = alpha * _margin(-margin, mat, inverted)
    if ref_log_weights is not None:
        pos_logits = pos_logits + ref_log_weights.unsqueeze(1)
        neg_logits = neg_logits + ref_log_weights.unsqueeze(1)
    pos_term = weighted_logsumexp(pos_logits, pos_weight, dim=0, pair_mask=pair_mask).squeeze(0)
    neg_term = weighted_logsumexp(neg_logits, neg_weight, dim=0, pair_mask=pair_mask).squeeze(0)
    return pos_term, neg_term

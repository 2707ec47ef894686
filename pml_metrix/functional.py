"""The Metrix math: pure tensor functions over a pair matrix, soft labels and a pair mask.

Every function here takes anchors along dim 0 and references along dim 1:

- ``mat``: A x R similarities or distances (``inverted=True`` for a similarity, as PML's
  ``distance.is_inverted``);
- ``soft_labels``: A x R labels ``y`` in [0, 1] (1: the reference is a positive for the anchor,
  0: a negative, in between: a mix). A bool tensor means binary labels;
- ``pair_mask``: A x R bool, which (anchor, reference) pairs count; ``None`` means all.

(:func:`proxy_anchor_terms` keeps PML's layout, references x proxies.)

Binary labels run PML's own arithmetic; soft labels add ``log y`` (or ``log(1 - y)``) inside the
masked log-sum-exp, so ``y = 1`` adds exactly 0 and ``y = 0`` drops the term. The PML classes in
:mod:`pml_metrix.losses` are thin wrappers around these functions.

Half precision (``float16``, ``bfloat16``, e.g. the similarity matmul under ``torch.autocast``) is
upcast to float32 before the exponents and logs, and soft labels are kept in float32: see
:func:`loss_dtype`. float32 and float64 inputs run unchanged.
"""

from typing import Optional, Tuple, Union

import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor

__all__ = [
    "loss_dtype",
    "label_weights",
    "weighted_logsumexp",
    "multi_similarity_loss",
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


def label_weights(soft_labels: Tensor, pair_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Split labels into the weights of the positive and negative sums.

    Returns ``(y * M, (1 - y) * M)``, both A x R; bool in, bool out.
    """
    if soft_labels.dtype == torch.bool:
        pos, neg = soft_labels, ~soft_labels
        if pair_mask is not None:
            pos, neg = pos & pair_mask, neg & pair_mask
        return pos, neg
    pos, neg = soft_labels, 1 - soft_labels
    if pair_mask is not None:
        pos = torch.where(pair_mask, pos, 0)
        neg = torch.where(pair_mask, neg, 0)
    return pos, neg


def weighted_logsumexp(logits: Tensor, weights: Tensor, dim: int = 1) -> Tensor:
    """``log(1 + sum_r w_r exp(logits_r))`` along ``dim``, computed in log space.

    Terms with ``w = 0`` are left out; a row with no term gives 0 (PML's ``lmu.logsumexp``).
    Bool weights are binary: no ``log w`` is added. Returns the input shape with ``dim`` kept as 1.
    """
    keep = weights if weights.dtype == torch.bool else weights > 0
    if weights.dtype != torch.bool:
        logits = logits + torch.log(torch.where(keep, weights, 1))
    return lmu.logsumexp(logits, keep_mask=keep, add_one=True, dim=dim)


def multi_similarity_loss(
    mat: Tensor,
    soft_labels: Tensor,
    pair_mask: Optional[Tensor] = None,
    *,
    alpha: float,
    beta: float,
    base: float,
    inverted: bool = True,
) -> Tensor:
    """Multi-similarity loss of each anchor, A x 1 (the shape PML hands its reducer).

    ``(1/alpha) log(1 + sum y exp(-alpha (s - base))) + (1/beta) log(1 + sum (1-y) exp(beta (s - base)))``
    over the masked pairs, with PML's ``distance.margin`` sign convention.
    """
    mat = mat.to(loss_dtype(mat.dtype))
    pos_weight, neg_weight = label_weights(soft_labels, pair_mask)
    pos_exp = _margin(mat, base, inverted)
    neg_exp = _margin(base, mat, inverted)
    pos_loss = (1.0 / alpha) * weighted_logsumexp(alpha * pos_exp, pos_weight)
    neg_loss = (1.0 / beta) * weighted_logsumexp(beta * neg_exp, neg_weight)
    return pos_loss + neg_loss


def contrastive_pos_terms(
    mat: Tensor, soft_labels: Union[Tensor, float], *, pos_margin: float, inverted: bool = False
) -> Tensor:
    """Positive contrastive terms ``y * [d - m_pos]_+``, elementwise (any shape)."""
    return soft_labels * torch.nn.functional.relu(_margin(mat, pos_margin, inverted))


def contrastive_neg_terms(
    mat: Tensor, soft_labels: Union[Tensor, float], *, neg_margin: float, inverted: bool = False
) -> Tensor:
    """Negative contrastive terms ``(1 - y) * [m_neg - d]_+``, elementwise (any shape)."""
    return (1 - soft_labels) * torch.nn.functional.relu(_margin(neg_margin, mat, inverted))


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
    pos_weight, neg_weight = label_weights(soft_labels, pair_mask)
    pos_logits = alpha * _margin(mat, margin, inverted)
    neg_logits = alpha * _margin(-margin, mat, inverted)
    if ref_log_weights is not None:
        pos_logits = pos_logits + ref_log_weights.unsqueeze(1)
        neg_logits = neg_logits + ref_log_weights.unsqueeze(1)
    pos_term = weighted_logsumexp(pos_logits, pos_weight, dim=0).squeeze(0)
    neg_term = weighted_logsumexp(neg_logits, neg_weight, dim=0).squeeze(0)
    return pos_term, neg_term

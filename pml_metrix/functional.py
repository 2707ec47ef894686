"""The Metrix math: pure tensor functions over a pair matrix, soft labels and a pair mask.

Every function here takes anchors along dim 0 and references along dim 1:

- ``mat``: A x R similarities or distances (``inverted=True`` for a similarity, as PML's
  ``distance.is_inverted``);
- ``soft_labels``: A x R labels ``y`` in [0, 1] (1: the reference is a positive for the anchor,
  0: a negative, in between: a mix). A bool tensor means binary labels;
- ``pair_mask``: A x R bool, which (anchor, reference) pairs count; ``None`` means all.

(:func:`proxy_anchor_terms` keeps PML's layout, references x proxies; :func:`ntxent_pair_losses`
takes PML's pair lists.)

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
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor

__all__ = [  # the functions users call; loss_dtype, label_weights, label_masks and kept_terms are helpers
    "weighted_logsumexp",
    "multi_similarity_loss",
    "multi_similarity_pos",
    "multi_similarity_neg",
    "contrastive_pos_terms",
    "contrastive_neg_terms",
    "proxy_anchor_terms",
    "supcon_loss",
    "ntxent_loss",
    "ntxent_pair_losses",
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


def _logits(mat: Tensor, temperature: float, inverted: bool) -> Tensor:
    """``z = s / t``, with ``s = -d`` for a distance (PML's sign flip, then its division)."""
    return (mat if inverted else -mat) / temperature


def supcon_loss(
    mat: Tensor, soft_labels: Tensor, pair_mask: Optional[Tensor] = None, *, temperature: float, inverted: bool = True
) -> Tensor:
    """Supervised contrastive loss of each anchor with weighted positives, A:

    ``l(a) = - sum_k y_ak (z_ak - log sum_{r in kept(a)} exp(z_ar)) / sum_k y_ak``,  ``z = s / t``

    with ``s = -d`` for a distance, ``kept(a)`` the references of ``a`` in the pair mask (all when
    ``None``) and the positive sum over those references: a cross-entropy against the softmax of
    ``z`` over ``kept(a)`` with the target ``y_a`` normalised to sum 1. An anchor with no positive
    weight gets 0.

    PML's arithmetic, in its order (``SupConLoss._compute_loss``): logits shifted by their row
    maximum, PML's masked ``lmu.logsumexp`` (left-out terms at the dtype's lowest value, rows with
    none kept at 0), ``small_val`` added to the weight sum. With binary labels (bool, or PML's 0/1
    ``pos_mask``) and ``pair_mask`` PML's ``pos_mask + neg_mask`` it is PML's value and gradient bit
    for bit. ``mat`` needs at least one reference (R > 0).
    """
    mat = mat.to(loss_dtype(mat.dtype))
    logits = _logits(mat, temperature, inverted)
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()  # for stability, as PML
    log_prob = logits - lmu.logsumexp(logits, keep_mask=pair_mask, add_one=False, dim=1)
    pos_weight = soft_labels.to(logits.dtype)
    if pair_mask is not None:
        pos_weight = pos_weight * pair_mask
    return -((pos_weight * log_prob).sum(dim=1) / (pos_weight.sum(dim=1) + c_f.small_val(logits.dtype)))


def ntxent_pair_losses(
    pos_pairs: Tensor, neg_pairs: Tensor, pos_anchors: Tensor, neg_anchors: Tensor, *, temperature: float, inverted: bool = True
) -> Tensor:
    """NT-Xent loss of each positive pair over PML's pair lists, P: PML's ``NTXentLoss._compute_loss``.

    ``l(p) = -log(exp(z_p) / (exp(z_p) + sum_{n: anchor(n) = anchor(p)} exp(z_n)))``, ``z = s / t``

    Args:
        pos_pairs: P similarities (or distances) of the positive pairs, ``mat[a1, p]``.
        neg_pairs: N of the negative pairs, ``mat[a2, n]``; N > 0.
        pos_anchors: the anchors of the positive pairs, ``a1`` (P).
        neg_anchors: the anchors of the negative pairs, ``a2`` (N).

    PML's arithmetic, op for op (values and gradients bit for bit): the P x N matrix of each positive
    pair's negatives, the others filled with the dtype's lowest value, shifted by the larger of the
    pair's logit and its largest negative, ``small_val`` added to the ratio. A pair listed twice
    counts twice, as in PML (a triplet tuple lists a negative once per triplet).
    """
    pos_pairs, neg_pairs = (t.to(loss_dtype(neg_pairs.dtype)) for t in (pos_pairs, neg_pairs))
    dtype = neg_pairs.dtype
    pos_logits = _logits(pos_pairs.unsqueeze(1), temperature, inverted)  # P x 1
    neg_logits = _logits(neg_pairs, temperature, inverted)
    n_per_p = c_f.to_dtype(neg_anchors.unsqueeze(0) == pos_anchors.unsqueeze(1), dtype=dtype)  # P x N
    neg_logits = neg_logits * n_per_p
    neg_logits[n_per_p == 0] = c_f.neg_inf(dtype)
    shift = torch.max(pos_logits, torch.max(neg_logits, dim=1, keepdim=True)[0]).detach()
    numerator = torch.exp(pos_logits - shift).squeeze(1)
    return _ntxent_terms(numerator, torch.sum(torch.exp(neg_logits - shift), dim=1))


def _ntxent_terms(numerator: Tensor, neg_sum: Tensor, pos_weight: Optional[Tensor] = None) -> Tensor:
    """``-log(e / (w e + S) + small_val)`` of each pair: its shifted exponent ``e``, the weighted sum
    ``S`` of its anchor's negative exponents on the same shift, its weight ``w`` (``None``: 1)."""
    denominator = neg_sum + (numerator if pos_weight is None else pos_weight * numerator)
    return -torch.log((numerator / denominator) + c_f.small_val(numerator.dtype))


def ntxent_loss(
    mat: Tensor, soft_labels: Tensor, pair_mask: Optional[Tensor] = None, *, temperature: float, inverted: bool = True
) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """NT-Xent loss with soft labels, one term per positive pair (a, k) (``y_ak > 0`` in the pair
    mask), weighted by ``y_ak``:

    ``l(a, k) = -y_ak (z_ak - log(exp(z_ak) + sum_{n in kept(a), n != k} (1 - y_an) exp(z_an)))``

    ``z = s / t`` (``s = -d`` for a distance), ``kept(a)`` the references of ``a`` in the pair mask.
    A mix is a positive to degree ``y`` (its own term's weight) and a negative to degree ``1 - y``
    (in the denominators of its anchor's other terms). The denominator is computed as
    ``y_ak exp(z_ak) + sum_{n in kept(a)} (1 - y_an) exp(z_an)``, the same sum.

    Returns ``(losses, (anchors, references))``: the P losses and their pairs, listed row-major (as
    ``torch.where`` lists them). Like PML, no pair with ``y < 1`` in the mask (no negative) or none
    with ``y > 0`` gives no term (P = 0), and the ratio inside the log has ``small_val`` added, so a
    term is at most ``-y log(small_val)`` (about 87 y in float32, 708 y in float64).

    Bool labels list the pairs as PML's ``get_all_pairs_indices`` does and run PML's arithmetic
    (:func:`ntxent_pair_losses`): PML's value and gradients bit for bit. Float labels sum each
    anchor's weighted negatives once, A x R, shifted by the exponent of the largest weighted term,
    ``max_n (z_an + log(1 - y_an))``, and rescaled to each pair's shift (the larger of its logit and
    that exponent, as PML's with its largest negative): nothing overflows, no P x N matrix is made,
    and a pair whose logit lies far below its negatives' has a denominator of at least 1, as in PML,
    so that its underflowed numerator gets a gradient of 0, not ``inf * 0``.
    """
    pos_pairs, neg_pairs = label_masks(soft_labels, pair_mask)
    anchors, references = torch.where(pos_pairs)
    if len(anchors) == 0 or not neg_pairs.any():
        return mat.new_zeros(0, dtype=loss_dtype(mat.dtype)), (anchors, references)
    mat = mat.to(loss_dtype(mat.dtype))
    pos_flat = anchors * mat.shape[1] + references
    if soft_labels.dtype == torch.bool:
        neg_anchors, negatives = torch.where(neg_pairs)
        values = mat.flatten()
        losses = ntxent_pair_losses(
            values.index_select(0, pos_flat), values.index_select(0, neg_anchors * mat.shape[1] + negatives),
            anchors, neg_anchors, temperature=temperature, inverted=inverted,
        )
        return losses, (anchors, references)
    logits = _logits(mat, temperature, inverted)
    soft_labels = soft_labels.to(logits.dtype)
    neg_kept = neg_pairs.to(logits.dtype)
    neg_weight = 1 - soft_labels
    # the largest weighted negative's exponent, max_n (z_an + log(1 - y_an)) (-inf: no negative)
    neg_max = torch.where(neg_pairs, logits.detach() + neg_weight.detach().log(), -torch.inf).amax(dim=1, keepdim=True)
    neg_shift = neg_max.nan_to_num(neginf=0.0)
    # sum_n (1 - y_an) exp(z_an - neg_max_a): at least 1 (its largest term) and each term at most 1, so
    # that no denominator below 1 meets an underflowed numerator (whose gradient would be inf * 0);
    # left-out terms' exponents times 0, so none overflows
    neg_sum = (neg_weight * neg_kept * torch.exp((logits - neg_shift) * neg_kept)).sum(dim=1)
    pos_logits, pos_weight = logits.flatten().index_select(0, pos_flat), soft_labels.flatten().index_select(0, pos_flat)
    pair_neg_max = neg_max.squeeze(1).index_select(0, anchors)
    shift = torch.maximum(pos_logits.detach(), pair_neg_max)  # PML's per-pair shift
    numerator = torch.exp(pos_logits - shift)
    terms = _ntxent_terms(numerator, neg_sum.index_select(0, anchors) * torch.exp(pair_neg_max - shift), pos_weight)
    return pos_weight * terms, (anchors, references)

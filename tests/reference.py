"""Slow per-anchor references for the soft-label losses, written straight from the formulas of
docs/method.md with Python floats (float64), one anchor and one pair at a time. The SupCon and
NT-Xent ones also take 0-d float64 tensors for ``mat``, so that autograd gives their gradients."""

import math


def margin(x, y, inverted):
    return y - x if inverted else x - y


def log1p_sum(weighted_exponents):
    """log(1 + sum w exp(x)) over (w, x) pairs with w > 0, without overflow."""
    logs = [0.0] + [math.log(w) + x for w, x in weighted_exponents if w > 0]
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def ms_soft(mat, y, mask, alpha, beta, base, inverted):
    """Mean over anchors with at least one masked pair of the MS loss with soft labels."""
    losses = []
    for a in range(len(mat)):
        items = [k for k in range(len(mat[a])) if mask[a][k]]
        if not items:
            continue
        pos = [(y[a][k], alpha * margin(mat[a][k], base, inverted)) for k in items]
        neg = [(1 - y[a][k], beta * margin(base, mat[a][k], inverted)) for k in items]
        losses.append(log1p_sum(pos) / alpha + log1p_sum(neg) / beta)
    return sum(losses) / len(losses) if losses else 0.0


def contrastive_soft(mat, y, mask, pos_margin, neg_margin, inverted):
    """Average of the non-zero positive terms plus average of the non-zero negative terms."""
    pos, neg = [], []
    for a in range(len(mat)):
        for k in range(len(mat[a])):
            if not mask[a][k]:
                continue
            if y[a][k] > 0:
                pos.append(y[a][k] * max(0.0, margin(mat[a][k], pos_margin, inverted)))
            if y[a][k] < 1:
                neg.append((1 - y[a][k]) * max(0.0, margin(neg_margin, mat[a][k], inverted)))

    def avg_non_zero(terms):
        terms = [t for t in terms if t > 0]
        return sum(terms) / len(terms) if terms else 0.0

    return avg_non_zero(pos) + avg_non_zero(neg)


def proxy_anchor_soft(mat, y, mask, alpha, margin_, inverted):
    """mat, y, mask: proxies x references. Positive terms over proxies with positive soft mass,
    negative terms over all proxies."""
    pos_total, neg_total, with_pos = 0.0, 0.0, 0
    for p in range(len(mat)):
        items = [k for k in range(len(mat[p])) if mask[p][k]]
        pos_items = [k for k in items if y[p][k] > 0]
        neg_items = [k for k in items if y[p][k] < 1]
        with_pos += bool(pos_items)
        if pos_items:
            pos_total += log1p_sum((y[p][k], alpha * margin(mat[p][k], margin_, inverted)) for k in pos_items)
        if neg_items:
            neg_total += log1p_sum((1 - y[p][k], alpha * margin(-margin_, mat[p][k], inverted)) for k in neg_items)
    return (pos_total / with_pos if with_pos else 0.0) + neg_total / len(mat)


def ms_attract_soft(mat, y, mask, alpha, base, inverted):
    """Mean over anchors with at least one masked pair of the positive sum alone (mixes only attract)."""
    losses = []
    for a in range(len(mat)):
        items = [k for k in range(len(mat[a])) if mask[a][k]]
        if items:
            losses.append(log1p_sum((y[a][k], alpha * margin(mat[a][k], base, inverted)) for k in items) / alpha)
    return sum(losses) / len(losses) if losses else 0.0


def softmax_logit(value, temperature, inverted):
    """z = s / t, with s = -d for a distance."""
    return (value if inverted else -value) / temperature


def log_sum_exp(values):
    """log sum exp(v) over a non-empty list of scalars (floats or 0-d tensors), shifted by the maximum."""
    top = max(_float(v) for v in values)
    return top + _log(sum(_exp(v - top) for v in values))


def _float(x):
    return x.item() if hasattr(x, "item") else x


def _exp(x):
    return x.exp() if hasattr(x, "exp") else math.exp(x)


def _log(x):
    return x.log() if hasattr(x, "log") else math.log(x)


def has_positive_and_negative(y, mask):
    """PML's rule for SupCon and NT-Xent: some masked pair has y > 0 and some has y < 1."""
    pairs = [(a, k) for a in range(len(y)) for k in range(len(y[a])) if mask[a][k]]
    return any(y[a][k] > 0 for a, k in pairs) and any(y[a][k] < 1 for a, k in pairs)


def supcon_soft(mat, y, mask, temperature, inverted):
    """Supervised contrastive loss with weighted positives, anchor by anchor:
    l(a) = -sum_k y_ak (z_ak - log sum_{r kept} exp(z_ar)) / sum_k y_ak over the masked references,
    averaged over the anchors with positive mass whose loss is non-zero (AvgNonZeroReducer).
    ``mat`` may hold floats or 0-d tensors (for gradients); y, mask: nested lists."""
    if not has_positive_and_negative(y, mask):
        return 0.0
    losses = []
    for a in range(len(mat)):
        kept = [k for k in range(len(mat[a])) if mask[a][k]]
        positives = [k for k in kept if y[a][k] > 0]
        if not positives:
            continue
        z = {k: softmax_logit(mat[a][k], temperature, inverted) for k in kept}
        denominator = log_sum_exp([z[k] for k in kept])
        mass = sum(y[a][k] for k in positives)
        losses.append(-sum(y[a][k] * (z[k] - denominator) for k in positives) / mass)
    non_zero = [loss for loss in losses if _float(loss) > 0]
    return sum(non_zero) / len(non_zero) if non_zero else 0.0


def ntxent_soft(mat, y, mask, temperature, inverted):
    """NT-Xent with soft labels, one term per positive pair (a, k):
    y_ak * -(z_ak - log(exp(z_ak) + sum_{n kept, n != k} (1 - y_an) exp(z_an))), averaged over the
    masked pairs with y > 0 (MeanReducer)."""
    if not has_positive_and_negative(y, mask):
        return 0.0
    terms = []
    for a in range(len(mat)):
        kept = [k for k in range(len(mat[a])) if mask[a][k]]
        z = {k: softmax_logit(mat[a][k], temperature, inverted) for k in kept}
        for k in kept:
            if y[a][k] == 0:
                continue
            others = [n for n in kept if n != k and y[a][n] < 1]
            top = max(_float(z[n]) for n in [k] + others)
            denominator = top + _log(_exp(z[k] - top) + sum((1 - y[a][n]) * _exp(z[n] - top) for n in others))
            terms.append(y[a][k] * -(z[k] - denominator))
    return sum(terms) / len(terms)

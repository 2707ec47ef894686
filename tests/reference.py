"""Slow per-anchor references for the soft-label losses, written straight from the formulas of
docs/method.md with Python floats (float64), one anchor and one pair at a time."""

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

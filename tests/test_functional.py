"""The functional core on its own: log-space soft sums, binary labels as bool or float, gradcheck."""

import math

import pytest
import torch

from pml_metrix import functional as F


def test_weighted_logsumexp_is_log_one_plus_weighted_sum():
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    weights = torch.tensor([[0.2, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    out = F.weighted_logsumexp(logits, weights)
    assert out.shape == (2, 1)
    assert out[0, 0].item() == pytest.approx(math.log(1 + 0.2 * math.exp(0.5) + math.exp(2.0)), rel=1e-14)
    assert out[1, 0].item() == 0.0  # no term: 0, as PML


def test_weighted_logsumexp_is_stable_for_huge_logits():
    logits = torch.tensor([[800.0, 790.0]], dtype=torch.float64)
    out = F.weighted_logsumexp(logits, torch.tensor([[0.5, 1e-300]], dtype=torch.float64))
    assert out.item() == pytest.approx(800 + math.log(0.5), rel=1e-14)


@pytest.mark.parametrize("inverted", [True, False])
def test_bool_and_float_binary_labels_agree(inverted):
    """Float labels in {0, 1} take the soft form (to rounding); bool labels PML's arithmetic."""
    torch.manual_seed(0)
    mat = torch.rand(6, 9, dtype=torch.float64)
    labels = torch.rand(6, 9) < 0.4
    mask = torch.rand(6, 9) < 0.7
    kwargs = dict(alpha=2.0, beta=50.0, base=0.5, inverted=inverted)
    torch.testing.assert_close(
        F.multi_similarity_loss(mat, labels, mask, **kwargs),
        F.multi_similarity_loss(mat, labels.double(), mask, **kwargs), rtol=1e-13, atol=1e-13,
    )
    pa = dict(alpha=32.0, margin=0.1, inverted=inverted)
    for a, b in zip(F.proxy_anchor_terms(mat, labels, mask, **pa), F.proxy_anchor_terms(mat, labels.double(), mask, **pa)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_label_weights_masks_and_kept_terms():
    y = torch.tensor([[0.25, 1.0, 0.0]])
    mask = torch.tensor([[True, False, True]])
    pos, neg = F.label_weights(y)
    assert pos.tolist() == [[0.25, 1.0, 0.0]] and neg.tolist() == [[0.75, 0.0, 1.0]]
    assert F.kept_terms(pos, mask).tolist() == [[True, False, False]]
    assert F.kept_terms(neg, mask).tolist() == [[True, False, True]]
    pos, neg = F.label_weights(y > 0.5)
    assert pos.tolist() == [[False, True, False]] and neg.tolist() == [[True, False, True]]
    assert F.kept_terms(pos, mask).tolist() == [[False, False, False]]
    assert F.kept_terms(neg).tolist() == [[True, False, True]]
    for labels in (y, y > 0.5):
        assert [m.tolist() for m in F.label_masks(labels, mask)] == [
            F.kept_terms(w, mask).tolist() for w in F.label_weights(labels)
        ]


def test_contrastive_terms():
    d = torch.tensor([0.2, 0.9, 1.4])
    y = torch.tensor([1.0, 0.5, 0.0])
    assert torch.allclose(F.contrastive_pos_terms(d, y, pos_margin=0.1), torch.tensor([0.1, 0.4, 0.0]))
    assert torch.allclose(F.contrastive_neg_terms(d, y, neg_margin=1.0), torch.tensor([0.0, 0.05, 0.0]))
    # similarities flip the margins (PML's distance.margin)
    assert torch.allclose(F.contrastive_pos_terms(d, 1.0, pos_margin=1.0, inverted=True), (1.0 - d).clamp(min=0))


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("masked", [False, True])
def test_soft_logsumexp_equals_log_weights_added_inside(dim, masked):
    """The shifted weighted sum is the log-sum-exp with ``log w`` added to the kept logits (the
    textbook form): values and gradients to rounding, rows and columns without terms giving 0."""
    torch.manual_seed(0)
    shape = (9, 11)
    logits = (torch.randn(shape, dtype=torch.float64) * 30).requires_grad_()
    weights = torch.rand(shape, dtype=torch.float64) * (torch.rand(shape) < 0.5)
    weights[3] = 0  # a row and
    weights[:, 4] = 0  # a column without terms
    mask = torch.rand(shape) < 0.7 if masked else torch.ones(shape, dtype=torch.bool)
    out = F.weighted_logsumexp(logits, weights, dim=dim, pair_mask=None if not masked else mask)
    keep = (weights > 0) & mask
    inside = torch.where(keep, logits + weights.clamp_min(1e-300).log(), -torch.inf)
    one = torch.zeros(out.shape, dtype=torch.float64)
    expected = torch.logsumexp(torch.cat([inside, one], dim=dim), dim=dim, keepdim=True)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), logits)
    (expected_grad,) = torch.autograd.grad(expected.pow(2).sum(), logits)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_soft_logsumexp_is_stable_and_ignores_left_out_terms():
    logits = torch.tensor([[1e4, 3e4, -1e4], [-2e4, -3e4, 5e4]], dtype=torch.float32, requires_grad=True)
    weights = torch.tensor([[0.5, 0.0, 1.0], [1.0, 0.5, 1.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    out = F.weighted_logsumexp(logits, weights, pair_mask=mask)
    assert out[:, 0].tolist() == pytest.approx([1e4 + math.log(0.5), 0.0])  # 3e4: w = 0; 5e4: masked
    out.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 1] == logits.grad[1, 2] == 0
    no_terms = torch.zeros(4, 0, requires_grad=True)  # no references: log 1 = 0, with a gradient path
    empty = F.weighted_logsumexp(no_terms, torch.zeros(4, 0))
    assert empty.tolist() == [[0.0]] * 4 and empty.requires_grad


@pytest.mark.parametrize("inverted", [True, False])
def test_gradcheck_soft_core(inverted):
    torch.manual_seed(1)
    mat = torch.rand(5, 7, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, 7, dtype=torch.float64)
    mask = torch.rand(5, 7) < 0.7

    def all_terms(m):
        ms = F.multi_similarity_loss(m, y, mask, alpha=2.0, beta=10.0, base=0.5, inverted=inverted)
        pos, neg = F.proxy_anchor_terms(m, y, mask, alpha=4.0, margin=0.1, inverted=inverted)
        cpos = F.contrastive_pos_terms(m, y, pos_margin=0.05, inverted=inverted)
        cneg = F.contrastive_neg_terms(m, y, neg_margin=0.9, inverted=inverted)
        return ms.sum() + pos.sum() + neg.sum() + cpos.sum() + cneg.sum()

    assert torch.autograd.gradcheck(all_terms, (mat,))

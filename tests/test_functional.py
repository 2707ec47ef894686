"""The functional core on its own: log-space soft sums, binary labels as bool or float, gradcheck."""

import math

import pytest
import torch

from pml_metrix import functional as F
from tests.lse_paths import PATHS, lse_path


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
def test_bool_and_float_binary_labels_agree_bitwise(inverted):
    torch.manual_seed(0)
    mat = torch.rand(6, 9)
    labels = torch.rand(6, 9) < 0.4
    mask = torch.rand(6, 9) < 0.7
    kwargs = dict(alpha=2.0, beta=50.0, base=0.5, inverted=inverted)
    assert torch.equal(
        F.multi_similarity_loss(mat, labels, mask, **kwargs), F.multi_similarity_loss(mat, labels.float(), mask, **kwargs)
    )
    pa = dict(alpha=32.0, margin=0.1, inverted=inverted)
    for a, b in zip(F.proxy_anchor_terms(mat, labels, mask, **pa), F.proxy_anchor_terms(mat, labels.float(), mask, **pa)):
        assert torch.equal(a, b)


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


def test_log1p_segment_sum_exp():
    logits = torch.tensor([0.5, -1.0, 2.0, 1e4, 3.0], dtype=torch.float64)
    segments = torch.tensor([0, 0, 2, 3, 2])
    out = F.log1p_segment_sum_exp(logits, segments, 5)
    expected = [
        math.log(1 + math.exp(0.5) + math.exp(-1.0)), 0.0, math.log(1 + math.exp(2.0) + math.exp(3.0)), 1e4, 0.0,
    ]
    assert out.tolist() == pytest.approx(expected, rel=1e-15)
    assert torch.autograd.gradcheck(
        lambda x: F.log1p_segment_sum_exp(x, segments, 5), (logits.clone().div(1e4).requires_grad_(),)
    )


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("masked", [False, True])
def test_soft_logsumexp_over_the_kept_terms_equals_the_dense_form(dim, masked, monkeypatch):
    """A large matrix with few kept terms takes the list form by default: the same values and
    gradients as the dense form, to rounding."""
    torch.manual_seed(0)
    shape = (96, 100)  # 9,600 terms >= SPARSE_MIN_TERMS
    logits = (torch.randn(shape, dtype=torch.float64) * 5).requires_grad_()
    weights = torch.rand(shape, dtype=torch.float64) * (torch.rand(shape) < 0.05)
    weights[3] = 0  # a row and
    weights[:, 4] = 0  # a column without terms
    mask = torch.rand(shape) < 0.7 if masked else None
    calls = []
    segment_sum = F.log1p_segment_sum_exp
    monkeypatch.setattr(F, "log1p_segment_sum_exp", lambda *args: calls.append(1) or segment_sum(*args))

    def value_and_grad():
        logits.grad = None
        out = F.weighted_logsumexp(logits, weights, dim=dim, pair_mask=mask)
        out.pow(2).sum().backward()
        return out.detach(), logits.grad.clone()

    by_default = value_and_grad()
    assert calls, "the list form was not taken"
    with lse_path("dense"):
        dense = value_and_grad()
    assert len(calls) == 1
    assert by_default[0].shape == dense[0].shape == ((shape[0], 1) if dim == 1 else (1, shape[1]))
    for a, b in zip(by_default, dense):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("inverted", [True, False])
def test_gradcheck_soft_core(inverted, path):
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

    with lse_path(path):
        assert torch.autograd.gradcheck(all_terms, (mat,))

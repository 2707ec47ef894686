"""The report's plots (pml_metrix.app.report)."""

import pytest
import torch

from pml_metrix.analysis import pair_positivity, positive_share_by_lam
from pml_metrix.app.report import plot_positive_share
from tests.test_analysis import BATCH, LOSS_NAMES, anchor_labels_of, batch, make_loss, positive_negative_mixes


def test_plot_writes_a_png_and_returns_its_path(tmp_path):
    embeddings, labels = batch()
    lam = torch.rand(3 * BATCH, generator=torch.Generator().manual_seed(16))
    shares = {}
    for name in LOSS_NAMES:
        loss_fn = make_loss(name)
        mixed_batch = positive_negative_mixes(embeddings, labels, anchor_labels_of(loss_fn, labels), lam, seed=17)
        shares[name] = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, mixed_batch), num_bins=5)
    path = plot_positive_share(shares, tmp_path / "positivity.png")
    assert path == tmp_path / "positivity.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_plot_refuses_what_it_cannot_draw(tmp_path):
    embeddings, labels = batch()
    lam = torch.rand(BATCH, generator=torch.Generator().manual_seed(18))
    loss_fn = make_loss("ms")
    share = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, positive_negative_mixes(embeddings, labels, labels, lam, seed=19)))
    for shares, path, message in [
        ({"ms": share}, "positivity.pdf", "\\.png"),
        ({}, "positivity.png", "non-empty mapping"),
        ({"ms": share.share}, "positivity.png", "PositiveShare"),
    ]:
        with pytest.raises(ValueError, match=message):
            plot_positive_share(shares, tmp_path / path)

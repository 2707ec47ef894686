"""Draws the figures of the documentation from pml_metrix itself.

    python docs/make_figures.py

Writes docs/positivity.png: the share of mixed items that the mixed loss pulls towards their anchor
(positivity, see docs/metrics.md), per lam bin, for the three Metrix losses, on one seeded random
batch of unit-norm embeddings (64 items, 16 classes, 32-d) mixed by a MixupMiner with 4 mixes per
anchor. It is a picture of the definition on untrained embeddings, not a training result.
"""

from pathlib import Path

import torch

import pml_metrix
from pml_metrix.analysis import pair_positivity, positive_share_by_lam
from pml_metrix.app.report import plot_positive_share

OUT = Path(__file__).resolve().parent / "positivity.png"


def main() -> None:
    g = torch.Generator().manual_seed(0)
    num_classes, per_class, dim = 16, 4, 32
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    embeddings = torch.nn.functional.normalize(torch.randn(len(labels), dim, generator=g), dim=1)
    shares = {}
    losses = {
        "contrastive": lambda: (pml_metrix.MetrixContrastiveLoss(), pml_metrix.MixupMiner(num_mixes=4, seed=0)),
        "multi-similarity": lambda: (pml_metrix.MetrixMSLoss(), pml_metrix.MixupMiner(num_mixes=4, seed=0)),
        "proxy anchor": lambda: (
            pml_metrix.MetrixProxyAnchorLoss(num_classes=num_classes, embedding_size=dim),
            pml_metrix.MixupMiner(num_mixes=4, seed=0, num_classes=num_classes),
        ),
    }
    for name, make in losses.items():
        torch.manual_seed(0)  # proxy anchor draws its proxies from torch's global generator when built
        loss_fn, miner = make()
        positivity = pair_positivity(loss_fn, embeddings, labels, miner(embeddings, labels))
        shares[name] = positive_share_by_lam(positivity, num_bins=10)
        print(f"{name}: {len(positivity.lam)} pairs, {positivity.is_positive.double().mean().item():.3f} positive")
    print(plot_positive_share(shares, OUT))


if __name__ == "__main__":
    main()

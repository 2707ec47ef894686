"""Plans and Metrix losses at default options on one fixed batch, for the golden-value test.

``python -m tests.golden FILE`` writes them as JSON. tests/data/golden_bd34434.json was written by
this code at commit bd34434 (before the loss and miner were refactored), so the test shows that the
defaults still give those plans bit for bit and those losses (values bit for bit, gradients to
rounding)."""

import hashlib
import json
import sys

import torch
from pytorch_metric_learning import miners

import pml_metrix

MINERS = {
    "default": {},
    "two_strategies_per_batch": dict(strategies=["positive_negative", "anchor_negative"], mixes="per_batch", num_mixes=7),
    "hardest_pp": dict(strategies=["positive_positive", "negative_negative"], negatives="hardest", num_mixes=2),
    "proxies": dict(num_classes=6),
}


def batch():
    g = torch.Generator().manual_seed(123)
    embeddings = torch.nn.functional.normalize(torch.randn(24, 8, generator=g, dtype=torch.float64), dim=1)
    return embeddings, torch.arange(6).repeat_interleave(4)


def digest(*tensors) -> str:
    return hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in tensors)).hexdigest()


def make_miner(name):
    return pml_metrix.MixupMiner(seed=5, inner_miner=miners.MultiSimilarityMiner(0.1), **MINERS[name])


def values():
    embeddings, labels = batch()
    out = {}
    for name in MINERS:
        miner = make_miner(name)
        out[f"{name}/plans"] = [
            digest(plan.source_index, plan.lam, plan.pair_mask) for plan in (miner.plan(embeddings, labels) for _ in range(2))
        ]
        torch.manual_seed(0)
        losses = {"ms": pml_metrix.MetrixMSLoss(), "contrastive": pml_metrix.MetrixContrastiveLoss(),
                  "pa": pml_metrix.MetrixProxyAnchorLoss(6, 8)}
        for loss_name, loss_fn in losses.items():
            if (loss_name == "pa") != (name == "proxies"):
                continue
            leaf = embeddings.clone().requires_grad_()
            loss = loss_fn(leaf, labels, make_miner(name)(leaf, labels))
            loss.backward()
            out[f"{name}/{loss_name}"] = {"loss": loss.item().hex(), "grad": leaf.grad.flatten().tolist()}
    return out


if __name__ == "__main__":
    with open(sys.argv[1], "w") as file:
        json.dump(values(), file, indent=0)

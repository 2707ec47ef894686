"""Metrix in a plain PyTorch loop: a few hundred steps of MetrixMSLoss against MultiSimilarityLoss.

Data: a seeded synthetic retrieval task (class centres on a random low-dimensional manifold,
observed through a fixed random nonlinear map, plus strong class-independent nuisance
variation that raw-input retrieval cannot ignore), 60 training classes and 40 unseen test
classes. It shows the wiring: the MixupMiner wraps the clean-pair miner and returns a MixedBatch
(``miner.plan(embeddings, labels).mix(x)`` mixes images or features instead: see docs/migrating.md), and
the Metrix loss takes it where PML takes the miner's tuple. Scores are Recall@1 on the unseen
classes, with raw inputs and the untrained network beside the trained ones.
"""

import argparse

import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

import pml_metrix


def make_data(num_classes: int, per_class: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(num_classes, 8, generator=g)
    lift = torch.randn(8, dim, generator=g)
    warp = torch.randn(dim, dim, generator=g) / dim**0.5
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    z = latent[labels] + 0.6 * torch.randn(len(labels), 8, generator=g)
    signal = torch.tanh(z @ lift) @ warp
    nuisance = 2.0 * torch.randn(len(labels), 8, generator=g) @ torch.randn(8, dim, generator=g) / 8**0.5
    return signal + nuisance + 0.3 * torch.randn(len(labels), dim, generator=g), labels


def recall_at_1(embeddings, labels):
    calc = AccuracyCalculator(include=("precision_at_1",), k=1)
    return calc.get_accuracy(embeddings, labels)["precision_at_1"]


def train(use_metrix: bool, x, labels, steps: int, seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    loss_fn = pml_metrix.MetrixMSLoss() if use_metrix else losses.MultiSimilarityLoss()
    miner = miners.MultiSimilarityMiner(epsilon=0.1)
    if use_metrix:  # the extra line: the miner mixes too
        miner = pml_metrix.MixupMiner(inner_miner=miner, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    for _ in range(steps):
        batch_classes = classes[torch.randperm(len(classes), generator=g)[:16]]
        idx = torch.cat([torch.where(labels == c)[0][torch.randperm(20, generator=g)[:4]] for c in batch_classes])
        emb, lab = model(x[idx]), labels[idx]
        loss = loss_fn(emb, lab, miner(emb, lab))  # a PML tuple, or a MixedBatch with it inside
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x, labels = make_data(100, 20, 128, seed=1234)
    train_mask = labels < 60
    x_test, y_test = x[~train_mask], labels[~train_mask]
    print(f"Recall@1 on 40 unseen classes ({len(y_test)} items):")
    print(f"  raw inputs          {recall_at_1(x_test, y_test):.3f}")
    torch.manual_seed(args.seed)
    untrained = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    with torch.no_grad():
        print(f"  untrained network   {recall_at_1(untrained(x_test), y_test):.3f}")
    for name, use_metrix in [("MS + miner", False), ("MS + miner + Metrix", True)]:
        model = train(use_metrix, x[train_mask], labels[train_mask], args.steps, args.seed)
        with torch.no_grad():
            print(f"  {name:<19} {recall_at_1(model(x_test), y_test):.3f}")


if __name__ == "__main__":
    main()

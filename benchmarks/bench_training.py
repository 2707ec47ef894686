"""Cost of one Metrix training step against the baseline step, measured side by side.

    python benchmarks/bench_training.py [--reps 7] [--threads 2] [--quick] [--losses MS SupCon NTXent]

One step = PML's ``forward_and_backward`` (batch, forward, miner, loss, backward, optimizer step)
of the baseline ``MetricLossOnly`` and of ``MetrixTrainer`` at each mixing level, on the same model,
data and batch (100 images of 3 x 64 x 64, 50 classes), CPU, for each loss:

- ``MS``: MultiSimilarityLoss + MultiSimilarityMiner against MetrixMSLoss +
  MixupMiner(inner_miner=MultiSimilarityMiner);
- ``SupCon``, ``NTXent``: PML's SupConLoss / NTXentLoss without a miner (as the study trains
  them) against MetrixSupConLoss / MetrixNTXentLoss + MixupMiner().

Steps of the variants are interleaved and the median per variant is reported. Targets: embedding and
feature level <= 1.10x the baseline, input level <= 2.1x (one extra forward is the floor).
"""

import argparse
import copy
import logging
import statistics
import time

import torch
import torchvision
from pytorch_metric_learning import losses, miners, trainers

import pml_metrix
from pml_metrix.app.models import PoolingEmbedder
from pml_metrix.trainers import MetrixTrainer

TARGETS = {"embedding": 1.10, "feature": 1.10, "input": 2.1}
LOSSES = ("MS", "SupCon", "NTXent")


def baseline_and_metrix(loss_name):
    """(PML's loss, its miners, the Metrix loss, its MixupMiner) for a loss of LOSSES."""
    if loss_name == "MS":
        return (losses.MultiSimilarityLoss(), {"tuple_miner": miners.MultiSimilarityMiner()},
                pml_metrix.MetrixMSLoss(), pml_metrix.MixupMiner(inner_miner=miners.MultiSimilarityMiner(), seed=0))
    pml_loss, metrix_loss = {
        "SupCon": (losses.SupConLoss(), pml_metrix.MetrixSupConLoss()),
        "NTXent": (losses.NTXentLoss(), pml_metrix.MetrixNTXentLoss()),
    }[loss_name]
    return pml_loss, {}, metrix_loss, pml_metrix.MixupMiner(seed=0)


def small_cnn():
    layers, channels = [], 3
    for out in (32, 64, 128):
        layers += [torch.nn.Conv2d(channels, out, 3, padding=1), torch.nn.BatchNorm2d(out), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels = out
    return torch.nn.Sequential(*layers), channels


def resnet18():
    return torch.nn.Sequential(*list(torchvision.models.resnet18(weights=None).children())[:-2]), 512


def make_trainer(trunk, channels, dataset, loss_name, variant):
    models = {"trunk": copy.deepcopy(trunk), "embedder": PoolingEmbedder(channels, 128)}
    optimizers = {f"{name}_optimizer": torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    common = dict(models=models, optimizers=optimizers, batch_size=100, dataset=dataset, dataloader_num_workers=0)
    pml_loss, pml_miners, metrix_loss, mixup_miner = baseline_and_metrix(loss_name)
    if variant == "baseline":
        trainer = trainers.MetricLossOnly(loss_funcs={"metric_loss": pml_loss}, mining_funcs=pml_miners, **common)
    else:
        trainer = MetrixTrainer(
            loss_funcs={"metric_loss": metrix_loss}, mining_funcs={"tuple_miner": mixup_miner}, mix_level=variant, **common
        )
    trainer.initialize_dataloader()
    trainer.set_to_train()
    return trainer


def step_seconds(trainer):
    start = time.perf_counter()
    trainer.forward_and_backward()
    return time.perf_counter() - start


def bench(name, trunk, channels, dataset, loss_name, reps):
    variants = ["baseline", "embedding", "feature", "input"]
    trainers_ = {v: make_trainer(trunk, channels, dataset, loss_name, v) for v in variants}
    for v in variants:  # warm-up
        step_seconds(trainers_[v])
    times = {v: [] for v in variants}
    for _ in range(reps):
        for v in variants:
            times[v].append(step_seconds(trainers_[v]))
    base = statistics.median(times["baseline"])
    print(f"\n{name}, {loss_name}: baseline step {base * 1000:.0f} ms (median of {reps})")
    results = {}
    for v in variants[1:]:
        ratio = statistics.median(times[v]) / base
        results[v] = ratio
        print(f"  {v:<9} {statistics.median(times[v]) * 1000:7.0f} ms   ratio {ratio:.3f}   target <= {TARGETS[v]}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small CNN only, 3 repetitions")
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES), help="the losses to time (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("PML").setLevel(logging.WARNING)
    torch.manual_seed(0)
    images = torch.randn(1000, 3, 64, 64)
    labels = torch.arange(50).repeat_interleave(20)
    dataset = torch.utils.data.TensorDataset(images, labels)
    models = [("small CNN", *small_cnn())] + ([] if args.quick else [("ResNet-18", *resnet18())])
    verdicts = []
    for name, trunk, channels in models:
        for loss_name in args.losses:
            for level, ratio in bench(name, trunk, channels, dataset, loss_name, 3 if args.quick else args.reps).items():
                verdicts.append(f"{'PASS' if ratio <= TARGETS[level] else 'FAIL'}  {name}, {loss_name} {level}: {ratio:.3f}")
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()

"""Cost of building soft labels from label sets, against the loss's own time, side by side on CPU.

    python benchmarks/bench_label_sets.py [--reps 50] [--threads 2] [--batch 512] [--labels 64]

A batch of B x 512 Gaussian embeddings (requires_grad) with B x C multi-hot label sets (each item
1 to 4 labels of C drawn uniformly), B = 512 and C = 64 by default. Timed, interleaved after a
warm-up (order flipped every repetition), median of each:

- ``build clean``: ``SoftPairs.from_label_sets(embeddings, label_sets, "jaccard")``, the B x B soft
  labels of the clean part on label sets (with their checks);
- ``build mixed``: ``MixedBatch.soft_pairs(label_sets, "jaccard", batch_soft_labels)`` for the
  MixedBatch that ``MixupMiner(seed=0)`` draws on the batch (K = B), the B x K soft labels of the
  mixes from the clean part's B x B ones, as a Metrix loss call builds them (it labels the batch's
  pairs once for both parts);
- ``build mixed alone``: ``MixedBatch.soft_pairs(label_sets, "jaccard")``, the same computing its own
  B x B similarities (a call of ``soft_pairs`` by hand, or a loss call that did not share them), for
  information;
- ``build both``: the two above one after the other, as a Metrix loss call runs them
  (``loss(embeddings, label_sets, mixed_batch)`` labels the batch's pairs, then the mixes from
  them, before either part's loss): the soft labels of one call;
- ``build bare``: the arithmetic of ``build both`` alone, in the plainest torch ops (one product,
  the Jaccard ratio's elementwise passes, the clean part's pair mask, two gathers weighted), without
  a check or a branch: the floor of ``build both`` in torch's eager ops, checked equal to it;
- ``loss clean`` / ``loss mixed``: the loss (MetrixMSLoss, MetrixContrastiveLoss) over those
  SoftPairs, already built, forward and ``backward()``: the loss's own time;
- ``call``: the whole call ``loss(embeddings, label_sets, mixed_batch)`` and its backward, for
  information (builds, checks and both parts).

Ratio = build / loss, per part and loss, and for the whole call: ``build both`` (and ``build bare``,
for the floor) over both parts' loss. Target: under 0.05. Each build's sample follows a whole MS
call (untimed), so that it starts with the caches and threads as a training step's loss call leaves
them; within a call the mixes' build reads the B x B similarities just written, as ``build both``
does. The soft labels carry no gradient, so
the loss's backward does not reach them. Freed memory stays in the process, as in bench_losses.py's
default (``--malloc retain``). On a busy machine the medians drift; the ratio of two
medians measured side by side holds better than either alone.
"""

import argparse
import statistics
import time

import torch

import pml_metrix
from bench_losses import retain_freed_memory
from pml_metrix import MixupMiner, SoftPairs

DIM = 512
TARGET = 0.05


def label_sets(batch_size: int, num_labels: int, generator: torch.Generator) -> torch.Tensor:
    sets = torch.zeros(batch_size, num_labels)
    sizes = torch.randint(1, 5, (batch_size,), generator=generator)
    for item, size in enumerate(sizes.tolist()):
        sets[item, torch.randperm(num_labels, generator=generator)[:size]] = 1
    return sets


def bare_build(sets: torch.Tensor, mixed_batch) -> torch.Tensor:
    """The B x K soft labels of the mixes, computed as a Metrix call computes them on label sets
    (the B x B Jaccard similarities, the clean part's pair mask, the mixes' weighted gathers), with
    no check: the floor of ``build both``."""
    sizes = sets.sum(dim=-1)
    shared = sets @ sets.T
    soft_labels = shared.div_((sizes[:, None] + sizes[None, :]).sub_(shared))
    torch.ones(soft_labels.shape, dtype=torch.bool).fill_diagonal_(False)  # the clean part's pair mask
    first, second = (index.expand(len(sets), -1) for index in mixed_batch.source_index.unbind(1))
    mixed = soft_labels.gather(1, first).mul_(mixed_batch.lam)
    return mixed.add_(soft_labels.gather(1, second).mul_(1 - mixed_batch.lam))


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--labels", type=int, default=64)
    args = parser.parse_args()
    if not retain_freed_memory():
        parser.error("needs glibc's mallopt, to keep freed memory as bench_losses.py does by default")
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(args.batch, DIM, generator=generator).requires_grad_()
    sets = label_sets(args.batch, args.labels, generator)
    mixed_batch = MixupMiner(seed=0)(embeddings.detach(), sets)
    clean_pairs = SoftPairs.from_label_sets(embeddings, sets, "jaccard")
    mixed_pairs = mixed_batch.soft_pairs(sets, "jaccard")
    mixed_pairs = SoftPairs(mixed_pairs.embeddings.detach().requires_grad_(), mixed_pairs.soft_labels, mixed_pairs.pair_mask)

    def loss_call(loss_fn, soft_pairs):
        return lambda: loss_fn(embeddings, None, soft_pairs).backward()

    variants = {
        "build clean": lambda: SoftPairs.from_label_sets(embeddings, sets, "jaccard"),
        "build mixed": lambda: mixed_batch.soft_pairs(sets, "jaccard", clean_pairs.soft_labels),
        "build mixed alone": lambda: mixed_batch.soft_pairs(sets, "jaccard"),
        "build both": lambda: mixed_batch.soft_pairs(sets, "jaccard", SoftPairs.from_label_sets(embeddings, sets, "jaccard").soft_labels),
        "build bare": lambda: bare_build(sets, mixed_batch),
    }
    if not torch.equal(variants["build both"]().soft_labels, variants["build bare"]()):
        raise AssertionError("build bare does not compute what build both does")
    for name, loss_fn in (("ms", pml_metrix.MetrixMSLoss()), ("contrastive", pml_metrix.MetrixContrastiveLoss())):
        variants[f"{name} clean"] = loss_call(loss_fn, clean_pairs)
        variants[f"{name} mixed"] = loss_call(loss_fn, mixed_pairs)
        variants[f"{name} call"] = lambda loss_fn=loss_fn: loss_fn(embeddings, sets, mixed_batch).backward()
    samples = {name: [] for name in variants}
    order = list(variants)
    step = variants["ms call"]
    for rep in range(args.reps + 3):  # 3 warm-up repetitions
        for name in order if rep % 2 else reversed(order):
            if name.startswith("build"):
                step()  # as a training step's loss call leaves the caches and threads
            seconds = timed(variants[name])
            if rep >= 3:
                samples[name].append(seconds)
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"B = {args.batch}, C = {args.labels}, d = {DIM}, {args.threads} threads, {args.reps} repetitions (median ms)")
    for name, seconds in median.items():
        print(f"  {name:<18} {1e3 * seconds:8.3f}")
    print(f"ratio build / loss (target < {TARGET}):")
    for loss_name in ("ms", "contrastive"):
        for part in ("clean", "mixed"):
            ratio = median[f"build {part}"] / median[f"{loss_name} {part}"]
            print(f"  {loss_name:<12} {part:<6} {ratio:7.4f}  {'ok' if ratio < TARGET else 'OVER'}")
        ratio = median["build both"] / (median[f"{loss_name} clean"] + median[f"{loss_name} mixed"])
        print(f"  {loss_name:<12} {'call':<6} {ratio:7.4f}  {'ok' if ratio < TARGET else 'OVER'}  (build both / both parts' loss)")
        floor = median["build bare"] / (median[f"{loss_name} clean"] + median[f"{loss_name} mixed"])
        print(f"  {loss_name:<12} {'floor':<6} {floor:7.4f}  (build bare / both parts' loss: the arithmetic alone, no check)")


if __name__ == "__main__":
    main()

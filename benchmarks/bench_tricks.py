"""What each remaining speed trick of the mixed path buys: the trick against its plain form, side by
side in one process (interleaved medians, forward + backward where there is a backward).

    python benchmarks/bench_tricks.py [--reps 50] [--threads 2]

1. soft log-sum-exp (``functional.weighted_logsumexp`` with float weights): a sum of ``w exp(x - shift)``
   against ``logsumexp`` of ``x + log w`` with ``-inf`` where ``w = 0``; 512 x 512, half the terms kept.
2. mixing (``MixingPlan.mix``): one ``index_select`` of all (i, j) and a weighted sum against
   ``lam x[i] + (1 - lam) x[j]`` with advanced indexing (whose backward is an accumulating
   ``index_put``); embeddings 512 x 512 and feature maps 100 x 256 x 4 x 4.
3. soft labels (``MixedBatch.class_soft_labels``): a classes x K table by two scatters, each anchor
   taking its class's row, against comparing the anchors' labels with both sources' labels, A = K = 512.

Each line prints plain / trick and the ratio; the docs (docs/benchmarks.md) quote these.
"""

import argparse
import statistics
import time

import torch

from pml_metrix import functional as F
from pml_metrix.mixed_batch import MixedBatch
from pml_metrix.mixing import MixingPlan


def timed(fn, reps):
    """Seconds per call of each function in ``fn`` (name -> callable), interleaved, medians."""
    samples = {name: [] for name in fn}
    for name, call in fn.items():  # warm-up
        call()
    for rep in range(reps):
        for name, call in (fn.items() if rep % 2 == 0 else reversed(list(fn.items()))):
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title, times):
    plain, trick = times["plain"], times["trick"]
    print(f"{title:<58} plain {plain * 1e3:8.3f} ms   trick {trick * 1e3:8.3f} ms   plain / trick {plain / trick:5.2f}")


def logsumexp_case(reps):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(512, 512, generator=g).requires_grad_()
    weights = torch.rand(512, 512, generator=g) * (torch.rand(512, 512, generator=g) < 0.5)

    def plain():
        log_w = torch.where(weights > 0, weights.log(), -torch.inf)
        one = logits.new_zeros(512, 1)
        torch.logsumexp(torch.cat([logits + log_w, one], dim=1), dim=1).sum().backward()

    def trick():
        F.weighted_logsumexp(logits, weights).sum().backward()

    report("1. soft log-sum-exp, 512 x 512, half kept", timed({"plain": plain, "trick": trick}, reps))


def mixing_case(reps, shape, title):
    g = torch.Generator().manual_seed(1)
    batch = torch.randn(*shape, generator=g).requires_grad_()
    source_index = torch.randint(0, shape[0], (shape[0], 2), generator=g)
    lam = torch.rand(shape[0], generator=g)
    plan = MixingPlan(source_index, lam, torch.ones(shape[0], shape[0], dtype=torch.bool))
    view = (-1,) + (1,) * (len(shape) - 1)

    def plain():
        mixed = lam.view(view) * batch[source_index[:, 0]] + (1 - lam.view(view)) * batch[source_index[:, 1]]
        mixed.sum().backward()

    def trick():
        plan.mix(batch).sum().backward()

    report(title, timed({"plain": plain, "trick": trick}, reps))


def soft_labels_case(reps):
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 128, (512,), generator=g)
    mb = MixedBatch(torch.randn(512, 8, generator=g), torch.randint(0, 512, (512, 2), generator=g), torch.rand(512, generator=g))

    def plain():
        source = labels[mb.source_index]
        same_i, same_j = labels[:, None] == source[None, :, 0], labels[:, None] == source[None, :, 1]
        return mb.lam * same_i + (1 - mb.lam) * same_j

    def trick():
        return mb.soft_pairs(labels).soft_labels

    torch.testing.assert_close(plain(), trick())
    report("3. soft labels, A = K = 512, 128 classes", timed({"plain": plain, "trick": trick}, reps))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), medians of {args.reps} interleaved calls")
    logsumexp_case(args.reps)
    mixing_case(args.reps, (512, 512), "2. mixing embeddings, 512 x 512")
    mixing_case(args.reps, (100, 256, 4, 4), "2. mixing feature maps, 100 x 256 x 4 x 4")
    soft_labels_case(args.reps)


if __name__ == "__main__":
    main()

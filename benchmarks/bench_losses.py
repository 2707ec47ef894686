"""Cost of the Metrix losses, measured side by side on CPU.

    python benchmarks/bench_losses.py [--reps 100] [--threads 2] [--cpu-time] [--malloc retain|glibc]
                                      [--quick] [--profile] [--losses MS Contrastive PA SupCon NTXent]

Embeddings are B x 512 Gaussian (requires_grad), labels a shuffle of B/4 classes of 4 items each
(num_classes = B/4 for proxy anchor), B in {32, 128, 512}. One sample = the loss call and its
``backward()``; samples of the variants being compared are interleaved (order flipped every
repetition) after a warm-up, and each variant's median is reported. The ratio of medians is the
verdict; ``paired``, the median over repetitions of the per-repetition ratio, is printed beside it
(it shrugs off load that changes between repetitions: if the two differ, the machine was busy).
A row marked ``busy`` had some variant's median over 1.5x its minimum, or a 1-minute load average
above the CPU count + 0.5 when it ended: other work was running, and with 2 threads on 2 shared
cores every op then waits on a descheduled thread (calls run up to 100x slower and the ratios drift
to ratios of op counts). Rerun on a quiet machine, or compare with ``--threads 1``. ``--cpu-time``
(with ``--threads 1``) times each sample by the CPU time of the thread that runs it instead of the
wall clock, so that other work on a shared machine does not count, only its contention for caches;
its rows are marked ``busy`` on the spread of the samples alone.

Memory: by default (``--malloc retain``) glibc keeps freed memory in the process (``mallopt``: no
trimming of the heap top, no fresh ``mmap`` for blocks under 32 MB), as PyTorch's CUDA caching
allocator does on a GPU and jemalloc or tcmalloc (which PyTorch's CPU performance guide recommends)
do on a CPU. glibc's defaults (``--malloc glibc``) hand the heap top back to the kernel after a call
whose peak went over the last one's, so each call faults its pages in again: the time grows with
the call's peak memory rather than its work (on this VM a 512 x 512 loss call paid 300 to 900 page
faults, up to 5 ms of 20, and the same op ran 3x slower in one call than in another). The ratios
hold for both; ``glibc`` runs are noisier.

1. Clean path, ``indices_tuple=None``: MetrixMSLoss, MetrixContrastiveLoss, MetrixProxyAnchorLoss,
   MetrixSupConLoss and MetrixNTXentLoss against their PML twin (same proxies), ratio ours / PML.
   Target <= 1.05. (PML's NT-Xent holds each positive pair against every negative pair, a P x N
   matrix: at B = 512, 1536 x 260096, 1.6 GB in float32 per tensor, several GB in one call for
   ours and the twin alike; ``--losses`` leaves it out on a small machine.)
   The ``same`` column says whether loss and gradients agree bit for bit.
2. Mixed path: a MixedBatch of K = B mixes ``lam e_i + (1 - lam) e_j`` of the embeddings (random
   pairs, lam ~ U[0, 1]; made by ``MixingPlan.mix`` before the clock starts), without a pair mask and
   with a random one (half the pairs; B x K, num_classes x K for proxy anchor), and the MixedBatch
   that ``MixupMiner()`` draws (one positive-negative mix per anchor, K = B, each seen by the anchors
   of its positive's class), against the same loss on the clean batch. Target <= 2.1. The loss is
   timed as the clean one is, from its inputs to their gradients: the mixed embeddings are a leaf,
   as the batch embeddings are (whatever made them, the mixing at embedding level or the network's
   head at feature level, is not the loss). The column
   ``+mix bwd`` times the unmasked mixed loss with the backward of the embedding-level mixing into
   the batch embeddings too (what a training step at embedding level pays), for information.
   Matrix products (aten mm / addmm / bmm / _euclidean_dist / _cdist_forward, which is what
   torch.matmul, @ and torch.cdist, as used by PML's distances, dispatch to) in one forward:
   target exactly one more than clean, of shape anchors x K (K x num_classes for proxy anchor,
   whose anchors are the proxies and whose matrix is references x proxies, as in PML).
   Largest tensor made by any non-view op in one mixed forward + backward (of the loss: mixed
   embeddings a leaf, as above): "embedding-shaped"
   means 2-D with d columns (B x d, K x d, proxies); everything else is "pairwise-shaped"
   (including index lists such as nonzero's n x 2). When B or K equals d the shapes cannot be told
   apart, so every tensor counts as pairwise-shaped. Target: what the mixed part adds (the outputs
   of the mixed call beyond those of the clean call, as a multiset of op, shape and dtype kind) has
   no pairwise tensor over 2 B max(B, K) elements: the n x 2 pair list of ``torch.where`` over the
   B x K kept pairs, as PML lists pairs (contrastive), is the largest. The clean part is the PML twin's arithmetic, bit
   for bit, and allocates what the twin does: its n x 2 pair list (``torch.where`` on the B x B
   label matrix; 2 B (B - 1) entries for B distinct labels) and multi-similarity's B x (B + 1)
   log-sum-exp input; the largest over the whole call and the twin's own are shown beside.

``--profile`` adds per-op profiles at the largest B (self CPU ms and calls per loss call, the ops
that differ most first): ours vs PML on the clean batch, and ours clean vs mixed vs masked.
"""

import argparse
import collections
import ctypes
import os
import statistics
import time

import torch
from pytorch_metric_learning import losses
from torch.utils._python_dispatch import TorchDispatchMode

import pml_metrix
from pml_metrix import MixingPlan, MixupMiner

DIM = 512
TARGETS = {"clean": 1.05, "mixed": 2.1}
BUSY = 1.5
CLOCK = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCK["wall"]
aten = torch.ops.aten
LOSSES = ("MS", "Contrastive", "PA", "SupCon", "NTXent")
PRODUCT_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default,
               aten._euclidean_dist.default, aten._cdist_forward.default}


def retain_freed_memory() -> bool:
    """Have glibc keep freed memory in the process (see the module docstring); False if not glibc."""
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def loss_pair(name: str, num_classes: int):
    """(ours, PML twin), with identical proxies for proxy anchor."""
    if name == "MS":
        return pml_metrix.MetrixMSLoss(), losses.MultiSimilarityLoss()
    if name == "Contrastive":
        return pml_metrix.MetrixContrastiveLoss(), losses.ContrastiveLoss()
    if name == "SupCon":
        return pml_metrix.MetrixSupConLoss(), losses.SupConLoss()
    if name == "NTXent":
        return pml_metrix.MetrixNTXentLoss(), losses.NTXentLoss()
    ours, pml = pml_metrix.MetrixProxyAnchorLoss(num_classes, DIM), losses.ProxyAnchorLoss(num_classes, DIM)
    pml.proxies.data.copy_(ours.proxies.data)
    return ours, pml


def make_batch(batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, DIM, generator=g).requires_grad_()
    labels = torch.randperm(batch_size, generator=g) % (batch_size // 4)
    i, j = torch.randint(0, batch_size, (2, batch_size), generator=g)
    lam = torch.rand(batch_size, generator=g)
    return embeddings, labels, (i, j, lam, g)


def mixed_batch(embeddings, plan, mask_rows=None, leaf=False, rows_are_classes=False):
    """K = len(lam) mixes of the embeddings, made by ``MixingPlan.mix`` as MetrixTrainer makes them at
    embedding level; a random mask_rows x K pair mask if mask_rows (its rows classes, for proxy
    anchor, if ``rows_are_classes``); ``leaf``: the mixes are a leaf tensor (requires_grad), so the
    loss's backward stops there."""
    i, j, lam, g = plan
    mask = None if mask_rows is None else torch.rand(mask_rows, len(lam), generator=g) < 0.5
    mixing = MixingPlan(torch.stack([i, j], 1), lam, mask, mask_rows if rows_are_classes else None)
    mixed = mixing.mix(embeddings)
    return mixing.mixed_batch(mixed.detach().requires_grad_() if leaf else mixed)


def miner_batch(embeddings, labels, num_classes=None):
    """A function making the MixedBatch that ``MixupMiner`` draws (seeded) for this batch, its mixed
    embeddings a fresh leaf at each call."""
    drawn = MixupMiner(num_classes=num_classes, seed=0)(embeddings.detach(), labels)
    return lambda: drawn.plan.mixed_batch(drawn.embeddings.clone().requires_grad_())


def call(loss_fn, embeddings, labels, make_arg):
    """Time loss(embeddings, labels, make_arg()) + backward; make_arg runs before the clock."""
    embeddings.grad = None
    for p in loss_fn.parameters():
        p.grad = None
    arg = make_arg()
    start = clock()
    loss_fn(embeddings, labels, arg).backward()
    return clock() - start


def interleaved(variants: dict, embeddings, labels, reps: int, warmup: int = 10):
    """Median seconds per variant; per variant the median over repetitions of its time over the
    first variant's (paired samples, adjacent in time, so robust to load changes between
    repetitions); and a "busy" mark when the machine was loaded (see the module docstring).
    variants maps name -> (loss_fn, make_arg)."""
    names = list(variants)
    times = {name: [] for name in names}
    for rep in range(warmup + reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            loss_fn, make_arg = variants[name]
            t = call(loss_fn, embeddings, labels, make_arg)
            if rep >= warmup:
                times[name].append(t)
    base = times[names[0]]
    paired = {name: statistics.median(t / b for t, b in zip(ts, base)) for name, ts in times.items()}
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    busy = any(medians[name] > BUSY * min(ts) for name, ts in times.items())
    busy = busy or (clock is CLOCK["wall"] and os.getloadavg()[0] > os.cpu_count() + 0.5)
    return medians, paired, f"  busy (load {os.getloadavg()[0]:.1f})" if busy else ""


def warm_up(names, batch_sizes, calls: int = 3):
    """Pay one-time costs (lazy initialisation, allocator growth) before any timing."""
    for name in names:
        for B in batch_sizes:
            embeddings, labels, plan = make_batch(B, seed=B)
            ours, pml = loss_pair(name, B // 4)
            for loss_fn, make_arg in [(pml, lambda: None), (ours, lambda: mixed_batch(embeddings, plan))]:
                for _ in range(calls):
                    call(loss_fn, embeddings, labels, make_arg)


def loss_and_grads(loss_fn, embeddings, labels):
    embeddings.grad = None
    for p in loss_fn.parameters():
        p.grad = None
    loss = loss_fn(embeddings, labels)
    loss.backward()
    return [loss.detach()] + [t.grad.clone() for t in [embeddings, *loss_fn.parameters()]]


def same_result(ours, pml, embeddings, labels) -> str:
    a, b = loss_and_grads(ours, embeddings, labels), loss_and_grads(pml, embeddings, labels)
    if all(torch.equal(x, y) for x, y in zip(a, b)):
        return "bitwise"
    return "close" if all(torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b)) else "DIFFER"


class OpRecorder(TorchDispatchMode):
    """Records (op, output shape) of every non-view op run under it, forward and backward."""

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if torch.is_tensor(t):
                    self.outputs.append((func, tuple(t.shape), t.is_floating_point()))
        return out

    def beyond(self, other: "OpRecorder") -> "OpRecorder":
        """The outputs recorded here and not in ``other``, as multisets of (op, shape, is float)."""
        rest, left = OpRecorder(), collections.Counter(other.outputs)
        for out in self.outputs:
            if left[out]:
                left[out] -= 1
            else:
                rest.outputs.append(out)
        return rest

    def products(self):
        return sorted(shape for func, shape, _ in self.outputs if func in PRODUCT_OPS)

    def largest(self, keep=None):
        """(numel, shape, op name) of the largest output for which keep(shape, is_float) holds."""
        sizes = [(torch.Size(s).numel(), s, func.__name__) for func, s, fp in self.outputs
                 if keep is None or keep(s, fp)]
        return max(sizes, default=(0, (), "none"))


def record(loss_fn, embeddings, labels, arg, backward: bool) -> OpRecorder:
    with OpRecorder() as rec:
        loss = loss_fn(embeddings, labels, arg)
        if backward:
            loss.backward()
    return rec


def fmt_dims(shape) -> str:
    return "x".join(map(str, shape))


def fmt_entry(entry) -> str:
    """(numel, shape, op) as 'numel shape (op)'."""
    numel, shape, op = entry
    return f"{numel:>8} {fmt_dims(shape)} ({op.removesuffix('.default')})"


def bench_clean(names, batch_sizes, reps, verdicts):
    print(f"\n1. Clean path (indices_tuple=None), ours vs PML twin, fwd+bwd, median of {reps}")
    print(f"{'loss':<12}{'B':>5}{'PML ms':>10}{'ours ms':>10}{'ratio':>8}{'paired':>8}   same")
    for name in names:
        for B in batch_sizes:
            embeddings, labels, _ = make_batch(B, seed=B)
            ours, pml = loss_pair(name, B // 4)
            none = lambda: None  # noqa: E731
            t, paired, busy = interleaved({"pml": (pml, none), "ours": (ours, none)}, embeddings, labels, reps)
            ratio = t["ours"] / t["pml"]
            same = same_result(ours, pml, embeddings, labels)
            print(f"{name:<12}{B:>5}{t['pml'] * 1e3:>10.3f}{t['ours'] * 1e3:>10.3f}{ratio:>8.3f}"
                  f"{paired['ours']:>8.3f}   {same:<7}{busy}")
            verdicts.append((ratio <= TARGETS["clean"], f"clean {name} B={B}: ours/PML {ratio:.3f} "
                             f"(target <= {TARGETS['clean']})"))


def count_products(ours, embeddings, labels, plan, anchors):
    """Product shapes of one clean and one mixed forward, the extra ones, and the verdict."""
    clean = record(ours, embeddings, labels, None, backward=False).products()
    mixed = record(ours, embeddings, labels, mixed_batch(embeddings, plan), backward=False).products()
    extra = list(mixed)
    for shape in clean:
        if shape in extra:
            extra.remove(shape)
    K = len(plan[2])
    want = (K, anchors) if isinstance(ours, pml_metrix.MetrixProxyAnchorLoss) else (anchors, K)
    return clean, mixed, extra, extra == [want], want


def largest_tensors(ours, pml, embeddings, labels, plan, anchors):
    """Largest pairwise tensor the mixed part adds; largest pairwise (any dtype), pairwise float and
    overall tensors of the whole mixed call; the twin's largest pairwise on the clean batch (all of
    one forward + backward, the mixed ones with and without mask); and whether B or K equals d."""
    ambiguous = DIM in (embeddings.shape[0], len(plan[2]))
    is_pairwise = lambda s, fp: ambiguous or not (len(s) == 2 and s[1] == DIM)  # noqa: E731
    is_float_pairwise = lambda s, fp: fp and is_pairwise(s, fp)  # noqa: E731
    is_pa = isinstance(ours, pml_metrix.MetrixProxyAnchorLoss)
    recs = [record(ours, embeddings, labels, mixed_batch(embeddings, plan, rows, leaf=True, rows_are_classes=is_pa),
                   backward=True)
            for rows in (None, anchors)]
    clean = record(ours, embeddings, labels, None, backward=True)
    added = max(rec.beyond(clean).largest(is_pairwise) for rec in recs)
    largest = [max(rec.largest(keep) for rec in recs) for keep in (is_pairwise, is_float_pairwise, None)]
    twin = record(pml, embeddings, labels, None, backward=True).largest(is_pairwise)
    return [added] + largest + [twin], ambiguous


def bench_mixed(names, batch_sizes, reps, verdicts):
    print(f"\n2. Mixed path (K = B) vs clean, same Metrix loss, fwd+bwd, median of {reps}")
    print(f"{'loss':<12}{'B':>5}{'clean ms':>10}{'mixed ms':>10}{'ratio':>7}{'paired':>8}{'masked ms':>11}"
          f"{'ratio':>7}{'paired':>8}{'miner ms':>10}{'ratio':>7}{'paired':>8}{'+mix bwd':>10}"
          f"   products in one forward, clean -> mixed (extra)")
    memory = []
    for name in names:
        for B in batch_sizes:
            embeddings, labels, plan = make_batch(B, seed=B)
            ours, pml = loss_pair(name, B // 4)
            anchors = B // 4 if name == "PA" else B
            variants = {
                "clean": (ours, lambda: None),
                "mixed": (ours, lambda: mixed_batch(embeddings, plan, leaf=True)),
                "masked": (ours, lambda: mixed_batch(embeddings, plan, anchors, leaf=True, rows_are_classes=name == "PA")),
                "miner": (ours, miner_batch(embeddings, labels, B // 4 if name == "PA" else None)),
                "mix bwd": (ours, lambda: mixed_batch(embeddings, plan)),
            }
            t, paired, busy = interleaved(variants, embeddings, labels, reps)
            clean, mixed, extra, products_ok, want = count_products(ours, embeddings, labels, plan, anchors)
            extra_txt = ", ".join(map(fmt_dims, extra)) or "none"
            print(f"{name:<12}{B:>5}{t['clean'] * 1e3:>10.3f}{t['mixed'] * 1e3:>10.3f}"
                  f"{t['mixed'] / t['clean']:>7.3f}{paired['mixed']:>8.3f}{t['masked'] * 1e3:>11.3f}"
                  f"{t['masked'] / t['clean']:>7.3f}{paired['masked']:>8.3f}{t['miner'] * 1e3:>10.3f}"
                  f"{t['miner'] / t['clean']:>7.3f}{paired['miner']:>8.3f}{t['mix bwd'] / t['clean']:>10.3f}"
                  f"   {len(clean)} -> {len(mixed)} ({extra_txt}){busy}")
            for variant in ("mixed", "masked", "miner"):
                ratio = t[variant] / t["clean"]
                verdicts.append((ratio <= TARGETS["mixed"], f"mixed {name} B={B}: {variant}/clean {ratio:.3f} "
                                 f"(target <= {TARGETS['mixed']})"))
            verdicts.append((products_ok, f"products {name} B={B}: {len(clean)} clean -> {len(mixed)} mixed, "
                             f"extra {extra_txt} (target exactly one {fmt_dims(want)})"))

            largest, ambiguous = largest_tensors(ours, pml, embeddings, labels, plan, anchors)
            bound = 2 * B * max(B, len(plan[2]))
            memory.append((name, B, bound, largest, ambiguous))
            added, twin = largest[0], largest[-1]
            verdicts.append((added[0] <= bound, f"memory {name} B={B}: largest pairwise the mixed part adds "
                             f"{fmt_entry(added)} (target <= 2 B max(B, K) = {bound}; "
                             f"PML twin, clean: {fmt_entry(twin)})"))

    print("\nLargest tensors in one mixed forward+backward (with and without mask): elements, shape (op)")
    columns = ["mixed part adds, pairwise", "pairwise, any dtype", "pairwise, float", "overall",
               "PML twin clean, pairwise"]
    print(f"{'loss':<12}{'B':>5}{'B*max(B,K)':>12}" + "".join(f"   {c:<32}" for c in columns))
    for name, B, bound, largest, ambiguous in memory:
        cells = "".join(f"   {fmt_entry(entry):<32}" for entry in largest)
        print(f"{name:<12}{B:>5}{bound:>12}{cells}{'  (B = d: all pairwise)' if ambiguous else ''}")


def profile_ops(title, runs: dict, top: int = 15, calls: int = 30):
    """Self CPU ms and count per call of each op, for each run (label -> (loss_fn, embeddings,
    labels, make_arg)), the ops that differ most from the first run first."""
    from torch.profiler import ProfilerActivity, profile

    stats, wall = {}, {}
    for label, (loss_fn, embeddings, labels, make_arg) in runs.items():
        for _ in range(5):
            call(loss_fn, embeddings, labels, make_arg)
        args = [make_arg() for _ in range(calls)]  # made outside the profile, as outside the clock
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            wall[label] = sum(call(loss_fn, embeddings, labels, lambda a=a: a) for a in args) / calls
        stats[label] = {e.key: (e.self_cpu_time_total / calls / 1e3, e.count / calls) for e in prof.key_averages()}
    first, *others = stats
    gap = lambda op: max(abs(stats[o].get(op, (0, 0))[0] - stats[first].get(op, (0, 0))[0]) for o in others)  # noqa: E731
    print(f"\n--- {title}: " + ", ".join(f"{label} {w * 1e3:.2f} ms/call" for label, w in wall.items()))
    print(f"{'op (self CPU ms, calls per call)':<34}" + "".join(f"{label:>18}" for label in stats))
    for op in sorted(set().union(*stats.values()), key=gap, reverse=True)[:top]:
        print(f"{op:<34}" + "".join(f"{stats[label].get(op, (0, 0))[0]:>11.3f}{stats[label].get(op, (0, 0))[1]:>7.0f}"
                                    for label in stats))


def profile_all(names, B):
    for name in names:
        embeddings, labels, plan = make_batch(B, seed=B)
        ours, pml = loss_pair(name, B // 4)
        anchors = B // 4 if name == "PA" else B
        profile_ops(f"{name} B={B}, clean", {"PML": (pml, embeddings, labels, lambda: None),
                                            "ours": (ours, embeddings, labels, lambda: None)})
        profile_ops(f"{name} B={B}, ours", {
            "clean": (ours, embeddings, labels, lambda: None),
            "mixed": (ours, embeddings, labels, lambda: mixed_batch(embeddings, plan, leaf=True)),
            "masked": (ours, embeddings, labels,
                       lambda: mixed_batch(embeddings, plan, anchors, leaf=True, rows_are_classes=name == "PA")),
            "miner": (ours, embeddings, labels, miner_batch(embeddings, labels, B // 4 if name == "PA" else None)),
        })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true", help="time by the thread's CPU time (needs --threads 1)")
    parser.add_argument("--malloc", choices=["retain", "glibc"], default="retain",
                        help="retain: keep freed memory in the process (default); glibc: glibc's defaults")
    parser.add_argument("--quick", action="store_true", help="B in {32, 128}, 20 repetitions")
    parser.add_argument("--profile", action="store_true", help="per-op profiles at the largest B")
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES), help="the losses to time (default: all)")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time times one thread: use it with --threads 1")
    global clock
    clock = CLOCK["cpu" if args.cpu_time else "wall"]
    if args.malloc == "retain" and not retain_freed_memory():
        parser.error("--malloc retain needs glibc's mallopt: run with --malloc glibc")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch_sizes, reps = ((32, 128), 20) if args.quick else ((32, 128, 512), args.reps)
    names = args.losses
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads of {os.cpu_count()} CPUs, d = {DIM}, "
          f"{'thread CPU time' if args.cpu_time else 'wall clock'}, malloc {args.malloc}, "
          f"load average {os.getloadavg()[0]:.2f}")
    verdicts = []
    warm_up(names, batch_sizes)
    bench_clean(names, batch_sizes, reps, verdicts)
    bench_mixed(names, batch_sizes, reps, verdicts)
    if args.profile:
        profile_all(names, batch_sizes[-1])
    print()
    for ok, line in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {line}")
    failed = sum(not ok for ok, _ in verdicts)
    print(f"\n{len(verdicts) - failed} PASS, {failed} FAIL (verdicts on the ratio of medians; "
          f"load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

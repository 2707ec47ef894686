"""Cost of the Metrix metrics, measured side by side with a bare faiss search.

    python benchmarks/bench_metrics.py [--reps 3] [--threads 2] [--quick]

Utilization of 60,000 references (512-d, float32) by 10,000 queries: ``pml_metrix.testers.utilization``
against a bare ``faiss.IndexFlatL2`` add + k=1 search on the same arrays; runs interleaved, median
per variant. Target: time <= 1.2x the bare search.

Peak memory of each: a fresh child process makes the data, resets the kernel's peak-RSS mark
(``5`` to /proc/self/clear_refs), runs once and reads ``VmHWM - VmRSS before``; everything
allocated on the way (torch, numpy, faiss's index copy and search buffers) counts. Reported as a
multiple of the embeddings' own bytes (queries + references). Target: < 2x.

Alignment and uniformity of 60,000 x 512 embeddings (1,000 classes; uniformity on its default
10,000-item draw), with the spread of uniformity over three draws. Target: both in < 10 s.
"""

import argparse
import statistics
import subprocess
import sys
import time

import faiss
import torch

from pml_metrix.testers import alignment, uniformity, utilization

TARGETS = {"time": 1.2, "memory": 2.0, "alignment + uniformity s": 10.0}  # time <=, the others <


def make_data(num_queries: int, num_references: int, dim: int):
    """Gaussian query and reference embeddings, float32, made without temporaries."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(num_queries, dim, generator=g), torch.randn(num_references, dim, generator=g)


def bare_faiss(query: torch.Tensor, reference: torch.Tensor) -> float:
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference.numpy())
    sq_distances, _ = index.search(query.numpy(), 1)
    return float(sq_distances.mean())


VARIANTS = {"bare faiss": bare_faiss, "utilization": utilization}


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_probe(variant: str, num_queries: int, num_references: int, dim: int) -> None:
    """Child process: print the peak RSS growth of one run, in bytes."""
    query, reference = make_data(num_queries, num_references, dim)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    before = proc_status_kib("VmRSS")
    VARIANTS[variant](query, reference)
    print((proc_status_kib("VmHWM") - before) * 1024)


def peak_growth(variant: str, args) -> int:
    command = [sys.executable, __file__, "--memory-probe", variant, "--threads", str(args.threads)]
    command += ["--queries", str(args.queries), "--references", str(args.references), "--dim", str(args.dim)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def seconds(fn, *inputs) -> float:
    start = time.perf_counter()
    fn(*inputs)
    return time.perf_counter() - start


def bench_utilization(args) -> dict:
    query, reference = make_data(args.queries, args.references, args.dim)
    assert abs(utilization(query, reference) - bare_faiss(query, reference)) < 1e-3  # same quantity
    times = {name: [] for name in VARIANTS}
    for _ in range(args.reps):
        for name, fn in VARIANTS.items():
            times[name].append(seconds(fn, query, reference))
    embedding_bytes = (query.numel() + reference.numel()) * 4
    print(f"\nutilization: {args.queries} queries x {args.references} references x {args.dim}-d, "
          f"{args.threads} threads, median of {args.reps}; embeddings {embedding_bytes / 2**20:.0f} MiB")
    medians = {name: statistics.median(t) for name, t in times.items()}
    growth = {name: peak_growth(name, args) for name in VARIANTS}
    for name in VARIANTS:
        print(f"  {name:<12} {medians[name]:7.2f} s   peak RSS growth {growth[name] / 2**20:6.0f} MiB "
              f"= {growth[name] / embedding_bytes:.2f}x the embeddings")
    return {"time": medians["utilization"] / medians["bare faiss"], "memory": growth["utilization"] / embedding_bytes}


def bench_alignment_uniformity(args) -> dict:
    _, embeddings = make_data(0, args.references, args.dim)
    labels = torch.randint(0, 1000, (args.references,), generator=torch.Generator().manual_seed(1))
    align_s = seconds(alignment, embeddings, labels)
    uniform_s = seconds(uniformity, embeddings)
    draws = [uniformity(embeddings, seed=seed) for seed in range(3)]
    print(f"\nalignment and uniformity: {args.references} x {args.dim}, {args.threads} threads")
    print(f"  alignment  {align_s:6.2f} s   (exact, {alignment(embeddings, labels):.4f})")
    print(f"  uniformity {uniform_s:6.2f} s   (10,000-item draw; seeds 0-2: {', '.join(f'{u:.5f}' for u in draws)})")
    return {"alignment + uniformity s": align_s + uniform_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--references", type=int, default=60_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="a tenth of the data, one repetition")
    parser.add_argument("--memory-probe", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.quick:
        args.queries, args.references, args.reps = args.queries // 10, args.references // 10, 1
    if args.memory_probe:
        memory_probe(args.memory_probe, args.queries, args.references, args.dim)
        return
    results = {**bench_utilization(args), **bench_alignment_uniformity(args)}
    print()
    for name, value in results.items():
        passed, bound = (value <= TARGETS[name], "<=") if name == "time" else (value < TARGETS[name], "<")
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {value:.3f} (target {bound} {TARGETS[name]})")


if __name__ == "__main__":
    main()

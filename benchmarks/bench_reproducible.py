"""What the reproducible mode costs in speed: the main job's training step and validation pass, pinned
against unpinned, measured side by side.

    python benchmarks/bench_reproducible.py [--reps 8] [--steps 5] [--variant metrix_feature]

The pinned settings act only when set before torch loads, so each mode runs in its own worker
process (this script started again with ``--worker``): the unpinned one at 2 threads (the main job's
machine: 2 cores), the pinned one after :func:`pml_metrix.app.reproducible.pin`. Each builds the
main job's run (``configs/main.yaml``, one of its variants, seed 0) and, on request, times a block of
``--steps`` training steps (PML's ``forward_and_backward``: batch, forward, miner, loss, backward,
optimizer step) or one evaluation of the validation fonts (embedding 3,038 glyphs, Recall@K, MAP@R,
utilization, alignment, uniformity). The parent alternates the workers block by block (in turn
first), so that load that comes and goes hits both alike, and reports medians and their ratio,
pinned / unpinned. A row is marked ``busy`` when its median is over 1.5x its minimum (other work
was running): rerun it on a quiet machine before reading its ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("unpinned", "pinned")


def worker(mode: str, variant: str, steps: int) -> None:
    """Build the main job's run in this process (pinned or not), then answer ``train``/``eval``
    requests on stdin with the seconds they took, one line each, until ``quit``."""
    sys.path.insert(0, str(ROOT))
    from pml_metrix.app import reproducible

    if mode == "pinned":
        reproducible.pin()  # before anything below loads torch
    import logging

    import torch

    from pml_metrix.app.build import build_trainer
    from pml_metrix.app.experiment import Run
    from pml_metrix.app.study import load_study

    if mode == "unpinned":
        torch.set_num_threads(2)
    logging.getLogger("PML").setLevel(logging.WARNING)
    study = load_study(str(ROOT / "configs/main.yaml"), reproducible=mode == "pinned")
    run = Run(study.config(variant, 0).replace(output=str(ROOT / "runs" / "bench_reproducible" / mode)))
    trainer = build_trainer(run.config, run.parts, run.device, 1, None, run.end_of_epoch)
    trainer.initialize_dataloader()
    trainer.set_to_train()
    print("ready", flush=True)
    for request in sys.stdin:
        start = time.perf_counter()
        if request.strip() == "train":
            for _ in range(steps):
                trainer.forward_and_backward()
        elif request.strip() == "eval":
            run.evaluate("val", 0)
            trainer.set_to_train()
        else:
            break
        print(time.perf_counter() - start, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=8, help="blocks of each kind per mode")
    parser.add_argument("--steps", type=int, default=5, help="training steps in a block")
    parser.add_argument("--variant", default="metrix_feature", help="the main job's variant (baseline, metrix_feature)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.variant, args.steps)
        return
    command = [sys.executable, __file__, "--steps", str(args.steps), "--variant", args.variant, "--worker"]
    env = {**os.environ, "TQDM_DISABLE": "1"}  # no progress bars from the testers' embedding passes
    workers = {mode: subprocess.Popen([*command, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      cwd=ROOT, env=env) for mode in MODES}
    for mode, process in workers.items():
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {mode} worker did not start")
    times = {(kind, mode): [] for kind in ("train", "eval") for mode in MODES}
    for rep in range(args.reps + 1):  # the first round warms up, not counted
        for kind in ("train", "eval"):
            for mode in (MODES if rep % 2 else MODES[::-1]):
                workers[mode].stdin.write(kind + "\n")
                workers[mode].stdin.flush()
                seconds = float(workers[mode].stdout.readline())
                if rep:
                    times[kind, mode].append(seconds / (args.steps if kind == "train" else 1))
    for process in workers.values():
        process.stdin.write("quit\n")
        process.stdin.close()
        process.wait()
    print(f"main job ({args.variant}, seed 0), medians of {args.reps}; pinned / unpinned")
    for kind, label in (("train", "training step"), ("eval", "validation pass")):
        medians = {mode: statistics.median(times[kind, mode]) for mode in MODES}
        busy = any(statistics.median(times[kind, m]) > 1.5 * min(times[kind, m]) for m in MODES)
        print(f"  {label:<16} unpinned {medians['unpinned'] * 1000:8.0f} ms   pinned {medians['pinned'] * 1000:8.0f} ms"
              f"   ratio {medians['pinned'] / medians['unpinned']:.3f}{'   busy' if busy else ''}")


if __name__ == "__main__":
    main()

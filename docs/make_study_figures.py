"""Draws the figures of docs/benchmarks.md's "When does Metrix help?" from the study's output folders.

    python docs/make_study_figures.py runs/studies

``runs/studies`` holds one folder per ``pml-metrix compare`` of the study (the commands are in
docs/benchmarks.md), each with its results.json and its runs' best.pth. Writes into docs/:

- study_val_recall.png: validation Recall@1 per epoch, mean over seeds, one panel per study;
- study_gain.png: the paired gain of Metrix in best validation Recall@1 against the training-set
  size (the main job's setting: contrastive, feature level, mix_weight 0.1) and against mix_weight
  (contrastive, feature level, a quarter of the fonts), one dot per seed;
- study_positivity.png: the share of mixes the mixed loss pulls towards their anchor against lam, on
  the trained models (seed 0, the epoch picked on val) of each loss, and for multi-similarity the
  mixes' median similarity to their anchor beside the threshold ``base + ln(lam / (1 - lam)) / (alpha + beta)``
  under which a mix is pulled (docs/metrics.md).

Prints every number it draws, and the mixed part's share of the gradient (analysis.gradient_share)
of the final rows' Metrix runs and of the runs of the positivity figure.
"""

import json
import math
import statistics
import sys
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pml_metrix import analysis
from pml_metrix.app.checkpoints import load_checkpoint, load_weights
from pml_metrix.app.positivity import trained_mixed_batch, trained_pair_positivity
from pml_metrix.app.config import RunConfig
from pml_metrix.app.experiment import Run

DOCS = Path(__file__).resolve().parent
PANELS = ("contrastive_quarter", "contrastive_variants_quarter", "final", "main_half", "main_full", "ms_quarter",
          "ms_paper_quarter", "pa_quarter")
SIZES = {  # share of the training fonts -> (study, variant): the main job's setting; final's val scores at a quarter
    0.25: ("final", "metrix_feature"),
    0.5: ("main_half", "metrix_feature"),
    1.0: ("main_full", "metrix_feature"),
}
WEIGHTS = {
    0.1: ("contrastive_variants_quarter", "weight_0.1"),
    0.2: ("contrastive_variants_quarter", "weight_0.2"),
    0.4: ("contrastive_quarter", "metrix_feature"),  # the same settings as contrastive_variants' weight_0.4
    1.0: ("contrastive_variants_quarter", "weight_1.0"),
}
POSITIVITY = {  # label -> (study, variant)
    "contrastive": ("contrastive_quarter", "metrix_feature"),
    "multi-similarity": ("ms_quarter", "metrix_feature"),
    "multi-similarity, attract": ("ms_quarter", "attract_feature"),
    "multi-similarity, attract, paper's settings": ("ms_paper_quarter", "attract_feature"),
    "proxy anchor": ("pa_quarter", "metrix_feature"),
}


def load(root: Path, study: str):
    path = root / study / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def best_val(run) -> float:
    return max(metrics["recall_at_1"] for metrics in run["history"])


def paired_gains(results, variant):
    """Per seed, best val Recall@1 of ``variant`` minus its baseline's (``paired_with``; the first
    variant in a results.json written before each variant had its own)."""
    baseline = results.get("paired_with", {}).get(variant, results["baseline"])
    base = {run["seed"]: best_val(run) for run in results["runs"][baseline]}
    return [best_val(run) - base[run["seed"]] for run in results["runs"][variant]]


def canvas(width, height):
    figure_canvas = FigureCanvasAgg(Figure(figsize=(width, height), layout="constrained"))
    return figure_canvas, figure_canvas.figure


def val_recall(root: Path) -> None:
    studies = [(name, results) for name in PANELS if (results := load(root, name))]
    rows = math.ceil(len(studies) / 4)
    figure_canvas, figure = canvas(4.2 * min(4, len(studies)), 3.4 * rows)
    for axes, (name, results) in zip(figure.subplots(rows, min(4, len(studies)), squeeze=False).flat, studies):
        for variant, runs in results["runs"].items():
            by_epoch = {}
            for run in runs:
                for metrics in run["history"]:
                    by_epoch.setdefault(metrics["epoch"], []).append(metrics["recall_at_1"])
            epochs = sorted(by_epoch)
            axes.plot(epochs, [statistics.fmean(by_epoch[e]) for e in epochs], marker=".", label=variant)
            print(f"{name} {variant}: best val R@1 per seed {[round(best_val(r), 4) for r in runs]}")
        axes.set(title=name, xlabel="epoch", ylabel="val Recall@1")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    figure_canvas.print_png(DOCS / "study_val_recall.png")


def gains(root: Path) -> None:
    figure_canvas, figure = canvas(9, 3.4)
    by_size, by_weight = figure.subplots(1, 2)
    for axes, points, name in ((by_size, SIZES, "training-set share"), (by_weight, WEIGHTS, "mix_weight")):
        means = {}
        for x, (study, variant) in points.items():
            if results := load(root, study):
                values = paired_gains(results, variant)
                axes.scatter([x] * len(values), values, color="C1", alpha=0.7)
                means[x] = statistics.fmean(values)
                print(f"gain at {name} {x} ({study}, {variant}): {[round(v, 4) for v in values]}")
        axes.plot(list(means), list(means.values()), color="C1")
        axes.axhline(0, color="grey", lw=0.8)
    by_size.set(xlabel="share of the training fonts", ylabel="gain in best val Recall@1",
                title="contrastive, feature level, mix_weight 0.1")
    by_weight.set(xscale="log", xlabel="mix_weight", title="contrastive, feature level, a quarter of the fonts")
    figure_canvas.print_png(DOCS / "study_gain.png")


def trained_run(root: Path, study: str, variant: str, seed: int = 0) -> Run:
    folder = root / study / variant / f"seed{seed}"
    config = RunConfig(**json.loads((folder / "results.json").read_text())["config"])
    run = Run(config.replace(output=str(folder / "positivity")))
    load_weights(run.parts.models, load_checkpoint(folder / ("best.pth" if (folder / "best.pth").is_file() else "checkpoint.pth")))
    return run


def positivity(root: Path) -> None:
    figure_canvas, figure = canvas(9, 3.6)
    shares_axes, similarity_axes = figure.subplots(1, 2)
    shares = {}
    for label, (study, variant) in POSITIVITY.items():
        if not (root / study / variant / "seed0" / "results.json").is_file():
            continue
        run = trained_run(root, study, variant)
        pairs = trained_pair_positivity(run)
        shares[label] = analysis.positive_share_by_lam(pairs)
        print(f"positivity, {label}: {[round(v, 3) for v in shares[label].share.tolist()]}")
        if label.startswith("multi-similarity") and "attract" not in label:
            loss = run.parts.loss
            edges = torch.linspace(0, 1, 11, dtype=torch.float64)
            centres = ((edges[:-1] + edges[1:]) / 2).tolist()
            bins = torch.bucketize(pairs.lam.double(), edges[1:-1], right=True)
            medians = [pairs.distance[bins == b].median().item() if (bins == b).any() else math.nan for b in range(10)]
            line = similarity_axes.plot(centres, medians, marker="o", label=f"{label}: median s(a, v)")[0]
            threshold = [loss.base + math.log(c / (1 - c)) / (loss.alpha + loss.beta) for c in centres]
            similarity_axes.plot(centres, threshold, ls="--", color=line.get_color(), label=f"{label}: threshold")
            print(f"similarity vs threshold, {label}: {[round(m, 3) for m in medians]} vs {[round(t, 3) for t in threshold]}")
    for label, share in shares.items():
        edges = share.edges
        shares_axes.plot(((edges[:-1] + edges[1:]) / 2).tolist(), share.share.tolist(), marker="o", label=label)
    shares_axes.set(xlabel="λ", ylabel="share of mixes pulled in", ylim=(-0.03, 1.03), title="positivity, trained models")
    similarity_axes.set(xlabel="λ", ylabel="similarity to the anchor", title="multi-similarity: why it falls")
    for axes in (shares_axes, similarity_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    figure_canvas.print_png(DOCS / "study_positivity.png")


def gradient_shares(root: Path) -> None:
    """Prints, for each run of the final rows and of the positivity figure, how much of a step the
    mixed part drives on a batch of its training fonts (analysis.gradient_share over all its weights)."""
    runs = [(f"final, seed {seed}", "final", "metrix_feature", seed) for seed in range(5)]
    runs += [(label, study, variant, 0) for label, (study, variant) in POSITIVITY.items()]
    for label, study, variant, seed in runs:
        if not (root / study / variant / f"seed{seed}" / "results.json").is_file():
            continue
        run = trained_run(root, study, variant, seed)
        embeddings, labels, mixed_batch = trained_mixed_batch(run)
        parameters = [p for model in run.parts.models.values() for p in model.parameters()]
        share = analysis.gradient_share(run.parts.loss, embeddings, labels, mixed_batch, parameters)
        print(f"gradient, {label}: mixed share {share.mixed_share:.3f}, cos(clean, mixed) {share.cosine:.3f}, "
              f"mix_weight {run.config.mix_weight}")


def main(root: str) -> None:
    root = Path(root)
    val_recall(root)
    gains(root)
    positivity(root)
    gradient_shares(root)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/studies")

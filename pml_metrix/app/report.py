"""The comparison report: a Markdown file with tables and PNG plots, in the output folder."""

import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Union

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..analysis import PositiveShare
from .compare import Comparison
from .stats import mean_std
from .files import write_text

MIN_SEEDS_FOR_STATISTICS = 3


def plot_positive_share(shares: Mapping[str, PositiveShare], path: Union[str, os.PathLike]) -> Path:
    """Plot the share of positives against lam, one line per entry (bin centres; empty bins are gaps).

    Args:
        shares: curve label -> :class:`~pml_metrix.analysis.PositiveShare`, e.g. one per loss or per epoch.
        path: where to write the PNG; must end in ``.png``.

    Returns the path written. Draws on an Agg canvas, leaving pyplot's backend alone.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    if not isinstance(shares, Mapping) or not shares:
        raise ValueError("shares must be a non-empty mapping of curve label -> PositiveShare")
    for name, share in shares.items():
        if not isinstance(share, PositiveShare):
            raise ValueError(f"shares[{name!r}] must be a PositiveShare, got {type(share).__name__}")
    canvas = FigureCanvasAgg(Figure(figsize=(5, 3.5), layout="constrained"))
    axes = canvas.figure.add_subplot()
    for name, share in shares.items():
        edges = share.edges.detach().cpu()
        centres = (edges[:-1] + edges[1:]) / 2
        axes.plot(centres.numpy(), share.share.detach().cpu().numpy(), marker="o", label=str(name))
    axes.set(xlim=(0, 1), ylim=(-0.03, 1.03), xlabel="λ", ylabel="share of positives")
    axes.set_title("Positivity of mixed embeddings")
    axes.grid(alpha=0.3)
    axes.legend()
    canvas.print_png(path)
    return path


def plot_per_epoch(comparison: Comparison, metric: str, path: Path) -> Path:
    """Mean over seeds of ``metric`` on the selection split after each evaluated epoch, one line per
    variant, a band of one std where several seeds have the epoch (runs stopped by patience end early)."""
    canvas = FigureCanvasAgg(Figure(figsize=(5.5, 3.5), layout="constrained"))
    axes = canvas.figure.add_subplot()
    for name, results in comparison.runs.items():
        by_epoch: Dict[int, List[float]] = {}
        for result in results:
            for metrics in result.history:
                by_epoch.setdefault(int(metrics["epoch"]), []).append(metrics[metric])
        epochs = sorted(by_epoch)
        stats = [mean_std(by_epoch[e]) for e in epochs]
        axes.plot(epochs, [m for m, _ in stats], marker="o", label=name)
        spread = [(e, m, s) for e, (m, s) in zip(epochs, stats) if s == s]  # NaN std: one seed
        if spread:
            axes.fill_between([e for e, _, _ in spread], [m - s for _, m, s in spread], [m + s for _, m, s in spread], alpha=0.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} on the {comparison.study.base.select_split} split")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    canvas.print_png(path)
    return path


def results_table(comparison: Comparison) -> List[str]:
    """Test scores per variant, mean ± std over seeds (the mean alone below 3 seeds)."""
    metrics = comparison.metrics()
    with_std = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS

    def cell(values):
        mean, std = mean_std(values)
        if math.isnan(mean):
            return "nan"
        return f"{mean:.4f}" if math.isnan(std) or not with_std else f"{mean:.4f} ± {std:.4f}"

    rows = ["| | epoch picked | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for label, scores in (("raw pixels", comparison.raw_pixels), ("untrained network", comparison.untrained)):
        rows.append(f"| {label} | | " + " | ".join(cell([s[m] for s in scores]) for m in metrics) + " |")
    for name, results in comparison.runs.items():
        epochs = ", ".join(str(r.best_epoch) for r in results)
        rows.append(f"| **{name}** | {epochs} | " + " | ".join(cell([r.final[m] for r in results]) for m in metrics) + " |")
    return rows


def paired_table(comparison: Comparison) -> List[str]:
    metrics = comparison.metrics()
    with_p = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS
    rows = [f"| vs {comparison.study.baseline} | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, paired in comparison.paired().items():
        cells = [f"{d:+.4f}" + (f" (p={p:.3g})" if with_p else "") for d, p in (paired[m] for m in metrics)]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def write_report(comparison: Comparison, command: str) -> Path:
    """Write ``report.md`` and its plots into the comparison's output folder; returns the report."""
    base, seeds = comparison.study.base, comparison.study.seeds
    output = Path(base.output)
    output.mkdir(parents=True, exist_ok=True)
    plots = {metric: plot_per_epoch(comparison, metric, output / f"{metric}.png")
             for metric in ("recall_at_1", "utilization")}
    if comparison.positivity:
        plots["positivity"] = plot_positive_share(comparison.positivity, output / "positivity.png")
    n = len(seeds)
    if n >= MIN_SEEDS_FOR_STATISTICS:
        statistics_note = f"With {n} seeds the smallest attainable p-value is {2 / 2 ** n:.3g}."
    else:
        statistics_note = (
            f"With {n} seed(s) no spread or p-value can be read: the differences below are single "
            f"observations; run at least {MIN_SEEDS_FOR_STATISTICS} seeds (5 for p = 0.0625)."
        )
    selection = (
        f"each variant's epoch picked by Recall@1 on the `{base.select_split}` split (evaluated every "
        f"{base.test_interval} epoch(s) and after the last), its model then evaluated once on `{base.eval_split}`"
        if base.select_split != "none" else f"the last epoch's model evaluated on `{base.eval_split}`"
    )
    lines = [
        f"# Metrix comparison on `{base.dataset}`",
        "",
        f"Command: `{command}`",
        "",
        *([base.description.strip(), ""] if base.description.strip() else []),
        f"Model `{base.model}` ({base.embedding_size}-d), loss `{base.loss}`, up to {base.epochs} epochs"
        + (f" (patience {base.patience})" if base.patience is not None else "")
        + f", batch {base.batch_size}, seeds {seeds}; {selection}"
        + (f" against `{base.eval_reference}`" if base.eval_reference else "")
        + ". Each seed gives every variant the same initialisation and the same batches. Variants: "
        + "; ".join(f"`{name}` {overrides}" for name, overrides in comparison.study.variants.items())
        + ". Per-run configs, results.json, logs, tensorboard files and checkpoints are in the sub-folders; "
        "every number here is in results.json.",
        "",
        f"## Scores on `{base.eval_split}` at each variant's picked epoch (mean ± std over seeds)",
        "",
        "Raw pixels: cosine retrieval on the flattened images. Untrained network: the same model before "
        "any training. If training does not beat both, it learned nothing useful for unseen classes. "
        "Utilization, alignment: lower is better; uniformity: lower is more uniform.",
        "",
        *results_table(comparison),
        "",
        "## Paired difference to the baseline (mean over seeds, exact two-sided sign-flip p-value)",
        "",
        statistics_note,
        "",
        *paired_table(comparison),
        "",
        "## Plots",
        "",
        f"Per epoch on the `{base.select_split}` split (the selection split), mean over seeds.",
        "",
        *[f"![{name}]({path.name})" for name, path in plots.items()],
        "",
    ]
    report = output / "report.md"
    write_text(report, "\n".join(lines))
    return report

"""The comparison report: a Markdown file with tables and PNG plots, in the output folder."""

from pathlib import Path
from typing import Dict, List

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import analysis
from .compare import Comparison, format_cell, mean_std

LOWER_IS_BETTER = {"utilization", "alignment", "uniformity"}


def plot_per_epoch(comparison: Comparison, metric: str, path: Path) -> Path:
    """Mean over seeds of ``metric`` after each epoch, one line per variant, a band of one std."""
    canvas = FigureCanvasAgg(Figure(figsize=(5, 3.5), layout="constrained"))
    axes = canvas.figure.add_subplot()
    for name, results in comparison.runs.items():
        epochs = [h["epoch"] for h in results[0].history]
        stats = [mean_std([r.history[i][metric] for r in results]) for i in range(len(epochs))]
        means = [m for m, _ in stats]
        axes.plot(epochs, means, marker="o", label=name)
        axes.fill_between(epochs, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.2)
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} on the {comparison.base.eval_split} split")
    axes.grid(alpha=0.3)
    axes.legend()
    canvas.print_png(path)
    return path


def results_table(comparison: Comparison) -> List[str]:
    metrics = comparison.metrics()
    rows = ["| | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label, scores in (("raw pixels", comparison.raw_pixels), ("untrained network", comparison.untrained)):
        rows.append(f"| {label} | " + " | ".join(format_cell(*mean_std([s[m] for s in scores])) for m in metrics) + " |")
    for name, summary in comparison.summary().items():
        rows.append(f"| **{name}** | " + " | ".join(format_cell(*summary[m]) for m in metrics) + " |")
    return rows


def paired_table(comparison: Comparison) -> List[str]:
    metrics = comparison.metrics()
    rows = ["| vs " + comparison.baseline + " | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, paired in comparison.paired().items():
        rows.append(f"| {name} | " + " | ".join(f"{d:+.4f} (p={p:.2f})" for d, p in (paired[m] for m in metrics)) + " |")
    return rows


def write_report(comparison: Comparison, command: str) -> Path:
    """Write ``report.md`` and its plots into the comparison's output folder; returns the report."""
    output = Path(comparison.base.output)
    output.mkdir(parents=True, exist_ok=True)
    base = comparison.base
    plots: Dict[str, Path] = {
        "recall_at_1": plot_per_epoch(comparison, "recall_at_1", output / "recall_at_1.png"),
        "utilization": plot_per_epoch(comparison, "utilization", output / "utilization.png"),
    }
    if comparison.positivity:
        plots["positivity"] = analysis.plot_positive_share(comparison.positivity, output / "positivity.png")
    n = len(comparison.seeds)
    lines = [
        f"# Metrix comparison on `{base.dataset}`",
        "",
        f"Command: `{command}`",
        "",
        *([base.description.strip(), ""] if base.description.strip() else []),
        f"Model `{base.model}` ({base.embedding_size}-d), loss `{base.loss}`, {base.epochs} epochs, batch "
        f"{base.batch_size}, seeds {comparison.seeds}; evaluated on the `{base.eval_split}` split"
        + (f" against `{base.eval_reference}`" if base.eval_reference else "")
        + ". Each seed gives every variant the same initialisation and the same batches. Per-run configs, "
        "logs, tensorboard files and checkpoints are in the sub-folders.",
        "",
        "## Scores after the last epoch (mean ± std over seeds)",
        "",
        "Raw pixels: cosine retrieval on the flattened images. Untrained network: the same model before "
        "any training. If training does not beat both, it learned nothing useful for unseen classes.",
        "Utilization, alignment: lower is better; uniformity: lower is more uniform.",
        "",
        *results_table(comparison),
        "",
        "## Paired difference to the baseline (mean over seeds, exact two-sided sign-flip p-value)",
        "",
        f"With {n} seed(s) the smallest attainable p-value is {2 / 2 ** n:.3g}.",
        "",
        *paired_table(comparison),
        "",
        "## Plots",
        "",
        *[f"![{name}]({path.name})" for name, path in plots.items()],
        "",
    ]
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report

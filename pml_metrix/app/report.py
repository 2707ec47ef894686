"""The comparison report: a Markdown file with tables and PNG plots, in the output folder."""

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..analysis import PositiveShare
from .comparison import Comparison
from .evaluation import collapsed
from .stats import mean_std
from .study import Study, run_options
from .files import write_atomically, write_text
from .reference import reference_rows
from .reproducible import DETAILS, arithmetic_summary

MIN_SEEDS_FOR_STATISTICS = 3
CONCENTRATED_UNIFORMITY = -0.1  # above: the embeddings lie close together (mean exp(-2 d^2) above 0.9)
TRIVIALLY_LOW = ("utilization", "alignment")  # what concentrated embeddings make small
PER_EPOCH_METRICS = ("recall_at_1", "utilization")
# every file write_report may write: a study that runs again removes them first (remove_report)
REPORT = "report.md"
REPORT_FILES = (REPORT, *(f"{metric}.png" for metric in PER_EPOCH_METRICS), "positivity.png", "gain_against_gap.png")


def remove_report(output: Path) -> None:
    """Remove the report and plots in ``output``: from now on they would describe runs that may change."""
    for name in REPORT_FILES:
        (output / name).unlink(missing_ok=True)


def plot_positive_share(shares: Mapping[str, PositiveShare], path: Union[str, os.PathLike],
                        references: Optional[Mapping[str, PositiveShare]] = None) -> Path:
    """Plot the share of positives against lam, one line per entry (bin centres; empty bins are gaps).

    Args:
        shares: curve label -> :class:`~pml_metrix.analysis.PositiveShare`, e.g. one per loss or per epoch.
        path: where to write the PNG; must end in ``.png``.
        references: curve label -> the share the curve is read against (the report's: the share of
            pairs whose soft label is above 0.5), drawn dashed in the curve's colour.

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
    references = references or {}
    for name, share in shares.items():
        edges = share.edges.detach().cpu()
        centres = (edges[:-1] + edges[1:]) / 2
        (line,) = axes.plot(centres.numpy(), share.share.detach().cpu().numpy(), marker="o", label=str(name))
        if name in references:
            axes.plot(centres.numpy(), references[name].share.detach().cpu().numpy(), linestyle="--",
                      color=line.get_color(), label=f"{name}: soft label > 0.5")
    axes.set(xlim=(0, 1), ylim=(-0.03, 1.03), xlabel="λ", ylabel="share of positives")
    axes.set_title("Positivity of mixed embeddings")
    axes.grid(alpha=0.3)
    axes.legend()
    write_atomically(Path(path), canvas.print_png)
    return path


def per_epoch(comparison: Comparison, metric: str) -> Dict[str, List[Tuple[int, float, float]]]:
    """variant -> (epoch, mean, std) over seeds of ``metric`` on the selection split after each
    evaluated epoch (runs stopped by patience end early: later epochs hold fewer seeds)."""
    lines = {}
    for name, results in comparison.runs.items():
        by_epoch: Dict[int, List[float]] = {}
        for result in results:
            for metrics in result.history:
                by_epoch.setdefault(int(metrics["epoch"]), []).append(metrics.get(metric, math.nan))
        lines[name] = [(epoch, *mean_std(by_epoch[epoch])) for epoch in sorted(by_epoch)]
    return lines


def plot_per_epoch(comparison: Comparison, metric: str, path: Path) -> Optional[Path]:
    """:func:`per_epoch` drawn, one line per variant, a band of one std where several seeds have the
    epoch; ``None`` (nothing drawn) when no line has two points: a plot of single points zooms its
    axis onto their differences, however small (:func:`per_epoch_table` shows them instead)."""
    lines = per_epoch(comparison, metric)
    if max(len(points) for points in lines.values()) < 2:
        return None
    canvas = FigureCanvasAgg(Figure(figsize=(5.5, 3.5), layout="constrained"))
    axes = canvas.figure.add_subplot()
    for name, points in lines.items():
        epochs = [e for e, _, _ in points]
        axes.plot(epochs, [m for _, m, _ in points], marker="o", label=name)
        spread = [(e, m, s) for e, m, s in points if s == s]  # NaN std: one seed
        if spread:
            axes.fill_between([e for e, _, _ in spread], [m - s for _, m, s in spread], [m + s for _, m, s in spread], alpha=0.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} on the {comparison.study.base.select_split} split")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    write_atomically(Path(path), canvas.print_png)
    return path


def per_epoch_table(comparison: Comparison, metric: str) -> List[str]:
    """:func:`per_epoch` as a Markdown table: one row per evaluated epoch, one column per variant
    (the mean alone below 3 seeds, as in :func:`results_table`)."""
    lines = per_epoch(comparison, metric)
    with_std = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS
    epochs = sorted({epoch for points in lines.values() for epoch, _, _ in points})
    rows = ["| epoch | " + " | ".join(lines) + " |", "|---" * (len(lines) + 1) + "|"]
    for epoch in epochs:
        cells = [next((number(m, s if with_std else math.nan) for e, m, s in points if e == epoch), "")
                 for points in lines.values()]
        rows.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return rows


def number(mean: float, std: float = math.nan) -> str:
    """``mean`` (± ``std`` where there is one) to 4 decimals; ``nan`` where there is no value."""
    if math.isnan(mean):
        return "nan"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def results_table(comparison: Comparison) -> List[str]:
    """Test scores per variant, mean ± std over seeds (the mean alone below 3 seeds). The untrained
    network's alignment and utilization, and those of a row whose embeddings are concentrated
    (uniformity above ``CONCENTRATED_UNIFORMITY``), are marked †: low trivially, not good."""
    metrics = comparison.metrics()
    with_std = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS

    def row(label: str, epochs: str, scores: List[Dict[str, float]]) -> str:
        concentrated = label.startswith("untrained") or mean_std([s.get("uniformity", math.nan) for s in scores])[0] > CONCENTRATED_UNIFORMITY
        cells = []
        for m in metrics:  # a metric that some runs do not measure (label sets beside classes): nan there
            mean, std = mean_std([s.get(m, math.nan) for s in scores])
            mark = " †" if concentrated and m in TRIVIALLY_LOW else ""
            cells.append(number(mean, std if with_std else math.nan) + mark)
        return f"| {label} | {epochs} | " + " | ".join(cells) + " |"

    rows = ["| | epoch picked | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    rows += [row(label, "", scores) for label, scores in comparison.references().items()]
    for name, results in comparison.runs.items():
        rows.append(row(f"**{name}**", ", ".join(str(r.best_epoch) for r in results), [r.final for r in results]))
    return rows


def overfitting(comparison: Comparison) -> Dict[str, Tuple[float, float]]:
    """variant -> (train, selected): the selection metric on the training split and on the selection
    split at the picked epoch, mean over seeds; their difference is how much the model overfits its
    training classes. Empty when the runs recorded no training-split scores (results written before
    they were) or picked no epoch on a split."""
    base = comparison.study.base
    metric = base.select_metric
    if base.select_split == "none" or not all(r.train_metrics for results in comparison.runs.values() for r in results):
        return {}
    return {name: (mean_std([r.train_metrics[metric] for r in results])[0],
                   mean_std([next(m[metric] for m in r.history if m["epoch"] == r.best_epoch) for r in results])[0])
            for name, results in comparison.runs.items()}


def overfitting_table(comparison: Comparison) -> List[str]:
    """:func:`overfitting` as a Markdown table, with each variant's gap (train - selection split)."""
    scores = overfitting(comparison)
    if not scores:
        return []
    metric, split = comparison.study.base.select_metric, comparison.study.base.select_split
    rows = [f"| | {metric} on train | {metric} on {split} | gap (train - {split}) |", "|---|---|---|---|"]
    rows += [f"| **{name}** | {train:.4f} | {selected:.4f} | {train - selected:+.4f} |" for name, (train, selected) in scores.items()]
    return rows


def gains_against_gaps(comparison: Comparison) -> Dict[str, Dict[str, Any]]:
    """Metrix variant -> its own baseline (:meth:`Study.own_baseline
    <pml_metrix.app.study.Study.own_baseline>`: its run without mixing), the baseline's gap
    (:func:`overfitting`), the variant's own gap, and its paired gain on the evaluation split's
    ``select_metric`` (mean difference, the std of the per-seed differences, the sign-flip p):
    whether Metrix gains more where its baseline overfits more. A Metrix variant without its own
    baseline in the study is left out; empty without :func:`overfitting` scores."""
    scores, metric = overfitting(comparison), comparison.study.base.select_metric
    if not scores:
        return {}
    gains, paired = {}, comparison.paired()
    for name in list(comparison.runs)[1:]:
        base = comparison.study.own_baseline(name)
        if base is None:
            continue
        differences = [r.final.get(metric, math.nan) - b.final.get(metric, math.nan)
                       for r, b in zip(comparison.runs[name], comparison.runs[base])]
        gain, p = paired[name][metric]
        gains[name] = {"baseline": base, "baseline_gap": scores[base][0] - scores[base][1],
                       "gap": scores[name][0] - scores[name][1], "gain": gain, "gain_std": mean_std(differences)[1],
                       "p_value": p}
    return gains


def gains_table(comparison: Comparison, gains: Dict[str, Dict[str, Any]]) -> List[str]:
    """The comparison's :func:`gains_against_gaps` (``gains``) as a Markdown table."""
    base = comparison.study.base
    metric, split = base.select_metric, base.select_split
    rows = [f"| Metrix variant | its baseline | baseline's gap (train - {split}) | its own gap | gain on "
            f"{base.eval_split} ({metric}) |", "|---|---|---|---|---|"]
    with_p = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS
    rows += [f"| {name} | {g['baseline']} | {g['baseline_gap']:+.4f} | {g['gap']:+.4f} | {g['gain']:+.4f}"
             + (f" (p={g['p_value']:.3g})" if with_p else "") + " |" for name, g in gains.items()]
    return rows


def plot_gains_against_gaps(comparison: Comparison, gains: Dict[str, Dict[str, Any]], path: Path) -> Path:
    """The comparison's :func:`gains_against_gaps` (``gains``) drawn: one point per Metrix variant at
    its baseline's gap and its mean gain, a bar of one std of the per-seed gains where there are several seeds."""
    base = comparison.study.base
    canvas = FigureCanvasAgg(Figure(figsize=(5.5, 3.5), layout="constrained"))
    axes = canvas.figure.add_subplot()
    axes.axhline(0, color="grey", linewidth=0.8)
    for name, g in gains.items():
        std = 0.0 if math.isnan(g["gain_std"]) else g["gain_std"]
        axes.errorbar([g["baseline_gap"]], [g["gain"]], yerr=[std], fmt="o", capsize=3, label=name)
    axes.set(xlabel=f"baseline's gap in {base.select_metric} (train - {base.select_split})",
             ylabel=f"gain in {base.select_metric} on {base.eval_split}", title="Metrix's gain against its baseline's overfitting")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    write_atomically(Path(path), canvas.print_png)
    return path


def paired_table(comparison: Comparison) -> List[str]:
    metrics = comparison.metrics()
    with_p = len(comparison.study.seeds) >= MIN_SEEDS_FOR_STATISTICS
    rows = ["| variant | against | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    paired_with = comparison.paired_with()
    for name, paired in comparison.paired().items():
        cells = [f"{d:+.4f}" + (f" (p={p:.3g})" if with_p else "") for d, p in (paired[m] for m in metrics)]
        rows.append(f"| {name} | {paired_with[name]} | " + " | ".join(cells) + " |")
    return rows


def verdict_lines(comparison: Comparison) -> List[str]:
    """Each variant's verdict against its baseline (:meth:`Comparison.verdicts`), in words."""
    lines, study = [], comparison.study
    for name, v in comparison.verdicts().items():
        seeds = f"{v['seeds']} seed" + ("s" if v["seeds"] != 1 else "")
        differing = other_options(study, name, v["baseline"])
        mixed = study.config(name, study.seeds[0]).mix_level != "none"
        caveat = ((" (paired by seed, but they differ in more than Metrix: " if mixed else " (differing from it in: ")
                  + ", ".join(differing) + ")") if differing else ""
        missing = sorted({r.config.seed for variant in (name, v["baseline"]) for r in comparison.runs[variant]
                          if math.isnan(r.final.get(v["metric"], math.nan))})
        differ = v["seeds"] - v["seeds_level"] - len(missing)  # the seeds whose flip moves the mean
        facts = (f"{v['metric']} {v['mean_difference']:+.4f} on average over `{v['baseline']}`{caveat}"
                 + f", ahead on {v['seeds_ahead']}, behind on {v['seeds_behind']}"
                 + (f", level on {v['seeds_level']}" if v["seeds_level"] else "")
                 + (f", without a score on {len(missing)}" if missing else "") + f" of {seeds}, p = {v['p_value']:.3g}")
        floor = (f"the smallest p its {differ} seed(s) whose scores differ can give is {v['smallest_attainable_p']:.3g}"
                 if differ else "no seed's scores differ, so p is 1")
        if missing:
            lines.append(f"- **`{name}`: no verdict**: {facts}; a run has no {v['metric']} (seed(s) "
                         f"{', '.join(map(str, missing))}), so no p-value can be computed.")
        elif v["verdict"] != "inconclusive":
            lines.append(f"- **`{name}` is {v['verdict']} of `{v['baseline']}`**: {facts} (at most {v['significance']}; "
                         f"{floor}).")
        elif v["smallest_attainable_p"] > v["significance"]:
            lines.append(f"- **`{name}`: inconclusive at {seeds}**: {facts}; {floor}, and a verdict needs p at most "
                         f"{v['significance']}: scores that differ on 6 seeds at least.")
        else:
            lines.append(f"- **`{name}`: inconclusive**: {facts}, above {v['significance']} ({floor}).")
    return lines


def other_options(study: Study, name: str, baseline: str) -> List[str]:
    """The options (other than where files are and those that act only under Metrix) in which variant
    ``name`` differs from the ``baseline`` it is paired with: none for a Metrix variant and its run
    without mixing; a different network, data or loss otherwise (the same seed then gives them other
    initial weights or batches)."""
    config, other = (run_options(study.config(variant, study.seeds[0])) for variant in (name, baseline))
    return sorted(key for key in config if config[key] != other.get(key))


def warning_lines(comparison: Comparison) -> List[str]:
    """What the reader must know before the scores: variants that do not beat raw pixels or their
    network untrained, on their data (:meth:`Comparison.references_of`), on the selection metric (mean
    over seeds), runs whose embeddings collapsed, drew no mixes or count them at some seeds only, and
    runs trained or evaluated under different arithmetic."""
    lines, metric = [], comparison.study.base.select_metric
    for name, results in comparison.runs.items():
        references = {label if label.startswith("raw") else f"the {label}": scores
                      for label, scores in comparison.references_of(name).items()}
        recall = mean_std([r.final.get(metric, math.nan) for r in results])[0]
        reference_recall = {label: mean_std([s.get(metric, math.nan) for s in scores])[0] for label, scores in references.items()}
        beaten = [f"{label} ({reference_recall[label]:.4f})" for label in references if not recall > reference_recall[label]]
        if beaten:
            lines.append(f"- **`{name}` does not beat {' nor '.join(beaten)}** on {metric} ({recall:.4f}): its training "
                         "learned nothing useful for unseen classes that these do not already give.")
        fallen = [str(r.config.seed) for r in results if collapsed(r.final)]
        if fallen:
            lines.append(f"- **`{name}` collapsed** at seed(s) {', '.join(fallen)}: its embeddings lie at nearly one point "
                         "and retrieve at chance (docs/metrics.md, collapse); its scores measure nothing.")
        frozen = [str(r.config.seed) for r in results if r.config.warmup_epochs >= r.best_epoch]
        if frozen:
            lines.append(f"- **`{name}`'s trunk never trained** at seed(s) {', '.join(frozen)}: the picked epoch is within "
                         f"its warm-up (warmup_epochs {results[0].config.warmup_epochs}), so only the embedder trained.")
        seeds_without_mixes = [str(r.config.seed) for r in results if r.mixes_drawn == 0]
        if seeds_without_mixes:
            lines.append(f"- **`{name}` drew no mixes** at seed(s) {', '.join(seeds_without_mixes)}: no anchor had the "
                         "pairs its strategies draw, so it trained as its baseline (label sets: raise "
                         "negative_threshold, docs/multilabel.md).")
        seeds_utilization_without_mixes = [str(r.config.seed) for r in results
                                           if r.config.mix_level != "none" and not r.final_with_mixes]
        if seeds_utilization_without_mixes and len(seeds_utilization_without_mixes) < len(results):
            lines.append(f"- `{name}`'s utilization counts no mixed embeddings at seed(s) "
                         f"{', '.join(seeds_utilization_without_mixes)} and counts them at the others (a run evaluated "
                         "again after it ended, or resumed after its best epoch, no longer holds that epoch's mixes): "
                         "its mean utilization mixes the two.")
    by_arithmetic = runs_by_arithmetic(comparison)
    if len(by_arithmetic) > 1:
        lines.append("- **The runs were trained or evaluated under different arithmetic** (other processes, machines or "
                     "versions), so "
                     "two runs can differ by more than their seed: " + "; ".join(
                         f"{summary}: {', '.join(runs)}" for summary, runs in by_arithmetic.items()) + ".")
    return lines


def positivity_table(comparison: Comparison) -> List[str]:
    """Per Metrix variant and lam bin: pairs, the share pulled, the share with soft label above 0.5."""
    rows = []
    for name, share in comparison.positivity.items():
        edges = share.edges.tolist()
        by_label = comparison.positivity_by_label[name]
        rows += [f"| `{name}`, λ in | " + " | ".join(f"[{a:.1f}, {b:.1f})" for a, b in zip(edges, edges[1:])) + " |",
                 "|---" * (len(edges)) + "|",
                 "| pairs | " + " | ".join(str(int(c)) for c in share.count) + " |",
                 "| share pulled | " + " | ".join(number(float(v)) for v in share.share) + " |",
                 "| soft label > 0.5 | " + " | ".join(number(float(v)) for v in by_label.share) + " |", ""]
    return rows


def reference_lines(comparison: Comparison) -> List[str]:
    """The committed final rows beside the live ones, when the study has the main job's settings
    (:func:`~pml_metrix.app.reference.reference_rows`): each live seed's test Recall@1 beside the
    same seed's committed one, the committed means and paired difference, their verdict and where
    they came from."""
    reference = reference_rows(comparison.study)
    if reference is None:
        return []
    provenance, seeds = reference["provenance"], reference["seeds"]
    lines = [
        f"## The committed final rows ({len(seeds)} seeds), beside this run",
        "",
        "This run's seeds are draws from the spread the committed rows measure: read its verdict from "
        f"them. **{reference['verdict'].strip()}**",
        "",
        "| variant | seed | this run's test Recall@1 | committed test Recall@1 |",
        "|---|---|---|---|",
    ]
    for name, results in comparison.runs.items():
        committed = reference["per_seed"].get(name)
        for result in results:
            seed = result.config.seed
            row = f"{committed['recall_at_1'][seeds.index(seed)]:.3f}" if committed and seed in seeds else "(no such row)"
            lines.append(f"| {name} | {seed} | {result.final['recall_at_1']:.4f} | {row} |")
    decimals = provenance["decimals"]  # the committed values as committed, not padded to look exact
    lines += ["", "| committed, over seeds | test Recall@1 (mean ± std) | paired difference (p) |", "|---|---|---|"]
    for name, metrics in reference["summary"].items():
        mean, std = metrics["recall_at_1"]
        shown = f"{mean:.{decimals}f}" + ("" if std is None else f" ± {std:.{decimals}f}")
        paired = reference["paired"].get(name, {}).get("recall_at_1")
        lines.append(f"| {name} | {shown} | " + (f"{paired[0]:+.{decimals}f} (p = {paired[1]:.3g})" if paired else "") + " |")
    pinned = "pinned (reproducible mode)" if provenance["reproducible"] else "unpinned: another trajectory, not the same digits as a pinned run"
    note = f" {provenance['note'].strip()}" if provenance.get("note") else ""
    lines += [
        "",
        f"Committed by `{provenance['command']}` at commit {provenance['commit']}, {pinned}, "
        f"{decimals} decimals ({provenance['machine']}).{note}",
        "",
    ]
    return lines


def arithmetic_line(comparison: Comparison) -> str:
    """What decided the arithmetic of this comparison's process (:func:`~pml_metrix.app.reproducible.arithmetic_record`);
    each run's own is in its results.json, and :func:`warning_lines` says where they differ."""
    if not comparison.arithmetic:
        return "Arithmetic: not recorded."
    return f"Arithmetic of this comparison's process: {arithmetic_summary(comparison.arithmetic)}."


def runs_by_arithmetic(comparison: Comparison) -> Dict[str, List[str]]:
    """The arithmetic a run was trained and then evaluated under (the
    :func:`~pml_metrix.app.reproducible.arithmetic_summary` of each process that trained it, then of the
    one that finished it, each change once, joined by "then") -> the runs (``variant seed N``) that have
    it; runs written before it was recorded are left out. Details that some records lack (written by
    an older pml_metrix) are left out of all."""
    records = {name: [[rec for rec in (*r.trained_under, r.arithmetic) if rec] for r in results]
               for name, results in comparison.runs.items()}
    every = [rec for per_run in records.values() for run_records in per_run for rec in run_records]
    details = [detail for detail in DETAILS if all(detail in rec for rec in every)]
    runs: Dict[str, List[str]] = {}
    for name, results in comparison.runs.items():
        for r, run_records in zip(results, records[name]):
            summaries: List[str] = []
            for summary in (arithmetic_summary(rec, details) for rec in run_records):
                if summary not in summaries[-1:]:
                    summaries.append(summary)
            if summaries:
                runs.setdefault(" then ".join(summaries), []).append(f"{name} seed {r.config.seed}")
    return runs


def write_report(comparison: Comparison, command: str) -> Path:
    """Write ``report.md`` and its plots into the comparison's output folder; returns the report."""
    base, seeds = comparison.study.base, comparison.study.seeds
    output = Path(base.output)
    output.mkdir(parents=True, exist_ok=True)
    per_epoch_parts = []
    for metric in PER_EPOCH_METRICS:
        plot = plot_per_epoch(comparison, metric, output / f"{metric}.png")
        per_epoch_parts += ([f"![{metric}]({plot.name})"] if plot else [f"{metric} (one evaluated epoch: a table, not a plot)", "",
                                                                        *per_epoch_table(comparison, metric)]) + [""]
    positivity_parts = []
    if comparison.positivity:
        plot = plot_positive_share(comparison.positivity, output / "positivity.png", comparison.positivity_by_label)
        positivity_parts = [
            "### Positivity of the mixes (last seed's trained models)",
            "",
            "Per λ bin, the share of (anchor, mix) pairs that the mixed loss pulls together (solid), against the "
            "share whose soft label says the mix is mostly the anchor's class, above 0.5 (dashed). A loss that "
            "treats mixes as their labels say follows the dashed line; one below it at large λ pushes away mixes "
            "that are mostly positive (docs/metrics.md, positivity). A bin of few pairs says little: the counts "
            "are below.",
            "",
            f"![positivity]({plot.name})",
            "",
            *positivity_table(comparison),
        ]
    n = len(seeds)
    if n >= MIN_SEEDS_FOR_STATISTICS:
        statistics_note = f"With {n} seeds the smallest attainable p-value is {2 / 2 ** n:.3g}."
    else:
        statistics_note = (
            f"With {n} seed(s) no spread or p-value can be read: the differences below are single "
            f"observations; run at least {MIN_SEEDS_FOR_STATISTICS} seeds (5 for p = 0.0625)."
        )
    selection = (
        f"each variant's epoch picked by {base.select_metric} on the `{base.select_split}` split (evaluated every "
        f"{base.test_interval} epoch(s) and after the last), its model then evaluated once on `{base.eval_split}`"
        if base.select_split != "none" else f"the last epoch's model evaluated on `{base.eval_split}`"
    )
    warnings, overfitting = warning_lines(comparison), overfitting_table(comparison)
    gains, gains_parts = gains_against_gaps(comparison), []
    if gains:
        plot = plot_gains_against_gaps(comparison, gains, output / "gain_against_gap.png")
        gains_parts = [
            "### Metrix's gain against its baseline's overfitting",
            "",
            "Each Metrix variant's paired gain on the evaluation split against the gap of its own baseline (its run "
            "without mixing; a Metrix variant whose baseline the study lacks is left out): mixup, a regulariser, is "
            "meant to gain more where the baseline overfits more. The bars are one std of the per-seed gains.",
            "",
            f"![gain against gap]({plot.name})",
            "",
            *gains_table(comparison, gains),
            "",
        ]
    lines = [
        f"# Metrix comparison on `{base.dataset}`",
        "",
        f"Command: `{command}`",
        "",
        *([base.description.strip(), ""] if base.description.strip() else []),
        f"## Verdict on `{base.eval_split}` ({base.select_metric}, paired by seed)",
        "",
        *(verdict_lines(comparison) or ["No Metrix variant: nothing to compare with the baseline."]),
        "",
        *(["## Warnings", "", *warnings, ""] if warnings else []),
        *reference_lines(comparison),
        "## Setting",
        "",
        arithmetic_line(comparison),
        "",
        f"Model `{base.model}` ({base.embedding_size}-d), loss `{base.loss}`, up to {base.epochs} epochs"
        + (f" (patience {base.patience})" if base.patience is not None else "")
        + f", batch {base.batch_size or 'of samples_per_class x the training classes, at most 100'}, seeds {seeds}; {selection}"
        + (f" against `{base.eval_reference}`" if base.eval_reference else "")
        + ". Each seed gives every variant of one network and data the same initialisation and the same batches. "
        "Variants (their "
        "options over those above): "
        + "; ".join(f"`{name}` {overrides}" for name, overrides in comparison.study.variants.items())
        + ". Per-run configs, results.json, logs, tensorboard files and checkpoints are in the sub-folders; "
        "every number here is in results.json.",
        "",
        f"## Scores on `{base.eval_split}` at each variant's picked epoch (mean ± std over seeds)",
        "",
        "Raw pixels: cosine retrieval on the flattened images. Untrained network: the same model before "
        "any training. Where variants differ from the study's own options in their data or network, the rows "
        "in brackets are theirs, scored on their data. If training does not beat both, it learned nothing useful for unseen classes. "
        "Utilization, alignment: lower is better; uniformity: lower is more uniform. †: low trivially, not "
        "good: the untrained network's embeddings, and those of uniformity above "
        f"{CONCENTRATED_UNIFORMITY}, lie close together, so every distance between them is small.",
        "",
        *results_table(comparison),
        "",
        *(["## Overfitting: the training classes against the selection split (picked epoch, mean over seeds)", "",
           "The same model scored on its own training split (queries against the training split) and on the "
           "selection split: a large gap is a model that learned its training classes more than what carries "
           "to unseen ones, the regime mixup is meant for.", "", *overfitting, ""] if overfitting else []),
        *gains_parts,
        "## Paired difference to each variant's baseline (mean over seeds, exact two-sided sign-flip p-value)",
        "",
        statistics_note,
        "",
        *paired_table(comparison),
        "",
        *(["## Per epoch", "", f"On the `{base.select_split}` split (the selection split), mean over seeds.", "",
           *per_epoch_parts] if any(r.history for results in comparison.runs.values() for r in results) else []),
        *positivity_parts,
    ]
    report = output / REPORT
    write_text(report, "\n".join(lines))
    return report

"""Baseline against Metrix variants over seeds: same initialisation and batches per seed, paired
differences with an exact sign-flip test, raw-pixel and untrained-network scores alongside."""

import itertools
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

from . import analysis
from .config import RunConfig
from .experiment import Run, RunResult
from .trainers import mix_at_level

DEFAULT_VARIANTS: Dict[str, Dict] = {
    "baseline": {"mix_level": "none"},
    "metrix_embedding": {"mix_level": "embedding"},
    "metrix_feature": {"mix_level": "feature"},
}
REPORTED = ("recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "mean_average_precision_at_r",
            "utilization", "alignment", "uniformity")


@dataclass
class Comparison:
    """Every run's history, the reference scores, and the positivity curves of the Metrix variants."""

    base: RunConfig
    seeds: List[int]
    runs: Dict[str, List[RunResult]] = field(default_factory=dict)
    raw_pixels: List[Dict[str, float]] = field(default_factory=list)
    untrained: List[Dict[str, float]] = field(default_factory=list)
    positivity: Dict[str, analysis.PositiveShare] = field(default_factory=dict)

    @property
    def baseline(self) -> str:
        return next(iter(self.runs))

    def metrics(self) -> List[str]:
        final = self.runs[self.baseline][0].final
        return [m for m in REPORTED if m in final]

    def summary(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean, std) over seeds of the final epoch."""
        return {
            name: {m: mean_std([r.final[m] for r in results]) for m in self.metrics()}
            for name, results in self.runs.items()
        }

    def paired(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean difference to the baseline, two-sided sign-flip p-value)."""
        base = self.runs[self.baseline]
        out = {}
        for name, results in list(self.runs.items())[1:]:
            out[name] = {}
            for m in self.metrics():
                diffs = [r.final[m] - b.final[m] for r, b in zip(results, base)]
                out[name][m] = (statistics.fmean(diffs), sign_flip_p_value(diffs))
        return out


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided paired randomisation test: the share of the 2^n sign flips whose mean
    difference is at least as far from 0 as the observed one. With n seeds it cannot go below
    2 / 2^n (0.25 for 3 seeds): few seeds cannot show significance, and the report says so."""
    observed = abs(statistics.fmean(differences))
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(abs(statistics.fmean(s * d for s, d in zip(signs, differences))) >= observed - 1e-12 for signs in flips)
    return extreme / len(flips)


def positive_share(run: Run, num_items: int = 200) -> analysis.PositiveShare:
    """Share of positives against lam for a trained Metrix run, on a batch of its training set
    mixed at its level with its miner's strategies."""
    dataset, config = run.datasets["train"], run.config
    per_class = config.samples_per_class
    classes = torch.unique(dataset.labels)[: max(2, num_items // per_class)]
    index = torch.cat([torch.where(dataset.labels == c)[0][:per_class] for c in classes])
    images = torch.stack([dataset[int(i)][0] for i in index]).to(run.device)
    labels = dataset.labels[index].to(run.device)
    trunk, embedder = run.models["trunk"].eval(), run.models["embedder"].eval()
    with torch.no_grad():
        features = trunk(images)
        embeddings = embedder(features)
        plan = run.miner.plan(embeddings, labels)
        mixed = mix_at_level(plan, config.mix_level, images, features, embeddings, embedder, lambda x: embedder(trunk(x)))
    positivity = analysis.pair_positivity(run.loss, embeddings, labels, plan.mixed_batch(mixed))
    return analysis.positive_share_by_lam(positivity)


def compare(base: RunConfig, seeds: Sequence[int], variants: Dict[str, Dict] = None) -> Comparison:
    """Train every variant (the first is the baseline) at every seed into ``base.output``."""
    variants = DEFAULT_VARIANTS if variants is None else variants
    output = Path(base.output)
    comparison = Comparison(base, list(seeds))
    for seed in seeds:
        reference = Run(base.replace(seed=seed, mix_level="none", output=str(output / "reference" / f"seed{seed}")))
        comparison.raw_pixels.append(reference.evaluate(0, torch.nn.Flatten(), torch.nn.Identity()))
        comparison.untrained.append(reference.evaluate(0))
        for name, overrides in variants.items():
            run = Run(base.replace(seed=seed, output=str(output / name / f"seed{seed}"), **overrides))
            comparison.runs.setdefault(name, []).append(run.train())
            if seed == seeds[-1] and run.config.mix_level != "none":
                comparison.positivity[name] = positive_share(run)
    return comparison


def format_cell(mean: float, std: float) -> str:
    return "nan" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"

"""Baseline against Metrix variants over seeds: same initialisation and batches per seed, each
variant's epoch picked on the validation split, its test metrics paired with the baseline's (exact
sign-flip test), raw-pixel and untrained-network scores alongside.

A study is one YAML file: run options (as for ``pml-metrix train``), plus ``variants`` (name ->
option overrides; the first is the baseline the others are paired with) and ``seeds``.
"""

import itertools
import math
import re
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from .. import analysis
from .config import ConfigError, RunConfig, load_config, read_yaml_mapping, shown
from .checkpoints import load_checkpoint
from .build import build_miner
from .evaluation import collapsed
from .experiment import BEST, CHECKPOINT, RESULTS, SELECTION_METRIC, Run, RunResult
from .files import write_json, write_text
from .reproducible import arithmetic_record
from ..mixed_batch import MixedBatch
from ..trainers import mix_at_level

DEFAULT_VARIANTS: Dict[str, Dict[str, Any]] = {
    "baseline": {"mix_level": "none"},
    "metrix_embedding": {"mix_level": "embedding"},
    "metrix_feature": {"mix_level": "feature"},
}
DEFAULT_SEEDS = [0, 1, 2]
OTHER_METRICS = ("mean_average_precision_at_r", "utilization", "alignment", "uniformity")
SIGNIFICANCE = 0.05  # a verdict of ahead or behind needs the paired p-value at most this (6 seeds at least)


@dataclass
class Study:
    """What ``pml-metrix compare`` runs: a base config, its variants (the first the baseline) and seeds."""

    base: RunConfig
    variants: Dict[str, Dict[str, Any]]
    seeds: List[int]

    def __post_init__(self):
        if not self.variants:
            raise ConfigError("a study needs at least one variant")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ConfigError(f"seeds must be distinct and at least one; got {self.seeds}")
        for name, overrides in self.variants.items():
            if not isinstance(overrides, dict):
                raise ConfigError(f"variant {name} must map options to values; got {shown(overrides)}")
            for key in ("seed", "output", "reproducible"):  # reproducible: pinned once, when the command starts
                if key in overrides:
                    raise ConfigError(f"variant {name} may not set {key}: compare sets it for every run")
            self.config(name, self.seeds[0])  # every variant's options valid before any training
        baseline = next(iter(self.variants))
        if self.config(baseline, self.seeds[0]).mix_level != "none":
            raise ConfigError(
                f"the first variant ({baseline}) is the baseline the others are paired with: give it mix_level none"
            )

    @property
    def baseline(self) -> str:
        return next(iter(self.variants))

    def save(self, path: Path) -> None:
        """The resolved study as a YAML file that ``pml-metrix compare --config`` runs again."""
        write_text(path, yaml.safe_dump({**self.base.to_dict(), "seeds": self.seeds, "variants": self.variants},
                                        sort_keys=False))

    def config(self, name: str, seed: int) -> RunConfig:
        """The config of variant ``name`` at ``seed``, written into ``<output>/<name>/seed<seed>``."""
        try:
            return self.base.replace(seed=seed, output=str(Path(self.base.output) / name / f"seed{seed}"), **self.variants[name])
        except TypeError as error:  # an unknown option
            raise ConfigError(f"variant {name}: {error}") from None


def load_study(path: Optional[str] = None, seeds: Optional[Sequence[int]] = None,
               variants: Optional[Sequence[str]] = None, **overrides: Any) -> Study:
    """The study of a YAML file (run options, ``variants``, ``seeds``), the default study without
    one; ``seeds``, a subset of ``variants`` by name and option ``overrides`` replace the file's."""
    values = read_yaml_mapping(path) if path is not None else {}
    study_variants = values.pop("variants", DEFAULT_VARIANTS)
    study_seeds = values.pop("seeds", DEFAULT_SEEDS)
    if not isinstance(study_variants, dict):
        raise ConfigError(f"variants must map a name to option overrides; got {shown(study_variants)}")
    for name in study_variants:  # each names its runs' folder
        if not (isinstance(name, str) and re.fullmatch(r"[\w.-]+", name)) or name in (".", ".."):
            raise ConfigError(f"variant name {shown(name)} must be a folder name (letters, digits, _ . -)")
    if not isinstance(study_seeds, list) or not all(type(seed) is int for seed in study_seeds):
        raise ConfigError(f"seeds must be a list of integers; got {shown(study_seeds)}")
    if variants:
        unknown = [name for name in variants if name not in study_variants]
        if unknown:
            raise ConfigError(f"unknown variant(s) {', '.join(unknown)}; the study has {', '.join(study_variants)}")
        study_variants = {name: study_variants[name] for name in variants}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("output", "runs/compare")
    base = load_config(None, **values)
    return Study(base, dict(study_variants), list(seeds if seeds is not None else study_seeds))


@dataclass
class Comparison:
    """Every run's result, the reference scores, and the positivity curves of the Metrix variants
    (``positivity``: the share of mixes the loss pulls towards their anchor, per lam bin;
    ``positivity_by_label``: the share whose soft label says they are mostly the anchor's class,
    above 0.5, the curve a loss that treats mixes as their labels say follows)."""

    study: Study
    runs: Dict[str, List[RunResult]] = field(default_factory=dict)
    raw_pixels: List[Dict[str, float]] = field(default_factory=list)
    untrained: List[Dict[str, float]] = field(default_factory=list)
    positivity: Dict[str, analysis.PositiveShare] = field(default_factory=dict)
    positivity_by_label: Dict[str, analysis.PositiveShare] = field(default_factory=dict)
    arithmetic: Dict[str, Any] = field(default_factory=dict)  # reproducible.arithmetic_record() of the comparing process

    def metrics(self) -> List[str]:
        """The reported metrics: Recall@K for the run's K, then MAP@R, utilization, alignment, uniformity."""
        return [f"recall_at_{k}" for k in self.study.base.recall_at_k] + list(OTHER_METRICS)

    def summary(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean, std) over seeds of the test metrics at the picked epoch."""
        return {
            name: {m: mean_std([r.final[m] for r in results]) for m in self.metrics()}
            for name, results in self.runs.items()
        }

    def paired(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean difference to the baseline, two-sided sign-flip p-value)."""
        base = self.runs[self.study.baseline]
        out = {}
        for name, results in list(self.runs.items())[1:]:
            out[name] = {}
            for m in self.metrics():
                diffs = [r.final[m] - b.final[m] for r, b in zip(results, base)]
                out[name][m] = (statistics.fmean(diffs), sign_flip_p_value(diffs))
        return out

    def verdicts(self) -> Dict[str, Dict[str, Any]]:
        """variant -> its verdict against the baseline on the selection metric (Recall@1) of the
        evaluation split: ``ahead`` or ``behind`` where the paired sign-flip p-value is at most
        ``SIGNIFICANCE``, else ``inconclusive``; with the mean difference, the observed p, the smallest
        p that this number of seeds can give (2 / 2^n) and the seeds on which the variant was ahead."""
        base = self.runs[self.study.baseline]
        out = {}
        for name, (difference, p) in ((name, paired[SELECTION_METRIC]) for name, paired in self.paired().items()):
            decided = p <= SIGNIFICANCE  # False for NaN
            out[name] = {
                "verdict": ("ahead" if difference > 0 else "behind") if decided else "inconclusive",
                "metric": SELECTION_METRIC, "mean_difference": difference, "p_value": p,
                "smallest_attainable_p": 2 / 2 ** len(base), "significance": SIGNIFICANCE, "seeds": len(base),
                "seeds_ahead": sum(r.final[SELECTION_METRIC] > b.final[SELECTION_METRIC]
                                   for r, b in zip(self.runs[name], base)),
            }
        return out

    def to_dict(self) -> Dict[str, Any]:
        """Everything the report shows, and each run's evaluations, for machines."""
        return {
            "base_config": self.study.base.to_dict(),
            "variants": self.study.variants,
            "seeds": self.study.seeds,
            "baseline": self.study.baseline,
            "selection": {"split": self.study.base.select_split, "metric": SELECTION_METRIC},
            "arithmetic": self.arithmetic,
            "references": {"raw_pixels": self.raw_pixels, "untrained": self.untrained},
            "runs": {
                name: [{"seed": r.config.seed, "best_epoch": r.best_epoch, "final": r.final,
                        "collapsed": collapsed(r.final), "history": r.history} for r in results]
                for name, results in self.runs.items()
            },
            "summary": {name: {m: {"mean": mean, "std": std} for m, (mean, std) in metrics.items()}
                        for name, metrics in self.summary().items()},
            "paired": {name: {m: {"mean_difference": d, "p_value": p} for m, (d, p) in metrics.items()}
                       for name, metrics in self.paired().items()},
            "verdicts": self.verdicts(),
        }


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (the spread NaN for a single value: none can be read;
    both NaN when a value is NaN, e.g. alignment of a split without two items of a class)."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided paired randomisation test: the share of the 2^n sign flips whose mean
    difference is at least as far from 0 as the observed one. With n seeds it cannot go below
    2 / 2^n (0.25 for 3 seeds, 0.0625 for 5). NaN when a difference is NaN."""
    if any(math.isnan(d) for d in differences):
        return math.nan
    observed = abs(statistics.fmean(differences))
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(abs(statistics.fmean(s * d for s, d in zip(signs, differences))) >= observed - 1e-12 for signs in flips)
    return extreme / len(flips)


def trained_mixed_batch(run: Run, num_items: int = 200) -> Tuple[torch.Tensor, torch.Tensor, MixedBatch]:
    """For a trained Metrix run: the embeddings and labels of a batch of its training set
    (``num_items`` images, ``samples_per_class`` of each class) by its models in eval mode, and their
    MixedBatch, mixed at the run's level by a fresh miner of its settings (the same draws, resumed or
    not); in the graph of the models' parameters unless called under ``torch.no_grad()``."""
    dataset, config = run.datasets["train"], run.config
    per_class = config.samples_per_class
    classes = torch.unique(dataset.labels)[: max(2, num_items // per_class)]
    index = torch.cat([torch.where(dataset.labels == c)[0][:per_class] for c in classes])
    images = torch.stack([dataset[int(i)][0] for i in index]).to(run.device)
    labels = dataset.labels[index].to(run.device)
    trunk, embedder = run.models["trunk"].eval(), run.models["embedder"].eval()
    features = trunk(images)
    embeddings = embedder(features)
    miner = build_miner(config, int(dataset.num_classes)).to(run.device)
    indices_tuple = miner.clean_tuple(embeddings, labels)
    plan = miner.plan(embeddings, labels)
    mixed = mix_at_level(plan, config.mix_level, images, features, embeddings, embedder, lambda x: embedder(trunk(x)))
    return embeddings, labels, plan.mixed_batch(mixed, indices_tuple)


def trained_pair_positivity(run: Run, num_items: int = 200) -> analysis.PairPositivity:
    """Each mixed pair's positivity (:func:`~pml_metrix.analysis.pair_positivity`) on
    :func:`trained_mixed_batch`'s batch (built without a graph: positivity differentiates a copy)."""
    with torch.no_grad():
        embeddings, labels, mixed_batch = trained_mixed_batch(run, num_items)
    return analysis.pair_positivity(run.parts.loss, embeddings, labels, mixed_batch)


def compare(study: Study, resume: bool = False, overwrite: bool = False) -> Comparison:
    """Train every variant at every seed into the study's output folder; each variant's model is
    picked on the selection split and tested once. With ``resume``, a run that finished (its
    ``results.json`` written) is read back and an unfinished one continued."""
    comparison = Comparison(study, arithmetic=arithmetic_record())
    output = Path(study.base.output)
    present = [name for name in ("config.yaml", "results.json", "report.md", CHECKPOINT) if (output / name).exists()]
    if present and not (resume or overwrite):
        raise ConfigError(
            f"{output} holds a study or a run ({', '.join(present)}): continue it with --resume, replace it with "
            "--overwrite, or choose another --output"
        )
    for seed in study.seeds:
        base = study.base.replace(seed=seed, mix_level="none")
        reference = Run(base.replace(output=str(output / "reference" / f"seed{seed}")))
        comparison.raw_pixels.append(reference.evaluate(base.eval_split, 0, base.eval_reference,
                                                        torch.nn.Flatten(), torch.nn.Identity()))
        comparison.untrained.append(reference.evaluate(base.eval_split, 0, base.eval_reference))
        for name in study.variants:
            config = study.config(name, seed)
            run_output = Path(config.output)
            run = Run(config)
            if resume and (run_output / RESULTS).is_file() and RunResult.load(run_output).config == config:
                result = RunResult.load(run_output)  # finished: its picked model, not trained again
                run.load_weights(load_checkpoint(run_output / (BEST if (run_output / BEST).is_file() else CHECKPOINT)))
            else:
                started = (run_output / CHECKPOINT).is_file()  # else nothing to continue: start it afresh
                result = run.train(resume=resume and started, overwrite=overwrite or (resume and not started))
            comparison.runs.setdefault(name, []).append(result)
            if seed == study.seeds[-1] and config.mix_level != "none":
                positivity = trained_pair_positivity(run)
                comparison.positivity[name] = analysis.positive_share_by_lam(positivity)
                mostly_positive = replace(positivity, is_positive=positivity.soft_label > 0.5)
                comparison.positivity_by_label[name] = analysis.positive_share_by_lam(mostly_positive)
    study.save(output / "config.yaml")  # written once every run has been checked and trained
    write_json(output / "results.json", comparison.to_dict())
    return comparison

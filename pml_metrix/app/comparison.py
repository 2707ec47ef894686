"""The result of a study: every run's scores, the reference scores beside them (raw pixels, the
untrained network), each variant paired by seed with its baseline (exact sign-flip test,
:mod:`~pml_metrix.app.stats`), and what the report and results.json show of them. Made by
:func:`~pml_metrix.app.compare.compare`.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from .. import analysis
from .config import RunConfig
from .evaluation import collapsed
from .run_folder import RunResult
from .stats import mean_std, paired, verdict
from .study import Study

OTHER_METRICS = ("mean_average_precision_at_r", "utilization", "alignment", "uniformity")


# what the reference scores depend on: the images they are scored on, and the network left untrained
DATA_OPTIONS = ("dataset", "data_root", "dataset_options", "image_size", "eval_split", "eval_reference")
NETWORK_OPTIONS = ("model", "model_width", "embedding_size", "pretrained")


def setting_label(config: RunConfig, study_config: RunConfig, options: Tuple[str, ...]) -> str:
    """How ``config`` differs from the study's own in ``options``, each value whole (``model
    'resnet18', model_width 64``): two settings that differ get two labels; empty where it does not."""
    return ", ".join(f"{name} {getattr(config, name)!r}" for name in options
                     if getattr(config, name) != getattr(study_config, name))


def reference_label(kind: str, setting: str) -> str:
    """A reference's label in the report: ``kind`` (``raw pixels``, ``untrained network``), with the
    :func:`setting_label` it was scored in where that is not the study's own."""
    return f"{kind} ({setting})" if setting else kind


@dataclass
class Comparison:
    """Every run's result, the reference scores, and the positivity curves of the Metrix variants
    (:func:`~pml_metrix.app.positivity.positive_shares`: ``positivity``, ``positivity_by_label``).
    ``raw_pixels`` and ``untrained`` are per seed, scored with the study's own options; a variant
    whose data or network differ from them (:data:`DATA_OPTIONS`, :data:`NETWORK_OPTIONS`) is read
    against its own, ``other_raw_pixels`` and ``other_untrained``, by :func:`setting_label`."""

    study: Study
    runs: Dict[str, List[RunResult]] = field(default_factory=dict)
    raw_pixels: List[Dict[str, float]] = field(default_factory=list)
    untrained: List[Dict[str, float]] = field(default_factory=list)
    other_raw_pixels: Dict[str, List[Dict[str, float]]] = field(default_factory=dict)
    other_untrained: Dict[str, List[Dict[str, float]]] = field(default_factory=dict)
    positivity: Dict[str, analysis.PositiveShare] = field(default_factory=dict)
    positivity_by_label: Dict[str, analysis.PositiveShare] = field(default_factory=dict)
    arithmetic: Dict[str, Any] = field(default_factory=dict)  # reproducible.arithmetic_record() of the comparing process

    def references(self) -> Dict[str, List[Dict[str, float]]]:
        """Every reference's scores per seed by its :func:`reference_label`: the study's own raw pixels
        and untrained network, then those of each other data, and of each other data or network."""
        rows = {"raw pixels": self.raw_pixels, "untrained network": self.untrained}
        rows.update({reference_label("raw pixels", data): scores for data, scores in self.other_raw_pixels.items()})
        rows.update({reference_label("untrained network", setting): scores for setting, scores in self.other_untrained.items()})
        return rows

    def references_of(self, name: str) -> Dict[str, List[Dict[str, float]]]:
        """Variant ``name``'s :meth:`references`: raw pixels on its data, and its network untrained on
        its data (the study's own where they are the same)."""
        config, own, references = self.study.config(name, self.study.seeds[0]), self.study.base, self.references()
        labels = (reference_label("raw pixels", setting_label(config, own, DATA_OPTIONS)),
                  reference_label("untrained network", setting_label(config, own, DATA_OPTIONS + NETWORK_OPTIONS)))
        return {label: references[label] for label in labels}

    def metrics(self) -> List[str]:
        """The reported metrics: Recall@K for the run's K, nDCG@K (label sets), then MAP@R,
        utilization, alignment (classes only), uniformity: those the runs measured, in that order."""
        ks = self.study.base.recall_at_k
        order = [f"recall_at_{k}" for k in ks] + [f"ndcg_at_{k}" for k in ks] + list(OTHER_METRICS)
        finals = [result.final for results in self.runs.values() for result in results]
        return [m for m in order if any(m in final for final in finals)] if finals else order[: len(ks)] + list(OTHER_METRICS)

    def summary(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean, std) over seeds of the test metrics at the picked epoch."""
        return {
            name: {m: mean_std([r.final.get(m, math.nan) for r in results]) for m in self.metrics()}
            for name, results in self.runs.items()
        }

    def paired_with(self) -> Dict[str, str]:
        """variant -> the variant it is paired with (:meth:`Study.baseline_of
        <pml_metrix.app.study.Study.baseline_of>`), for every variant but the first."""
        return {name: self.study.baseline_of(name) for name in list(self.runs)[1:]}

    def paired(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """variant -> metric -> (mean difference to its baseline, two-sided sign-flip p-value)."""
        return {name: {m: paired([r.final.get(m, math.nan) for r in self.runs[name]],
                                 [b.final.get(m, math.nan) for b in self.runs[base]])
                       for m in self.metrics()}
                for name, base in self.paired_with().items()}

    def verdicts(self) -> Dict[str, Dict[str, Any]]:
        """variant -> its :func:`~pml_metrix.app.stats.verdict` against its baseline on the selection
        metric (``select_metric``) of the evaluation split."""
        metric = self.study.base.select_metric
        return {name: {**verdict([r.final.get(metric, math.nan) for r in self.runs[name]],
                                 [b.final.get(metric, math.nan) for b in self.runs[base]]),
                       "metric": metric, "baseline": base}
                for name, base in self.paired_with().items()}

    def to_dict(self) -> Dict[str, Any]:
        """Everything the report shows, and each run's evaluations, for machines."""
        return {
            "base_config": self.study.base.to_dict(),
            "variants": self.study.variants,
            "seeds": self.study.seeds,
            "baseline": self.study.baseline,
            "paired_with": self.paired_with(),
            "selection": {"split": self.study.base.select_split, "metric": self.study.base.select_metric},
            "arithmetic": self.arithmetic,
            "references": {"raw_pixels": self.raw_pixels, "untrained": self.untrained,
                           "other_raw_pixels": self.other_raw_pixels, "other_untrained": self.other_untrained},
            "runs": {
                name: [{"seed": r.config.seed, "best_epoch": r.best_epoch, "final": r.final, "collapsed": collapsed(r.final),
                        "train": r.train_metrics, "mixes_drawn": r.mixes_drawn, "arithmetic": r.arithmetic,
                        "trained_under": r.trained_under, "history": r.history}
                       for r in results]
                for name, results in self.runs.items()
            },
            "summary": {name: {m: {"mean": mean, "std": std} for m, (mean, std) in metrics.items()}
                        for name, metrics in self.summary().items()},
            "paired": {name: {m: {"mean_difference": d, "p_value": p} for m, (d, p) in metrics.items()}
                       for name, metrics in self.paired().items()},
            "verdicts": self.verdicts(),
        }

"""A study: a base run config, its variants (option overrides by name; the first is a baseline) and
seeds, read from one YAML file: run options (as for ``pml-metrix train``), plus ``variants`` and
``seeds``. Each variant but the first is paired with a baseline (:meth:`Study.baseline_of`): a Metrix
variant with the variant that is the same run without mixing, where the study has it, so that one
study can hold several baselines (losses, models) each with its Metrix variants."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from .config import MIXING_OPTIONS, ConfigError, RunConfig, layered, load_config, read_yaml_mapping, shown
from .files import write_text
from .run_folder import PLACE

DEFAULT_VARIANTS: Dict[str, Dict[str, Any]] = {
    "baseline": {"mix_level": "none"},
    "metrix_embedding": {"mix_level": "embedding"},
    "metrix_feature": {"mix_level": "feature"},
}
DEFAULT_SEEDS = [0, 1, 2]


# how each run is selected and scored: the same for every run of a study, whose scores are paired by seed
SCORED_ALIKE = ("select_split", "select_metric", "eval_split", "eval_reference", "recall_at_k")


@dataclass
class Study:
    """What ``pml-metrix compare`` runs: a base config, its variants (the first a baseline) and seeds."""

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
            for key in SCORED_ALIKE:
                if key in overrides:
                    raise ConfigError(f"variant {name} may not set {key}: a study selects and scores every run alike, so "
                                      "that their scores pair; set it for the whole study")
            self.config(name, self.seeds[0])  # every variant's options valid before any training
        baseline = next(iter(self.variants))
        if self.config(baseline, self.seeds[0]).mix_level != "none":
            raise ConfigError(
                f"the first variant ({baseline}) is a baseline, which other variants are paired with: give it mix_level "
                "none, or list a variant without mixing first (--variants baseline ...)"
            )

    @property
    def baseline(self) -> str:
        """The first variant, a baseline (no mixing)."""
        return next(iter(self.variants))

    def baseline_of(self, name: str) -> str:
        """The variant that variant ``name`` (not the first) is paired with: its :meth:`own_baseline`
        where it has one, else the first variant."""
        if name == self.baseline:
            raise ValueError(f"{name} is the first variant, which other variants are paired with")
        return self.own_baseline(name) or self.baseline

    def own_baseline(self, name: str) -> Optional[str]:
        """For a Metrix variant, the first variant without mixing that is the same run but for the
        options that act only under Metrix (:func:`run_options`): what its gain is measured against;
        ``None`` for a variant without mixing, or one whose run without mixing the study lacks."""
        seed = self.seeds[0]
        config = self.config(name, seed)
        if config.mix_level == "none":
            return None
        for candidate in self.variants:
            other = self.config(candidate, seed)
            if other.mix_level == "none" and run_options(other) == run_options(config):
                return candidate
        return None

    def save(self, path: Path) -> None:
        """The resolved study as a YAML file that ``pml-metrix compare --config`` runs again."""
        options = {name: value for name, value in self.base.to_dict().items() if name != "seed"}  # seeds say
        write_text(path, yaml.safe_dump({**options, "seeds": self.seeds, "variants": self.variants}, sort_keys=False))

    def config(self, name: str, seed: int) -> RunConfig:
        """The config of variant ``name`` at ``seed``, written into ``<output>/<name>/seed<seed>``."""
        unknown = sorted(set(self.variants[name]) - set(self.base.to_dict()))
        if unknown:
            raise ConfigError(f"variant {name}: unknown option(s) {', '.join(map(shown, unknown))}; known: "
                              f"{', '.join(sorted(self.base.to_dict()))}")
        options = layered(self.base.to_dict(), self.variants[name])  # dataset_options merged into the base's
        try:
            return self.base.replace(seed=seed, output=str(Path(self.base.output) / name / f"seed{seed}"),
                                     **{key: options[key] for key in {*self.variants[name], "dataset_options"}})
        except ConfigError as error:  # a value the option does not take
            raise ConfigError(f"variant {name}: {error}") from None


def run_options(config: RunConfig) -> Dict[str, Any]:
    """A run's options but where its files are (:data:`~pml_metrix.app.run_folder.PLACE`) and those
    that act only under Metrix (:data:`~pml_metrix.app.config.MIXING_OPTIONS`): what a Metrix run
    shares with its baseline."""
    return {key: value for key, value in config.to_dict().items() if key not in PLACE | set(MIXING_OPTIONS)}


def load_study(path: Optional[str] = None, seeds: Optional[Sequence[int]] = None,
               variants: Optional[Sequence[str]] = None, **overrides: Any) -> Study:
    """The study of a YAML file (run options, ``variants``, ``seeds``), the default study without
    one; ``seeds``, a subset of ``variants`` by name and option ``overrides`` replace the file's."""
    values = read_yaml_mapping(path) if path is not None else {}
    # one run's option, which compare sets for every run from seeds (files saved before Study.save left it
    # out hold the default, 0, and still load)
    if values.get("seed", 0) != 0:
        raise ConfigError(f"a study file gives seeds, a list, not seed (one run's); got seed: {shown(values['seed'])}")
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
    values = layered(values, {k: v for k, v in overrides.items() if v is not None})
    values.setdefault("output", "runs/compare")
    base = load_config(None, **values)
    return Study(base, dict(study_variants), list(seeds if seeds is not None else study_seeds))

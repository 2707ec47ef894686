"""Run configuration: one dataclass, filled from defaults, a YAML file, then command-line flags.

Each field carries its help text and allowed values (``metadata``), from which the CLI builds its
flags. Values are checked for their type on construction: YAML's spellings of booleans (``yes``,
``off``, ...), numbers written as strings (``lr: 1e-3``, which YAML reads as a string) and ``none``
for an optional value are converted; anything else of the wrong type is refused, never coerced.
"""

import dataclasses
import functools
import math
import re
import reprlib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

from ..names import LABEL_SIMILARITIES, LAM_PER, MIN_MIX_ALPHA, MS_MIXED_FORMS, POSITIVE_LOSS_OPTIONS, SHOWN_TO, STRATEGIES
from ..names import MIX_LEVELS as LIBRARY_MIX_LEVELS
from .files import write_text
from .yaml_input import YAMLInputError, clipped, read_yaml_file

LOSSES = {  # --loss: what it is, PML's loss class and its Metrix twin in pml_metrix.losses (names: no torch here)
    "contrastive": ("contrastive", "ContrastiveLoss", "MetrixContrastiveLoss"),
    "ms": ("multi-similarity", "MultiSimilarityLoss", "MetrixMSLoss"),
    "pa": ("proxy anchor", "ProxyAnchorLoss", "MetrixProxyAnchorLoss"),
    "supcon": ("supervised contrastive (SupCon)", "SupConLoss", "MetrixSupConLoss"),
    "ntxent": ("NT-Xent", "NTXentLoss", "MetrixNTXentLoss"),
}
MIX_LEVELS = ("none",) + LIBRARY_MIX_LEVELS  # none: the baseline
MODELS = ("small_cnn", "resnet18", "resnet34", "resnet50", "resnet101", "googlenet")
DISTANCES = ("default", "cosine", "lp")
TRUE, FALSE = ("true", "yes", "on", "y", "1"), ("false", "no", "off", "n", "0")
# the options that act only under Metrix: a Metrix run's baseline is the same run but these, with mix_level none
MIXING_OPTIONS = ("mix_level", "strategies", "mix_alpha", "mix_weight", "num_mixes", "shown_to", "lam_per",
                  "strategy_per_step", "ms_mixed_form", "positive_threshold", "negative_threshold")
CONFIG_SET_LOSS_PARAMS = {"mix_weight", "mixed_form", "num_classes", "embedding_size", "distance", "collect_stats"}
# what a number option becomes: a float32 tensor or optimizer setting, an int64 size, count or index
FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38  # largest, smallest normal magnitude
INT64_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A bad configuration; its message is one line for the user."""


def option(default: Any, help: str, choices: Optional[Tuple] = None, minimum: Optional[float] = None,
           above: Optional[float] = None, maximum: Optional[float] = None) -> Any:
    """A RunConfig field: its default, help text and allowed values (``choices``; numbers
    ``>= minimum`` or ``> above``, and ``<= maximum``). Every number also stays within the range of
    what the run makes of it (:func:`check_value`): float32 for a float, int64 for an integer, which
    ``maximum`` narrows for sizes and counts that would not fit in memory or time."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "above": above, "maximum": maximum}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


EMPTY_OUTPUT = "output must name a folder; got an empty name: give --output PATH (default runs/train)"


@dataclass
class RunConfig:
    """Everything one training run depends on. Written, resolved, next to its results."""

    description: str = option("", "what the run or study is for, and how its settings were chosen")
    dataset: str = option("fonts", "dataset", choices=("fonts", "fashion_mnist", "cub200", "cars196", "sop", "inshop", "font_attributes"))
    data_root: Optional[str] = option(None, "folder of the dataset's files (each reader names what it needs)")
    dataset_options: Dict[str, Any] = option({}, "options of the dataset reader, e.g. max_classes=10 "
                                             "max_images_per_class=20 (every dataset: a quick run), train_fraction=0.25 (fonts); "
                                             "merged key by key over a config file's, as a study variant's over its base's")
    image_size: Optional[int] = option(None, "image side in pixels (default: the dataset's own)", above=0, maximum=4096)
    loss: str = option("ms", "metric loss: " + ", ".join(what for what, _, _ in LOSSES.values()), choices=tuple(LOSSES))
    loss_params: Dict[str, float] = option({}, "the PML loss's own arguments, e.g. alpha=17.97 beta=75.66 base=0.77, "
                                           "or temperature=0.1 (supcon, ntxent)")
    label_similarity: str = option("jaccard", "datasets of label sets (font_attributes): the similarity of two "
                                   "items' sets, their pair's soft label (shares_any: the hard workaround)",
                                   choices=LABEL_SIMILARITIES)
    positive_threshold: float = option(0.5, "label sets, under Metrix: the similarity from which an item is a positive "
                                       "of the anchor", above=0, maximum=1)
    negative_threshold: float = option(0.0, "label sets, under Metrix: the similarity up to which an item is a "
                                       "negative of the anchor (0: shares no label)", minimum=0)
    distance: str = option("default", "the loss's distance (default: the PML loss's own)", choices=DISTANCES)
    miner_epsilon: Optional[float] = option(0.1, "epsilon of the clean-pair MultiSimilarityMiner; none: no miner", minimum=0)
    mix_level: str = option("none", "where Metrix mixes (none: the baseline)", choices=MIX_LEVELS)
    strategies: List[str] = option(["positive_negative"], "which pairs are mixed", choices=STRATEGIES)
    mix_alpha: float = option(2.0, "lam ~ Beta(mix_alpha, mix_alpha)", minimum=MIN_MIX_ALPHA)
    mix_weight: Union[float, Dict[str, float]] = option(
        0.4, "weight of the mixed loss; or one per strategy (strategy=weight ...) with --strategy-per-step", minimum=0
    )
    num_mixes: int = option(1, "mixes per eligible anchor and strategy", minimum=1, maximum=256)
    shown_to: str = option("matching_anchors", "anchors that see a mix: every one it is of a chosen type for, "
                           "or the one it was drawn for (the reference code)", choices=SHOWN_TO)
    lam_per: str = option("mix", "draw lam per mix, or once per batch (the reference code)", choices=LAM_PER)
    strategy_per_step: bool = option(False, "draw one of the strategies per step (the reference code's coin flip)")
    ms_mixed_form: str = option("soft_labels", "multi-similarity's mixed term: the paper's two sums over soft labels, "
                                "or the positive sum alone (mixes only attract)", choices=MS_MIXED_FORMS)
    model: str = option("small_cnn", "network: a torchvision backbone with the paper's head (resnet50: the "
                        "paper's model) or a small CNN for CPUs", choices=MODELS)
    model_width: int = option(64, "channels of the small CNN's first block", minimum=1, maximum=1024)
    pretrained: bool = option(False, "ImageNet weights for a torchvision backbone (downloaded once into torch's cache)")
    embedding_size: int = option(128, "embedding dimension", minimum=1, maximum=65536)
    epochs: int = option(3, "epochs to train (at most, with patience)", minimum=1, maximum=100_000)
    batch_size: Optional[int] = option(None, "batch size (of all processes together); none: 100, or samples_per_class "
                                       "x the training classes where those are fewer", minimum=1, maximum=65536)
    eval_batch_size: int = option(64, "batch size when embedding for evaluation", minimum=1, maximum=65536)
    samples_per_class: int = option(4, "images of each class in a batch (PML's MPerClassSampler m)", minimum=1)
    lr: float = option(1e-3, "Adam learning rate", above=0)
    lr_decay_step: Optional[int] = option(None, "multiply the learning rates by lr_decay_gamma every this many "
                                          "epochs (the reference code: 10); none: constant", minimum=1)
    lr_decay_gamma: float = option(0.1, "the step schedule's factor", above=0)
    weight_decay: float = option(1e-4, "Adam weight decay", minimum=0)
    proxy_lr_multiplier: float = option(100.0, "proxy anchor: the proxies' learning rate over lr", minimum=0)
    grad_clip: Optional[float] = option(10.0, "clip gradient norms at this value; none: no clipping", above=0)
    warmup_epochs: int = option(0, "epochs training the embedder alone, trunk frozen", minimum=0,
                               maximum=100_000)
    freeze_bn: bool = option(False, "keep the trunk's BatchNorm statistics and weights fixed")
    select_metric: str = option("recall_at_1", "the select_split metric whose best epoch is tested, and the one the "
                                "report's verdict reads (ndcg_at_1: for label sets, graded by Jaccard)",
                                choices=("recall_at_1", "ndcg_at_1", "mean_average_precision_at_r"))
    select_split: str = option("val", "split evaluated every test_interval epochs; its best Recall@1 picks the "
                               "epoch whose model is tested (none: the last epoch)")
    eval_split: str = option("test", "split the picked model is evaluated on, once, at the end (test: for In-Shop, "
                             "its query split against its gallery)")
    eval_reference: Optional[str] = option(None, "split eval_split queries retrieve from (In-Shop: gallery); none: itself")
    test_interval: int = option(1, "evaluate select_split after every test_interval-th epoch and the last", minimum=1)
    patience: Optional[int] = option(None, "stop once this many epochs passed since the best one; none: never", minimum=0)
    recall_at_k: List[int] = option([1, 2, 4, 8], "the K of Recall@K", minimum=1)
    seed: int = option(0, "seeds initialisation, batches and mixing: one seed, the same for every variant", minimum=0,
                     maximum=2**32 - 1)  # numpy's seeds
    deterministic: bool = option(False, "deterministic algorithms: a resumed run ends with an uninterrupted one's weights")
    reproducible: bool = option(False, "pin what decides the CPU's arithmetic (every library's instruction set to "
                                "AVX2, 2 threads, deterministic algorithms): the same numbers under every kernel setting "
                                "its test simulates (an AMD processor did not repeat an Intel one's); a CPU run, "
                                "pinned when the command starts")
    output: str = option("runs/train", "folder of the run's files")
    num_workers: int = option(0, "DataLoader worker processes", minimum=0, maximum=256)
    device: str = option("auto", "auto (CUDA when there is one), cpu, cuda, cuda:N or mps")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, checked(f, getattr(self, f.name)))
        if self.dataset == "inshop" and self.eval_split == "test":  # In-Shop's test split: query against gallery
            self.eval_split, self.eval_reference = "query", self.eval_reference or "gallery"
        self.validate()

    def validate(self) -> None:
        """The checks that involve several options (and the output folder's name)."""
        if not self.output.strip():
            raise ConfigError(EMPTY_OUTPUT)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps; got {shown(self.device)}")
        smallest = 8 if self.model == "small_cnn" else 32  # what the network's poolings leave at least 1 x 1 of
        if self.image_size is not None and self.image_size < smallest:
            raise ConfigError(f"image_size {self.image_size} is too small for {self.model}: give at least {smallest}")
        taken = sorted(set(self.loss_params) & CONFIG_SET_LOSS_PARAMS)
        if taken:
            raise ConfigError(
                f"loss_params may not set {', '.join(taken)}: the run sets it (its own option, or the dataset and "
                "embedding_size); give the run's option instead"
            )
        if "image_size" in self.dataset_options:  # the run's own option, checked as one
            raise ConfigError("dataset_options may not set image_size: give the run's image_size option instead")
        for name in POSITIVE_LOSS_OPTIONS:
            if name in self.loss_params and self.loss_params[name] <= 0:
                raise ConfigError(f"loss_params[{name}] must be > 0 (the loss divides by it); got {self.loss_params[name]}")
        if self.eval_reference not in (None, self.eval_split) and {self.eval_split, self.eval_reference} != {"query", "gallery"}:
            raise ConfigError(
                f"eval_reference {self.eval_reference} holds other classes than {self.eval_split}, numbered apart: "
                "retrieval across them would count false matches; only In-Shop's query and gallery share classes"
            )
        if self.batch_size is not None and self.batch_size % self.samples_per_class:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a multiple of samples_per_class ({self.samples_per_class})"
            )
        if self.samples_per_class < 2 and self.loss != "pa":
            raise ConfigError(
                f"samples_per_class 1 gives the {self.loss} loss no positive pair in a batch: make it at least 2"
            )
        if isinstance(self.mix_weight, dict):
            if not self.strategy_per_step or set(self.mix_weight) != set(self.strategies):
                raise ConfigError(
                    f"mix_weight per strategy ({', '.join(self.mix_weight)}) needs strategy_per_step and one weight for "
                    f"each of strategies ({', '.join(self.strategies)})"
                )
        if self.negative_threshold >= self.positive_threshold:
            raise ConfigError(
                f"negative_threshold ({self.negative_threshold}) must be below positive_threshold "
                f"({self.positive_threshold}): an item cannot be a positive and a negative of one anchor"
            )
        if self.select_split in ("test", "query", "gallery"):
            raise ConfigError(f"select_split {self.select_split} would pick the epoch on a test split: select on val")
        if 1 not in self.recall_at_k:
            raise ConfigError(f"recall_at_k must include 1 (runs are selected and reported on Recall@1); got {shown(self.recall_at_k)}")
        if self.patience is not None and self.select_split == "none":
            raise ConfigError("patience counts epochs since the best one on select_split, which none does not evaluate: "
                              "give a select_split, or leave patience out")
        if self.pretrained and self.model == "small_cnn":
            raise ConfigError("pretrained: the small CNN has no pretrained weights; choose a torchvision model, or leave it out")
        from .datasets.registry import SPLITS  # lazy: the CLI's --help does not need the readers

        splits = SPLITS[self.dataset]
        for name in ("select_split", "eval_split", "eval_reference"):
            value = getattr(self, name)
            if value is not None and value not in splits and not (name == "select_split" and value == "none"):
                raise ConfigError(f"{name} must be a split of {self.dataset} ({', '.join(splits)}); got {shown(value)}")

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


@functools.lru_cache(maxsize=None)
def field_types() -> Dict[str, Any]:
    """RunConfig's field name -> type hint."""
    return typing.get_type_hints(RunConfig)


def base_type(kind: Any) -> Tuple[Any, bool]:
    """``(X, optional)`` of a field's type hint ``Optional[X]`` or ``X``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is Union and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return kind, False


def checked(f: dataclasses.Field, value: Any) -> Any:
    """``value`` of field ``f`` with its type checked (and YAML's spellings converted), or a ConfigError."""
    name, meta = f.name, f.metadata
    kind, optional = base_type(field_types()[name])
    if optional and (value is None or isinstance(value, str) and value.strip().lower() in ("none", "null")):
        return None
    if value is None:
        raise ConfigError(f"{name} needs a value; got none")
    if kind == Union[float, Dict[str, float]]:  # mix_weight: a number, or one per strategy
        if not isinstance(value, dict):
            return check_value(name, value, float, meta)
        weights = {}
        for strategy, weight in value.items():
            check_value(f"{name}'s key", strategy, str, {"choices": STRATEGIES})
            weights[strategy] = check_value(f"{name}[{strategy}]", weight, float, meta)
        return weights
    origin = typing.get_origin(kind)
    if origin is list:
        items = [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError(f"{name} must be a non-empty list; got {shown(value)}")
        items = [check_value(f"{name} entry", item, typing.get_args(kind)[0], meta) for item in items]
        if len(set(items)) != len(items):
            raise ConfigError(f"{name} must not repeat an entry; got {shown(value)}")
        return items
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise ConfigError(f"{name} must be a mapping of option name to value; got {shown(value)}")
        if typing.get_args(kind)[1] is float:  # loss_params: numbers, finite
            return {key: check_value(f"{name}[{key}]", item, float, {}) for key, item in value.items()}
        return dict(value)
    return check_value(name, value, kind, meta)


def check_value(name: str, value: Any, kind: type, meta: Dict[str, Any]) -> Any:
    """One value of type ``kind`` (bool, int, float or str) within the metadata's bounds and choices."""
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
            return value.strip().lower() in TRUE
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false; got {shown(value)}")
        return value
    if kind in (int, float):
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}; got {shown(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}; got {shown(value)}")
        if kind is float:
            if isinstance(value, int):  # one beyond float64's range is infinite as a float
                value = float(value) if abs(value) <= sys.float_info.max else math.inf * (1 if value > 0 else -1)
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number; got {shown(value)}")
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise ConfigError(f"{name} must be >= {meta['minimum']}; got {shown(value)}")
        if meta.get("above") is not None and value <= meta["above"]:
            raise ConfigError(f"{name} must be > {meta['above']}; got {shown(value)}")
        maximum = INT64_MAX if kind is int and meta.get("maximum") is None else meta.get("maximum")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be <= {maximum}; got {shown(value)}")
        if kind is int and value < -INT64_MAX - 1:
            raise ConfigError(f"{name} must be >= {-INT64_MAX - 1}; got {shown(value)}")
        if kind is float and value != 0 and not FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
            raise ConfigError(
                f"{name} must be 0 or of magnitude {FLOAT32_TINY:.4g} to {FLOAT32_MAX:.4g}, float32's range, which the "
                f"run computes in; got {shown(value)}"
            )
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string; got {shown(value)}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{name} must be one of {', '.join(meta['choices'])}; got {shown(value)}")
    return value


class ShortRepr(reprlib.Repr):
    """reprlib's shortened repr, which also shortens an integer of many digits (Python refuses to
    write one of more than 4300)."""

    def repr_int(self, value, level):
        if value.bit_length() > 128:
            return f"<an integer of {len(hex(abs(value))) - 2} hex digits>"
        return repr(value)


SHORT_REPR = ShortRepr()
SHORT_REPR.maxstring = SHORT_REPR.maxother = 80


def shown(value: Any) -> str:
    """``repr(value)`` shortened for a message, which stays one short line whatever the user gave."""
    return SHORT_REPR.repr(value)


def layered(values: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """``values`` with ``overrides`` over them: each option replaced, but for ``dataset_options`` of one
    dataset, merged key by key (``--dataset-options max_classes=5`` over a file's ``train_fraction``
    keeps both; a study variant's options over its base's likewise). Options of another dataset
    replace them (they belong to the dataset they were given for)."""
    result, dataset = dict(values), values.get("dataset", RunConfig.dataset)
    same_data = overrides.get("dataset", dataset) == dataset
    if not same_data:
        result["dataset_options"] = {}  # the options given with the other dataset, or none
    for name, value in overrides.items():
        if name == "dataset_options" and same_data and isinstance(value, dict) and isinstance(values.get(name), dict):
            value = {**values[name], **value}
        result[name] = value
    return result


def load_config(path: Optional[str] = None, **overrides: Any) -> RunConfig:
    """Defaults, then the YAML file at ``path``, then ``overrides`` (``None`` values are skipped),
    :func:`layered`."""
    values = read_yaml_mapping(path) if path is not None else {}
    values = layered(values, {k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(RunConfig)}
    not_names = [key for key in values if not isinstance(key, str)]
    if not_names:
        raise ConfigError(f"option names are words; got {shown(not_names[0])} (YAML reads an unquoted yes, no, on, "
                          "off, null or number as a value, not a word)")
    unknown = sorted(set(values) - known)
    if unknown:
        study = " (seeds and variants are a study's: run it with pml-metrix compare)" if {"seeds", "variants"} & set(unknown) else ""
        listed = ", ".join(map(clipped, unknown[:10])) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise ConfigError(f"unknown option(s) {listed}{study}; known: {', '.join(sorted(known))}")
    return RunConfig(**values)


def read_yaml_mapping(path: str) -> Dict[str, Any]:
    """The mapping a YAML file holds, read within :mod:`~pml_metrix.app.yaml_input`'s limits, or a
    ConfigError saying why not."""
    try:
        loaded = read_yaml_file(path, "config file")
    except YAMLInputError as error:
        raise ConfigError(str(error)) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return loaded

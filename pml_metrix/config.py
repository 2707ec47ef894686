"""Run configuration: one dataclass, filled from defaults, a YAML file, then command-line flags."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

LOSSES = ("contrastive", "ms", "pa")
MIX_LEVELS = ("none", "input", "feature", "embedding")
MODELS = ("small_cnn", "resnet50")
DISTANCES = ("default", "cosine", "lp")


class ConfigError(ValueError):
    """A bad configuration; its message is one line for the user."""


@dataclass
class RunConfig:
    """Everything one training run depends on. Written, resolved, next to its results."""

    description: str = ""
    dataset: str = "fonts"
    data_root: Optional[str] = None
    dataset_options: Dict[str, Any] = field(default_factory=dict)
    image_size: Optional[int] = None
    loss: str = "ms"
    loss_params: Dict[str, float] = field(default_factory=dict)
    distance: str = "default"
    miner_epsilon: Optional[float] = 0.1
    mix_level: str = "none"
    strategies: List[str] = field(default_factory=lambda: ["positive_negative"])
    mix_alpha: float = 2.0
    mix_weight: float = 0.4
    num_mixes: int = 1
    model: str = "small_cnn"
    model_width: int = 64
    pretrained: bool = False
    embedding_size: int = 128
    epochs: int = 3
    batch_size: int = 100
    eval_batch_size: int = 64  # embedding batches; small ones keep a CPU's activations in cache
    samples_per_class: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    proxy_lr_multiplier: float = 100.0
    grad_clip: Optional[float] = 10.0
    warmup_epochs: int = 0
    freeze_bn: bool = False
    eval_split: str = "test"
    test_interval: int = 1  # evaluate after every test_interval-th epoch and the last (PML's name)
    eval_reference: Optional[str] = None
    recall_at_k: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    seed: int = 0
    deterministic: bool = False
    output: str = "runs/train"
    num_workers: int = 0
    device: str = "auto"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def one_of(name, choices):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

        def positive(name, allow_zero=False):
            value = getattr(self, name)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value != value  # NaN
            if bad or value < 0 or (value == 0 and not allow_zero):
                raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number; got {value!r}")

        one_of("loss", LOSSES)
        one_of("mix_level", MIX_LEVELS)
        one_of("model", MODELS)
        one_of("distance", DISTANCES)
        for name in ("image_size", "grad_clip", "miner_epsilon"):
            if getattr(self, name) is not None:
                positive(name, allow_zero=name == "miner_epsilon")
        if self.device != "auto" and not self.device.split(":")[0] in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps; got {self.device!r}")
        for name in ("model_width", "embedding_size", "epochs", "test_interval", "batch_size", "eval_batch_size", "samples_per_class", "lr", "mix_alpha", "num_mixes"):
            positive(name)
        for name in ("weight_decay", "mix_weight", "warmup_epochs", "num_workers", "proxy_lr_multiplier"):
            positive(name, allow_zero=True)
        if self.batch_size % self.samples_per_class:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a multiple of samples_per_class ({self.samples_per_class})"
            )
        if not self.recall_at_k or any(not isinstance(k, int) or k < 1 for k in self.recall_at_k):
            raise ConfigError(f"recall_at_k must list positive integers; got {self.recall_at_k!r}")

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_config(path: Optional[str] = None, **overrides: Any) -> RunConfig:
    """Defaults, then the YAML file at ``path``, then ``overrides`` (``None`` values are skipped)."""
    values: Dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return RunConfig(**values)

"""One training run from a :class:`~pml_metrix.config.RunConfig`: PML's trainer, tester and
record-keeper, a checkpoint every epoch, exact resume, and the metrics history; in one process, or
in each process of a process group (e.g. under ``torchrun``), sharing every batch."""

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, trainers
from pytorch_metric_learning.utils import logging_presets
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper

from . import models as model_zoo
from .checkpoints import load_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig
from .datasets import get_dataset
from .distributed import DistributedMixupMiner, from_rank0, get_rank, get_world_size
from .losses import MetrixContrastiveLoss, MetrixMSLoss, MetrixProxyAnchorLoss
from .miners import MixupMiner
from .samplers import DistributedMPerClassSampler
from .testers import MetrixAccuracyCalculator, UtilizationTester
from .trainers import MetrixTrainer

CHECKPOINT = "checkpoint.pth"
# may differ on resume or eval
RESUMABLE_CHANGES = {"epochs", "output", "device", "num_workers", "data_root", "eval_batch_size", "test_interval"}
METRIC_PREFIXES = ("recall_at_", "mean_average_precision_at_r", "utilization", "alignment", "uniformity")
LOSS_CLASSES = {
    "contrastive": (losses.ContrastiveLoss, MetrixContrastiveLoss),
    "ms": (losses.MultiSimilarityLoss, MetrixMSLoss),
    "pa": (losses.ProxyAnchorLoss, MetrixProxyAnchorLoss),
}


@dataclass
class RunResult:
    """What a run leaves: the metrics after each epoch and where its files are."""

    config: RunConfig
    history: List[Dict[str, float]]
    output: Path

    @property
    def final(self) -> Dict[str, float]:
        return self.history[-1]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # PML's samplers draw from numpy's global generator
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU. In a process group, CUDA without an index is
    the process's current device (under ``torchrun``, ``cuda:LOCAL_RANK``)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and device.index is None and get_world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def build_models(config: RunConfig, in_channels: int) -> Dict[str, torch.nn.Module]:
    if config.model == "resnet50":
        return model_zoo.metrix_resnet50(config.embedding_size, pretrained=config.pretrained)
    return model_zoo.small_cnn(in_channels, config.embedding_size, config.model_width)


def build_loss(config: RunConfig, num_classes: int) -> torch.nn.Module:
    """The PML loss for a baseline run, its Metrix twin for a Metrix run."""
    pml_class, metrix_class = LOSS_CLASSES[config.loss]
    kwargs = dict(config.loss_params)
    if config.distance == "cosine":
        kwargs["distance"] = distances.CosineSimilarity()
    elif config.distance == "lp":
        kwargs["distance"] = distances.LpDistance()
    if config.loss == "pa":
        kwargs.update(num_classes=num_classes, embedding_size=config.embedding_size)
    try:
        if config.mix_level == "none":
            return pml_class(**kwargs)
        return metrix_class(mix_weight=config.mix_weight, **kwargs)
    except TypeError as error:  # an unknown key in loss_params
        raise ConfigError(f"loss_params do not fit the {config.loss} loss: {error}") from None


def build_miner(config: RunConfig, num_classes: int) -> Optional[torch.nn.Module]:
    """The clean-pair miner (multi-similarity's, as in the paper), wrapped in a MixupMiner under Metrix."""
    inner = None if config.miner_epsilon is None or config.loss == "pa" else miners.MultiSimilarityMiner(config.miner_epsilon)
    if config.mix_level == "none":
        return inner
    return MixupMiner(
        strategies=config.strategies,
        alpha=config.mix_alpha,
        num_mixes=config.num_mixes,
        inner_miner=inner,
        num_classes=num_classes if config.loss == "pa" else None,
        seed=config.seed,
    )


def metric_names(accuracies: Dict[str, float]) -> Dict[str, float]:
    """The tracked metrics of a tester's accuracies dict, without PML's ``_level0`` suffix."""
    return {
        name.replace("_level0", ""): float(value)
        for name, value in accuracies.items()
        if name.startswith(METRIC_PREFIXES)
    }


class Run:
    """A training run: builds everything from the config, trains, evaluates and checkpoints.

    In a process group (``pml-metrix train`` under ``torchrun`` makes one), every process trains on
    its share of each global batch of ``config.batch_size`` (:class:`~pml_metrix.samplers.DistributedMPerClassSampler`)
    with DDP models, PML's ``DistributedLossWrapper`` and a distributed miner, so that the loss is
    the one of the whole batch; rank 0 alone evaluates and writes the run's files.
    """

    def __init__(self, config: RunConfig):
        self.config = config
        self.output = Path(config.output)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.device = resolve_device(config.device)
        if config.deterministic:  # e.g. CPU index backward accumulates in thread order otherwise
            torch.use_deterministic_algorithms(True)
        seed_everything(config.seed)
        splits = ["train", config.eval_split] + ([config.eval_reference] if config.eval_reference else [])
        options = dict(config.dataset_options)
        if config.image_size is not None:  # else each dataset's own default
            options["image_size"] = config.image_size
        self.datasets = {split: get_dataset(config.dataset, split, config.data_root, **options) for split in splits}
        train_set = self.datasets["train"]
        self.num_classes = int(train_set.num_classes)
        in_channels = train_set[0][0].shape[0]
        self.models = {name: m.to(self.device) for name, m in build_models(config, in_channels).items()}
        self.loss = build_loss(config, self.num_classes).to(self.device)
        self.miner = build_miner(config, self.num_classes)
        self.optimizers = {
            f"{name}_optimizer": torch.optim.Adam(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            for name, m in self.models.items()
        }
        if config.loss == "pa":
            self.optimizers["metric_loss_optimizer"] = torch.optim.Adam(
                self.loss.parameters(), lr=config.lr * config.proxy_lr_multiplier
            )
        if config.samples_per_class * self.num_classes < config.batch_size:
            raise ConfigError(
                f"batch_size {config.batch_size} needs {config.batch_size // config.samples_per_class} training classes "
                f"at samples_per_class {config.samples_per_class}, but the {config.dataset} training split has "
                f"{self.num_classes}: lower batch_size or raise samples_per_class"
            )
        share = config.samples_per_class * self.world_size
        if config.batch_size % share:
            raise ConfigError(
                f"batch_size {config.batch_size} (the whole batch of all {self.world_size} processes) does not split into "
                f"{self.world_size} shares of whole classes of samples_per_class {config.samples_per_class}: make it a "
                f"multiple of {share}"
            )
        self.sampler = DistributedMPerClassSampler(
            train_set.labels, config.samples_per_class, config.batch_size, len(train_set), self.rank, self.world_size
        )
        if self.world_size > 1:  # DistributedLossWrapper gives the loss's parameters world_size x their gradient
            for p in self.loss.parameters():
                p.register_hook(lambda grad: grad / self.world_size)
        self.history: List[Dict[str, float]] = []
        self.hooks = None
        if self.rank == 0:  # the process that writes the run's files
            self.output.mkdir(parents=True, exist_ok=True)
            record_keeper, _, _ = logging_presets.get_record_keeper(str(self.output / "logs"), str(self.output / "tensorboard"))
            self.hooks = logging_presets.get_hook_container(record_keeper, primary_metric="recall_at_1")

    def evaluate(
        self,
        epoch: int,
        trunk: Optional[torch.nn.Module] = None,
        embedder: Optional[torch.nn.Module] = None,
        mixed_embeddings: Optional[torch.Tensor] = None,
    ) -> Dict[str, float]:
        """Retrieval metrics on the evaluation split (against ``eval_reference`` when set, else
        itself) and utilization of the train split (plus ``mixed_embeddings``) by it, for the run's
        model or the given ``trunk`` and ``embedder``; logged to the run's record-keeper."""
        calculator = MetrixAccuracyCalculator(
            recall_at_k=tuple(self.config.recall_at_k),
            include=tuple(f"recall_at_{k}" for k in self.config.recall_at_k)
            + ("mean_average_precision_at_r", "alignment", "uniformity"),
            k="max_bin_count",
        )
        tester = UtilizationTester(
            accuracy_calculator=calculator,
            end_of_testing_hook=self.hooks and self.hooks.end_of_testing_hook,
            dataloader_num_workers=self.config.num_workers,
            batch_size=self.config.eval_batch_size,
            data_device=self.device,
        )
        if mixed_embeddings is not None and len(mixed_embeddings):
            tester.mixed_embeddings = torch.nn.functional.normalize(mixed_embeddings, dim=1)
        split = self.config.eval_split
        reference = self.config.eval_reference or split
        tester.test(
            self.datasets,
            epoch,
            self.models["trunk"] if trunk is None else trunk,
            self.models["embedder"] if embedder is None else embedder,
            splits_to_eval=[(split, [reference])],
        )
        return metric_names(tester.all_accuracies[split])

    def state(self, epoch: int, trainer) -> Dict:
        miner_generators = getattr(self.miner, "_generators", {})
        return {
            "epoch": epoch,
            "config": self.config.to_dict(),
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "loss": self.loss.state_dict(),
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "history": self.history,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _numpy_state(),
                "python": _python_state(),
                "miner": {str(device): g.get_state() for device, g in miner_generators.items()},
                # MPerClassSampler shuffles its class list in place each epoch: part of the RNG state
                "sampler_classes": torch.tensor(self.sampler.labels),
            },
        }

    def load_weights(self, state: Dict) -> None:
        """Load a checkpoint's model weights (trunk and embedder) only."""
        for name, m in self.models.items():
            m.load_state_dict(state["models"][name])

    def restore(self, state: Dict) -> int:
        """Load a checkpoint's weights, optimizers, history and RNG states; returns its epoch."""
        changed = sorted(
            name for name, value in state["config"].items()
            if name not in RESUMABLE_CHANGES and self.config.to_dict().get(name) != value
        )
        if changed:
            raise ConfigError(
                f"the checkpoint was trained with other settings ({', '.join(changed)}): resume with its config.yaml"
            )
        self.load_weights(state)
        self.loss.load_state_dict(state["loss"])
        for name, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][name])
        self.history = list(state["history"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(("MT19937", rng["numpy"]["keys"].numpy().astype(np.uint32), *rng["numpy"]["rest"]))
        random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
        self.sampler.labels = rng["sampler_classes"].tolist()
        for device, generator_state in rng["miner"].items():
            self.miner._generator(torch.device(device)).set_state(generator_state)
        return int(state["epoch"])

    def train(self, resume: bool = False) -> RunResult:
        """Train for ``config.epochs`` (from the saved epoch on with ``resume``), checkpointing after
        each epoch and evaluating after every ``test_interval``-th and the last."""
        config = self.config
        start_epoch = 1
        if resume:  # restore (and check the settings) before anything in the folder is written
            start_epoch = self.restore(load_checkpoint(self.output / CHECKPOINT)) + 1
        if self.rank == 0:
            config.save(self.output / "config.yaml")
        frozen = ("trunk",) if start_epoch <= config.warmup_epochs else ()
        kwargs = dict(
            models={name: m if name in frozen else self.parallel(m) for name, m in self.models.items()},
            optimizers=self.optimizers,
            batch_size=config.batch_size // self.world_size,
            loss_funcs={"metric_loss": self.parallel_loss()},
            mining_funcs={} if self.miner is None else {"tuple_miner": self.parallel_miner()},
            dataset=self.datasets["train"],
            sampler=self.sampler,
            dataloader_num_workers=config.num_workers,
            data_device=self.device,
            freeze_trunk_batchnorm=config.freeze_bn,
            freeze_these=frozen,
            end_of_iteration_hook=self.hooks and self.hooks.end_of_iteration_hook,
            end_of_epoch_hook=self.end_of_epoch,
        )
        if config.grad_clip is not None:
            kwargs["gradient_clippers"] = {
                f"{name}_grad_clipper": _clipper(m, config.grad_clip) for name, m in self.models.items()
            }
        if config.mix_level == "none":
            trainer = trainers.MetricLossOnly(**kwargs)
        else:
            trainer = MetrixTrainer(mix_level=config.mix_level, keep_mixed_embeddings=True, **kwargs)
        logging.getLogger("PML").setLevel(logging.WARNING)
        if start_epoch <= config.epochs:
            trainer.train(start_epoch=start_epoch, num_epochs=config.epochs)
        return RunResult(config, self.history, self.output)

    def parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DDP in a process group (each process keeps its own BatchNorm statistics, as
        they normalise its share of the batch; rank 0's are evaluated and saved), else itself."""
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)

    def parallel_loss(self) -> torch.nn.Module:
        """The loss of the whole batch: in a process group, in PML's ``DistributedLossWrapper``."""
        return DistributedLossWrapper(self.loss) if self.world_size > 1 else self.loss

    def parallel_miner(self) -> torch.nn.Module:
        """The miner of the whole batch: in a process group, a DistributedMixupMiner of a
        MixupMiner, PML's DistributedMinerWrapper of another miner."""
        if self.world_size == 1:
            return self.miner
        return DistributedMixupMiner(self.miner) if isinstance(self.miner, MixupMiner) else DistributedMinerWrapper(self.miner)

    def end_of_epoch(self, trainer) -> bool:
        """Evaluate when due (rank 0; the other processes wait for its metrics), end the warm-up,
        checkpoint."""
        mixed = getattr(trainer, "mixed_embeddings_seen", [])
        if trainer.epoch % self.config.test_interval == 0 or trainer.epoch == self.config.epochs:
            metrics = None
            if self.rank == 0:
                metrics = self.evaluate(trainer.epoch, mixed_embeddings=torch.cat(mixed) if mixed else None)
            metrics = from_rank0(metrics)
            metrics["epoch"] = trainer.epoch
            self.history.append(metrics)
        mixed.clear()
        if trainer.epoch == self.config.warmup_epochs:  # the head's warm-up ends: train the trunk too
            trainer.freeze_these = ()
            for p in self.models["trunk"].parameters():
                p.requires_grad_(True)
            trainer.models["trunk"] = self.parallel(self.models["trunk"])
        if self.rank == 0:
            save_checkpoint(self.output / CHECKPOINT, self.state(trainer.epoch, trainer))
        return True


def _clipper(module: torch.nn.Module, max_norm: float):
    return lambda: torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)


def _numpy_state() -> Dict:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(pos), int(has_gauss), float(cached)]}


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


"""Everything a run is made of, built from its :class:`~pml_metrix.app.config.RunConfig`: datasets,
models, loss, miner, optimizers, sampler, and PML's trainer of them."""

import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Optional

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, trainers
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper
from torch.utils.data import Dataset

from . import models as model_zoo
from .config import LOSSES, ConfigError, RunConfig
from .datasets import get_dataset, has_label_sets, sampling_labels
from .. import losses as metrix_losses
from ..checks import check_keywords
from ..distributed import DistributedMixupMiner, get_world_size
from ..miners import MixupMiner
from ..samplers import DistributedMPerClassSampler
from ..trainers import MetrixTrainer

DEFAULT_BATCH_SIZE = 100  # batch_size none: this, or what the training classes fill


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # PML's samplers draw from numpy's global generator
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU. In a process group, CUDA without an index is
    the process's current device (under ``torchrun``, ``cuda:LOCAL_RANK``)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: this machine has no CUDA device torch can use; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name}: there are {torch.cuda.device_count()} CUDA devices; use cuda:0 ... or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name}: this machine has no MPS device torch can use; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is None and get_world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def load_dataset(config: RunConfig, split: str, evaluation: bool = False) -> Dataset:
    """Split ``split`` of the config's dataset, with its options; as scored with ``evaluation``
    (:func:`~pml_metrix.app.datasets.get_dataset`)."""
    options = dict(config.dataset_options)
    if config.image_size is not None:  # else each dataset's own default
        options["image_size"] = config.image_size
    try:
        return get_dataset(config.dataset, split, config.data_root, evaluation=evaluation, **options)
    except TypeError as error:  # an unknown option, or one of the wrong type
        raise ConfigError(
            f"dataset_options {options} do not fit the {config.dataset} reader ({error}); see pml_metrix.app.datasets.get_dataset"
        ) from None


def build_models(config: RunConfig, in_channels: int, download: bool = True) -> Dict[str, torch.nn.Module]:
    """``{"trunk": ..., "embedder": ...}``: a torchvision backbone with the paper's head, or the small CNN;
    without ``download``, a ``pretrained`` backbone built as one (its input's form) but without fetching
    the ImageNet weights, which a checkpoint's then replace."""
    if config.model == "small_cnn":
        return model_zoo.small_cnn(in_channels, config.embedding_size, config.model_width)
    return model_zoo.backbone(config.model, config.embedding_size, pretrained=config.pretrained and download,
                              in_channels=in_channels, imagenet_input=config.pretrained)


def build_loss(config: RunConfig, num_classes: int, label_sets: bool = False) -> torch.nn.Module:
    """The PML loss for a baseline run, its Metrix twin for a Metrix run; for label sets always the
    Metrix twin (PML's losses take one class per item), whose clean part is the soft loss over the
    batch's pairs, labelled by ``label_similarity`` (proxy anchor: a proxy per label, no pairs)."""
    _, pml_name, metrix_name = LOSSES[config.loss]
    kwargs = dict(config.loss_params, collect_stats=True)  # record-keeper logs the stats (e.g. clean_loss, mixed_loss)
    if label_sets:
        kwargs["label_similarity"] = config.label_similarity  # proxy anchor: a proxy per label, which has no use for it
    if config.distance != "default":
        kwargs["distance"] = {"cosine": distances.CosineSimilarity, "lp": distances.LpDistance}[config.distance]()
    if config.loss == "pa":
        kwargs.update(num_classes=num_classes, embedding_size=config.embedding_size)
    if config.mix_level != "none":
        kwargs["mix_weight"] = config.mix_weight
        if config.loss == "ms":
            kwargs["mixed_form"] = config.ms_mixed_form
    metrix = config.mix_level != "none" or label_sets
    loss_class = getattr(metrix_losses, metrix_name) if metrix else getattr(losses, pml_name)
    try:
        check_keywords(loss_class, kwargs)  # names the closest argument, where PML's base class names none
        return loss_class(**kwargs)
    except TypeError as error:  # an unknown key in loss_params
        raise ConfigError(f"loss_params do not fit the {config.loss} loss: {error}") from None


def build_miner(config: RunConfig, num_classes: int, label_sets: bool = False) -> Optional[torch.nn.Module]:
    """The clean-pair miner (multi-similarity's, as in the paper), wrapped in a MixupMiner under Metrix;
    both collect stats for record-keeper (pairs mined, mixes drawn). Proxy anchor and label sets
    have no clean-pair miner (PML's miners take one class per item); the MixupMiner draws the mixes
    of label sets by ``label_similarity``."""
    inner = None
    if config.miner_epsilon is not None and config.loss != "pa" and not label_sets:
        inner = miners.MultiSimilarityMiner(config.miner_epsilon, collect_stats=True)
    if config.mix_level == "none":
        return inner
    return MixupMiner(
        strategies=config.strategies,
        alpha=config.mix_alpha,
        num_mixes=config.num_mixes,
        inner_miner=inner,
        num_classes=num_classes if config.loss == "pa" else None,
        shown_to=config.shown_to,
        lam_per=config.lam_per,
        strategy_per_step=config.strategy_per_step,
        seed=config.seed,
        label_similarity=config.label_similarity,
        positive_threshold=config.positive_threshold,
        negative_threshold=config.negative_threshold,
        collect_stats=True,
    )


@dataclass
class Components:
    """What one process trains: the training set, the batch size of all processes together, models,
    loss, miner (``None`` without one), optimizers, learning-rate schedulers (PML's names:
    ``<model>_scheduler_by_epoch``) and the sampler of its share of each batch."""

    train_set: Dataset
    batch_size: int
    models: Dict[str, torch.nn.Module]
    loss: torch.nn.Module
    miner: Optional[torch.nn.Module]
    optimizers: Dict[str, torch.optim.Optimizer]
    lr_schedulers: Dict[str, torch.optim.lr_scheduler.LRScheduler]
    sampler: DistributedMPerClassSampler


def build(config: RunConfig, device: torch.device, rank: int = 0, world_size: int = 1, download: bool = True) -> Components:
    """Seed every generator with ``config.seed``, then build the run's components in a fixed order,
    so that one seed gives every variant the same initialisation and batches (``download``: see
    :func:`build_models`)."""
    seed_everything(config.seed)
    train_set = load_dataset(config, "train")
    label_sets = has_label_sets(train_set)
    num_classes = int(train_set.num_classes)
    batch_classes = int(sampling_labels(train_set).max()) + 1 if label_sets else num_classes
    batch_size = resolve_batch_size(config, batch_classes, world_size)
    check_batches(config, batch_size, batch_classes, world_size, len(train_set))
    models = {name: m.to(device) for name, m in build_models(config, train_set[0][0].shape[0], download).items()}
    loss = build_loss(config, num_classes, label_sets).to(device)
    optimizers = {
        f"{name}_optimizer": torch.optim.Adam(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        for name, m in models.items()
    }
    if config.loss == "pa":
        optimizers["metric_loss_optimizer"] = torch.optim.Adam(loss.parameters(), lr=config.lr * config.proxy_lr_multiplier)
    lr_schedulers = {}
    if config.lr_decay_step is not None:
        lr_schedulers = {
            f"{name.removesuffix('_optimizer')}_scheduler_by_epoch":
                torch.optim.lr_scheduler.StepLR(optimizer, config.lr_decay_step, config.lr_decay_gamma)
            for name, optimizer in optimizers.items()
        }
    sampler = DistributedMPerClassSampler(
        sampling_labels(train_set), config.samples_per_class, batch_size, len(train_set), rank, world_size
    )
    miner = build_miner(config, num_classes, label_sets)
    return Components(train_set, batch_size, models, loss, miner, optimizers, lr_schedulers, sampler)


def resolve_batch_size(config: RunConfig, num_classes: int, world_size: int) -> int:
    """``config.batch_size``; when none, ``DEFAULT_BATCH_SIZE`` or, where the training split has fewer
    classes than that needs, ``samples_per_class`` x its classes, in whole shares of the processes."""
    if config.batch_size is not None:
        return config.batch_size
    share = config.samples_per_class * world_size
    return max(share, min(DEFAULT_BATCH_SIZE, config.samples_per_class * num_classes) // share * share)


def check_batches(config: RunConfig, batch_size: int, num_classes: int, world_size: int, num_items: int) -> None:
    """Refuse batches the training split (``num_items`` items of ``num_classes`` classes) cannot fill,
    or that do not split into whole classes."""
    if num_classes < 2:
        raise ConfigError(
            f"the {config.dataset} training split has {num_classes} class: a metric loss needs at least 2 "
            "(no negative pair otherwise)"
        )
    if config.samples_per_class * num_classes < batch_size:
        raise ConfigError(
            f"batch_size {batch_size} needs {batch_size // config.samples_per_class} training classes "
            f"at samples_per_class {config.samples_per_class}, but the {config.dataset} training split has "
            f"{num_classes}: lower batch_size (or leave it out: none fits the split) or raise samples_per_class"
        )
    if num_items < batch_size:  # an epoch is len(train split) // batch_size batches (PML's sampler)
        raise ConfigError(
            f"the {config.dataset} training split has {num_items} items, fewer than one batch of {batch_size}: "
            "lower batch_size (or samples_per_class, when the batch size is left to the split), or give the split "
            "more items (dataset_options)"
        )
    if batch_size // config.samples_per_class < 2:
        raise ConfigError(
            f"batch_size {batch_size} at samples_per_class {config.samples_per_class} holds one class: no "
            "negative pair, nothing to learn; make batch_size at least 2 x samples_per_class"
        )
    share = config.samples_per_class * world_size
    if batch_size % share:
        raise ConfigError(
            f"batch_size {batch_size} (the whole batch of all {world_size} processes) does not split into "
            f"{world_size} shares of whole classes of samples_per_class {config.samples_per_class}: make it a "
            f"multiple of {share}"
        )


def build_trainer(config: RunConfig, parts: Components, device: torch.device, start_epoch: int,
                  end_of_iteration_hook: Optional[Callable], end_of_epoch_hook: Callable) -> trainers.MetricLossOnly:
    """PML's ``MetricLossOnly`` (a baseline) or a :class:`~pml_metrix.trainers.MetrixTrainer` of the
    run's components from ``start_epoch`` on (the trunk frozen during the warm-up), in DDP with the
    whole batch's loss and mining in a process group."""
    world_size = get_world_size()
    frozen = ("trunk",) if start_epoch <= config.warmup_epochs else ()
    loss, miner = parts.loss, parts.miner
    if world_size > 1:  # the loss and the mining of the whole batch
        loss = DistributedLossWrapper(loss)
        if miner is not None:
            miner = (DistributedMixupMiner if isinstance(miner, MixupMiner) else DistributedMinerWrapper)(miner)
    kwargs = dict(
        models={name: m if name in frozen else parallel(m, device) for name, m in parts.models.items()},
        optimizers=parts.optimizers, lr_schedulers=parts.lr_schedulers, batch_size=parts.batch_size // world_size,
        loss_funcs={"metric_loss": loss}, mining_funcs={} if miner is None else {"tuple_miner": miner},
        dataset=parts.train_set, sampler=parts.sampler, dataloader_num_workers=config.num_workers,
        data_device=device, freeze_trunk_batchnorm=config.freeze_bn, freeze_these=frozen,
        end_of_iteration_hook=end_of_iteration_hook, end_of_epoch_hook=end_of_epoch_hook,
        label_hierarchy_level="all" if has_label_sets(parts.train_set) else 0,  # label sets: every column, as one
    )
    if config.grad_clip is not None:
        kwargs["gradient_clippers"] = {
            f"{name}_grad_clipper": partial(torch.nn.utils.clip_grad_norm_, list(m.parameters()), config.grad_clip)
            for name, m in parts.models.items()
        }
    if config.mix_level == "none":
        return trainers.MetricLossOnly(**kwargs)
    return MetrixTrainer(mix_level=config.mix_level, keep_mixed_embeddings=True, **kwargs)


def end_warmup(trainer: trainers.MetricLossOnly, trunk: torch.nn.Module, device: torch.device) -> None:
    """The head's warm-up ends: the trunk trains too, from the next epoch on (in DDP in a process group)."""
    trainer.freeze_these = ()
    for p in trunk.parameters():
        p.requires_grad_(True)
    trainer.models["trunk"] = parallel(trunk, device)


def parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DDP in a process group (each process keeps its own BatchNorm statistics, as
    they normalise its share of the batch; rank 0's are evaluated and saved), else itself."""
    if get_world_size() == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)

"""One training run from a :class:`~pml_metrix.app.config.RunConfig`: PML's trainer and record-keeper,
selection of the best epoch on the validation split, one final read of the test split, a checkpoint
every epoch and exact resume; in one process, or in each process of a process group (e.g. under
``torchrun``), sharing every batch.

Files in the run's folder: ``config.yaml`` (resolved), ``checkpoint.pth`` (the last epoch),
``best.pth`` (the epoch of best validation Recall@1), ``results.json`` (every evaluation, the
selected epoch and its test metrics), ``logs/`` (record-keeper CSV and SQLite) and ``tensorboard/``.
"""

import json
import logging
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from pytorch_metric_learning import trainers
from pytorch_metric_learning.utils import logging_presets
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper

from .build import build, load_dataset, resolve_device
from .checkpoints import FORMAT, load_checkpoint, load_fitting, load_training_state, save_checkpoint, training_state
from .config import ConfigError, RunConfig
from ..distributed import DistributedMixupMiner, from_rank0, get_rank, get_world_size
from .evaluation import check_evaluations, collapsed, evaluate
from .files import metrics_from_json, write_json
from .reproducible import arithmetic_record, check_pinned
from ..miners import MixupMiner
from ..trainers import MetrixTrainer

CHECKPOINT, BEST, RESULTS = "checkpoint.pth", "best.pth", "results.json"
RUN_FILES = (CHECKPOINT, BEST, RESULTS, "config.yaml", "logs", "tensorboard")
SELECTION_METRIC = "recall_at_1"
# may differ on resume or eval
RESUMABLE_CHANGES = {"description", "epochs", "output", "num_workers", "data_root", "eval_batch_size", "test_interval", "patience"}
FINISHED_RUN_CHANGES = {"description", "output", "num_workers", "data_root", "eval_batch_size"}  # a finished run: reading


@dataclass
class RunResult:
    """What a run leaves.

    Attributes:
        history: the selection split's metrics after each evaluated epoch (with its ``epoch``).
        best_epoch: the epoch of best ``recall_at_1`` on the selection split (the last epoch
            without selection).
        final: the evaluation split's metrics of that epoch's model: the one read of the test split.
        final_with_mixes: whether ``final``'s utilization counts that epoch's mixed embeddings beside
            the training set's (a resumed run no longer holds those of an epoch before the resume).
        arithmetic: what decided the arithmetic of the process that finished the run
            (:func:`~pml_metrix.app.reproducible.arithmetic_record`: pinned or not, instruction sets,
            threads, processor); empty for a run written before it was recorded.
    """

    config: RunConfig
    history: List[Dict[str, float]]
    best_epoch: int
    final: Dict[str, float]
    output: Path
    final_with_mixes: bool = False
    arithmetic: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "selection": {"split": self.config.select_split, "metric": SELECTION_METRIC, "best_epoch": self.best_epoch},
            "history": self.history,
            "final": {"split": self.config.eval_split, "reference": self.config.eval_reference, "metrics": self.final,
                      "utilization_with_mixed_embeddings": self.final_with_mixes, "collapsed": collapsed(self.final)},
            "arithmetic": self.arithmetic,
        }

    @classmethod
    def load(cls, output: Path) -> "RunResult":
        """The result a finished run wrote into ``output/results.json``."""
        saved = json.loads((Path(output) / RESULTS).read_text())
        final = saved["final"]
        return cls(RunConfig(**saved["config"]), [metrics_from_json(m) for m in saved["history"]],
                   saved["selection"]["best_epoch"], metrics_from_json(final["metrics"]), Path(output),
                   final["utilization_with_mixed_embeddings"], saved.get("arithmetic", {}))


class Run:
    """A training run: builds its components from the config (:func:`~pml_metrix.app.build.build`),
    trains with PML's trainer, evaluates the selection split every ``test_interval`` epochs (and
    after the last), keeps the best epoch's checkpoint, then evaluates that model on the evaluation
    split once.

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
        if config.reproducible:
            if self.device.type != "cpu":
                raise ConfigError(f"the reproducible mode pins the CPU's arithmetic, and this run would train on "
                                  f"{self.device}: give --device cpu, or --no-reproducible")
            check_pinned()  # pin() set it when the command started: refused, never run unpinned, if not
        if config.deterministic:  # e.g. CPU index backward accumulates in thread order otherwise
            torch.use_deterministic_algorithms(True)
        self.parts = build(config, self.device, self.rank, self.world_size)
        self.datasets = {"train": self.parts.train_set}
        for split in {config.select_split, config.eval_split, config.eval_reference} - {None, "none"}:
            self.datasets[split] = load_dataset(config, split)  # loaded, not read: its items are read when evaluated
        check_evaluations(config, self.datasets)
        if self.world_size > 1:  # DistributedLossWrapper gives the loss's parameters world_size x their gradient
            for p in self.parts.loss.parameters():
                p.register_hook(lambda grad: grad / self.world_size)
        self.history: List[Dict[str, float]] = []
        self.last_epoch = 0
        self.best_mixed_embeddings: Optional[torch.Tensor] = None  # the best epoch's mixes, for utilization
        self.record_keeper = self.hooks = None

    @property
    def models(self) -> Dict[str, torch.nn.Module]:
        return self.parts.models

    def evaluate(
        self,
        split: str,
        epoch: int,
        reference: Optional[str] = None,
        trunk: Optional[torch.nn.Module] = None,
        embedder: Optional[torch.nn.Module] = None,
        mixed_embeddings: Optional[torch.Tensor] = None,
    ) -> Dict[str, float]:
        """:func:`~pml_metrix.app.evaluation.evaluate` of the run's model (or ``trunk`` and ``embedder``)
        on ``split`` against ``reference`` (itself by default), logged to the run's record-keeper."""
        for name in (split, reference):
            if name is not None and name not in self.datasets:
                self.datasets[name] = load_dataset(self.config, name)
        return evaluate(
            self.config, self.datasets, split, reference, epoch,
            self.models["trunk"] if trunk is None else trunk,
            self.models["embedder"] if embedder is None else embedder,
            self.device, mixed_embeddings, self.hooks and self.hooks.end_of_testing_hook,
        )

    def train(self, resume: bool = False, overwrite: bool = False) -> RunResult:
        """Train for ``config.epochs`` (from the saved epoch on with ``resume``), then evaluate the
        best epoch's model on the evaluation split. A folder that holds a run is refused unless
        ``resume`` (continue it) or ``overwrite`` (replace it)."""
        config = self.config
        start_epoch = 1
        if resume:  # restore (and check the settings) before anything in the folder is written
            if not (self.output / CHECKPOINT).is_file():
                raise ConfigError(f"nothing to resume in {self.output}: no epoch finished (no {CHECKPOINT}); "
                                  "start the run again with --overwrite")
            finished = self.finished_result()
            if finished is not None:  # read back, not tested again
                return finished
            start_epoch = self.restore(load_checkpoint(self.output / CHECKPOINT)) + 1
        else:  # rank 0 decides, every process raises alike (a lone raise would leave the others waiting)
            refusal = from_rank0(self.claim_output(overwrite) if self.rank == 0 else None)
            if refusal:
                raise ConfigError(refusal)
        if self.rank == 0:
            config.save(self.output / "config.yaml")  # makes the folder
            self.record_keeper, _, _ = logging_presets.get_record_keeper(
                str(self.output / "logs"), str(self.output / "tensorboard")
            )
            self.hooks = logging_presets.get_hook_container(self.record_keeper, primary_metric=SELECTION_METRIC)
        evaluated_last = bool(self.history) and self.history[-1]["epoch"] == start_epoch - 1
        if start_epoch <= config.epochs and not (evaluated_last and self.stopped_early(start_epoch - 1)):
            logging.getLogger("PML").setLevel(logging.WARNING)
            self.trainer(start_epoch).train(start_epoch=start_epoch, num_epochs=config.epochs)
        return self.finish()

    def claim_output(self, overwrite: bool) -> Optional[str]:
        """Why the folder may not take this run (it holds a run's files, and not ``overwrite``), or
        ``None``; with ``overwrite`` the files are removed."""
        present = [name for name in RUN_FILES if (self.output / name).exists()]
        if present and not overwrite:
            return (f"{self.output} holds a run ({', '.join(present)}): continue it with --resume, replace it with "
                    "--overwrite, or choose another --output")
        for name in present:
            path = self.output / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return None

    def finished_result(self) -> Optional[RunResult]:
        """The result of a run that ended in this folder, when resuming it has nothing to train: the
        same settings (but for where files are) and ``epochs``. Another ``patience`` or
        ``test_interval``, or fewer ``epochs``, would have ended it elsewhere: refused. More
        ``epochs``: ``None``, the run continues."""
        if not (self.output / RESULTS).is_file():
            return None
        saved = RunResult.load(self.output)
        if self.config.epochs > saved.config.epochs:
            return None  # more epochs: continue from the checkpoint (restore checks the other settings)
        changed = sorted(name for name, value in saved.config.to_dict().items()
                         if name not in FINISHED_RUN_CHANGES | {"epochs"} and self.config.to_dict()[name] != value)
        if changed or self.config.epochs < saved.config.epochs:
            raise ConfigError(
                f"the run in {self.output} has ended with other settings ({', '.join(changed) or 'epochs'}): "
                "only more epochs continue it; start it again with --overwrite"
            )
        return saved

    def trainer(self, start_epoch: int) -> trainers.MetricLossOnly:
        """PML's ``MetricLossOnly`` (a baseline) or a :class:`~pml_metrix.trainers.MetrixTrainer`."""
        config, parts = self.config, self.parts
        frozen = ("trunk",) if start_epoch <= config.warmup_epochs else ()
        loss, miner = parts.loss, parts.miner
        if self.world_size > 1:  # the loss and the mining of the whole batch
            loss = DistributedLossWrapper(loss)
            if miner is not None:
                miner = (DistributedMixupMiner if isinstance(miner, MixupMiner) else DistributedMinerWrapper)(miner)
        kwargs = dict(
            models={name: m if name in frozen else self.parallel(m) for name, m in self.models.items()},
            optimizers=parts.optimizers,
            lr_schedulers=parts.lr_schedulers,
            batch_size=parts.batch_size // self.world_size,
            loss_funcs={"metric_loss": loss},
            mining_funcs={} if miner is None else {"tuple_miner": miner},
            dataset=parts.train_set,
            sampler=parts.sampler,
            dataloader_num_workers=config.num_workers,
            data_device=self.device,
            freeze_trunk_batchnorm=config.freeze_bn,
            freeze_these=frozen,
            end_of_iteration_hook=self.hooks and self.hooks.end_of_iteration_hook,
            end_of_epoch_hook=self.end_of_epoch,
        )
        if config.grad_clip is not None:
            kwargs["gradient_clippers"] = {
                f"{name}_grad_clipper": partial(torch.nn.utils.clip_grad_norm_, list(m.parameters()), config.grad_clip)
                for name, m in self.models.items()
            }
        if config.mix_level == "none":
            return trainers.MetricLossOnly(**kwargs)
        return MetrixTrainer(mix_level=config.mix_level, keep_mixed_embeddings=True, **kwargs)

    def end_of_epoch(self, trainer) -> bool:
        """Evaluate the selection split when due (rank 0; the others wait for its metrics), keep the
        best epoch, end the warm-up, checkpoint; False (stop) once ``patience`` runs out."""
        config, epoch = self.config, trainer.epoch
        mixed = getattr(trainer, "mixed_embeddings_seen", [])
        mixed_embeddings = torch.cat(mixed) if mixed and self.rank == 0 else None  # utilization: rank 0's job
        mixed.clear()
        if config.select_split == "none":  # the last epoch is the one tested
            self.best_mixed_embeddings = mixed_embeddings
        is_best = evaluated = False
        if config.select_split != "none" and (epoch % config.test_interval == 0 or epoch == config.epochs):
            evaluated = True
            metrics = None
            if self.rank == 0:
                metrics = self.evaluate(config.select_split, epoch, mixed_embeddings=mixed_embeddings)
            self.history.append({**from_rank0(metrics), "epoch": epoch})
            is_best = self.best_epoch() == epoch
            if is_best:
                self.best_mixed_embeddings = mixed_embeddings
        self.last_epoch = epoch
        if epoch == config.warmup_epochs:  # the head's warm-up ends: train the trunk too
            trainer.freeze_these = ()
            for p in self.models["trunk"].parameters():
                p.requires_grad_(True)
            trainer.models["trunk"] = self.parallel(self.models["trunk"])
        if self.rank == 0:
            state = self.state(epoch)
            if is_best:  # first: checkpoint.pth, whose history names this epoch best, is the commit point
                save_checkpoint(self.output / BEST, state)
            save_checkpoint(self.output / CHECKPOINT, state)
            self.record_keeper.save_records()
        return not (evaluated and self.stopped_early(epoch))

    def best_epoch(self) -> Optional[int]:
        """The evaluated epoch of best selection metric (the first of ties); ``None`` before any."""
        if not self.history:
            return None
        return max(self.history, key=lambda metrics: metrics[SELECTION_METRIC])["epoch"]  # max keeps the first

    def stopped_early(self, epoch: int) -> bool:
        """Whether ``patience`` epochs have passed since the best one at the evaluated ``epoch``, as
        PML's ``HookContainer`` counts at its evaluations."""
        best = self.best_epoch()
        return self.config.patience is not None and best is not None and epoch - best > self.config.patience

    def finish(self) -> RunResult:
        """Load the selected epoch's model and evaluate it on the evaluation split (rank 0), once;
        write ``results.json``."""
        config = self.config
        best_epoch = self.last_epoch if config.select_split == "none" else self.best_epoch()
        final = None
        if self.rank == 0:
            if best_epoch != self.last_epoch:
                best = load_checkpoint(self.output / BEST)
                if best["epoch"] != best_epoch:
                    raise ValueError(f"{self.output / BEST} holds epoch {best['epoch']}, not the best one, {best_epoch}: "
                                     "it was not written whole; start the run again with --overwrite")
                self.load_weights(best)
            final = self.evaluate(
                config.eval_split, best_epoch, config.eval_reference, mixed_embeddings=self.best_mixed_embeddings
            )
        with_mixes = self.best_mixed_embeddings is not None
        result = RunResult(config, self.history, best_epoch, from_rank0(final), self.output, with_mixes, arithmetic_record())
        if self.rank == 0:
            write_json(self.output / RESULTS, result.to_dict())
            self.record_keeper.save_records()
        return result

    def state(self, epoch: int) -> Dict:
        return {"epoch": epoch, "config": self.config.to_dict(), "history": self.history, **training_state(self.parts)}

    def load_weights(self, state: Dict) -> None:
        """Load a checkpoint's model weights (trunk and embedder) only."""
        for name, m in self.models.items():
            load_fitting(m, state["models"], name)

    def restore(self, state: Dict) -> int:
        """Load a checkpoint's training state and history, after checking that it was trained with
        this config (but for the settings a resume may change); returns its epoch."""
        if state["format"] != FORMAT:
            raise ConfigError(
                f"the checkpoint was written by an older pml_metrix ({state['format']}): evaluate it with pml-metrix eval, "
                "but start a new run rather than resuming it"
            )
        changed = sorted(
            name for name, value in state["config"].items()
            if name not in RESUMABLE_CHANGES and self.config.to_dict().get(name) != value
        )
        if changed:
            raise ConfigError(
                f"the checkpoint was trained with other settings ({', '.join(changed)}): resume with its config.yaml"
            )
        load_training_state(self.parts, state)
        self.history = list(state["history"])
        self.last_epoch = int(state["epoch"])
        return self.last_epoch

    def parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DDP in a process group (each process keeps its own BatchNorm statistics, as
        they normalise its share of the batch; rank 0's are evaluated and saved), else itself."""
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)

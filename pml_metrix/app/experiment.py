"""One training run from a :class:`~pml_metrix.app.config.RunConfig`: PML's trainer and record-keeper,
selection of the best epoch on the validation split (:class:`~pml_metrix.app.selection.Selection`),
one final read of the test split, a checkpoint every epoch and exact resume (the run's folder:
:class:`~pml_metrix.app.run_folder.RunFolder`); in one process, or in each process of a process group
(e.g. under ``torchrun``), sharing every batch.
"""

import logging
from typing import Dict, List, Optional

import torch
from pytorch_metric_learning.utils import logging_presets

from .build import build, build_trainer, end_warmup, load_dataset, resolve_device
from .checkpoints import load_model_state, load_training_state, training_state
from .config import ConfigError, RunConfig
from ..distributed import from_rank0, get_rank, get_world_size
from .evaluation import check_evaluations, evaluate
from .reproducible import arithmetic_record, set_arithmetic, with_this_process
from .run_folder import CONFIG, RunFolder, RunResult, data_fingerprints, evaluation_fingerprints
from .selection import Selection


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

    def __init__(self, config: RunConfig, download: bool = True):  # download: see build_models
        self.config, self.folder, self.selection = config, RunFolder(config.output), Selection(config)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.device = resolve_device(config.device)
        set_arithmetic(config, self.device)
        self.parts = build(config, self.device, self.rank, self.world_size, download)
        self.datasets = {"train": load_dataset(config, "train", evaluation=True)}  # scored as val and test are
        for split in {config.select_split, config.eval_split, config.eval_reference} - {None, "none", "train"}:
            self.datasets[split] = load_dataset(config, split)  # loaded, not read: its items are read when evaluated
        check_evaluations(config, self.datasets)
        if self.world_size > 1:  # DistributedLossWrapper gives the loss's parameters world_size x their gradient
            for p in self.parts.loss.parameters():
                p.register_hook(lambda grad: grad / self.world_size)
        self.fingerprints = data_fingerprints(config, self.parts.train_set, self.datasets)
        self.last_epoch = 0
        self.mixes_drawn: Optional[int] = None if config.mix_level == "none" else 0  # over the run, counted by rank 0
        self.best_mixed_embeddings: Optional[torch.Tensor] = None  # the best epoch's mixes, for utilization
        self.trained_under: Optional[List[Dict]] = []  # the arithmetic records of the processes that trained it
        self.record_keeper = self.hooks = None

    def evaluate(self, split: str, epoch: int, reference: Optional[str] = None, trunk: Optional[torch.nn.Module] = None,
                 embedder: Optional[torch.nn.Module] = None, mixed_embeddings: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """:func:`~pml_metrix.app.evaluation.evaluate` of the run's model (or ``trunk`` and ``embedder``)
        on ``split`` against ``reference`` (itself by default), logged to the run's record-keeper."""
        for name in (split, reference):
            if name is not None and name not in self.datasets:
                self.datasets[name] = load_dataset(self.config, name)
        trunk, embedder = (self.parts.models[name] if m is None else m for name, m in (("trunk", trunk), ("embedder", embedder)))
        return evaluate(self.config, self.datasets, split, reference, epoch, trunk, embedder, self.device,
                        mixed_embeddings, self.hooks and self.hooks.end_of_testing_hook)

    def train(self, resume: bool = False, overwrite: bool = False) -> RunResult:
        """Train for ``config.epochs`` (from the saved epoch on with ``resume``; a run that has ended
        is read back, its best epoch's state loaded, or, asked for another evaluation split, not
        trained further), then evaluate the best epoch's model on the evaluation split. A folder that holds a run is refused unless ``resume`` (continue it) or
        ``overwrite`` (replace it), and so is one that another process is writing."""
        with self.folder.locked(self.rank):
            if resume:  # restore (and check the settings) before anything in the folder is written
                state, ended = self.folder.resume(self.config, self.fingerprints, self.rank == 0,
                                                  lambda: evaluation_fingerprints(self.config, self.datasets))
                if ended is not None:  # read back, not tested again
                    load_model_state(self.parts, state if ended.best_epoch == state["epoch"] else
                                     self.folder.best_state(ended.best_epoch, state["history"]))
                    return ended
                load_training_state(self.parts, state)
                self.selection.history, self.last_epoch = list(state["history"]), int(state["epoch"])
                self.trained_under = state.get("arithmetic")  # None: a checkpoint that did not record it
                self.mixes_drawn = state.get("mixes_drawn")  # None: a checkpoint that did not count them
            else:  # rank 0 decides, every process raises alike (a lone raise would leave the others waiting)
                refusal = from_rank0(self.folder.claim(overwrite) if self.rank == 0 else None)
                if refusal:
                    raise ConfigError(refusal)
            if self.rank == 0:
                self.config.save(self.folder.path / CONFIG)
                self.record_keeper, _, _ = logging_presets.get_record_keeper(
                    str(self.folder.path / "logs"), str(self.folder.path / "tensorboard"))
                self.hooks = logging_presets.get_hook_container(self.record_keeper, primary_metric=self.config.select_metric)
            last = self.last_epoch  # resumed with fewer epochs, up to one not evaluated then (it was not the last)
            if last == self.config.epochs and self.selection.due(last) and not self.selection.evaluated(last):
                is_best = self.select(last)
                if self.rank == 0:
                    self.folder.save_epoch(self.state(last), is_best, self.record_keeper)
            if self.last_epoch < self.config.epochs and not self.selection.stopped(self.last_epoch):
                logging.getLogger("PML").setLevel(logging.WARNING)
                self.trained_under = with_this_process(self.trained_under, self.device)
                trainer = build_trainer(self.config, self.parts, self.device, self.last_epoch + 1,
                                        self.hooks and self.hooks.end_of_iteration_hook, self.end_of_epoch)
                trainer.train(start_epoch=self.last_epoch + 1, num_epochs=self.config.epochs)
            return self.finish()

    def end_of_epoch(self, trainer) -> bool:
        """Evaluate the selection split when due (rank 0; the others wait for its metrics), keep the
        best epoch, end the warm-up, checkpoint; False (stop) once ``patience`` runs out."""
        epoch, mixed = trainer.epoch, getattr(trainer, "mixed_embeddings_seen", [])
        mixed_embeddings = torch.cat(mixed) if mixed and self.rank == 0 else None  # utilization: rank 0's job
        if self.mixes_drawn is not None and mixed_embeddings is not None:
            self.mixes_drawn += len(mixed_embeddings)
        mixed.clear()
        is_best = self.selection.due(epoch) and self.select(epoch, mixed_embeddings)
        if is_best or self.config.select_split == "none":  # without selection, the last epoch is the one tested
            self.best_mixed_embeddings = mixed_embeddings
        self.last_epoch = epoch
        if epoch == self.config.warmup_epochs:
            end_warmup(trainer, self.parts.models["trunk"], self.device)
        if self.rank == 0:
            self.folder.save_epoch(self.state(epoch), is_best, self.record_keeper)
        return not self.selection.stopped(epoch)

    def select(self, epoch: int, mixed_embeddings: Optional[torch.Tensor] = None) -> bool:
        """Evaluate the selection split after ``epoch`` (rank 0; the others wait for its metrics) and
        record it; whether ``epoch`` is the best so far."""
        metrics = self.evaluate(self.config.select_split, epoch, mixed_embeddings=mixed_embeddings) if self.rank == 0 else None
        return self.selection.add(from_rank0(metrics), epoch)

    def finish(self) -> RunResult:
        """Load the selected epoch's model and loss (e.g. proxies) and evaluate it on the evaluation
        split (rank 0), once, and on the training split (how much it overfits the training classes);
        write ``results.json``."""
        best_epoch, final, train = self.selection.picked(self.last_epoch), None, None
        if self.rank == 0:
            if best_epoch != self.last_epoch:
                load_model_state(self.parts, self.folder.best_state(best_epoch, self.selection.history))
            final = self.evaluate(self.config.eval_split, best_epoch, self.config.eval_reference,
                                  mixed_embeddings=self.best_mixed_embeddings)
            train = self.evaluate("train", best_epoch)
        result = RunResult(self.config, self.selection.history, best_epoch, from_rank0(final), self.folder.path,
                           self.best_mixed_embeddings is not None, arithmetic_record(self.device), from_rank0(train),
                           from_rank0(self.mixes_drawn), self.trained_under or [], evaluation_fingerprints(self.config, self.datasets))
        if self.rank == 0:
            self.folder.save_result(result, self.record_keeper)
        return result

    def state(self, epoch: int) -> Dict:
        return {"epoch": epoch, "config": self.config.to_dict(), "history": self.selection.history,
                **self.fingerprints, "mixes_drawn": self.mixes_drawn, "arithmetic": self.trained_under,
                **training_state(self.parts)}

"""The folder of one training run, shared by ``pml-metrix train`` and ``compare``: its files, the lock
that keeps a second process out, and the one rule for "is this the same run?".

Files: ``config.yaml`` (resolved), ``checkpoint.pth`` (the last epoch), ``best.pth`` (the epoch of best
validation Recall@1), ``results.json`` (every evaluation, the selected epoch and its test metrics),
``logs/`` (record-keeper CSV and SQLite), ``tensorboard/``, ``.lock``, and ``eval/`` where ``pml-metrix eval``
scored one of its checkpoints (removed with the run's other files when it is replaced).

Each file is written atomically, in one order whose every kill point leaves a run that resumes to
the result of an uninterrupted one: at the end of an epoch ``checkpoint.pth`` (the commit point: its
history names the best epoch), then ``best.pth`` if that epoch is the best (so the previous best model
stays until its replacement is committed; a resume rewrites ``best.pth`` from a checkpoint that is the
best and was not copied yet), then the logs; at the end ``results.json`` (a finished run), then the
logs. A checkpoint of a continued run removes ``results.json`` first: a results file always belongs to
the checkpoint beside it. The logs (record-keeper's CSV and SQLite, and tensorboard's) are appended,
not replaced: after a kill between an epoch's checkpoint and its logs they lack that epoch's rows, and
after a kill within an epoch tensorboard holds the steps trained again twice.
"""

import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.data import Dataset

from .checkpoints import FORMAT, load_checkpoint, save_checkpoint
from .config import MIXING_OPTIONS, ConfigError, RunConfig, load_config, shown
from .evaluation import collapsed
from .files import metrics_from_json, out_of_space, strict_json, write_json
from .selection import Selection
from ..distributed import from_rank0

CHECKPOINT, BEST, RESULTS, CONFIG, LOCK = "checkpoint.pth", "best.pth", "results.json", "config.yaml", ".lock"
# results first: a half-removed run is unfinished; eval/ holds pml-metrix eval's scores of this run's checkpoints
RUN_FILES = (RESULTS, CHECKPOINT, BEST, CONFIG, "logs", "tensorboard", "eval")
# settings that say where a run's files and data are and how fast it goes: they never change its result
# (not num_workers: DataLoader workers draw a run's random transforms from their own seeds, and their
# seeds from the global generator)
PLACE = frozenset({"description", "output", "device", "data_root", "eval_batch_size"})
# settings that say how long it trains: a resumed run continues under new ones; an ended run only with more epochs
SCHEDULE = frozenset({"epochs", "test_interval", "patience"})
# settings that say where the picked model is evaluated once training has ended: a resumed run takes new ones,
# and an ended run is evaluated again on them (a study's final rows on test, from runs that selected on val)
EVALUATION = frozenset({"eval_split", "eval_reference"})
FINGERPRINT_ITEMS = 16


def data_fingerprint(dataset: Dataset, items: int = FINGERPRINT_ITEMS) -> str:
    """A SHA-256 (hex) of a split: its size, number of classes, labels, and ``items`` evenly spaced
    items' bytes, read under a fixed torch seed (so that a random training transform gives the same
    bytes each time; the global generators are left as they were). The reader's options are the
    run's config; this is what its files hold."""
    digest = torch.tensor([len(dataset), int(dataset.num_classes)]).numpy().tobytes()
    digest += dataset.labels.to(torch.int64).numpy().tobytes()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for index in torch.linspace(0, len(dataset) - 1, min(items, len(dataset))).long().unique().tolist():
            digest += dataset[index][0].contiguous().numpy().tobytes()
    return hashlib.sha256(digest).hexdigest()


def data_fingerprints(config: RunConfig, train_set: Dataset, datasets: Dict[str, Dataset]) -> Dict[str, str]:
    """What a checkpoint records of its run's data, by the key it is saved under: ``train_data``, the
    :func:`data_fingerprint` of the training split as trained on (``train_set``), and ``select_data``,
    the selection split's (whose scores pick the epoch), when the run selects. ``datasets`` maps split
    names to the splits."""
    fingerprints = {"train_data": data_fingerprint(train_set)}
    if config.select_split != "none":
        fingerprints["select_data"] = data_fingerprint(datasets[config.select_split])
    return fingerprints


def evaluation_fingerprints(config: RunConfig, datasets: Dict[str, Dataset]) -> Dict[str, str]:
    """The :func:`data_fingerprint` of each split the picked model is evaluated on (``eval_split``
    and ``eval_reference``), by split name: what ``results.json`` records of its final scores' data.
    Read once training has ended, as the evaluation split is."""
    splits = [config.eval_split] + ([config.eval_reference] if config.eval_reference else [])
    return {split: data_fingerprint(datasets[split]) for split in splits}


def comparable(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``history`` with NaN as ``None``: equal histories compare equal (NaN is no number's equal, and
    a results file may write it as null)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()} for m in history]


@dataclass
class RunResult:
    """What a run leaves.

    Attributes:
        history: the selection split's metrics after each evaluated epoch (with its ``epoch``).
        best_epoch: the epoch of best ``recall_at_1`` on the selection split (the last epoch
            without selection).
        final: the evaluation split's metrics of that epoch's model: the one read of the test split.
        eval_data: the :func:`evaluation_fingerprints` of the data ``final`` was measured on; empty for
            a run written before they were recorded.
        final_with_mixes: whether ``final``'s utilization counts that epoch's mixed embeddings beside
            the training set's (a resumed run no longer holds those of an epoch before the resume).
        train_metrics: the training split's metrics of that epoch's model (queries against the training
            split itself), beside the selection split's: how much the model overfits its training
            classes; empty for a run written before it was recorded.
        mixes_drawn: how many mixes the miner drew over the whole run (all processes' under torchrun);
            0 for a Metrix run that trained as its baseline (no anchor had the pairs its strategies
            draw); ``None`` without mixing, or for a run whose checkpoints did not count them.
        arithmetic: what decided the arithmetic of the process that finished the run
            (:func:`~pml_metrix.app.reproducible.arithmetic_record`: pinned or not, instruction sets,
            threads, versions, processor); empty for a run written before it was recorded.
        trained_under: the arithmetic records of the processes that trained its epochs, in order (one
            per change: several for a run resumed under other arithmetic); empty for a run whose
            first epochs were trained before they were recorded (unknown).
    """

    config: RunConfig
    history: List[Dict[str, float]]
    best_epoch: int
    final: Dict[str, float]
    output: Path
    final_with_mixes: bool = False
    arithmetic: Dict[str, Any] = field(default_factory=dict)
    train_metrics: Dict[str, float] = field(default_factory=dict)
    mixes_drawn: Optional[int] = None
    trained_under: List[Dict[str, Any]] = field(default_factory=list)
    eval_data: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """What results.json holds, with ``digest`` (:func:`results_digest`) of the rest, so that a
        hand edit or damage is found when the run is read back."""
        body = {
            "config": self.config.to_dict(),
            "selection": {"split": self.config.select_split, "metric": self.config.select_metric, "best_epoch": self.best_epoch},
            "history": self.history,
            "final": {"split": self.config.eval_split, "reference": self.config.eval_reference, "metrics": self.final,
                      "utilization_with_mixed_embeddings": self.final_with_mixes, "collapsed": collapsed(self.final),
                      "data": self.eval_data},
            "train": {"metrics": self.train_metrics},
            "mixes_drawn": self.mixes_drawn,
            "arithmetic": self.arithmetic,
            "trained_under": self.trained_under,
        }
        return {**body, "digest": results_digest(strict_json(body))}

    @classmethod
    def load(cls, output: Path) -> "RunResult":
        """The result a finished run wrote into ``output/results.json``; a ValueError of one line when
        the file is not one (damaged, or edited into another shape)."""
        path = Path(output) / RESULTS
        try:
            saved = json.loads(path.read_text())
            if "digest" in saved and results_digest({k: v for k, v in saved.items() if k != "digest"}) != saved["digest"]:
                raise ValueError("its digest does not match what it holds")
            final = saved["final"]
            config = RunConfig(**saved["config"])
            history = [metrics_from_json(metrics) for metrics in saved["history"]]
            metric = config.select_metric
            if not all(isinstance(m.get("epoch"), int) and isinstance(m.get(metric), float) for m in history):
                raise ValueError(f"a history entry without an integer epoch or a {metric}")
            result = cls(config, history, saved["selection"]["best_epoch"],
                         metrics_from_json(final["metrics"]), Path(output), final["utilization_with_mixed_embeddings"],
                         saved.get("arithmetic", {}), metrics_from_json(saved.get("train", {}).get("metrics", {})),
                         saved.get("mixes_drawn"), saved.get("trained_under", []), final.get("data", {}))
            drawn = result.mixes_drawn
            if drawn is not None and (isinstance(drawn, bool) or not isinstance(drawn, int) or drawn < 0):
                raise ValueError(f"mixes_drawn {drawn!r} is not a count")
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSON, shape, config: ConfigError too
            reason = f"no {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
            raise ValueError(f"{path} is not a results file of pml_metrix ({reason}): it was damaged or edited; "
                             "delete it to finish the run again from its checkpoint (--resume)") from None
        return result


def results_digest(body: Dict[str, Any]) -> str:
    """SHA-256 of a results.json's contents as strict JSON (keys sorted): written with them, checked
    when they are read back. A results.json of an older pml_metrix has none and is read as it is."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


class RunFolder:
    """The folder ``path`` of one run: claimed, locked, resumed, written in the module's order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_file = None

    def started(self) -> bool:
        """Whether an epoch of a run finished here (its checkpoint is written)."""
        return (self.path / CHECKPOINT).is_file()

    def lock(self, remedy: str = "wait until it ends, or choose another --output") -> Optional[str]:
        """Take the folder's lock (``fcntl.flock`` on ``.lock``, which the OS releases when the process
        ends, however it ends); why not, when another process holds it, with ``remedy``."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            handle.close()
            return f"{self.path} is in use by another pml-metrix run ({holder}): {remedy}"
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self.lock_file = handle
        return None

    def unlock(self) -> None:
        if self.lock_file is not None:
            self.lock_file.close()  # releases the lock
            self.lock_file = None

    def locked(self, rank: int = 0, **remedy: str) -> "RunFolder":
        """The folder, locked by rank 0 (every process of a group raises alike when it is refused,
        with :meth:`lock`'s ``remedy``); a context manager that unlocks it."""
        refusal = from_rank0(self.lock(**remedy) if rank == 0 else None)
        if refusal:
            raise ConfigError(refusal)
        return self

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.unlock()

    def claim(self, overwrite: bool) -> Optional[str]:
        """Why the folder may not take a new run (it holds a run's files, and not ``overwrite``; or files
        of those names that are not a training run's), or ``None``; with ``overwrite`` a run's files are
        removed (``results.json`` first)."""
        present = [name for name in RUN_FILES if (self.path / name).exists()]
        if present and not overwrite and not self.started():
            return (f"{self.path} holds a run that finished no epoch ({', '.join(present)}, no {CHECKPOINT} to resume "
                    "from): start it again with --overwrite, or choose another --output")
        if present and not overwrite:
            return (f"{self.path} holds a run ({', '.join(present)}): continue it with --resume, replace it with "
                    "--overwrite, or choose another --output")
        if present and not self.holds_a_run():
            return (f"{self.path} holds {', '.join(present)} but no training run of pml_metrix (neither a readable "
                    f"{CHECKPOINT} of one nor a {CONFIG} of a run's settings: a study's folder, or another program's "
                    "files?): --overwrite replaces only a run's files; choose another --output, or remove them yourself")
        for name in present:
            path = self.path / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return None

    def holds_a_run(self) -> bool:
        """Whether the folder's files are a training run's: its checkpoint (a pml_metrix checkpoint), or,
        before the first epoch ends, a ``config.yaml`` of a run's settings (a run writes it first)."""
        try:
            load_checkpoint(self.path / CHECKPOINT)
            return True
        except (FileNotFoundError, ValueError):  # none, another program's, or damaged: the config may say
            pass
        try:
            load_config(str(self.path / CONFIG))
        except (ConfigError, OSError):
            return False
        return True

    def resume(self, config: RunConfig, fingerprints: Dict[str, str], writer: bool,
               evaluation_data: Callable[[], Dict[str, str]]) -> Tuple[Dict[str, Any], Optional[RunResult]]:
        """The checkpoint to continue ``config``'s run from, and its result when it has ended with
        ``config``'s epochs and was evaluated where ``config`` says, on the same data
        (``evaluation_data()``: :func:`evaluation_fingerprints`, computed only for a run that has ended)
        (nothing to train or evaluate: read back; an ended run asked for another ``EVALUATION``, or
        whose evaluation data changed, gets ``None``, trains no further and is evaluated again), after checking that the folder holds this run
        (:meth:`check_same_run`) on the same data (``fingerprints``, :func:`data_fingerprints`; a
        checkpoint written before one of them was recorded is not checked for it), its files whole and
        agreeing. ``writer`` (rank 0) completes a
        ``best.pth`` that a kill left one epoch behind the checkpoint of a run that goes on."""
        state, result, ended = self.resumable(config)
        for key, what in (("train_data", "trained on other data (its training split's"),
                          ("select_data", f"selected on other data (its {config.select_split} split's")):
            if state.get(key, fingerprints.get(key)) != fingerprints.get(key):
                raise ConfigError(
                    f"the run in {self.path} was {what} fingerprint differs: files changed under data_root, or "
                    "another reader): point data_root at its data, or start it again with --overwrite"
                )
        if state["epoch"] > config.epochs:
            raise ConfigError(f"the checkpoint in {self.path} is at epoch {state['epoch']}, past epochs {config.epochs}: "
                              f"resume with at least --epochs {state['epoch']}")
        self.check_logs()
        if result is not None and (comparable(result.history) != comparable(state["history"])
                                   or result.best_epoch != Selection(result.config, state["history"]).picked(state["epoch"])):
            raise ValueError(f"{self.path / RESULTS} does not belong to the checkpoint beside it (its history or best "
                             "epoch differs): it was edited or left by another run; delete it to finish the run "
                             "again from its checkpoint (--resume)")
        best_epoch = Selection(config, state["history"]).best_epoch()
        if writer and not ended and best_epoch == state["epoch"]:
            save_checkpoint(self.path / BEST, state)  # a kill may have come between the checkpoint and best.pth
        elif not ended and best_epoch not in (None, state["epoch"]) and config.select_split != "none":
            self.best_state(best_epoch, state["history"])  # checked now, not once the epochs left have trained
        evaluated_there = ended and all(getattr(result.config, name) == getattr(config, name) for name in EVALUATION)
        if evaluated_there and result.eval_data and result.eval_data != evaluation_data():  # its scores are of other data
            evaluated_there = False
        return state, (result if evaluated_there else None)

    def resumable(self, config: RunConfig) -> Tuple[Dict[str, Any], Optional["RunResult"], bool]:
        """The folder's checkpoint, its ``results.json`` (``None``: none) and whether the run has ended
        with ``config``'s epochs, after checking that ``config`` continues the run (:meth:`check_same_run`)
        from a checkpoint of this pml_metrix: what :meth:`resume` checks first, and ``compare --resume``
        of every run of a study before it changes any of its files."""
        if not self.started():
            raise ConfigError(f"nothing to resume in {self.path}: no epoch finished (no {CHECKPOINT}); "
                              "start the run again with --overwrite")
        state = load_checkpoint(self.path / CHECKPOINT)
        if state["format"] != FORMAT:
            raise ConfigError(
                f"the checkpoint was written by an older pml_metrix ({state['format']}): evaluate it with pml-metrix eval, "
                "but start a new run rather than resuming it"
            )
        result = RunResult.load(self.path) if (self.path / RESULTS).is_file() else None
        ended = result is not None and config.epochs <= result.config.epochs
        self.check_same_run(state["config"], config, ended=False)
        if ended:
            self.check_same_run(result.config.to_dict(), config, ended=True)
        return state, result, ended

    def check_same_run(self, saved: Dict[str, Any], config: RunConfig, ended: bool) -> None:
        """The one rule for "is this the same run?": ``config`` may differ from the options the
        ``saved`` run's config holds in where files are (``PLACE``), in where its picked model is
        evaluated (``EVALUATION``), and in how long it trains (``SCHEDULE``) unless the run has ended
        (then only more epochs continue it, and it has not ended at those). Else a ConfigError naming
        what differs. An option that ``saved`` does not hold (written before the option existed) had
        its default. A run without mixing may differ in the mixing options too, which act on nothing there."""
        current, saved = config.to_dict(), {**RunConfig().to_dict(), **saved}
        allowed = PLACE | EVALUATION if ended else PLACE | EVALUATION | SCHEDULE
        if saved["mix_level"] == current["mix_level"] == "none":  # a run without mixing: they act on nothing
            allowed = allowed | set(MIXING_OPTIONS)
        changed = sorted(name for name, value in saved.items() if name not in allowed and current.get(name) != value)
        differences = ", ".join(f"{name} {shown(saved[name])} there, {shown(current.get(name))} given" for name in changed)
        remedy = ("give it the settings it ran with (in a study: the variant's old options, and a new variant name for "
                  f"the new ones), or delete {self.path} (train: --overwrite) to train it again")
        if changed and ended:
            raise ConfigError(f"the run in {self.path} has ended with other settings ({differences}): only "
                              f"more epochs continue it; {remedy}")
        if changed:
            raise ConfigError(f"the checkpoint in {self.path} was trained with other settings ({differences}): {remedy}")

    def check_logs(self) -> None:
        """Refuse a logs folder that record-keeper cannot append to (a damaged SQLite database or CSV)."""
        logs = self.path / "logs"
        try:
            for csv in logs.glob("*.csv"):
                csv.read_text()
            if (logs / "logs.db").exists():
                with sqlite3.connect(logs / "logs.db") as connection:
                    (status,) = connection.execute("PRAGMA quick_check").fetchone()
                if status != "ok":
                    raise sqlite3.DatabaseError(status)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            raise ValueError(f"the run's logs in {logs} are damaged ({str(error).splitlines()[0]}): move the logs "
                             "folder away and resume (the run's state is in its checkpoint)") from None

    def best_state(self, best_epoch: int, history: List[Dict[str, float]]) -> Dict[str, Any]:
        """``best.pth``, checked to hold epoch ``best_epoch`` of the run whose selection ``history`` it is."""
        try:
            best = load_checkpoint(self.path / BEST)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(f"{error}: it holds the run's best epoch, {best_epoch}, whose model the run tests; put "
                             "it back, or start the run again with --overwrite") from None
        if best["epoch"] != best_epoch or comparable(best["history"]) != comparable(history[: len(best["history"])]):
            raise ValueError(f"{self.path / BEST} holds epoch {best['epoch']}, not this run's best one, {best_epoch}: "
                             "it was replaced or edited; start the run again with --overwrite")
        return best

    def save_epoch(self, state: Dict[str, Any], is_best: bool, record_keeper) -> None:
        """An epoch's files, in the module's order."""
        (self.path / RESULTS).unlink(missing_ok=True)  # a continued run has not ended
        save_checkpoint(self.path / CHECKPOINT, state)
        if is_best:
            save_checkpoint(self.path / BEST, state)
        self.save_logs(record_keeper, f"epoch {state['epoch']}'s checkpoint")

    def save_result(self, result: RunResult, record_keeper) -> None:
        write_json(self.path / RESULTS, result.to_dict())
        self.save_logs(record_keeper, RESULTS)

    def save_logs(self, record_keeper, written: str) -> None:
        """record-keeper's records since the last save, appended to the logs; a full disk says what it
        left (``written``: what was written before them)."""
        try:
            record_keeper.save_records()
        except Exception as error:  # noqa: BLE001 - the CSV writer's OSError or SQLite's OperationalError
            if not out_of_space(error):
                raise
            raise OSError(errno.ENOSPC, f"no space left on the device writing the logs in {self.path / 'logs'} ({written} "
                          "is written, these log rows are not): free some space and run again (--resume continues "
                          "from the last checkpoint)") from None

"""Baseline against Metrix variants over seeds: same initialisation and batches per seed, each
variant's epoch picked on the validation split, its test metrics paired with its baseline's, raw-pixel
and untrained-network scores alongside (:class:`~pml_metrix.app.comparison.Comparison`). The study
itself (variants, seeds, its YAML file) is :mod:`~pml_metrix.app.study`.
"""

from contextlib import ExitStack
from pathlib import Path

import torch

from .comparison import DATA_OPTIONS, NETWORK_OPTIONS, Comparison, setting_label
from .config import ConfigError
from .experiment import Run
from .files import write_json
from .positivity import positive_shares
from .report import REPORT, remove_report, write_report
from .reproducible import arithmetic_record
from .run_folder import BEST, CHECKPOINT, CONFIG, RESULTS, RunFolder
from .study import Study


def compare(study: Study, resume: bool = False, overwrite: bool = False, command: str = "pml-metrix compare") -> Comparison:
    """Train every variant at every seed into the study's output folder; each variant's model is
    picked on the selection split and tested once; then write the study's ``results.json`` and its
    report (``command``: the command line it names), under the study folder's lock and each finished
    run's, so that another process neither leaves its report beside these results nor replaces a run
    they describe. With ``resume``, a run that has ended
    is read back (its best epoch's state loaded; evaluated once more, without training, where the
    study's ``eval_split`` is another) and an unfinished one continued, each only when its folder
    holds that run (:meth:`~pml_metrix.app.run_folder.RunFolder.check_same_run`); a folder with no
    epoch's checkpoint starts afresh, unless it holds a result of one (``results.json`` or
    ``best.pth`` without ``checkpoint.pth``), which is refused rather than removed."""
    comparison = Comparison(study, arithmetic=arithmetic_record())
    output = Path(study.base.output)
    present = [name for name in (CONFIG, RESULTS, REPORT, CHECKPOINT) if (output / name).exists()]
    if present and not (resume or overwrite):
        raise ConfigError(f"{output} holds a study or a run ({', '.join(present)}): continue it with --resume, "
                          "replace it with --overwrite, or choose another --output")
    with RunFolder(output).locked() as study_folder, ExitStack() as runs_held:
        if study_folder.started():  # a training run's own folder (a study's runs lie in folders below it)
            if not overwrite:
                raise ConfigError(f"{output} holds a training run ({CHECKPOINT}), not a study: choose another --output, "
                                  "or replace the run with --overwrite")
            refusal = study_folder.claim(overwrite=True)
            if refusal:
                raise ConfigError(refusal)
        if resume:
            check_resumable(study)
        (output / RESULTS).unlink(missing_ok=True)  # from now on they would describe runs that may change: written
        remove_report(output)  # again at the end (the study's config.yaml, which may be the file given, is kept)
        for seed in study.seeds:
            base = study.base.replace(seed=seed, mix_level="none")
            settings = {"": base}  # the study's own, then each other data and network the variants have
            for config in (study.config(name, seed).replace(mix_level="none") for name in study.variants):
                settings.setdefault(setting_label(config, study.base, DATA_OPTIONS + NETWORK_OPTIONS), config)
            scored_data = set()
            for number, (setting, config) in enumerate(settings.items()):
                folder = output / "reference" / (f"seed{seed}" if not setting else f"{number}-seed{seed}")
                reference = Run(config.replace(output=str(folder)))
                data = setting_label(config, study.base, DATA_OPTIONS)
                if data not in scored_data:  # raw pixels: once per data
                    scored_data.add(data)
                    raw_pixels = comparison.other_raw_pixels.setdefault(data, []) if data else comparison.raw_pixels
                    raw_pixels.append(reference.evaluate(config.eval_split, 0, config.eval_reference,
                                                         torch.nn.Flatten(), torch.nn.Identity()))
                untrained = comparison.other_untrained.setdefault(setting, []) if setting else comparison.untrained
                untrained.append(reference.evaluate(config.eval_split, 0, config.eval_reference))
            for name in study.variants:
                run = Run(study.config(name, seed))
                started = run.folder.started()  # else nothing to continue: start it afresh
                result = run.train(resume=resume and started, overwrite=overwrite or (resume and not started))
                runs_held.enter_context(run.folder.locked())  # no other process replaces it before the study is written
                comparison.runs.setdefault(name, []).append(result)
                if seed == study.seeds[-1] and run.config.mix_level != "none":
                    comparison.positivity[name], comparison.positivity_by_label[name] = positive_shares(run)
        study.save(output / CONFIG)  # written once every run has been checked and trained
        write_json(output / RESULTS, comparison.to_dict())
        write_report(comparison, command)
    return comparison


def check_resumable(study: Study) -> None:
    """Before ``--resume`` changes a file of the study: refuse a run folder that holds a result
    (``results.json`` or ``best.pth``) but no checkpoint, which ``--resume`` would start afresh,
    removing the result, and a run that the study's settings do not continue
    (:meth:`~pml_metrix.app.run_folder.RunFolder.resumable`)."""
    for seed in study.seeds:
        for name in study.variants:
            config = study.config(name, seed)
            folder = RunFolder(config.output)
            left = [file for file in (RESULTS, BEST) if (folder.path / file).exists()]
            if left and not folder.started():
                raise ConfigError(f"{folder.path} holds {', '.join(left)} but no {CHECKPOINT}, which --resume continues "
                                  "from: put the checkpoint back, or remove the run's folder to train it again")
            if folder.started():
                folder.resumable(config)

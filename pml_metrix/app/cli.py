"""The ``pml-metrix`` command: ``train``, ``compare`` and ``eval``.

Only the standard library, PyYAML, the config and its YAML reader are imported here; torch and the rest load when a
command runs, so that ``--help`` answers at once.
"""

import argparse
import dataclasses
import hashlib
import shlex
import sys
import typing
import warnings
from pathlib import Path
from typing import List, Optional

from .. import __version__
from .config import EMPTY_OUTPUT, ConfigError, RunConfig, base_type, checked, field_types, load_config, read_yaml_mapping, shown
from .reproducible import pin
from .yaml_input import YAMLInputError, clipped, parse_yaml


# compare's own texts where a run's option means something else for a study: a text, or (text,
# default) where the default differs too; None: no such flag (compare sets it)
COMPARE_HELP = {
    "seed": None,
    "output": ("folder of the study's files: report.md, results.json, config.yaml and one folder per variant and "
               "seed", "runs/compare"),
    "description": "what the study is for, and how its settings were chosen (the report's first lines)",
}
EVAL_HELP = {
    "dataset": "dataset to evaluate the checkpoint's model on (default: the one it trained on)",
    "data_root": "folder of that dataset's files (default: the checkpoint's)",
    "eval_split": "split to evaluate the model on (default: the checkpoint's eval_split; In-Shop's test: query "
                  "against gallery)",
    "eval_reference": "split the queries retrieve from, e.g. In-Shop's gallery (default: the checkpoint's; none: "
                      "the split itself)",
}


def add_config_flags(parser: argparse.ArgumentParser, own_help: Optional[dict] = None) -> None:
    """One flag per RunConfig field (``--batch-size``...), with the field's help and default (or the
    command's own, ``own_help``; a name given ``None`` has no flag) and choices, plus ``--config
    FILE``; unset flags keep the file's or the default value. Values are checked by RunConfig,
    which names the option and what it accepts."""
    own_help = own_help or {}
    parser.add_argument("--config", metavar="FILE", help="YAML file of options; flags override it")
    for f in dataclasses.fields(RunConfig):
        if f.name in own_help and own_help[f.name] is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, optional = base_type(field_types()[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = own_help.get(f.name, f.metadata["help"])
        if isinstance(text, tuple):
            text, default = text
        choices = f.metadata.get("choices")
        text += f" (default: {format_value(default)}"
        text += f"; choices: {', '.join(choices)})" if choices else ")"
        text = text.replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, dest=f.name, nargs="+", action="extend", default=None, help=text,
                                metavar="NAME" if choices else "VALUE")
        elif typing.get_origin(kind) is dict or f.name == "mix_weight":
            metavar = "WEIGHT" if f.name == "mix_weight" else "KEY=VALUE"
            parser.add_argument(flag, dest=f.name, nargs="+", action="extend", type=yaml_value, default=None,
                                metavar=metavar, help=text)
        else:
            metavar = "NAME" if choices else ("VALUE|none" if optional else "VALUE")
            parser.add_argument(flag, dest=f.name, default=None, metavar=metavar, help=text)


def format_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    return str(value) if value != "" else '""'


def yaml_value(text: str):
    """A ``KEY=VALUE`` pair (value read as YAML), or a plain YAML value; YAML that is not valid or
    beyond :mod:`~pml_metrix.app.yaml_input`'s limits is argparse's one-line error."""
    key, sep, value = text.partition("=")
    if sep and not value.strip():  # an empty shell variable, most often: YAML would read it as null, "unset"
        raise argparse.ArgumentTypeError(f"{clipped(key, 40)}= has no value: give one ({clipped(key, 40)}=null to unset it)")
    try:
        if sep:
            return key, parse_yaml(value, f"the value {clipped(value, 40)!r} of {clipped(key, 40)}")
        return parse_yaml(text, f"the value {clipped(text, 40)!r}")
    except YAMLInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def flag_values(args: argparse.Namespace) -> dict:
    """The RunConfig values the flags give (``None``: not given)."""
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(RunConfig)}
    for name, given in values.items():
        if given is None or not (name == "mix_weight" or typing.get_origin(base_type(field_types()[name])[0]) is dict):
            continue
        pairs = [item for item in given if isinstance(item, tuple)]
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ConfigError(f"--{name.replace('_', '-')} gives {', '.join(repeated)} twice: keep one")
        if len(pairs) == len(given):
            values[name] = dict(pairs)
        elif name != "mix_weight":
            raise ConfigError(f"--{name.replace('_', '-')} takes KEY=VALUE pairs; got {shown(given)}")
        elif len(given) == 1 and not pairs:  # mix_weight: one number, or strategy=weight pairs
            values[name] = given[0]
        else:
            raise ConfigError(f"--mix-weight takes one number or strategy=weight pairs; got {clipped(' '.join(map(str, given)))}")
    return values


EVAL_UTILIZATION = ("over the training split's embeddings alone; train's counts the picked epoch's mixed embeddings "
                    "too (its results.json: utilization_with_mixed_embeddings), so the two differ for a Metrix run")


def cmd_train(args) -> None:
    from .build import resolve_device
    from ..distributed import get_rank
    from .torchrun import torchrun_process_group
    from .evaluation import collapsed
    from .experiment import Run

    config = load_config(args.config, **flag_values(args))
    with torchrun_process_group(resolve_device(config.device)):  # when torchrun launched several processes
        result = Run(config).train(resume=args.resume, overwrite=args.overwrite)
        if get_rank() > 0:  # rank 0 reports
            return
    print(f"trained into {result.output}; epoch {result.best_epoch} picked on {config.select_split}, on {config.eval_split}:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in result.final.items()))
    if collapsed(result.final):
        print(f"  COLLAPSED: the {config.eval_split} embeddings lie at nearly one point and retrieve at chance "
              f"(Recall@1 {result.final['recall_at_1']:.4f}, chance {result.final['chance_recall_at_1']:.4f}): the "
              "run learned nothing; see docs/metrics.md, collapse")
    if result.mixes_drawn == 0:
        print(f"  NO MIXES: the miner drew no mix in the whole run (no anchor had the pairs of {', '.join(config.strategies)}), "
              "so it trained as its baseline; for label sets where nearly every pair shares a label, raise "
              "--negative-threshold (docs/multilabel.md)")
    if config.warmup_epochs >= result.best_epoch:
        print(f"  FROZEN TRUNK: the picked epoch {result.best_epoch} is within the warm-up (warmup_epochs "
              f"{config.warmup_epochs}): its trunk never trained, only the embedder on top of it")
    if result.final_with_mixes:
        print("  utilization counts the picked epoch's mixed embeddings beside the training split's (eval: the "
              "training split's alone)")


def cmd_compare(args) -> None:
    from .compare import compare
    from .study import load_study
    from .report import REPORT, paired_table, results_table, verdict_lines, warning_lines

    study = load_study(args.config, args.seeds, args.variants, **flag_values(args))
    command = "pml-metrix " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    comparison = compare(study, resume=args.resume, overwrite=args.overwrite, command=command)
    print("\n".join([*verdict_lines(comparison), *warning_lines(comparison), "", *results_table(comparison), "",
                     *paired_table(comparison)]))
    print(f"\nreport: {Path(study.base.output) / REPORT}")


def cmd_eval(args) -> None:
    from .checkpoints import load_checkpoint
    from .run_folder import RunFolder

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():  # no folder to lock: load_checkpoint says what is missing
        load_checkpoint(checkpoint)
    # no run replaces the checkpoint or its eval/ meanwhile
    with RunFolder(checkpoint.parent).locked(remedy="wait until it ends, or copy the checkpoint elsewhere to score it meanwhile"):
        evaluate_checkpoint(args, checkpoint)


def evaluate_checkpoint(args, checkpoint: Path) -> None:
    """``pml-metrix eval``: score the checkpoint, write ``eval/CHECKPOINT-DATASET-SPLIT.json`` beside it
    (e.g. ``eval/best-fonts-val.json``; ``-REFERENCE`` added for another reference split), one file per
    checkpoint, dataset and split, so that scoring another leaves these (with what it scored: the
    checkpoint's SHA-256, the resolved config, the evaluated data's fingerprints)."""
    from .checkpoints import load_checkpoint, load_weights
    from .evaluation import collapsed
    from .experiment import Run
    from .files import write_json
    from .run_folder import evaluation_fingerprints

    state = load_checkpoint(checkpoint)
    saved = dict(state["config"])
    changes = {k: v for k, v in vars(args).items() if k in EVAL_HELP and v}
    if changes.get("dataset", saved.get("dataset")) != saved.get("dataset"):
        changes["dataset_options"] = {}  # the saved options belong to the saved dataset
    changes["device"] = args.device or "auto"  # where it trained does not matter here
    changes["select_split"], changes["patience"] = "none", None  # eval picks no epoch: only eval_split is read
    changes["reproducible"] = False  # eval pins nothing: its scores are this machine's arithmetic's
    try:
        config = load_config(None, **{**saved, **changes, "output": str(checkpoint.parent / "eval")})
    except ConfigError as error:
        raise ConfigError(f"the checkpoint's config: {error}") from None
    if config.dataset != saved.get("dataset"):
        # eval trains nothing: the smallest batch the run's checks accept, whatever the new training split holds
        config = config.replace(batch_size=2 * config.samples_per_class)
    run = Run(config, download=False)  # the checkpoint holds the weights
    try:
        load_weights(run.parts.models, state)
    except ValueError as error:
        if config.dataset == saved.get("dataset"):
            raise
        raise ValueError(f"a model trained on {saved.get('dataset')} cannot read {config.dataset}'s images "
                         f"(their channels differ?): {error}") from None
    metrics = run.evaluate(config.eval_split, int(state["epoch"]), config.eval_reference)
    scored = [checkpoint.stem, config.dataset, config.eval_split]
    if config.eval_reference not in (None, config.eval_split):
        scored.append(config.eval_reference)
    results = Path(config.output) / ("-".join(scored) + ".json")
    write_json(results, {
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "epoch": int(state["epoch"]), "dataset": config.dataset, "split": config.eval_split,
        "reference": config.eval_reference, "metrics": metrics, "utilization_with_mixed_embeddings": False,
        "utilization": EVAL_UTILIZATION, "collapsed": collapsed(metrics), "config": config.to_dict(),
        "data": evaluation_fingerprints(config, run.datasets),
    })
    print(f"{args.checkpoint} (epoch {state['epoch']}) on {config.dataset}/{config.eval_split}:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    print(f"  utilization: {EVAL_UTILIZATION}\nresults: {results}")


# torch's warning about PML's trainer, which formats its loss tensor (with its graph) into the progress
# bar at every step (pytorch_metric_learning/trainers/base_trainer.py); ours convert detached values
PML_PROGRESS_BAR_WARNING = dict(message="Converting a tensor with requires_grad=True to a scalar", category=UserWarning,
                                module=r"pytorch_metric_learning\.trainers\.base_trainer")


def config_path(args) -> Optional[str]:
    """The file of a train or compare command's options: --config, or, for train --resume without
    it, the saved run's config.yaml (flags, e.g. --epochs, still override it)."""
    if args.command == "train" and args.resume and args.config is None:
        output = RunConfig.output if args.output is None else args.output
        if not output.strip():
            raise ConfigError(EMPTY_OUTPUT)
        path = Path(output) / "config.yaml"
        if not path.is_file():
            checkpoint = path.parent / "checkpoint.pth"  # not read here: nothing may load torch before the pinning
            held = ("; it holds a checkpoint.pth, whose settings --resume reads from the config.yaml beside it: put "
                    "that file back, or pass the run's settings with --config FILE" if checkpoint.is_file() else "")
            raise ConfigError(f"nothing to resume in {path.parent}: no config.yaml there{held}")
        return str(path)
    return args.config


def reproducible_requested(args) -> bool:
    """Whether a train or compare command asks for the reproducible mode: --reproducible or
    --no-reproducible, else its config file's key (a study's, for every variant), else the default.
    Read from the file alone, before anything loads torch: the mode's settings act only if set before."""
    value = args.reproducible
    if value is None and args.config is not None:
        value = read_yaml_mapping(args.config).get("reproducible")
    if value is None:
        return RunConfig.reproducible
    return checked(RunConfig.__dataclass_fields__["reproducible"], value)


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line (``pml-metrix train: error: ...``) as the command's own."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pml-metrix", description="Metrix (mixup for deep metric learning) for pytorch-metric-learning"
    )
    parser.add_argument("--version", action="version", version=f"pml-metrix {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_files = "--resume continues it, --overwrite replaces it"
    train = commands.add_parser("train", help="one training run", description=(
        "Train one model; pick its epoch on --select-split, evaluate that model on --eval-split once."))
    add_config_flags(train)
    folder = train.add_mutually_exclusive_group()  # argparse refuses the two together
    folder.add_argument("--resume", action="store_true", help="continue the run in --output (its config.yaml)")
    folder.add_argument("--overwrite", action="store_true", help=f"replace the run in --output ({run_files})")
    train.set_defaults(func=cmd_train)
    comp = commands.add_parser("compare", help="baseline and Metrix variants over seeds, with a report", description=(
        "Train every variant at every seed (a study file gives variants: name -> options, and seeds; the first "
        "variant is a baseline), then report test scores at each variant's picked epoch, each paired by seed with "
        "its baseline: a Metrix variant's is its run without mixing, where the study has it, else the first."))
    add_config_flags(comp, COMPARE_HELP)
    comp.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the study's, else 0 1 2)")
    comp.add_argument("--variants", nargs="+", metavar="NAME",
                      help="run these of the study's variants (default: all; without a study: baseline, "
                           "metrix_embedding, metrix_feature)")
    folder = comp.add_mutually_exclusive_group()
    folder.add_argument("--resume", action="store_true", help="read back finished runs, continue unfinished ones")
    folder.add_argument("--overwrite", action="store_true", help=f"replace runs found in the output folder ({run_files})")
    comp.set_defaults(func=cmd_compare)
    evaluate = commands.add_parser("eval", help="a checkpoint against a dataset")
    evaluate.add_argument("checkpoint", help="a checkpoint.pth or best.pth")
    for name, text in EVAL_HELP.items():
        evaluate.add_argument("--" + name.replace("_", "-"), dest=name, help=text)
    evaluate.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda, cuda:N or mps (default: auto)")
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    warnings.filterwarnings("ignore", **PML_PROGRESS_BAR_WARNING)
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        sys.stderr.write(f"pml-metrix {args.command}: error: unrecognized arguments: {' '.join(unknown)}\n")
        return 2
    try:
        if args.command in ("train", "compare"):
            args.config = config_path(args)
            if reproducible_requested(args):  # first: nothing may load torch before it
                pin()
        from .torchrun import torchrun_world_size

        if args.command != "train" and torchrun_world_size() > 1:
            raise ConfigError(f"{args.command} runs in one process: launch only train with torchrun")
        args.func(args)
    except KeyboardInterrupt:
        after = {
            "eval": "nothing was written: run it again",
            "train": "every finished epoch is checkpointed: continue with --resume (before the first epoch ends "
                     "there is none: start again with --overwrite)",
            "compare": "every finished epoch of its runs is checkpointed: continue with --resume and the same study "
                       "options (--config, --variants, --seeds and flags)",
        }[args.command]
        sys.stderr.write(f"pml-metrix {args.command}: interrupted; {after}\n")
        return 130
    except (ValueError, TypeError, OSError) as error:  # ConfigError is a ValueError
        # one write of the whole line: under torchrun every process reports, and print's two writes
        # (text, then newline) from two processes on one unbuffered stderr can interleave
        sys.stderr.write(f"pml-metrix {args.command}: error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

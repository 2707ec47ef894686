"""The ``pml-metrix`` command: ``train``, ``compare`` and ``eval``.

Only the standard library, PyYAML and the config are imported here; torch and the rest load when a
command runs, so that ``--help`` answers at once.
"""

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path
from typing import List, Optional

import yaml

from .. import __version__
from .config import ConfigError, RunConfig, base_type, field_types, load_config


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (``--batch-size``...), with the field's help, default and
    choices, plus ``--config FILE``; unset flags keep the file's or the default value. Values are
    checked by RunConfig, which names the option and what it accepts."""
    parser.add_argument("--config", metavar="FILE", help="YAML file of options; flags override it")
    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        kind, optional = base_type(field_types()[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        choices = f.metadata.get("choices")
        text = f.metadata["help"] + f" (default: {format_value(default)}"
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
    """A ``KEY=VALUE`` pair (value read as YAML), or a plain YAML value."""
    key, sep, value = text.partition("=")
    if sep:
        return key, yaml.safe_load(value)
    return yaml.safe_load(text)


def flag_values(args: argparse.Namespace) -> dict:
    """The RunConfig values the flags give (``None``: not given)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)}
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
            raise ConfigError(f"--{name.replace('_', '-')} takes KEY=VALUE pairs; got {given}")
        elif len(given) == 1 and not pairs:  # mix_weight: one number, or strategy=weight pairs
            values[name] = given[0]
        else:
            raise ConfigError(f"--mix-weight takes one number or strategy=weight pairs; got {' '.join(map(str, given))}")
    return values


def cmd_train(args) -> None:
    from .build import resolve_device
    from ..distributed import get_rank
    from .torchrun import torchrun_process_group
    from .experiment import Run

    if args.resume and args.config is None:  # continue the saved run; flags (e.g. --epochs) still override
        args.config = str(Path(args.output or RunConfig.output) / "config.yaml")
        if not Path(args.config).is_file():
            raise ConfigError(f"nothing to resume in {Path(args.config).parent}: no config.yaml there")
    config = load_config(args.config, **flag_values(args))
    with torchrun_process_group(resolve_device(config.device)):  # when torchrun launched several processes
        result = Run(config).train(resume=args.resume, overwrite=args.overwrite)
        if get_rank() > 0:  # rank 0 reports
            return
    print(f"trained into {result.output}; epoch {result.best_epoch} picked on {config.select_split}, on {config.eval_split}:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in result.final.items()))


def cmd_compare(args) -> None:
    from .compare import compare
    from .study import load_study
    from .report import paired_table, results_table, write_report

    study = load_study(args.config, args.seeds, args.variants, **flag_values(args))
    comparison = compare(study, resume=args.resume, overwrite=args.overwrite)
    report = write_report(comparison, "pml-metrix " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print("\n".join([*results_table(comparison), "", *paired_table(comparison)]))
    print(f"\nreport: {report}")


def cmd_eval(args) -> None:
    from .checkpoints import load_checkpoint
    from .experiment import Run

    state = load_checkpoint(Path(args.checkpoint))
    saved = dict(state["config"])
    changes = {k: v for k, v in vars(args).items() if k in ("dataset", "data_root", "eval_split", "eval_reference") and v}
    if changes.get("dataset", saved.get("dataset")) != saved.get("dataset"):
        changes["dataset_options"] = {}  # the saved options belong to the saved dataset
    changes["device"] = args.device or "auto"  # where it trained does not matter here
    changes["select_split"] = "none"  # eval picks no epoch: only eval_split is read
    changes["pretrained"] = False  # the checkpoint holds the weights: nothing to download
    try:
        config = load_config(None, **{**saved, **changes, "output": str(Path(args.checkpoint).parent / "eval")})
    except ConfigError as error:
        raise ConfigError(f"the checkpoint's config: {error}") from None
    if config.dataset != saved.get("dataset"):
        # eval trains nothing: the smallest batch the run's checks accept, whatever the new training split holds
        config = config.replace(batch_size=2 * config.samples_per_class)
    run = Run(config)
    try:
        run.load_weights(state)
    except ValueError as error:
        if config.dataset == saved.get("dataset"):
            raise
        raise ValueError(f"a model trained on {saved.get('dataset')} cannot read {config.dataset}'s images "
                         f"(their channels differ?): {error}") from None
    metrics = run.evaluate(config.eval_split, int(state["epoch"]), config.eval_reference)
    print(f"{args.checkpoint} (epoch {state['epoch']}) on {config.dataset}/{config.eval_split}:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


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
    train.add_argument("--resume", action="store_true", help="continue the run in --output (its config.yaml)")
    train.add_argument("--overwrite", action="store_true", help=f"replace the run in --output ({run_files})")
    train.set_defaults(func=cmd_train)
    comp = commands.add_parser("compare", help="baseline and Metrix variants over seeds, with a report", description=(
        "Train every variant at every seed (a study file gives variants: name -> options, and seeds; the first "
        "variant is the baseline), then report test scores at each variant's picked epoch, paired by seed."))
    add_config_flags(comp)
    comp.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the study's, else 0 1 2)")
    comp.add_argument("--variants", nargs="+", metavar="NAME",
                      help="run these of the study's variants (default: all; without a study: baseline, "
                           "metrix_embedding, metrix_feature)")
    comp.add_argument("--resume", action="store_true", help="read back finished runs, continue unfinished ones")
    comp.add_argument("--overwrite", action="store_true", help=f"replace runs found in the output folder ({run_files})")
    comp.set_defaults(func=cmd_compare)
    evaluate = commands.add_parser("eval", help="a checkpoint against a dataset")
    evaluate.add_argument("checkpoint", help="a checkpoint.pth or best.pth")
    for name in ("dataset", "data_root", "eval_split", "eval_reference"):
        f = RunConfig.__dataclass_fields__[name]
        evaluate.add_argument("--" + name.replace("_", "-"), dest=name, help=f.metadata["help"] + " (default: the checkpoint's)")
    evaluate.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda, cuda:N or mps (default: auto)")
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        sys.stderr.write(f"pml-metrix {args.command}: error: unrecognized arguments: {' '.join(unknown)}\n")
        return 2
    try:
        from .torchrun import torchrun_world_size

        if args.command != "train" and torchrun_world_size() > 1:
            raise ConfigError(f"{args.command} runs in one process: launch only train with torchrun")
        args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write(
            f"pml-metrix {args.command}: interrupted; every finished epoch is checkpointed: continue with --resume\n"
        )
        return 130
    except (ValueError, TypeError, OSError) as error:  # ConfigError is a ValueError
        # one write of the whole line: under torchrun every process reports, and print's two writes
        # (text, then newline) from two processes on one unbuffered stderr can interleave
        sys.stderr.write(f"pml-metrix {args.command}: error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``pml-metrix`` command: ``train``, ``compare`` and ``eval``."""

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path
from typing import List, Optional

import yaml

from .checkpoints import load_checkpoint
from .compare import DEFAULT_VARIANTS, compare
from .config import ConfigError, RunConfig, load_config
from .distributed import get_rank, torchrun_process_group, torchrun_world_size
from .experiment import CHECKPOINT, Run, resolve_device
from .report import results_table, paired_table, write_report


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (``--batch-size``...), plus ``--config FILE``; unset flags keep
    the file's or the default value."""
    parser.add_argument("--config", help="YAML file of options; flags override it")
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if typing.get_origin(kind) is typing.Union:  # Optional[X] -> X
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        elif origin is list:
            parser.add_argument(flag, dest=f.name, nargs="+", type=typing.get_args(kind)[0], default=None)
        elif origin is dict:
            parser.add_argument(flag, dest=f.name, nargs="+", type=key_value, default=None, metavar="KEY=VALUE")
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None)


def key_value(text: str):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def config_from_args(args: argparse.Namespace, **fixed) -> RunConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)}
    for name, kind in typing.get_type_hints(RunConfig).items():
        if typing.get_origin(kind) is dict and values[name] is not None:
            values[name] = dict(values[name])  # KEY=VALUE pairs
    values.update(fixed)
    return load_config(args.config, **values)


def print_table(rows: List[str]) -> None:
    print("\n".join(rows))


def cmd_train(args) -> None:
    if args.resume and args.config is None:  # continue the saved run; flags (e.g. --epochs) still override
        args.config = str(Path(args.output or RunConfig.output) / "config.yaml")
    config = config_from_args(args)
    with torchrun_process_group(resolve_device(config.device)):  # when torchrun launched several processes
        result = Run(config).train(resume=args.resume)
        if get_rank() > 0:  # rank 0 reports
            return
    print(f"trained {config.epochs} epochs into {result.output}; after the last epoch:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in result.final.items() if k != "epoch"))


def cmd_compare(args) -> None:
    config = config_from_args(args)
    if config.output == RunConfig.output:  # neither a flag nor the file chose a folder
        config = config.replace(output="runs/compare")
    variants = {name: DEFAULT_VARIANTS[name] for name in args.variants}
    comparison = compare(config, args.seeds, variants)
    report = write_report(comparison, "pml-metrix " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print_table(results_table(comparison))
    print()
    print_table(paired_table(comparison))
    print(f"\nreport: {report}")


def cmd_eval(args) -> None:
    state = load_checkpoint(Path(args.checkpoint))
    saved = dict(state["config"])
    changes = {k: v for k, v in vars(args).items() if k in ("dataset", "data_root", "eval_split", "eval_reference") and v}
    if changes.get("dataset", saved["dataset"]) != saved["dataset"]:
        changes["dataset_options"] = {}  # the saved options belong to the saved dataset
    config = RunConfig(**{**saved, **changes, "output": str(Path(args.checkpoint).parent / "eval")})
    run = Run(config)
    run.load_weights(state)
    metrics = run.evaluate(int(state["epoch"]))
    print(f"{args.checkpoint} (epoch {state['epoch']}) on {config.dataset}/{config.eval_split}:")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pml-metrix", description="Metrix for pytorch-metric-learning")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="one training run")
    add_config_flags(train)
    train.add_argument("--resume", action="store_true", help=f"continue from OUTPUT/{CHECKPOINT}")
    train.set_defaults(func=cmd_train)
    comp = commands.add_parser("compare", help="baseline and Metrix variants over seeds, with a report")
    add_config_flags(comp)
    comp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    comp.add_argument("--variants", nargs="+", choices=list(DEFAULT_VARIANTS), default=list(DEFAULT_VARIANTS))
    comp.set_defaults(func=cmd_compare)
    evaluate = commands.add_parser("eval", help="a checkpoint against a dataset")
    evaluate.add_argument("checkpoint")
    for name in ("dataset", "data_root", "eval_split", "eval_reference"):
        evaluate.add_argument("--" + name.replace("_", "-"), dest=name)
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "train" and torchrun_world_size() > 1:
            raise ConfigError(f"{args.command} runs in one process: launch only train with torchrun")
        args.func(args)
    except (ValueError, TypeError, OSError) as error:  # ConfigError is a ValueError
        # one write of the whole line: under torchrun every process reports, and print's two writes
        # (text, then newline) from two processes on one unbuffered stderr can interleave
        sys.stderr.write(f"pml-metrix {args.command}: error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

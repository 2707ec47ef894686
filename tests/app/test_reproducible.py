"""The reproducible mode: two machines' kernels, simulated on one by capping the instruction sets and
the threads, give runs that differ unpinned and agree bit for bit pinned, and a run repeats unpinned
on one machine; a process whose libraries loaded unpinned is refused, never run as if pinned."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pml_metrix.app import reproducible
from pml_metrix.app.checkpoints import load_checkpoint
from pml_metrix.app.cli import main
from pml_metrix.app.config import ConfigError, RunConfig
from pml_metrix.app.experiment import Run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--embedding-size", "16", "--model-width", "8", "--batch-size", "24", "--samples-per-class", "4", "--epochs", "1"]
# this machine as it is, at 2 threads; and one whose widest instruction set is AVX2, at 1 thread
MACHINES = {
    "this": {"OMP_NUM_THREADS": "2"},
    "avx2, 1 thread": {"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                       "FAISS_SIMD_LEVEL": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
}


def command(machine, *args):
    """``pml-metrix ARGS`` in a fresh process under ``machine``'s environment."""
    env = {k: v for k, v in os.environ.items() if k not in reproducible.PINNED_ENVIRONMENT}
    env.update(MACHINES[machine], PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pml_metrix.app.cli", *args], env=env, capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def train(font_list, output, machine):
    """One tiny unpinned run of feature-level Metrix: its results.json and weights."""
    command(machine, "train", "--dataset-options", f"font_list={font_list}", *TINY, "--mix-level", "feature",
            "--no-reproducible", "--output", str(output))
    return json.loads((output / "results.json").read_text()), load_checkpoint(output / "checkpoint.pth")["models"]


def compare(font_list, output, machine):
    """The main job's comparison, tiny, pinned: its results.json and each run's weights."""
    command(machine, "compare", "--config", str(ROOT / "configs" / "main.yaml"), "--dataset-options",
            f"font_list={font_list}", "train_fraction=1.0", *TINY, "--seeds", "0", "--output", str(output))  # every small-list font
    weights = {path.parent.parent.name: load_checkpoint(path)["models"] for path in output.glob("*/seed0/checkpoint.pth")}
    return json.loads((output / "results.json").read_text()), weights


def same_weights(first, second):
    return all(torch.equal(first[model][name], second[model][name]) for model in first for name in first[model])


@pytest.mark.slow  # three training runs and two comparisons in subprocesses
def test_two_machines_kernels_differ_unpinned_and_agree_bit_for_bit_pinned(small_font_list, tmp_path):
    font_list, _ = small_font_list
    (unpinned, unpinned_weights), (other, other_weights) = (train(font_list, tmp_path / f"train-{i}", machine)
                                                            for i, machine in enumerate(MACHINES))
    assert not same_weights(unpinned_weights, other_weights)  # the kernels differ: so do the weights
    again, again_weights = train(font_list, tmp_path / "again", "this")
    assert same_weights(unpinned_weights, again_weights) and again["final"] == unpinned["final"]  # one machine: repeats
    assert not unpinned["arithmetic"]["pinned"] and other["arithmetic"]["threads"] == 1
    # the main job's configs/main.yaml (reproducible: true), tiny, under the two machines' kernels
    (pinned, pinned_weights), (pinned_other, pinned_other_weights) = (compare(font_list, tmp_path / f"compare-{i}", machine)
                                                                      for i, machine in enumerate(MACHINES))
    assert set(pinned_weights) == {"baseline", "metrix_feature"}
    for variant in pinned_weights:
        assert same_weights(pinned_weights[variant], pinned_other_weights[variant]), variant
    def scores(results):  # each run's entry but the record of the machine it ran on
        return {key: ({name: [{k: v for k, v in run.items() if k not in ("arithmetic", "trained_under")} for run in runs]
                       for name, runs in results[key].items()} if key == "runs" else results[key])
                for key in ("runs", "references", "summary", "paired")}

    assert scores(pinned) == scores(pinned_other)  # every score and picked epoch, bit for bit
    assert pinned["arithmetic"] == pinned_other["arithmetic"]
    record = pinned["arithmetic"]
    assert record["pinned"] and record["environment"] == reproducible.PINNED_ENVIRONMENT
    assert (record["torch_cpu_capability"], record["faiss_simd_level"], record["threads"]) == ("AVX2", "AVX2", 2)
    run_record = json.loads((tmp_path / "compare-1" / "metrix_feature" / "seed0" / "results.json").read_text())["arithmetic"]
    assert run_record == {**record, "device": "cpu", "world_size": 1}  # and the run's device and processes


def test_a_process_whose_torch_loaded_unpinned_is_refused_and_left_as_it_was(tmp_path, capsys):
    # this process imported torch without the pinned environment: whatever is set now comes too late
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    assert main(["train", "--reproducible", "--output", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "settings are not in force" in error and "ONEDNN_MAX_CPU_ISA is None" in error and "pin()" in error
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    with pytest.raises(ConfigError, match="not in force"):
        Run(RunConfig(reproducible=True, output=str(tmp_path)))
    assert not (tmp_path / "config.yaml").exists()


def test_the_record_names_the_processor_and_says_unpinned_here():
    record = reproducible.arithmetic_record()
    assert record["pinned"] is False and record["processor"]["model"]
    assert set(record["processor"]["flags"]) <= set(reproducible.RECORDED_FLAGS)
    assert record["environment"] == {name: os.environ.get(name) for name in reproducible.PINNED_ENVIRONMENT}
    assert record["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_flag_or_else_the_config_file_asks_for_the_mode(tmp_path):
    from pml_metrix.app.cli import build_parser, reproducible_requested

    config = tmp_path / "run.yaml"
    config.write_text("reproducible: yes\n")
    parse = build_parser().parse_args
    assert reproducible_requested(parse(["train", "--config", str(config)]))
    assert not reproducible_requested(parse(["train", "--config", str(config), "--no-reproducible"]))
    assert not reproducible_requested(parse(["train"]))
    config.write_text("reproducible: maybe\n")
    with pytest.raises(ConfigError, match="reproducible must be true or false"):
        reproducible_requested(parse(["compare", "--config", str(config)]))

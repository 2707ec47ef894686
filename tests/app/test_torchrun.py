"""``pml-metrix train`` under torchrun: two gloo processes on CPU, each on half of every batch, train
like one process on the whole batch (BatchNorm frozen: it would otherwise normalise each half apart),
resume, and leave one set of outputs that loads in one process.

"Like one process" is checked on the first step: its loss, as logged, and its gradient, through
Adam's first moment in the checkpoint (0.1 x the gradient with weight decay), whose every parameter
tensor was measured within 6e-4 of its norm of one process's. Broken runs are further apart than
the norm itself (measured: 1.7 when both processes take the same share of a batch, 4 when the
embedder's gradient from the mixes counts twice). Later steps are not compared: this untrained
model's embeddings nearly coincide, so its gradients are small differences of float32 sums, and Adam
moves each weight by about the learning rate whatever the size of its gradient, so weights whose
gradient is rounding noise move apart by that much.
"""

import subprocess
import sys
from typing import Dict

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pml_metrix.app.checkpoints import load_checkpoint, load_weights
from pml_metrix.app.cli import main
from pml_metrix.app.config import RunConfig
from pml_metrix.app.experiment import Run

from .datasets.conftest import write_idx_gz

pytestmark = pytest.mark.slow  # subprocesses under torchrun

PROCESSES = 2
TIMEOUT_S = 240
PER_CLASS = 4  # 5 training classes: 20 items, one batch of 16 an epoch
SETTINGS = [
    "--dataset", "fashion_mnist", "--image-size", "16", "--model-width", "8", "--embedding-size", "16",
    "--batch-size", "16", "--samples-per-class", "4", "--recall-at-k", "1", "--mix-level", "feature", "--freeze-bn",
]


def write_tiny_fashion_mnist(folder) -> str:
    """Fashion-MNIST files of PER_CLASS 28 x 28 images of each class: a class pattern plus noise."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(10, 28, 28, generator=generator)
    labels = torch.arange(10).repeat(PER_CLASS)
    folder.mkdir()
    for prefix in ("train", "t10k"):
        images = 0.7 * patterns[labels] + 0.3 * torch.rand(len(labels), 28, 28, generator=generator)
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", (255 * images).to(torch.uint8))
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.to(torch.uint8))
    return str(folder)


def logged_losses(output) -> Dict[int, float]:
    """{global iteration: metric loss} as the record-keeper logged it into ``output`` (every launch)."""
    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    return {event.step: event.value for event in events.Scalars("loss_histories/metric_loss")}


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``pml-metrix`` in PROCESSES processes, launched by torchrun's module (in any environment)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(PROCESSES)]
    return subprocess.run([*launcher, "-m", "pml_metrix.app.cli", *args], capture_output=True, text=True, timeout=TIMEOUT_S)


def test_two_processes_train_and_resume_like_one(tmp_path):
    data = ["--data-root", write_tiny_fashion_mnist(tmp_path / "data")]
    out = tmp_path / "two"
    first = torchrun("train", *data, *SETTINGS, "--epochs", "1", "--output", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("trained into") == 1  # rank 0 reports
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "best.pth", "checkpoint.pth", "config.yaml", "logs", "results.json", "tensorboard"
    ]
    assert len(list((out / "tensorboard").iterdir())) == 1  # one record-keeper's events file

    assert main(["train", *data, *SETTINGS, "--epochs", "1", "--output", str(tmp_path / "one")]) == 0
    one, two = (load_checkpoint(tmp_path / name / "checkpoint.pth") for name in ("one", "two"))  # weights_only=True
    # PML's DistributedLossWrapper returns world_size x the loss
    torch.testing.assert_close(logged_losses(out)[0] / PROCESSES, logged_losses(tmp_path / "one")[0], rtol=1e-5, atol=0)
    for name, optimizer in one["optimizers"].items():
        for index, moments in optimizer["state"].items():
            difference = two["optimizers"][name]["state"][index]["exp_avg"] - moments["exp_avg"]
            assert difference.norm() <= 1e-2 * moments["exp_avg"].norm(), (name, index)
    load_weights(Run(RunConfig(**{**two["config"], "output": str(tmp_path / "loaded")})).parts.models, two)  # no DDP "module."

    resumed = torchrun("train", "--output", str(out), "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = load_checkpoint(out / "checkpoint.pth")
    assert state["epoch"] == 2 and state["history"][0] == two["history"][0] and len(state["history"]) == 2


def test_a_batch_that_does_not_split_into_the_processes_is_one_clear_line(tmp_path):
    data = ["--data-root", write_tiny_fashion_mnist(tmp_path / "data")]
    result = torchrun("train", *data, *SETTINGS, "--batch-size", "12", "--output", str(tmp_path / "run"))
    assert result.returncode != 0
    # every process reports; counted, not split into lines, as the two share one stderr
    assert result.stderr.count("pml-metrix train: error:") == PROCESSES, result.stderr[-3000:]
    assert "make it a multiple of 8" in result.stderr
    assert not (tmp_path / "run").exists()

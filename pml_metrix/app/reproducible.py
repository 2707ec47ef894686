"""The reproducible mode: what decides the CPU's arithmetic, pinned, and a record of it for results.json.

The CPU kernels a run uses are chosen by the processor and the thread count: oneDNN's convolutions,
MKL's matrix products and vector maths, ATen's vectorised loops, faiss's distance code and the OpenBLAS
it brings each take the widest instruction set the processor has (AVX-512 on one machine, AVX2 on
another), and a sum split over another number of threads is added in another order. The last bits of
a training step differ with them, and training carries those bits into other picked epochs and other
scores. :func:`pin` fixes all of them: every library's instruction set to AVX2 (with FMA; what the
x86-64 processors of the last decade have), :data:`THREADS` threads, deterministic algorithms.

The libraries read their variables when they load, so :func:`pin` must run before torch or faiss is
imported: the ``pml-metrix`` command calls it at its start, before anything loads torch. Elsewhere (a
script that calls the application's functions) call it first, or export :data:`PINNED_ENVIRONMENT`
before Python starts; :func:`check_pinned` refuses a process in which any of it is not in force.
This module imports neither torch nor faiss at its own import.
"""

import functools
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .config import ConfigError

if TYPE_CHECKING:
    import torch

    from .config import RunConfig

PINNED_ENVIRONMENT = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: convolutions (forward and backward)
    "MKL_CBWR": "AVX2,STRICT",  # MKL: matrix products, exp, tanh...; STRICT: the same sums at any thread count
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's own vectorised kernels (softmax...)
    "FAISS_SIMD_LEVEL": "AVX2",  # faiss's distance code (the metrics' nearest-neighbour searches)
    "OPENBLAS_CORETYPE": "Haswell",  # the OpenBLAS that faiss brings (its matrix products): AVX2
    "OMP_NUM_THREADS": "2",  # the OpenMP runtimes of torch and of faiss (each its own)
}
THREADS = 2  # torch's intra-op threads: how its sums are split
INTEROP_THREADS = 1
PINNED_CAPABILITY = "AVX2"  # what torch and faiss report under the pinned environment
REQUIRED_FLAGS = ("avx2", "fma")  # the processor flags the pinned kernels need
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")  # what the unpinned kernels use

environment_set_before_loading = False  # pin() set PINNED_ENVIRONMENT before torch and faiss loaded


def pin() -> None:
    """Pin this process's arithmetic: :data:`PINNED_ENVIRONMENT` (before torch and faiss load), then
    torch's thread counts and deterministic algorithms. A ConfigError when the processor lacks AVX2,
    or when torch or faiss loaded before with other settings."""
    global environment_set_before_loading
    missing = [flag for flag in REQUIRED_FLAGS if flag not in processor()["flags"]]
    if missing:
        raise ConfigError(
            f"the reproducible mode runs every kernel at AVX2, which this processor ({processor()['model']}, "
            f"{processor()['machine']}) lacks ({', '.join(missing)}): run with --no-reproducible"
        )
    if "torch" not in sys.modules and "faiss" not in sys.modules:
        os.environ.update(PINNED_ENVIRONMENT)
        environment_set_before_loading = True
    elif environment_problems():  # refused before anything changes in this process
        check_pinned()
    import torch

    torch.set_num_threads(THREADS)
    if torch.get_num_interop_threads() != INTEROP_THREADS:
        try:
            torch.set_num_interop_threads(INTEROP_THREADS)
        except RuntimeError as error:  # torch allows it once, before any inter-op work
            raise ConfigError(f"the reproducible mode could not set {INTEROP_THREADS} inter-op thread: {error}") from None
    torch.use_deterministic_algorithms(True)
    check_pinned()


def check_pinned() -> None:
    """Nothing when every pinned setting is in force in this process; else a ConfigError naming what is not."""
    problems = unpinned()
    if problems:
        raise ConfigError(
            f"the reproducible mode's settings are not in force ({'; '.join(problems)}): call "
            "pml_metrix.app.reproducible.pin() before torch or faiss is imported (the pml-metrix command does), "
            "or run with --no-reproducible"
        )


def unpinned() -> List[str]:
    """What of the pinned settings is not in force in this process (empty: all of it is). The
    environment counts when it was there before torch and faiss loaded: set by :func:`pin`, or in the
    environment the process started with; torch's and faiss's instruction sets are asked of them."""
    import faiss
    import torch

    problems = environment_problems()
    if torch.backends.cpu.get_cpu_capability() != PINNED_CAPABILITY:
        problems.append(f"torch's CPU capability is {torch.backends.cpu.get_cpu_capability()}")
    if faiss.SIMDConfig.get_level_name() != PINNED_CAPABILITY:
        problems.append(f"faiss's SIMD level is {faiss.SIMDConfig.get_level_name()}")
    if (torch.get_num_threads(), torch.get_num_interop_threads()) != (THREADS, INTEROP_THREADS):
        problems.append(f"torch runs {torch.get_num_threads()} threads and {torch.get_num_interop_threads()} "
                        f"inter-op threads, not {THREADS} and {INTEROP_THREADS}")
    if not torch.are_deterministic_algorithms_enabled():
        problems.append("deterministic algorithms are off")
    return problems


def environment_problems() -> List[str]:
    """Each variable of :data:`PINNED_ENVIRONMENT` that is not set, or was set after torch or faiss
    loaded (neither by :func:`pin` before they did nor in the environment the process started with)."""
    problems = []
    at_start = environment_at_start()
    for name, value in PINNED_ENVIRONMENT.items():
        if os.environ.get(name) != value:
            problems.append(f"{name} is {os.environ.get(name)!r}, not {value!r}")
        elif not (environment_set_before_loading or at_start.get(name) == value):
            problems.append(f"{name} was set after torch or faiss loaded")
    return problems


def arithmetic_record(device: Optional["torch.device"] = None) -> Dict[str, Any]:
    """What decided this process's arithmetic, for results.json: whether the pinned settings are in
    force (``pinned``), the pinned variables as they are, torch's and faiss's instruction sets,
    threads, deterministic algorithms, the versions, the processor, and, for a run, its ``device``
    (with the GPU's name) and the number of processes that share its batches (``world_size``)."""
    import faiss
    import pytorch_metric_learning
    import torch

    from .. import __version__
    from ..distributed import get_world_size

    run = {}
    if device is not None:
        name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
        run = {"device": name, "world_size": get_world_size()}

    return {
        "pinned": not unpinned(),
        "environment": {name: os.environ.get(name) for name in PINNED_ENVIRONMENT},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "faiss_simd_level": faiss.SIMDConfig.get_level_name(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch": str(torch.__version__),  # a TorchVersion, which a checkpoint loaded with weights_only refuses
        "faiss": faiss.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "pml_metrix": __version__,
        "processor": {**processor(), "flags": [f for f in RECORDED_FLAGS if f in processor()["flags"]]},
        **run,
    }


# of an arithmetic record, beside what every record holds (an older pml_metrix recorded torch's and faiss's only)
DETAILS = ("torch", "faiss", "pytorch_metric_learning", "pml_metrix", "device", "world_size")


def arithmetic_summary(record: Dict[str, Any], details: Sequence[str] = DETAILS) -> str:
    """One line of what in an :func:`arithmetic_record` decides a run's digits, with the ``details``
    it holds."""
    state = "pinned (reproducible mode)" if record["pinned"] else "unpinned (the machine's own kernels)"
    versions = ", ".join(f"{name} {record[name]}" for name in details if name in record)
    return (f"{state}; torch CPU capability {record['torch_cpu_capability']}, faiss {record['faiss_simd_level']}, "
            f"{record['threads']} thread(s); {versions}; processor {record['processor'].get('model', 'unknown')}")


def set_arithmetic(config: "RunConfig", device: "torch.device") -> None:
    """What a run's config asks of this process's arithmetic: the reproducible mode (on the CPU, and
    in force since the command started: :func:`check_pinned` refuses it otherwise, never running
    unpinned) and deterministic algorithms (e.g. the CPU's index backward accumulates in thread order
    without them)."""
    import torch

    if config.reproducible:
        if device.type != "cpu":
            raise ConfigError(f"the reproducible mode pins the CPU's arithmetic, and this run would train on {device}: "
                              "give --device cpu, or --no-reproducible")
        check_pinned()
    if config.deterministic:
        torch.use_deterministic_algorithms(True)


def with_this_process(records: Optional[List[Dict[str, Any]]], device: "torch.device") -> Optional[List[Dict[str, Any]]]:
    """The arithmetic records of the processes that trained a run, in order, with this process's
    (:func:`arithmetic_record` on ``device``) appended unless the last one already has its summary;
    ``None`` (a run whose earlier epochs were trained before they were recorded) stays ``None``."""
    if records is None:
        return None
    record = arithmetic_record(device)
    same = bool(records) and arithmetic_summary(records[-1]) == arithmetic_summary(record)
    return list(records) if same else [*records, record]


@functools.lru_cache(maxsize=None)
def processor() -> Dict[str, Any]:
    """The processor's model name and flags (Linux's /proc/cpuinfo; elsewhere the platform's name, no flags)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "machine": platform.machine(), "flags": []}
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return {"model": fields.get("model name", platform.machine()), "machine": platform.machine(),
            "flags": fields.get("flags", "").split()}


def environment_at_start() -> Dict[str, str]:
    """The environment this process started with (Linux's /proc/self/environ; empty elsewhere)."""
    try:
        entries = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)

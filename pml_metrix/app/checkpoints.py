"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically, and the
training state they hold."""

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

import numpy as np
import torch

from .files import write_atomically
from .models import GrayscaleTrunk

if TYPE_CHECKING:
    from .build import Components

FORMAT = "pml_metrix-checkpoint-v2"
READABLE_FORMATS = ("pml_metrix-checkpoint-v1", FORMAT)  # v1 (pml_metrix 0.1): its weights evaluate, it cannot resume


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically (:func:`write_atomically`)."""
    write_atomically(path, lambda file: torch.save({"format": FORMAT, **state}, file))


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated or foreign bytes fail anywhere in the unpickler
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated, or not written by pml_metrix): {error}"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{path} is not a pml_metrix checkpoint (expected format {FORMAT!r})")
    missing = [key for key in ("epoch", "config", "models") if key not in state]
    if missing or not isinstance(state["models"], dict) or not isinstance(state["config"], dict):
        raise ValueError(f"{path} is a damaged pml_metrix checkpoint (no {', '.join(missing) or 'models or config'})")
    return state


def load_fitting(module: torch.nn.Module, states: Dict[str, Any], name: str) -> None:
    """Load ``states[name]`` into ``module``, or a ValueError saying that the checkpoint's weights do
    not fit the model its config builds."""
    if name not in states:
        raise ValueError(f"the checkpoint holds no weights for the {name} (it has {', '.join(states) or 'none'})")
    try:
        module.load_state_dict(states[name])
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise ValueError(
            f"the checkpoint's {name} weights do not fit the {name} its config builds ({first}): the checkpoint was "
            "edited or written by another program"
        ) from None


def trunk_input(models: Dict[str, torch.nn.Module]) -> Optional[str]:
    """How a grayscale trunk (:class:`~pml_metrix.app.models.GrayscaleTrunk`) takes the readers'
    images: ``"imagenet"``, normalised for ImageNet weights (a pretrained backbone), or ``"as read"``
    (in [0, 1]); ``None`` for another trunk, whose images come as their reader makes them. A checkpoint
    records it: weights trained on one form score nothing on the other."""
    trunk = models.get("trunk")
    trunk = getattr(trunk, "module", trunk)  # a DDP-wrapped one
    if not isinstance(trunk, GrayscaleTrunk):
        return None
    return "imagenet" if trunk.imagenet_input else "as read"


def load_weights(models: Dict[str, torch.nn.Module], state: Dict[str, Any]) -> None:
    """Load a checkpoint's model weights (trunk and embedder) only, e.g. to evaluate it; a grayscale
    trunk only from a checkpoint of the same input form (:func:`trunk_input`), when it says one."""
    built = trunk_input(models)
    saved = state.get("trunk_input", "as read")  # before it was recorded, a grayscale trunk took the images as read
    if built is not None and saved is not None and saved != built:
        raise ValueError(
            f"the checkpoint's trunk was trained on grayscale images {INPUT_FORMS.get(saved, repr(saved))}, but its "
            f"config builds it to take them {INPUT_FORMS[built]} (a pretrained backbone on grayscale data trained by a "
            "pml_metrix that did not yet normalise them, or an edited checkpoint): evaluate or resume it with the "
            "version that trained it, or train it again"
        )
    for name, m in models.items():
        load_fitting(m, state["models"], name)


INPUT_FORMS = {"as read": "as read (in [0, 1])", "imagenet": "normalised for ImageNet weights"}


def rng_state() -> Dict[str, Any]:
    """The global generators' states (torch, numpy, Python) as tensors, numbers and lists."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(pos), int(has_gauss), float(cached)]},
        "python": [version, list(internal), gauss],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the global generators from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), *state["numpy"]["rest"]))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))


def training_state(components: "Components") -> Dict[str, Any]:
    """What resuming needs besides the epoch and history: every component's state and the RNGs'."""
    return {
        "models": {name: m.state_dict() for name, m in components.models.items()},
        "trunk_input": trunk_input(components.models),
        "loss": components.loss.state_dict(),
        "miner": {} if components.miner is None else components.miner.state_dict(),
        "optimizers": {name: o.state_dict() for name, o in components.optimizers.items()},
        "lr_schedulers": {name: s.state_dict() for name, s in components.lr_schedulers.items()},
        "sampler": components.sampler.state_dict(),
        "rng": rng_state(),
    }


def load_model_state(components: "Components", state: Dict[str, Any]) -> None:
    """Load what scores an epoch's model: the models' weights and the loss's state (proxy anchor's
    proxies, which the positivity of mixes reads)."""
    load_weights(components.models, state)
    components.loss.load_state_dict(state["loss"])


def load_training_state(components: "Components", state: Dict[str, Any]) -> None:
    """Load :func:`training_state` into the components and the global generators."""
    load_model_state(components, state)
    if components.miner is not None:
        components.miner.load_state_dict(state["miner"])
    for name, o in components.optimizers.items():
        o.load_state_dict(state["optimizers"][name])
    for name, s in components.lr_schedulers.items():
        s.load_state_dict(state["lr_schedulers"][name])
    components.sampler.load_state_dict(state["sampler"])
    set_rng_state(state["rng"])

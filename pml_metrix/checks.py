"""Input checks shared by the losses and the miner: each raises a ValueError that says what is
wrong and how to fix it."""

import difflib
import inspect
import math
from typing import Any, List, Mapping, Optional

import torch
from torch import Tensor


def has_data(tensor: Tensor) -> bool:
    """False for tensors on the meta device, whose values cannot be checked."""
    return tensor.device.type != "meta"


def in_unit_interval(tensor: Tensor) -> bool:
    """Whether every value lies in [0, 1] (a NaN does not), from one pass (``aminmax``); True for
    an empty tensor and for one on the meta device, whose values cannot be checked."""
    if not has_data(tensor) or tensor.numel() == 0:
        return True
    low, high = (float(bound) for bound in torch.aminmax(tensor))
    return 0 <= low and high <= 1


def check_embeddings(embeddings: Tensor, name: str = "embeddings", allow_empty: bool = False) -> None:
    """An N x d floating tensor with no NaN or Inf, non-empty unless ``allow_empty``."""
    if not torch.is_tensor(embeddings):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got shape {tuple(embeddings.shape)}")
    if embeddings.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {tuple(embeddings.shape)}): pass a batch of at least one item")
    if not embeddings.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {embeddings.dtype}")
    # One reduction (no autograd node) is the fast path: a finite sum means no NaN or Inf (the
    # elementwise check only runs when the sum is not finite, which an overflow alone can also cause).
    if has_data(embeddings) and not math.isfinite(embeddings.detach().sum()) and not torch.isfinite(embeddings).all():
        raise ValueError(
            f"{name} contains NaN or Inf: check the model's output (learning rate, mixed precision) "
            "before the loss"
        )


def check_labels(labels: Optional[Tensor], num_items: int, name: str = "labels") -> None:
    """Integer class labels, one per item."""
    if labels is None:
        return
    if not torch.is_tensor(labels):
        raise ValueError(f"{name} must be a torch.Tensor of integer class labels, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"{name} must hold integer class labels, got dtype {labels.dtype}: convert with labels.long()"
        )
    if labels.ndim != 1 or labels.shape[0] != num_items:
        raise ValueError(
            f"{name} must have shape ({num_items},), one label per embedding, got shape {tuple(labels.shape)}"
        )


def check_same_device(reference: Tensor, **tensors: Optional[Tensor]) -> None:
    """Every given tensor lies on ``reference``'s device."""
    for name, tensor in tensors.items():
        if tensor is not None and tensor.device != reference.device:
            raise ValueError(
                f"{name} is on {tensor.device} but the embeddings are on {reference.device}: "
                f"move it with .to({str(reference.device)!r})"
            )


def check_pair_mask(pair_mask: Optional[Tensor], shape: tuple, what: str) -> None:
    """A bool mask of the given shape (``what`` says what its rows and columns are)."""
    if pair_mask is None:
        return
    if not torch.is_tensor(pair_mask) or pair_mask.dtype != torch.bool:
        raise ValueError(f"pair_mask must be a bool tensor, got {getattr(pair_mask, 'dtype', type(pair_mask))}")
    if tuple(pair_mask.shape) != tuple(shape):
        raise ValueError(f"pair_mask must have shape {tuple(shape)} ({what}), got {tuple(pair_mask.shape)}")


def check_references(embeddings: Tensor, references: Tensor, name: str) -> None:
    """References compared with the embeddings: same dimension, dtype and device. Their own shape
    and values are checked (:func:`check_embeddings`) where they are made: by ``MixedBatch`` and
    ``SoftPairs``, or in the loss's forward for ``ref_emb``."""
    check_same_device(embeddings, **{name: references})
    if references.shape[1] != embeddings.shape[1] or references.dtype != embeddings.dtype:
        raise ValueError(
            f"{name} ({references.dtype}, dim {references.shape[1]}) must match the embeddings "
            f"({embeddings.dtype}, dim {embeddings.shape[1]})"
        )


SET_BY_SUBCLASSES = {"mat_based_loss"}  # PML's GenericPairLoss argument, which its subclasses pass themselves


def keyword_arguments(cls: type) -> List[str]:
    """The keyword arguments ``cls(...)`` takes: those of each ``__init__`` along its MRO that passes
    ``**kwargs`` on, up to the first that does not (PML's ``ModuleWithRecords``), in that order."""
    names: List[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]  # less self
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in SET_BY_SUBCLASSES and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def check_keywords(cls: type, kwargs: Mapping[str, Any]) -> None:
    """A TypeError naming ``cls``, the keyword arguments of ``kwargs`` it does not take (with the
    closest valid one) and its valid ones, where PML's base class would name neither."""
    valid = keyword_arguments(cls)
    unknown = [name for name in kwargs if name not in valid]
    if unknown:
        close = [match for name in unknown for match in difflib.get_close_matches(name, valid, n=1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise TypeError(f"{cls.__name__} got an unexpected keyword argument {', '.join(unknown)}{hint}; its arguments: "
                        f"{', '.join(valid)}")

import contextlib
import copy
from typing import Callable, Dict, Iterator, List, Optional

import torch
from pytorch_metric_learning.reducers import AvgNonZeroReducer, BaseReducer, MultipleReducers, ThresholdReducer
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from .. import functional as F
from ..checks import check_embeddings, check_labels, check_references
from ..mixed_batch import MixedBatch, SoftPairs
from ..reducers import SubLossReducers, WeightedReducer

MIXED_PREFIX = "mixed_"

PAIR_MATRIX = "pair_matrix"
"""Reduction type a :meth:`MetrixLossMixin.soft_loss` may give a pair-based sub-loss: ``losses`` the
A x R matrix of pair terms (0 outside the kept pairs), ``indices`` the A x R bool matrix of kept
pairs. The loss resolves it (:func:`reducible_pair_matrix`) before any reducer sees it."""


def drops_zero_losses(reducer: BaseReducer) -> bool:
    """Whether a PML reducer leaves out losses of 0 (``AvgNonZeroReducer``, ``ThresholdReducer`` with
    ``low >= 0``: exactly these classes), so that a matrix of pair terms reduces as the list of its
    kept pairs does."""
    return type(reducer) is AvgNonZeroReducer or (
        type(reducer) is ThresholdReducer and reducer.low is not None and reducer.low >= 0
    )


def listed_pairs(kept: Tensor, pair_losses: Callable[[Tensor], Tensor]) -> dict:
    """Loss info for the pairs ``kept`` keeps (A x R bool), listed in row-major order as PML's
    pair-based losses list theirs, each indexed by its anchor: ``pair_losses(flat_positions)``.
    No kept pair gives PML's zero loss (a reducer would average an empty tensor to NaN)."""
    pairs, anchors = F.kept_pairs(kept)
    if len(pairs) == 0:
        return {"losses": 0, "indices": None, "reduction_type": "already_reduced"}  # PML's zero_loss()
    return {"losses": pair_losses(pairs), "indices": anchors, "reduction_type": "element"}


def reducible_pair_matrix(terms: Tensor, kept: Tensor, reducer: BaseReducer) -> dict:
    """Loss info for pair terms (A x R, 0 outside the kept pairs) kept where ``kept`` (A x R bool), for
    ``reducer``: the list of the kept pairs' terms in row-major order, each indexed by its anchor, as
    PML's pair-based losses give; or, for a reducer that leaves out zero losses and collects no stats
    (whose ``losses_size`` would count rows), the matrix itself, rows indexed by anchor: the same
    value without listing the pairs (~1 ms of a 512 x 512 contrastive mixed part on a CPU).
    """
    if drops_zero_losses(reducer) and not reducer.collect_stats:
        return {"losses": terms, "indices": c_f.torch_arange_from_size(terms), "reduction_type": "element"}
    return listed_pairs(kept, lambda pairs: terms.flatten().index_select(0, pairs))


@contextlib.contextmanager
def normalizing_once(distance: torch.nn.Module) -> Iterator[None]:
    """Within the block, a PML distance normalizes each tensor once: ``maybe_normalize`` of a tensor
    it has already normalized (with the same arguments) returns the first result, so the
    normalization and its backward run once. The clean and the mixed part of a Metrix loss both
    normalize the batch (as queries) or proxy anchor's proxies; one B x d normalization forward and
    backward costs about a fifteenth of a multi-similarity loss at B = d = 512 on a CPU (1.1 ms of
    17 ms on one thread).
    """
    maybe_normalize = distance.maybe_normalize
    normalized = {}  # key -> (input, kept so that its id is not reused, output)

    def maybe_normalize_once(embeddings, *args, **kwargs):
        key = (id(embeddings), args, tuple(sorted(kwargs.items())))
        if key not in normalized:
            normalized[key] = (embeddings, maybe_normalize(embeddings, *args, **kwargs))
        return normalized[key][1]

    shadowed = distance.__dict__.get("maybe_normalize")
    distance.maybe_normalize = maybe_normalize_once
    try:
        yield
    finally:
        if shadowed is None:
            del distance.maybe_normalize
        else:
            distance.maybe_normalize = shadowed


class MetrixLossMixin:
    """Adds Metrix to a PML loss: ``loss(embeddings, labels, indices_tuple)`` where
    ``indices_tuple`` is a PML miner tuple or ``None`` (the PML loss, unchanged), a
    :class:`~pml_metrix.MixedBatch` (``clean + mix_weight * mixed``), or a
    :class:`~pml_metrix.SoftPairs` (the PML loss over soft-labelled references).

    A subclass implements :meth:`soft_loss`, the loss dict over soft-labelled references, and
    routes its clean loss through the same :mod:`pml_metrix.functional` function with binary labels.
    Mixed sub-losses are named ``mixed_<name>``, reduced like their clean twin, then weighted by
    ``mix_weight`` (see :class:`~pml_metrix.reducers.WeightedReducer`).
    """

    def __init__(self, *args, mix_weight: float = 0.4, **kwargs):
        super().__init__(*args, **kwargs)
        self.mix_weight = mix_weight
        self.add_to_recordable_attributes(name="mix_weight", is_stat=False)

    @property
    def mix_weight(self) -> float:
        return self._mix_weight

    @mix_weight.setter
    def mix_weight(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"mix_weight must be >= 0, got {value}")
        self._mix_weight = value
        if isinstance(self.reducer, MultipleReducers):
            for name, reducer in self.reducer.reducers.items():
                if name.startswith(MIXED_PREFIX):
                    reducer.weight = value

    def clean_sub_loss_names(self) -> List[str]:
        return super()._sub_loss_names()

    def _sub_loss_names(self) -> List[str]:
        clean = self.clean_sub_loss_names()
        return clean + [MIXED_PREFIX + name for name in clean]

    def set_reducer(self, reducer):
        if isinstance(reducer, MultipleReducers):
            reducer = copy.deepcopy(reducer)
        super().set_reducer(reducer)
        if type(self.reducer) is MultipleReducers:
            self.reducer = SubLossReducers(self.reducer.reducers, self.reducer.default_reducer)
        if isinstance(self.reducer, MultipleReducers):
            reducers = self.reducer.reducers
            for name in self.sub_loss_names():
                inner = reducers[name] if name in reducers else copy.deepcopy(self.reducer.default_reducer)
                if not isinstance(inner, WeightedReducer):
                    reducers[name] = WeightedReducer(inner)

    def anchor_labels(self, labels: Tensor) -> Tensor:
        """Class labels of the anchors that soft labels are taken against (the batch labels)."""
        return labels

    def mixed_soft_pairs(self, mixed_batch: MixedBatch, labels: Tensor) -> SoftPairs:
        """The MixedBatch resolved against the batch labels for this loss's anchors."""
        return mixed_batch.soft_pairs(labels, self.anchor_labels(labels))

    def forward(self, embeddings, labels=None, indices_tuple=None, ref_emb=None, ref_labels=None):
        """PML's forward, after checking the inputs (see :mod:`pml_metrix.checks`)."""
        check_embeddings(embeddings)
        check_labels(labels, embeddings.shape[0])
        if ref_emb is not None:
            check_embeddings(ref_emb, "ref_emb", allow_empty=True)
            check_references(embeddings, ref_emb, "ref_emb")
            check_labels(ref_labels, ref_emb.shape[0], "ref_labels")
            if ref_labels is None and indices_tuple is None:
                raise ValueError("ref_emb needs ref_labels (or an indices_tuple saying which pairs are positive)")
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        if isinstance(indices_tuple, SoftPairs):
            check_references(embeddings, indices_tuple.embeddings, "SoftPairs.embeddings")
            return self.reducible(self.soft_loss(embeddings, indices_tuple))
        if not isinstance(indices_tuple, MixedBatch):
            return self.clean_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        mixed = indices_tuple
        if labels is None:
            raise ValueError("a MixedBatch needs the batch labels: call loss(embeddings, labels, mixed_batch)")
        check_references(embeddings, mixed.embeddings, "MixedBatch.embeddings")
        soft = self.mixed_soft_pairs(mixed, labels)
        # the batch (PML's forward passes it as ref_emb too) is normalized once for both parts: the
        # clean part's value bit for bit, its gradients to rounding (bitwise equality is promised for
        # the clean path)
        with normalizing_once(self.distance):
            loss_dict = self.clean_loss(embeddings, labels, mixed.indices_tuple, ref_emb, ref_labels)
            if mixed.embeddings.shape[0] > 0:
                for name, loss_info in self.soft_loss(embeddings, soft).items():
                    loss_dict[MIXED_PREFIX + name] = loss_info
        return self.reducible(loss_dict)

    def reducible(self, loss_dict: Dict[str, dict]) -> Dict[str, dict]:
        """The loss dict with each :data:`PAIR_MATRIX` sub-loss in the form its reducer takes."""
        return {
            name: reducible_pair_matrix(info["losses"], info["indices"], self.sub_loss_reducer(name))
            if info["reduction_type"] == PAIR_MATRIX else info
            for name, info in loss_dict.items()
        }

    def sub_loss_reducer(self, name: str) -> BaseReducer:
        """The PML reducer that reduces sub-loss ``name`` (inside its :class:`WeightedReducer`)."""
        reducer = self.reducer
        if isinstance(reducer, MultipleReducers):
            reducer = reducer.reducers[name] if name in reducer.reducers else reducer.default_reducer
        return reducer.reducer if isinstance(reducer, WeightedReducer) else reducer

    def clean_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels) -> Dict[str, dict]:
        """The loss dict of the PML twin over the clean batch (``ref_emb=None``: the batch itself)."""
        return super().compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def soft_loss(self, embeddings: Tensor, soft_pairs: SoftPairs) -> Dict[str, dict]:
        """The loss dict (clean sub-loss names) over soft-labelled references."""
        raise NotImplementedError

    def selected_anchors(self, losses: Tensor, pair_mask: Optional[Tensor], num_references: int) -> dict:
        """Loss info for the anchors (``losses``: A) that have at least one pair in ``pair_mask`` (A x R,
        ``None``: all pairs), each indexed by its anchor.

        No such anchor gives PML's zero loss (a reducer would average an empty tensor to NaN).
        """
        if pair_mask is None:
            if num_references == 0:
                return self.zero_loss()
            return {"losses": losses, "indices": c_f.torch_arange_from_size(losses), "reduction_type": "element"}
        anchors = F.count_true(pair_mask).nonzero().squeeze(1)  # counts: any() is 10x slower on a random mask
        if len(anchors) == 0:
            return self.zero_loss()
        return {"losses": losses.index_select(0, anchors), "indices": anchors, "reduction_type": "element"}

import torch
from pytorch_metric_learning.reducers import AvgNonZeroReducer, BaseReducer, MultipleReducers, ThresholdReducer
from pytorch_metric_learning.utils import common_functions as c_f

from .. import functional as F

PAIR_MATRIX = "pair_matrix"
"""Reduction type of a sub-loss given as a matrix of pair terms: ``losses`` A x R (anchors x
references, 0 outside the kept pairs), ``indices`` the A x R bool matrix of kept pairs. Only
:class:`WeightedReducer` takes it (any other PML reducer raises on the unknown type)."""


def drops_zero_losses(reducer: BaseReducer) -> bool:
    """Whether a PML reducer leaves out losses of 0, so that a pair matrix reduces like its list of kept
    pairs: ``AvgNonZeroReducer`` and ``ThresholdReducer`` with ``low >= 0`` (exactly these classes)."""
    return type(reducer) is AvgNonZeroReducer or (
        type(reducer) is ThresholdReducer and reducer.low is not None and reducer.low >= 0
    )


class WeightedReducer(BaseReducer):
    """Reduce one sub-loss with ``reducer``, then multiply it by ``weight``.

    With stats collection on, records the unweighted reduced value as ``value``, so that
    record-keeper logs each sub-loss of a Metrix loss (clean and mixed) apart.

    A :data:`PAIR_MATRIX` sub-loss reaches ``reducer`` as the list of its kept pairs (``element``
    losses indexed by anchor, in row-major order), or, for a reducer that leaves out zero losses
    (:func:`drops_zero_losses`: the contrastive default), as the matrix itself, rows indexed by
    anchor: the same value without listing the pairs (~1 ms of a 512 x 512 contrastive mixed part).
    """

    def __init__(self, reducer: BaseReducer, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.reducer = reducer
        self.weight = weight
        self.add_to_recordable_attributes(name="weight", is_stat=False)
        self.add_to_recordable_attributes(name="value", is_stat=True)

    def forward(self, loss_dict, embeddings, labels):
        self.reset_stats()
        ((name, info),) = loss_dict.items()
        kept = info["indices"] if info["reduction_type"] == PAIR_MATRIX else None
        if kept is not None:
            info = self.pair_matrix_info(info["losses"], kept)
        value = self.reducer({name: info}, embeddings, labels)
        if self.collect_stats:
            self.value = value.item()
            if kept is not None:
                self.reducer.losses_size = int(torch.count_nonzero(kept))  # as for the list of kept pairs
        return value if self.weight == 1 else self.weight * value

    def pair_matrix_info(self, terms: torch.Tensor, kept: torch.Tensor) -> dict:
        """The loss info ``reducer`` takes for pair terms (A x R) kept where ``kept`` (A x R bool)."""
        if drops_zero_losses(self.reducer):
            return {"losses": terms, "indices": c_f.torch_arange_from_size(terms), "reduction_type": "element"}
        pairs, anchors = F.kept_pairs(kept)
        if len(pairs) == 0:  # PML's zero loss: a reducer would average an empty tensor to NaN
            return {"losses": 0, "indices": None, "reduction_type": "already_reduced"}
        return {"losses": terms.flatten().index_select(0, pairs), "indices": anchors, "reduction_type": "element"}


class SubLossReducers(MultipleReducers):
    """PML's ``MultipleReducers``, with the sub-losses gathered by one ``stack``.

    ``MultipleReducers`` copies each reduced sub-loss into a zero vector (a copy and an autograd node
    apiece) before summing it; the stacked vector is the same, so is its sum. A lone sub-loss (a
    Metrix multi-similarity loss without mixed items) is handed straight to its reducer: what the
    PML twin's single reducer gives.
    """

    def forward(self, loss_dict, embeddings, labels):
        self.reset_stats()
        values = [
            (self.reducers[name] if name in self.reducers else self.default_reducer)({name: info}, embeddings, labels)
            for name, info in loss_dict.items()
        ]
        if len(values) == 1 and next(iter(loss_dict)) in self.reducers:
            return values[0]
        sub_losses = torch.stack([value if value.ndim == 0 else value.reshape(()) for value in values])
        sub_losses = sub_losses.to(embeddings.dtype)
        return self.sub_loss_reduction(sub_losses, embeddings, labels)

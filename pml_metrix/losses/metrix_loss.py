import math
from numbers import Real
from typing import Dict, Mapping, Optional, Union

import torch
from pytorch_metric_learning import reducers
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from ..checks import check_embeddings, check_keywords, check_labels, check_references, has_data
from ..label_sets import check_labels_or_label_sets, get_label_similarity, is_label_sets
from ..mixed_batch import MixedBatch, SoftPairs
from ..names import POSITIVE_LOSS_OPTIONS, STRATEGIES

MixWeight = Union[float, Mapping[str, float]]
NUMERIC_OPTIONS = ("alpha", "beta", "base", "margin", "pos_margin", "neg_margin", "temperature")  # of the PML losses


class MetrixLossMixin:
    """Adds Metrix to a PML loss. ``loss(embeddings, labels, indices_tuple)`` with ``indices_tuple``

    - a PML miner tuple or ``None``: the PML loss, unchanged (value and gradients bit for bit in
      float32 and float64; half-precision embeddings are computed in float32, docs/api/losses.md);
    - a :class:`~pml_metrix.MixedBatch`: ``clean + mix_weight * mixed``, where ``clean`` is the PML
      loss with the MixedBatch's ``indices_tuple`` and ``mixed`` the loss over the mixed embeddings
      with their soft labels (:meth:`mixed_soft_pairs`), each reduced by the loss's ``reducer``;
    - a :class:`~pml_metrix.SoftPairs`: the loss over its soft-labelled references alone, reduced
      by the ``reducer`` (what ``mixed`` is for a MixedBatch). For proxy anchor the anchors are the
      proxies, so ``embeddings`` only fix the dimension, dtype and device; ``ref_emb`` is refused.

    ``ref_emb`` and ``ref_labels`` with a MixedBatch reach its clean part only, where PML reads the
    references of its ``indices_tuple`` as rows of ``ref_emb``: a tuple of the batch (an inner
    miner's, ``MixedBatch.tuple_references == "batch"``) is refused beside ``ref_emb``.

    ``labels`` are B class labels, or B x C multi-hot label sets (0 and 1) for multi-label data
    (proxy anchor: a proxy per label, see its class). With label sets, the pair
    (a, r) of two batch items has the soft label ``s(L_a, L_r)``, ``s`` the set similarity named
    ``label_similarity`` (:mod:`pml_metrix.label_sets`), and the clean part, which PML's loss cannot
    give, is the soft loss over the batch's own pairs with these labels
    (:meth:`~pml_metrix.SoftPairs.from_label_sets`), plus PML's embedding regularizer; with one label
    per item it is PML's loss with the class labels. A MixedBatch's mixes get
    ``lam s(L_a, L_i) + (1 - lam) s(L_a, L_j)`` (:meth:`~pml_metrix.MixedBatch.soft_pairs`).

    ``mix_weight`` is a number, or a mapping strategy -> weight for a miner that draws one strategy
    per step (``MixupMiner(strategy_per_step=True)``); the reference code weights positive-negative
    mixes 0.4 and anchor-negative ones 0.3. With stats collection on, each MixedBatch call records
    ``clean_loss`` and ``mixed_loss`` (the two reduced parts, before weighting).

    A subclass implements :meth:`soft_loss`, the loss dict (PML's sub-loss names and reduction types)
    over soft-labelled references, from :mod:`pml_metrix.functional`, and routes its clean loss
    through the same function with binary labels. The mixed part (and a SoftPairs call) goes through
    :meth:`mixed_soft_loss`, which is :meth:`soft_loss` unless a subclass gives its mixes another form
    (``MetrixMSLoss(mixed_form="attract")``); the clean part on label sets is :meth:`soft_loss`.
    """

    def __init__(self, *args, mix_weight: MixWeight = 0.4, label_similarity: str = "jaccard", **kwargs):
        check_keywords(type(self), kwargs)  # else PML's ModuleWithRecords refuses it, naming neither class nor options
        super().__init__(*args, **kwargs)
        get_label_similarity(label_similarity)  # raises for an unknown name
        self.label_similarity = label_similarity
        for name in NUMERIC_OPTIONS:  # PML takes them as given: a NaN would train on NaN losses
            value = getattr(self, name, None)
            if value is None:
                continue
            number = option_value(name, value)
            if name in POSITIVE_LOSS_OPTIONS and number is not None and number <= 0:
                raise ValueError(f"{name} must be > 0 (the loss divides by it), got {value!r}")
        self.mix_weight = mix_weight
        self.add_to_recordable_attributes(name="mix_weight", is_stat=False)
        self.add_to_recordable_attributes(list_of_names=["clean_loss", "mixed_loss"], is_stat=True)

    @property
    def mix_weight(self) -> MixWeight:
        return self._mix_weight

    @mix_weight.setter
    def mix_weight(self, value: MixWeight) -> None:
        if isinstance(value, Mapping) and not value:
            raise ValueError("mix_weight per strategy must name at least one strategy")
        weights = dict(value) if isinstance(value, Mapping) else {"": value}
        for strategy, weight in weights.items():
            if strategy and strategy not in STRATEGIES:
                raise ValueError(f"mix_weight's keys must be strategies among {STRATEGIES}, got {strategy!r}")
            if isinstance(weight, bool) or not isinstance(weight, Real) or not 0 <= weight < float("inf"):
                raise ValueError(f"mix_weight must be a finite number >= 0 (or a mapping strategy -> one), got {value!r}")
        self._mix_weight = dict(value) if isinstance(value, Mapping) else value

    def weight_of(self, mixed_batch: MixedBatch) -> float:
        """The weight of a MixedBatch's mixed part: ``mix_weight``, or its entry for the batch's strategy."""
        if not isinstance(self.mix_weight, dict):
            return self.mix_weight
        if mixed_batch.strategy not in self.mix_weight:
            raise ValueError(
                f"mix_weight is given per strategy ({', '.join(self.mix_weight)}) but the MixedBatch's strategy is "
                f"{mixed_batch.strategy!r}: draw one strategy per step (MixupMiner(strategy_per_step=True)) among "
                "those, or give mix_weight as one number"
            )
        return self.mix_weight[mixed_batch.strategy]

    def forward(self, embeddings, labels=None, indices_tuple=None, ref_emb=None, ref_labels=None):
        """The PML loss, ``clean + mix_weight * mixed`` for a MixedBatch, or the soft loss for SoftPairs.

        Each input is checked here, once: the embeddings, the labels (:meth:`check_batch_labels`), ``ref_emb``,
        a SoftPairs' fields, a MixedBatch's embeddings against these (its own fields are checked when
        it is made, its indices against the labels as its soft labels are resolved)."""
        check_embeddings(embeddings)
        self.check_batch_labels(labels, embeddings.shape[0])
        if labels is not None and not is_label_sets(labels):
            labels = labels.long()  # PML's twins index with them
        if (labels is None or is_label_sets(labels)) and any(
            isinstance(reducer, reducers.ClassWeightedReducer) for reducer in self.sub_reducers()
        ):
            given = "no labels" if labels is None else "label sets, which give an item no one class"
            raise ValueError(
                f"ClassWeightedReducer weights each loss term by the class of its item, and the loss got {given}: "
                "pass the class labels, loss(embeddings, labels, ...), or use another reducer (the loss's default)"
            )
        # the PML tuple of the clean part: given, or a MixedBatch's
        pml_tuple = indices_tuple.indices_tuple if isinstance(indices_tuple, MixedBatch) else indices_tuple
        if isinstance(indices_tuple, MixedBatch) and pml_tuple is not None:
            check_tuple_references(indices_tuple.tuple_references, ref_emb)
        if ref_emb is not None:
            check_embeddings(ref_emb, "ref_emb", allow_empty=True)
            check_references(embeddings, ref_emb, "ref_emb")
            if is_label_sets(labels):
                raise ValueError(
                    "label sets label every pair of the batch itself: ref_emb and ref_labels (PML's references, with "
                    "class labels) cannot be used with them; call loss(embeddings, label_sets)"
                )
            check_labels(ref_labels, ref_emb.shape[0], "ref_labels")
            if ref_labels is None and pml_tuple is None:
                raise ValueError("ref_emb needs ref_labels (or an indices_tuple saying which pairs are positive)")
        if isinstance(indices_tuple, SoftPairs):
            if ref_emb is not None:
                raise ValueError("a SoftPairs holds its references: pass ref_emb only with a PML tuple or a MixedBatch")
            indices_tuple.check(embeddings)
            self.reset_stats()
            return self.reduced_soft_loss(embeddings, labels, indices_tuple)
        if not isinstance(indices_tuple, MixedBatch):
            return self.clean_part(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        mixed_batch = indices_tuple
        if labels is None:
            raise ValueError("a MixedBatch needs the batch labels: call loss(embeddings, labels, mixed_batch)")
        check_references(embeddings, mixed_batch.embeddings, "MixedBatch.embeddings")
        labels = c_f.to_device(labels, embeddings)
        mix_weight = self.weight_of(mixed_batch)
        # label sets: the batch's pairs labelled once, for the clean part and the mixes' soft labels
        batch_pairs = batch_soft_labels = None
        if is_label_sets(labels):
            batch_pairs = self.label_set_pairs(embeddings, labels, mixed_batch.indices_tuple)
            batch_soft_labels = batch_pairs.soft_labels
        # the mixed part first, so that the reducer's own stats are the clean part's, as in PML
        mixed = self.reduced_soft_loss(embeddings, labels, self.mixed_soft_pairs(mixed_batch, labels, batch_soft_labels))
        clean = self.clean_part(embeddings, labels, mixed_batch.indices_tuple, ref_emb, ref_labels, batch_pairs)
        if not (torch.is_tensor(clean) and torch.is_tensor(mixed)):
            raise ValueError(
                f"the reducer {type(self.reducer).__name__} returns no loss tensor (DoNothingReducer: the loss dicts), so "
                "there is nothing to add clean + mix_weight * mixed to: call the loss with a SoftPairs for the mixed "
                "part's dict, or use a reducing reducer"
            )
        if self.collect_stats:
            self.clean_loss, self.mixed_loss = clean.item(), mixed.item()
        return clean + mix_weight * mixed

    def check_batch_labels(self, labels: Optional[Tensor], num_items: int) -> None:
        """Raise unless ``labels`` are ``num_items`` class labels or label sets (or ``None``); a
        subclass adds what its own options need of them (proxy anchor: a proxy for each label)."""
        check_labels_or_label_sets(labels, num_items)

    def clean_part(self, embeddings, labels, indices_tuple, ref_emb, ref_labels, batch_pairs=None):
        """The loss without mixes: PML's for class labels (or none); for B x C label sets, the soft
        loss over their :meth:`label_set_pairs` (``batch_pairs``, where the caller has them) with
        PML's embedding regularizer, reduced by the reducer."""
        if not is_label_sets(labels):
            return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if batch_pairs is None:
            batch_pairs = self.label_set_pairs(embeddings, labels, indices_tuple)
        self.reset_stats()
        loss_dict = self.soft_loss(embeddings, batch_pairs)
        self.add_embedding_regularization_to_loss_dict(loss_dict, embeddings)
        return self.reducer(loss_dict, embeddings, labels)

    def label_set_pairs(self, embeddings, label_sets, indices_tuple) -> SoftPairs:
        """The batch's own pairs labelled by the similarity of their label sets,
        :meth:`SoftPairs.from_label_sets(embeddings, label_sets, label_similarity)
        <pml_metrix.SoftPairs.from_label_sets>`; PML's tuples take class labels, so they are refused
        (``ref_emb`` is, by :meth:`forward`)."""
        if indices_tuple is not None:
            raise ValueError(
                "label sets label every pair of the batch: a PML indices_tuple (an inner_miner's), which takes class "
                "labels, cannot be used with them; call loss(embeddings, label_sets) or pass a MixupMiner built "
                "without inner_miner"
            )
        return SoftPairs.from_label_sets(embeddings, label_sets, self.label_similarity)

    def reduced_soft_loss(self, embeddings: Tensor, labels: Optional[Tensor], soft_pairs: SoftPairs) -> Tensor:
        """:meth:`mixed_soft_loss` reduced by the loss's reducer (``labels``: the anchors', for reducers that use them).

        PML's ``PerAnchorReducer`` tables pair losses in a B x B array (B the embeddings), so pairs
        whose references (the mixes) outnumber the anchors are refused before it fails on an index."""
        loss_dict = self.mixed_soft_loss(embeddings, soft_pairs)
        pairs = any(info["reduction_type"] in ("pos_pair", "neg_pair") for info in loss_dict.values())
        if pairs and soft_pairs.embeddings.shape[0] > embeddings.shape[0] and self.reduces_per_anchor():
            raise ValueError(
                f"PML's PerAnchorReducer puts each pair's loss in a B x B table, but {soft_pairs.embeddings.shape[0]} "
                f"mixes (references) are more than the {embeddings.shape[0]} anchors: draw at most as many mixes as batch "
                "items (MixupMiner with num_mixes=1 and one strategy, or strategy_per_step=True; or mixes='per_batch' with "
                "num_mixes at most the batch size), or use another reducer"
            )
        return self.reducer(loss_dict, embeddings, labels)

    def reduces_per_anchor(self) -> bool:
        """Whether one of :meth:`sub_reducers` is a ``PerAnchorReducer``."""
        return any(isinstance(reducer, reducers.PerAnchorReducer) for reducer in self.sub_reducers())

    def sub_reducers(self) -> list:
        """The reducer, or a ``MultipleReducers``' sub-loss and default reducers."""
        if isinstance(self.reducer, reducers.MultipleReducers):
            return [*self.reducer.reducers.values(), self.reducer.default_reducer]
        return [self.reducer]

    def mixed_soft_pairs(
        self, mixed_batch: MixedBatch, labels: Tensor, batch_soft_labels: Optional[Tensor] = None
    ) -> SoftPairs:
        """The MixedBatch resolved against the batch labels (or label sets, by ``label_similarity``;
        ``batch_soft_labels``: their B x B similarities where already computed) for this loss's
        anchors (the batch items)."""
        return mixed_batch.soft_pairs(labels, self.label_similarity, batch_soft_labels)

    def soft_loss(self, embeddings: Tensor, soft_pairs: SoftPairs) -> Dict[str, dict]:
        """The loss dict over soft-labelled references, PML's sub-loss names and reduction types."""
        raise NotImplementedError

    def mixed_soft_loss(self, embeddings: Tensor, soft_pairs: SoftPairs) -> Dict[str, dict]:
        """The loss dict of the mixed part (and of a SoftPairs call): :meth:`soft_loss`."""
        return self.soft_loss(embeddings, soft_pairs)

    def selected_anchors(self, losses: Tensor, pair_mask: Optional[Tensor], num_references: int) -> dict:
        """Loss info for the anchors (``losses``: A) that have at least one pair in ``pair_mask`` (A x R,
        ``None``: all pairs), each indexed by its anchor.

        No such anchor gives PML's zero loss (a reducer would average an empty tensor to NaN).
        """
        if pair_mask is None:
            if num_references == 0:
                return self.zero_loss()
            return {"losses": losses, "indices": c_f.torch_arange_from_size(losses), "reduction_type": "element"}
        anchors = pair_mask.any(dim=1).nonzero().squeeze(1)
        if len(anchors) == 0:
            return self.zero_loss()
        return {"losses": losses.index_select(0, anchors), "indices": anchors, "reduction_type": "element"}


def option_value(name: str, value) -> Optional[float]:
    """The value of a loss's numeric option: a real number, or a one-element floating tensor (a
    learnable ``torch.nn.Parameter`` temperature, as PML's losses take one); it must be finite.
    ``None`` for a tensor on the meta device, whose value cannot be read."""
    if torch.is_tensor(value) and value.numel() == 1 and value.is_floating_point():
        if not has_data(value):
            return None
        number = float(value.detach())
    elif isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"{name} must be a finite number or a one-element float tensor, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_tuple_references(tuple_references: str, ref_emb: Optional[Tensor]) -> None:
    """Raise unless a MixedBatch's ``indices_tuple`` indexes what PML will read its references as:
    the batch without ``ref_emb``, ``ref_emb`` with it."""
    if ref_emb is not None and tuple_references == "batch":
        raise ValueError(
            "this MixedBatch's indices_tuple (its inner miner's) indexes the batch it was drawn on, but beside ref_emb PML "
            "reads its references as rows of ref_emb, which would pair the wrong items: draw the MixedBatch without "
            "inner_miner to pass ref_emb (the clean part then takes every pair with ref_emb, by ref_labels), or wrap the "
            "loss in pml_metrix.losses.CrossBatchMemory, which moves the tuple's references into its memory"
        )
    if ref_emb is None and tuple_references == "ref_emb":
        raise ValueError(
            "this MixedBatch's indices_tuple indexes ref_emb (tuple_references='ref_emb'), but no ref_emb was given: pass "
            "the ref_emb and ref_labels the tuple was mined on"
        )

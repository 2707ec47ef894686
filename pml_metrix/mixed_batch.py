"""The contract between a miner and the Metrix losses: soft-labelled references for each anchor.

Pass either object where PML passes ``indices_tuple``: ``loss(embeddings, labels, mixed_batch)``.
"""

from dataclasses import dataclass
from numbers import Integral
from typing import Optional, Tuple

import torch
from torch import Tensor

from .checks import check_embeddings, check_pair_mask, check_references, check_same_device, in_unit_interval
from .functional import loss_dtype
from .label_sets import batch_similarities, check_label_set_rows, is_label_sets
from .mixing import MixingPlan

IndicesTuple = Optional[Tuple[Tensor, ...]]


@dataclass
class SoftPairs:
    """References with a soft label relative to each anchor (teacher or multi-label similarities).

    Args:
        embeddings: R x d reference embeddings.
        soft_labels: A x R, in [0, 1]: how much reference r is a positive for anchor a. The anchors
            are the batch embeddings (A = B), or the proxies for proxy anchor (A = num_classes).
        pair_mask: A x R bool, which pairs count; ``None`` means all. Mask out each anchor's own
            row when the references are the batch itself.

    With ``SoftPairs`` the loss is its mixed part over these references: the PML loss with these
    labels in place of the class labels (for ``MetrixMSLoss(mixed_form="attract")``, its positive
    sum alone), reduced as the loss reduces it (multi-similarity: over the anchors with a pair in
    ``pair_mask``); ``labels`` may then be ``None``. The loss checks the fields when it is called
    with them (:meth:`check`).
    """

    embeddings: Tensor
    soft_labels: Tensor
    pair_mask: Optional[Tensor] = None

    def check(self, embeddings: Tensor) -> None:
        """Raise unless these are references for ``embeddings`` (the loss's anchors' or, for proxy
        anchor, of the proxies' dimension, dtype and device) with a soft label in [0, 1] and a pair
        mask entry for each (anchor, reference) pair. The loss checks a SoftPairs it is given."""
        check_embeddings(self.embeddings, "SoftPairs.embeddings", allow_empty=True)
        check_references(embeddings, self.embeddings, "SoftPairs.embeddings")
        y = self.soft_labels
        if not torch.is_tensor(y) or y.ndim != 2 or y.shape[1] != self.embeddings.shape[0]:
            raise ValueError(
                "soft_labels must be an A x R tensor with R = len(embeddings) = "
                f"{self.embeddings.shape[0]}, got {tuple(getattr(y, 'shape', ()))}"
            )
        if y.dtype != torch.bool and not y.is_floating_point():
            raise ValueError(f"soft_labels must be float in [0, 1] or bool, got dtype {y.dtype}")
        check_pair_mask(self.pair_mask, tuple(y.shape), "anchors x references")
        check_same_device(self.embeddings, soft_labels=y, pair_mask=self.pair_mask)
        if y.dtype != torch.bool and not in_unit_interval(y):
            raise ValueError("soft_labels must lie in [0, 1] (NaN is not allowed)")

    @classmethod
    def from_label_sets(cls, embeddings: Tensor, label_sets: Tensor, label_similarity: str = "jaccard") -> "SoftPairs":
        """The batch as its own references, each pair labelled by the similarity of its label sets.

        ``soft_labels[a, r] = s(L_a, L_r)``, with ``s`` the similarity named ``label_similarity``
        (:data:`~pml_metrix.label_sets.LABEL_SIMILARITIES`), and ``pair_mask`` all pairs but each
        anchor's own, so that ``loss(embeddings, None, SoftPairs.from_label_sets(embeddings, label_sets))``
        trains a Metrix loss whose anchors are the batch items (contrastive, multi-similarity, SupCon,
        NT-Xent) on multi-label data. Not for proxy anchor, whose anchors are its proxies (a B x B
        SoftPairs would be read as proxies x items, unchecked when B = num_classes): give it the
        label sets, ``loss(embeddings, label_sets)``. It is the clean part of ``loss(embeddings, label_sets)`` (but for
        ``MetrixMSLoss(mixed_form="attract")``, whose SoftPairs call takes the mixes' form).

        Args:
            embeddings: B x d batch embeddings, the anchors and the references.
            label_sets: B x C multi-hot label sets (0 and 1, any dtype; moved to the embeddings' device).
            label_similarity: ``jaccard``, ``dice``, ``cosine`` or ``shares_any`` (bool labels: PML's
                loss with "shares a label" as the positive pairs).

        With one label per item, the soft labels are the bool same-class labels whatever the
        similarity (:func:`~pml_metrix.label_sets.batch_similarities`), and the loss is PML's loss with
        the class labels, bit for bit.
        """
        check_label_set_rows(label_sets, embeddings.shape[0])
        soft_labels = batch_similarities(label_sets, label_similarity, loss_dtype(embeddings.dtype), embeddings.device)
        not_self = torch.ones(soft_labels.shape, dtype=torch.bool, device=embeddings.device).fill_diagonal_(False)
        return cls(embeddings, soft_labels, not_self)

    def showing_negatives(self) -> "SoftPairs":
        """These SoftPairs with every pure negative pair (``y = 0``) in the pair mask, as a softmax
        loss's mixed part needs them: the softmax of an anchor runs over the references its pair
        mask shows, so a mask that shows each anchor only mixes of its own class (what
        ``MixupMiner``'s ``shown_to`` gives for positive-negative mixes, often one mix) leaves it no
        negative to tell them from. ``None`` (all pairs) stays ``None``."""
        if self.pair_mask is None:
            return self
        negatives = ~self.soft_labels if self.soft_labels.dtype == torch.bool else self.soft_labels == 0
        return SoftPairs(self.embeddings, self.soft_labels, self.pair_mask | negatives)

    def check_anchors(self, num_anchors: int, what: str) -> None:
        """Raise unless there is one row of labels per anchor."""
        if self.soft_labels.shape[0] != num_anchors:
            raise ValueError(
                f"soft_labels has {self.soft_labels.shape[0]} rows but the loss has {num_anchors} "
                f"anchors ({what}): give one row per anchor"
            )


class MixedBatch:
    """Mixed embeddings with the plan that made them.

    Args:
        embeddings: K x d mixed embeddings, ``lam_k e_i + (1 - lam_k) e_j`` at some level.
        source_index: K x 2 long, the batch positions (i, j) mixed into item k.
        lam: K mixing factors in [0, 1].
        pair_mask: B x K bool, which (anchor, mixed item) pairs count; ``None`` means all.
        indices_tuple: an optional PML miner tuple for the clean part of the loss.
        tuple_references: what the references of ``indices_tuple`` index: ``"batch"`` (the default),
            the batch the plan was drawn on, as ``MixupMiner``'s inner miner mines them; ``"ref_emb"``,
            the ``ref_emb`` the loss is called with (PML's reading of a tuple beside ``ref_emb``), as
            ``pml_metrix.losses.CrossBatchMemory`` hands the loss a tuple over batch and memory. The
            loss refuses a tuple of the batch beside ``ref_emb``, and one of ``ref_emb`` without it.
        num_classes: ``None`` when the anchors (``pair_mask``'s rows) are the B batch items; C when
            they are the classes 0, ..., C - 1 (proxy anchor's proxies; ``pair_mask`` is C x K).
        strategy: the one mixing strategy of every mix, when the miner drew one for the step (a
            loss can weight the mixed part by strategy); ``None`` otherwise.

    The five fields of the mix (``source_index`` to ``strategy``) are its :class:`~pml_metrix.MixingPlan`,
    ``plan``, read through as attributes: ``mixed_batch.lam`` is ``mixed_batch.plan.lam``.
    :meth:`MixingPlan.mixed_batch <pml_metrix.mixing.MixingPlan.mixed_batch>` makes one from a plan.

    The soft label of mixed item k for an anchor of class c is
    ``lam_k [c(i) = c] + (1 - lam_k) [c(j) = c]``; for an anchor a of a batch of label sets,
    ``lam_k s(L_a, L_i) + (1 - lam_k) s(L_a, L_j)`` with ``s`` a set similarity
    (:mod:`pml_metrix.label_sets`), the same with one label per item.

    Pass it where PML passes ``indices_tuple``, to a Metrix loss; it is no indices tuple itself.
    """

    TUPLE_REFERENCES = ("batch", "ref_emb")

    def __init__(
        self,
        embeddings: Tensor,
        source_index: Tensor,
        lam: Tensor,
        pair_mask: Optional[Tensor] = None,
        indices_tuple: IndicesTuple = None,
        num_classes: Optional[int] = None,
        strategy: Optional[str] = None,
        tuple_references: str = "batch",
    ):
        self.embeddings = embeddings
        self.plan = MixingPlan(source_index, lam, pair_mask, num_classes, strategy)
        self.indices_tuple = indices_tuple
        self.tuple_references = tuple_references
        self._check()

    @property
    def tuple_references(self) -> str:
        """What the references of ``indices_tuple`` index: ``"batch"`` or ``"ref_emb"`` (checked when set)."""
        return self._tuple_references

    @tuple_references.setter
    def tuple_references(self, value: str) -> None:
        if value not in self.TUPLE_REFERENCES:
            raise ValueError(f"tuple_references must be one of {self.TUPLE_REFERENCES}, got {value!r}")
        self._tuple_references = value

    source_index = property(lambda self: self.plan.source_index, doc="K x 2 long: the plan's (i, j) of each mix.")
    lam = property(lambda self: self.plan.lam, doc="K: the plan's mixing factors.")
    pair_mask = property(lambda self: self.plan.pair_mask, doc="A x K bool or ``None``: the plan's pair mask.")
    num_classes = property(lambda self: self.plan.num_classes, doc="``None`` or C: the plan's anchors.")
    strategy = property(lambda self: self.plan.strategy, doc="The plan's strategy, or ``None``.")

    def _check(self) -> None:
        """Raise unless the fields fit together: one (i, j) and one lam in [0, 1] per mixed
        embedding, a pair mask of one column per mix (and one row per class with num_classes)."""
        check_embeddings(self.embeddings, "MixedBatch.embeddings", allow_empty=True)
        num_mixed = self.embeddings.shape[0]
        idx, lam = self.source_index, self.lam
        if not torch.is_tensor(idx) or idx.dtype != torch.long or tuple(idx.shape) != (num_mixed, 2):
            raise ValueError(
                f"source_index must be a long tensor of shape ({num_mixed}, 2), one (i, j) per mixed "
                f"embedding, got {getattr(idx, 'dtype', type(idx))} {tuple(getattr(idx, 'shape', ()))}"
            )
        if not torch.is_tensor(lam) or not lam.is_floating_point() or tuple(lam.shape) != (num_mixed,):
            raise ValueError(
                f"lam must be a float tensor of shape ({num_mixed},), one factor per mixed embedding, "
                f"got {getattr(lam, 'dtype', type(lam))} {tuple(getattr(lam, 'shape', ()))}"
            )
        if self.num_classes is not None:
            if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, Integral) or self.num_classes < 1:
                raise ValueError(f"num_classes must be None or a positive int, got {self.num_classes!r}")
            self.plan.num_classes = int(self.num_classes)
        if self.pair_mask is not None:
            rows = self.pair_mask.shape[0] if self.num_classes is None else self.num_classes
            check_pair_mask(self.pair_mask, (rows, num_mixed), "anchors x mixed items")
        check_same_device(self.embeddings, source_index=idx, lam=lam, pair_mask=self.pair_mask)
        if not in_unit_interval(lam):
            raise ValueError("lam must lie in [0, 1] (NaN is not allowed)")

    def __repr__(self) -> str:
        masked = "none" if self.pair_mask is None else f"{self.pair_mask.float().mean().item():.3f} of the pairs kept"
        anchors = "batch items" if self.num_classes is None else f"{self.num_classes} classes"
        return (
            f"MixedBatch(K={len(self.lam)}, embeddings={tuple(self.embeddings.shape)}, anchors={anchors}, "
            f"pair_mask={masked}, indices_tuple={'none' if self.indices_tuple is None else 'of the ' + self.tuple_references}"
            + ("" if self.strategy is None else f", strategy={self.strategy}")
            + ")"
        )

    def _not_a_tuple(self, *_):
        raise TypeError(
            "MixedBatch is no PML indices tuple: pass it to a Metrix loss (pml_metrix.MetrixMSLoss, ...) as "
            "indices_tuple; its clean part's tuple is MixedBatch.indices_tuple"
        )

    __len__ = __getitem__ = __iter__ = _not_a_tuple

    def __bool__(self) -> bool:  # ``if indices_tuple:`` would otherwise call __len__
        return True

    def soft_pairs(
        self, labels: Tensor, label_similarity: str = "jaccard", batch_soft_labels: Optional[Tensor] = None
    ) -> SoftPairs:
        """Resolve the plan against the batch for the batch's own anchors: A = B.

        Args:
            labels: B class labels of the batch the plan indexes (any integers), or its B x C
                label sets.
            label_similarity: the set similarity of label sets (unused for class labels).
            batch_soft_labels: for label sets, their B x B similarities ``s(L_a, L_b)`` where the
                caller has them already (a Metrix loss's clean part labels the batch's pairs with
                them), so that they are not computed twice; ``None`` computes them from ``labels``.
                The mixes get :meth:`mix_soft_labels` of them.
        """
        if self.num_classes is not None and self.pair_mask is not None:
            raise ValueError(
                f"this MixedBatch's pair_mask has one row per class ({self.num_classes}, from "
                "MixupMiner(num_classes=...), meant for proxy anchor), but this loss's anchors are the batch "
                "items: build the MixupMiner without num_classes"
            )
        if is_label_sets(labels):
            if batch_soft_labels is None:
                dtype = loss_dtype(self.embeddings.dtype)
                batch_soft_labels = batch_similarities(labels, label_similarity, dtype, self.lam.device)
            elif not torch.is_tensor(batch_soft_labels) or tuple(batch_soft_labels.shape) != (len(labels), len(labels)):
                raise ValueError(
                    f"batch_soft_labels must have shape ({len(labels)}, {len(labels)}), the similarity of each pair of "
                    f"the {len(labels)} label sets, got shape {tuple(getattr(batch_soft_labels, 'shape', ()))}"
                )
            soft_labels = self.mix_soft_labels(batch_soft_labels)
        elif batch_soft_labels is not None:
            raise ValueError(
                "batch_soft_labels are the similarities of label sets, but the labels are class labels (one "
                "per item): leave batch_soft_labels out, or pass the label sets"
            )
        else:
            classes, class_index = torch.unique(labels, return_inverse=True)  # classes numbered 0, ..., C - 1
            soft_labels = self.class_soft_labels(class_index, len(classes)).index_select(0, class_index)
        return SoftPairs(self.embeddings, soft_labels, self.pair_mask)

    def class_soft_pairs(self, labels: Tensor, num_classes: int) -> SoftPairs:
        """Resolve the plan against the batch for one anchor per class 0, ..., num_classes - 1 (proxy
        anchor's proxies); ``labels`` (B) must lie in ``[0, num_classes)``, or be B x num_classes
        label sets, where a mix's soft label for class c is ``lam [c in L_i] + (1 - lam) [c in L_j]``
        (:meth:`mix_soft_labels` of the classes' membership, ``labels.T``)."""
        if self.pair_mask is not None and self.num_classes != num_classes:
            rows = "batch item" if self.num_classes is None else f"of {self.num_classes} classes"
            raise ValueError(
                f"this MixedBatch's pair_mask has one row per {rows}, but the loss's anchors are its "
                f"{num_classes} proxies: build the MixupMiner with num_classes={num_classes}"
            )
        if is_label_sets(labels):
            return SoftPairs(self.embeddings, self.mix_soft_labels(labels.T), self.pair_mask)
        return SoftPairs(self.embeddings, self.class_soft_labels(labels, num_classes), self.pair_mask)

    def class_soft_labels(self, labels: Tensor, num_classes: int) -> Tensor:
        """num_classes x K: the soft label of each mixed item for each class,
        ``lam [c(i) = c] + (1 - lam) [c(j) = c]``, given the B labels (in ``[0, num_classes)``) of the
        batch the plan indexes. An anchor's soft labels are its class's row: built so, by two scatters
        of K, rather than by comparing A x K labels twice."""
        check_same_device(labels, source_index=self.source_index)
        self.check_batch_size(len(labels))
        source_labels = labels[self.source_index]  # K x 2
        lam = self.lam.to(loss_dtype(self.embeddings.dtype))
        class_labels = lam.new_zeros(num_classes, len(lam))
        mixed_index = torch.arange(len(lam), device=lam.device)
        # in [0, 1] as lam is (checked on construction)
        class_labels.index_put_((source_labels[:, 0], mixed_index), lam, accumulate=True)
        class_labels.index_put_((source_labels[:, 1], mixed_index), 1 - lam, accumulate=True)
        return class_labels

    def mix_soft_labels(self, batch_soft_labels: Tensor) -> Tensor:
        """A x K: the soft labels of the mixes for A anchors, given the A x B soft labels ``y`` of
        those anchors for the batch's items (the batch the plan indexes): ``lam_k y[a, i_k] + (1 - lam_k) y[a, j_k]``
        for mix k = (i, j), Metrix's rule, in the loss's dtype. The batch's own anchors (A = B) with
        label sets have ``y[a, b] = s(L_a, L_b)``; proxies (A = C) ``y[c, b] = [c in L_b]``.

        With one label per item (``y`` the same-class labels, 1 and 0) it is :meth:`class_soft_labels`'
        row of each anchor's class, bit for bit (``lam * 1 + (1 - lam) * 0`` is ``lam``)."""
        if not torch.is_tensor(batch_soft_labels) or batch_soft_labels.ndim != 2:
            raise ValueError(
                "batch_soft_labels must be an A x B tensor, the soft label of each anchor for each of the batch's "
                f"items, got shape {tuple(getattr(batch_soft_labels, 'shape', ()))}"
            )
        check_same_device(self.embeddings, batch_soft_labels=batch_soft_labels)
        self.check_batch_size(batch_soft_labels.shape[1])
        lam = self.lam.to(loss_dtype(self.embeddings.dtype))
        batch_soft_labels = batch_soft_labels.to(lam.dtype)
        first, second = (index.expand(len(batch_soft_labels), -1) for index in self.source_index.unbind(1))
        soft_labels = batch_soft_labels.gather(1, first).mul_(lam)
        return soft_labels.add_(batch_soft_labels.gather(1, second).mul_(1 - lam))

    def check_batch_size(self, batch_size: int) -> None:
        """Raise unless this MixedBatch indexes a batch of ``batch_size`` items: its ``source_index``
        (the one range check of a training step's mixes), and its pair mask's rows when they are the
        batch items. The loss calls it as it resolves the soft labels against the batch labels."""
        if self.source_index.numel():
            low, high = (int(bound) for bound in torch.aminmax(self.source_index))  # one pass
            if low < 0 or high >= batch_size:
                raise ValueError(
                    f"source_index must index the batch of {batch_size} items, got values in [{low}, {high}]"
                )
        if self.pair_mask is not None and self.num_classes is None and len(self.pair_mask) != batch_size:
            raise ValueError(
                f"pair_mask must have shape {(batch_size, len(self.lam))} (anchors x references), got "
                f"{tuple(self.pair_mask.shape)}"
            )

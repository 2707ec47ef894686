"""PML's AccuracyCalculator plus Recall@K, utilization, alignment and uniformity."""

import functools
import math
from typing import Any, List, Optional, Sequence, Tuple, Union

from pytorch_metric_learning.utils.accuracy_calculator import (
    EQUALITY,
    AccuracyCalculator,
    maybe_get_avg_of_avgs,
    nan_accuracy,
    try_getting_not_lone_labels,
)
import torch
from torch import Tensor

from ..checks import check_embeddings
from ..label_sets import check_label_set_values, get_label_similarity, graded_relevance, is_a_column_of_class_labels, share_a_label
from .alignment_uniformity import alignment, uniformity
from .utilization import nearest_sq_distances

Accuracy = Union[float, List[float]]


def check_recall_ks(recall_at_k: Sequence[int]) -> Tuple[int, ...]:
    """Distinct positive integers, sorted."""
    if not isinstance(recall_at_k, (list, tuple)):
        raise ValueError(f"recall_at_k must be a tuple of positive integers such as (1, 2, 4, 8), got {recall_at_k!r}")
    for value in recall_at_k:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"recall_at_k must hold positive integers, got {value!r} in {recall_at_k!r}")
    if len(set(recall_at_k)) != len(recall_at_k):
        raise ValueError(f"recall_at_k lists a K twice: {recall_at_k!r}; give each K once")
    return tuple(sorted(recall_at_k))


class MetrixAccuracyCalculator(AccuracyCalculator):
    """PML's ``AccuracyCalculator`` with the metrics of the Metrix paper.

    Adds, next to PML's metrics (``include``, ``exclude``, ``k``, ``knn_func``, ``avg_of_avgs``
    and the other PML arguments work as in PML):

    - ``recall_at_<K>`` for each K in ``recall_at_k``: the share of queries with a reference of
      their class among their K nearest references (the query itself excluded when
      ``ref_includes_query``). As in PML's ``precision_at_1``, queries whose class has no other
      reference are left out (NaN when all are), and ``recall_at_1`` equals ``precision_at_1``.
      The k-NN search returns at least max(K) neighbours (capped at the number of references).
    - ``utilization``: mean over queries of the squared Euclidean distance to the nearest
      reference, one faiss k=1 search on the embeddings as given. The references are
      ``reference``, less the query itself (its first ``len(query)`` rows) when
      ``ref_includes_query``: pass the training embeddings as the reference (or evaluate
      ``("test", ["test", "train"])``); NaN when no reference is left. Follows ``avg_of_avgs``.
    - ``alignment`` and ``uniformity`` of the query embeddings and labels, L2-normalised first
      (see :mod:`pml_metrix.testers.alignment_uniformity`): global values, whatever
      ``avg_of_avgs`` or ``return_per_class``.

    Multi-label data (``label_similarity`` given): the labels are N x C label sets (0 and 1). A
    reference is relevant to a query when they share a label: ``label_comparison_fn`` defaults to
    :func:`~pml_metrix.label_sets.share_a_label`, through which PML's own metrics
    (``precision_at_1``, ``mean_average_precision_at_r``, ``r_precision``, ...) and ``recall_at_<K>``
    score the sets. And for each K in ``recall_at_k``:

    - ``ndcg_at_<K>``: the gain of the neighbour at rank r is ``s(L_q, L_r)``, the set similarity
      named ``label_similarity`` (0 where either set is empty: it shares no label), and ``nDCG@K = DCG@K / IDCG@K`` with
      ``DCG@K = sum_{r <= K} s_r / log2(r + 1)`` over the K nearest references and ``IDCG@K`` the same
      over the K references of largest gain (the query itself left out when ``ref_includes_query``).
      Queries with no reference of positive gain (sharing no label with any) are left out, as PML
      leaves out lone queries (NaN when all are).

    NMI, AMI (clustering) and ``alignment`` (classes) have no meaning for label sets and are left
    out unless ``include`` names them (PML then refuses the clustering ones).

    Args:
        recall_at_k: the K of the ``recall_at_<K>`` metrics.
        uniformity_max_items: uniformity uses all pairs up to this many query items, else all
            pairs of this many drawn with ``seed``.
        seed: that draw's seed.
        label_similarity: ``None`` for class labels; for label sets, the set similarity of the
            ``ndcg_at_<K>`` gains (:data:`~pml_metrix.label_sets.LABEL_SIMILARITIES`).
        **kwargs: PML's ``AccuracyCalculator`` arguments.
    """

    def __init__(
        self,
        recall_at_k: Sequence[int] = (1, 2, 4, 8),
        uniformity_max_items: int = 10_000,
        seed: int = 0,
        label_similarity: Optional[str] = None,
        **kwargs: Any,
    ):
        self.recall_at_k = check_recall_ks(recall_at_k)
        if type(uniformity_max_items) is not int or uniformity_max_items < 2:
            raise ValueError(f"uniformity_max_items must be an integer >= 2, got {uniformity_max_items!r}")
        self.uniformity_max_items = uniformity_max_items
        self.seed = seed
        # PML finds metrics by their calculate_<name> attribute, so each K gets one before PML looks.
        for k in self.recall_at_k:
            setattr(self, f"calculate_recall_at_{k}", functools.partial(self.recall_at, k))
        self.label_similarity = label_similarity
        if label_similarity is not None:
            get_label_similarity(label_similarity)  # raises for an unknown name
            for k in self.recall_at_k:
                setattr(self, f"calculate_ndcg_at_{k}", functools.partial(self.ndcg_at, k))
            kwargs.setdefault("label_comparison_fn", share_a_label)
            if not kwargs.get("include"):
                exclude = tuple(kwargs.get("exclude", ()))
                kwargs["exclude"] = exclude + tuple(m for m in ("NMI", "AMI", "alignment") if m not in exclude)
        super().__init__(**kwargs)
        largest_k = max(self.current_recall_ks(), default=0)
        if isinstance(self.k, int) and self.k < largest_k:
            metric = next(f"{name}_at_{largest_k}" for name in ("recall", "ndcg") if f"{name}_at_{largest_k}" in self.get_curr_metrics())
            raise ValueError(
                f"k={self.k} neighbours cannot give {metric}: pass k >= {largest_k}, "
                "k=None or k='max_bin_count' (raised to the largest K)"
            )
        if self.label_comparison_fn is not EQUALITY and "alignment" in self.get_curr_metrics():
            raise ValueError(
                "alignment groups items by equal labels and cannot use label_comparison_fn: "
                "pass exclude=('alignment',) or drop label_comparison_fn"
            )

    def get_accuracy(
        self,
        query: Tensor,
        query_labels: Tensor,
        reference: Optional[Tensor] = None,
        reference_labels: Optional[Tensor] = None,
        *args: Any,
        **kwargs: Any,
    ):
        """PML's ``get_accuracy``, after checking that the embeddings are finite and of one dimension
        (and, with ``label_similarity``, that the labels are label sets)."""
        check_embeddings(query, "query")
        if reference is not None:
            check_embeddings(reference, "reference")
            if reference.shape[1] != query.shape[1]:
                raise ValueError(
                    f"reference has dimension {reference.shape[1]} but query has {query.shape[1]}: embed both with one model"
                )
        labels = {"query_labels": query_labels, "reference_labels": reference_labels}
        for name, given in labels.items():
            if given is None or not torch.is_tensor(given) and self.label_similarity is None:
                continue  # PML's to take
            if self.label_similarity is None:
                # PML compares 2-D labels only with a label_comparison_fn of the caller's
                if given.ndim != 1 and self.label_comparison_fn is EQUALITY:
                    raise ValueError(
                        f"{name} must be N class labels, one dimension, got shape {tuple(given.shape)}: for label sets "
                        "(multi-label data, N x C) build MetrixAccuracyCalculator(label_similarity='jaccard')"
                    )
                continue
            if torch.is_tensor(given) and given.ndim == 1:
                raise ValueError(
                    f"{name} must be label sets, an N x C tensor of 0 and 1, got shape {tuple(given.shape)}: PML's "
                    "GlobalEmbeddingSpaceTester passes N x C labels one column at a time (a hierarchy level each); "
                    "evaluate with pml_metrix.testers.UtilizationTester, which passes each item's whole row"
                )
            check_label_set_values(given, name)
            if is_a_column_of_class_labels(given):
                raise ValueError(
                    f"{name} of shape {tuple(given.shape)} are read as label sets over one label, some items without it: "
                    "most often class labels as a column (PML's tester makes N x 1 of N labels); for class labels build "
                    "MetrixAccuracyCalculator without label_similarity, for label sets give a column per label"
                )
        if self.label_similarity is not None and reference_labels is not None and reference_labels.shape[1:] != query_labels.shape[1:]:
            raise ValueError(
                f"query_labels have {query_labels.shape[1]} labels (columns) but reference_labels have "
                f"{reference_labels.shape[1]}: give both one column per label of one label set"
            )
        return super().get_accuracy(query, query_labels, reference, reference_labels, *args, **kwargs)

    def requires_knn(self) -> List[str]:
        ndcg = [f"ndcg_at_{k}" for k in self.recall_at_k] if self.label_similarity is not None else []
        return super().requires_knn() + [f"recall_at_{k}" for k in self.recall_at_k] + ndcg

    def current_recall_ks(self) -> List[int]:
        """The K of the recall (and nDCG) metrics this call computes."""
        current = set(self.get_curr_metrics())
        return [k for k in self.recall_at_k if {f"recall_at_{k}", f"ndcg_at_{k}"} & current]

    def determine_k(self, bin_counts: Tensor, num_reference_embeddings: int, ref_includes_query: bool) -> int:
        """PML's k ('max_bin_count' raised to the largest K of the recall metrics), capped at the
        references there are."""
        k = super().determine_k(bin_counts, num_reference_embeddings, ref_includes_query)
        num_neighbours = num_reference_embeddings - int(ref_includes_query)
        return min(max(k, *self.current_recall_ks(), 0), num_neighbours)

    def recall_at(
        self,
        k: int,
        knn_labels: Tensor,
        query_labels: Tensor,
        not_lone_query_mask: Tensor,
        label_counts: Tuple[Tensor, Tensor],
        **kwargs: Any,
    ) -> Accuracy:
        """Recall@k from the Q x k' neighbour labels (k' >= k)."""
        knn_labels, query_labels = try_getting_not_lone_labels(knn_labels, query_labels, not_lone_query_mask)
        if knn_labels is None:
            return nan_accuracy(label_counts[0], self.return_per_class)
        query_labels = query_labels[:, None]
        hits = self.label_comparison_fn(query_labels, knn_labels[:, :k]).any(dim=1)
        return maybe_get_avg_of_avgs(hits.double(), query_labels, self.avg_of_avgs, self.return_per_class)

    def ndcg_at(
        self,
        k: int,
        knn_labels: Tensor,
        query_labels: Tensor,
        reference_labels: Tensor,
        ref_includes_query: bool,
        label_counts: Tuple[Tensor, Tensor],
        **kwargs: Any,
    ) -> Accuracy:
        """nDCG@k of label sets from the Q x k' x C neighbour label sets (k' >= k, or all references)."""
        gains = graded_relevance(query_labels[:, None], knn_labels[:, :k], self.label_similarity).squeeze(1)  # Q x k
        ideal = self.ideal_gains(query_labels, reference_labels, ref_includes_query, k)
        discounts = 1 / torch.log2(torch.arange(2, k + 2, device=gains.device, dtype=torch.float64))
        dcg = (gains * discounts[: gains.shape[1]]).sum(1)
        idcg = (ideal * discounts[: ideal.shape[1]]).sum(1)
        scored = idcg > 0
        if not scored.any():
            return nan_accuracy(label_counts[0], self.return_per_class)
        ndcg = dcg[scored] / idcg[scored]
        return maybe_get_avg_of_avgs(ndcg, query_labels[scored][:, None], self.avg_of_avgs, self.return_per_class)

    def ideal_gains(
        self, query_labels: Tensor, reference_labels: Tensor, ref_includes_query: bool, k: int, chunk: int = 1024
    ) -> Tensor:
        """Q x min(k, R'): each query's k largest gains ``s(L_q, L_r)`` over the R' references (the
        query's own row left out when ``ref_includes_query``), in descending order; queries taken
        ``chunk`` at a time."""
        num_ideal = min(k, len(reference_labels) - int(ref_includes_query))
        rows = []
        for start in range(0, len(query_labels), chunk):
            gains = graded_relevance(query_labels[start : start + chunk], reference_labels, self.label_similarity)
            if ref_includes_query:  # query q is reference q: below every gain
                own = torch.arange(start, start + len(gains), device=gains.device)
                gains[torch.arange(len(gains), device=gains.device), own] = -math.inf
            rows.append(gains.topk(num_ideal, dim=1).values)
        return torch.cat(rows)

    def calculate_utilization(
        self, query: Tensor, query_labels: Tensor, reference: Tensor, ref_includes_query: bool, **kwargs: Any
    ) -> Accuracy:
        others = reference[len(query) :] if ref_includes_query else reference
        if len(others) == 0:
            return nan_accuracy(query_labels.unique(), self.return_per_class)
        sq_distances = nearest_sq_distances(query, others)
        return maybe_get_avg_of_avgs(sq_distances, query_labels[:, None], self.avg_of_avgs, self.return_per_class)

    def calculate_alignment(self, query: Tensor, query_labels: Tensor, **kwargs: Any) -> float:
        return alignment(query, query_labels)

    def calculate_uniformity(self, query: Tensor, **kwargs: Any) -> float:
        return uniformity(query, self.uniformity_max_items, self.seed)

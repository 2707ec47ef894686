"""A PML tester that also reports how well the test embeddings are covered by training."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from pytorch_metric_learning.testers import GlobalEmbeddingSpaceTester
from pytorch_metric_learning.utils.accuracy_calculator import maybe_get_avg_of_avgs
from torch import Tensor

from ..checks import check_embeddings
from .accuracy_calculator import MetrixAccuracyCalculator
from .utilization import nearest_sq_distances

SplitsToEval = List[Tuple[str, List[str]]]
LABEL_SETS = slice(None)  # the label "level" of label sets: every column at once, one set per item


class UtilizationTester(GlobalEmbeddingSpaceTester):
    """``GlobalEmbeddingSpaceTester`` that adds ``utilization`` to each query split's accuracies.

    The retrieval metrics come from the accuracy calculator as in PML (each query split against
    its reference splits). ``utilization`` is computed apart, against the embeddings of the
    ``utilization_split_name`` split of ``dataset_dict`` (computed with the others, whether or
    not that split is evaluated) plus :attr:`mixed_embeddings` when set; that split itself gets
    none. It lands in the same accuracies dict (``utilization_level0``), so PML's
    ``HookContainer`` logs it to record-keeper's CSV, SQLite and tensorboard every evaluation.

    Label sets (multi-label data, N x C multi-hot labels): with an accuracy calculator that scores
    them (``MetrixAccuracyCalculator(label_similarity=...)``), each item's whole row is its label,
    evaluated as one level (PML would score each column as a hierarchy level of its own); the keys
    end in ``_level_sets`` (``ndcg_at_1_level_sets``), and PML's hooks find them whatever the
    tester's ``label_hierarchy_level``.

    Args:
        utilization_split_name: the ``dataset_dict`` key of the training split.
        **kwargs: ``GlobalEmbeddingSpaceTester`` arguments. ``accuracy_calculator`` defaults to
            ``MetrixAccuracyCalculator(exclude=("utilization",))``; one that computes its own
            ``utilization`` is refused, as the two would share a name.
    """

    def __init__(self, utilization_split_name: str = "train", **kwargs: Any):
        self.utilization_split_name = utilization_split_name
        self._mixed_embeddings: Optional[Tensor] = None
        super().__init__(**kwargs)
        if "utilization" in self.accuracy_calculator.get_curr_metrics():
            raise ValueError(
                "the accuracy calculator computes 'utilization' against each query split's own references, "
                f"which would clash with the tester's utilization against the {utilization_split_name!r} split: "
                "build it with exclude=('utilization',)"
            )

    def label_levels_to_evaluate(self, query_labels: Tensor) -> Sequence[Any]:
        """PML's label hierarchy levels, or one level of every column for label sets."""
        if self.scores_label_sets():
            return [LABEL_SETS]
        return super().label_levels_to_evaluate(query_labels)

    def accuracies_keyname(self, metric: str, label_hierarchy_level: Any = 0, average: bool = False) -> str:
        """PML's key of a metric; for label sets the one level there is, whatever
        ``label_hierarchy_level`` asks (PML's hooks ask for the tester's, 0 by default)."""
        if self.scores_label_sets():
            label_hierarchy_level = LABEL_SETS
        return super().accuracies_keyname(metric, label_hierarchy_level, average)

    def scores_label_sets(self) -> bool:
        """Whether the accuracy calculator scores label sets (it has a ``label_similarity``)."""
        return getattr(self.accuracy_calculator, "label_similarity", None) is not None

    def label_hierarchy_level_to_str(self, label_hierarchy_level: Any) -> str:
        if label_hierarchy_level == LABEL_SETS:
            return "_sets"
        return super().label_hierarchy_level_to_str(label_hierarchy_level)

    def initialize_accuracy_calculator(self) -> None:
        if self.accuracy_calculator is None:
            self.accuracy_calculator = MetrixAccuracyCalculator(exclude=("utilization",))

    @property
    def mixed_embeddings(self) -> Optional[Tensor]:
        """M x d mixed embeddings the trainer saw, added to the utilization references; ``None``
        for none. Used as given: pass them in the space the tester evaluates in (L2-normalised
        when ``normalize_embeddings``, the tester's default)."""
        return self._mixed_embeddings

    @mixed_embeddings.setter
    def mixed_embeddings(self, embeddings: Optional[Tensor]) -> None:
        if embeddings is not None:
            check_embeddings(embeddings, "mixed_embeddings", allow_empty=True)
            embeddings = embeddings.detach()
        self._mixed_embeddings = embeddings

    def get_splits_to_compute_embeddings(
        self, dataset_dict: Dict[str, Any], splits_to_eval: Optional[SplitsToEval]
    ) -> Tuple[SplitsToEval, List[str]]:
        """PML's splits, plus the utilization split."""
        if self.utilization_split_name not in dataset_dict:
            raise ValueError(
                f"dataset_dict has no {self.utilization_split_name!r} split to measure utilization against "
                f"(it has {sorted(dataset_dict)}): add the training set under that key or pass "
                "UtilizationTester(utilization_split_name=...)"
            )
        splits_to_eval, splits_to_compute = super().get_splits_to_compute_embeddings(dataset_dict, splits_to_eval)
        if self.utilization_split_name not in splits_to_compute:
            splits_to_compute.append(self.utilization_split_name)
        return splits_to_eval, splits_to_compute

    def do_knn_and_accuracies(
        self,
        accuracies: Dict[str, Any],
        embeddings_and_labels: Dict[str, Tuple[Tensor, Tensor]],
        query_split_name: str,
        reference_split_names: Sequence[str],
    ) -> None:
        """PML's accuracies, then ``utilization`` of the training split by this query split."""
        super().do_knn_and_accuracies(accuracies, embeddings_and_labels, query_split_name, reference_split_names)
        if query_split_name == self.utilization_split_name:
            return
        query_embeddings, query_labels = embeddings_and_labels[query_split_name]
        references = [embeddings_and_labels[self.utilization_split_name][0]]
        if self._mixed_embeddings is not None:
            references.append(self._mixed_embeddings)
        sq_distances = nearest_sq_distances(query_embeddings, *references)
        calculator = self.accuracy_calculator
        for level in self.label_levels:
            keyname = self.accuracies_keyname("utilization", label_hierarchy_level=level)
            accuracies[keyname] = maybe_get_avg_of_avgs(
                sq_distances, query_labels[:, level, None], calculator.avg_of_avgs, calculator.return_per_class
            )

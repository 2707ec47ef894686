from typing import Optional, Sequence, Union

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from ..checks import check_embeddings, check_labels
from ..mixed_batch import MixedBatch
from ..mixing import STRATEGIES, MixingPlan, pair_type_masks


class MixupMiner(BaseMiner):
    """Draws a mixing plan and returns a :class:`~pml_metrix.MixedBatch` of embedding-level mixes.

    Use it as PML's ``tuple_miner`` with a Metrix loss. Each mix k = (i, j) has
    ``lam ~ Beta(alpha, alpha)``; its pair mask shows it to every anchor for which it is of one of
    the chosen types (DESIGN.md section 2).

    Args:
        strategies: one or more of ``positive_negative`` (i a positive of the anchor, j a negative;
            the paper's default), ``anchor_negative`` (i the anchor), ``negative_negative``,
            ``positive_positive``.
        alpha: the Beta parameter of lam.
        mixes: ``per_anchor`` (``num_mixes`` per eligible anchor and strategy) or ``per_batch``
            (``num_mixes`` per strategy, at anchors drawn uniformly among the eligible ones).
        num_mixes: how many mixes, as ``mixes`` says.
        negatives: ``random`` or ``hardest`` (the anchor's most similar negatives first, by
            ``distance``; the reference code mixes the hardest negative).
        inner_miner: a PML miner whose tuple the clean part of the loss uses, so that "MS + miner"
            stays the baseline that Metrix adds to.
        num_classes: for proxy anchor, the number of classes: the pair mask then has one row per
            proxy (class) instead of one per batch item.
        seed: seeds the miner's own ``torch.Generator``; ``None`` uses torch's global generator.
    """

    def __init__(
        self,
        strategies: Union[str, Sequence[str]] = "positive_negative",
        alpha: float = 2.0,
        mixes: str = "per_anchor",
        num_mixes: int = 1,
        negatives: str = "random",
        inner_miner: Optional[BaseMiner] = None,
        num_classes: Optional[int] = None,
        seed: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.strategies = (strategies,) if isinstance(strategies, str) else tuple(strategies)
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies must be among {STRATEGIES}, got {self.strategies}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if mixes not in ("per_anchor", "per_batch"):
            raise ValueError(f"mixes must be 'per_anchor' or 'per_batch', got {mixes!r}")
        if not (isinstance(num_mixes, int) and num_mixes >= 1):
            raise ValueError(f"num_mixes must be a positive int, got {num_mixes!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int (the number of proxies), got {num_classes!r}")
        if negatives not in ("random", "hardest"):
            raise ValueError(f"negatives must be 'random' or 'hardest', got {negatives!r}")
        self.alpha, self.mixes, self.num_mixes, self.negatives = alpha, mixes, num_mixes, negatives
        self.inner_miner = inner_miner
        self.num_classes = num_classes
        self.seed = seed
        self._generators = {}
        self.add_to_recordable_attributes(list_of_names=["alpha", "num_mixes"], is_stat=False)
        self.add_to_recordable_attributes(name="num_mixed", is_stat=True)

    def get_default_distance(self):
        return CosineSimilarity()

    def forward(self, embeddings: Tensor, labels: Tensor, ref_emb=None, ref_labels=None) -> MixedBatch:
        """Plan (without gradients), then mix the embeddings (with them)."""
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("MixupMiner mixes items of one batch: ref_emb and ref_labels are not supported")
        self.reset_stats()
        check_embeddings(embeddings)
        if labels is None:
            raise ValueError("MixupMiner needs the class labels: call miner(embeddings, labels)")
        check_labels(labels, embeddings.shape[0])
        labels = c_f.to_device(labels, embeddings)
        indices_tuple = None if self.inner_miner is None else self.inner_miner(embeddings, labels)
        plan = self.plan(embeddings, labels)
        self.num_mixed = len(plan)
        return plan.mixed_batch(plan.mix(embeddings), indices_tuple)

    @torch.no_grad()
    def plan(self, embeddings: Tensor, labels: Tensor) -> MixingPlan:
        """Draw a mixing plan for a batch (B x d embeddings, used for hardest negatives; B labels)."""
        if self.num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes - 1}] for num_classes={self.num_classes}, got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        batch_size, device = labels.shape[0], labels.device
        generator = self._generator(device)
        same = labels[:, None] == labels[None, :]
        positives = same & ~torch.eye(batch_size, dtype=torch.bool, device=device)
        negatives = ~same
        hardness = None
        if self.negatives == "hardest":
            mat = self.distance(embeddings)
            hardness = mat if self.distance.is_inverted else -mat
        anchor_side = {
            "positive_negative": positives,
            "anchor_negative": torch.eye(batch_size, dtype=torch.bool, device=device),
            "negative_negative": negatives,
        }
        pairs = []
        for strategy in self.strategies:
            if strategy == "positive_positive":
                pairs.append(self._draw_pairs(positives, positives, None, generator))
            else:
                pairs.append(self._draw_pairs(anchor_side[strategy], negatives, hardness, generator))
        source_index = torch.cat(pairs)
        lam = self._draw_lam(len(source_index), generator).to(device)
        anchor_labels = labels if self.num_classes is None else torch.arange(self.num_classes, device=device)
        anchor_index = torch.arange(batch_size, device=device) if self.num_classes is None else None
        masks = pair_type_masks(anchor_labels, labels, source_index, anchor_index)
        pair_mask = torch.stack([masks[s] for s in self.strategies]).any(dim=0)
        return MixingPlan(source_index, lam, pair_mask)

    def _draw_pairs(self, first_side: Tensor, second_side: Tensor, hardness: Optional[Tensor], generator) -> Tensor:
        """Pairs (i, j) for eligible anchors: i from the anchor's ``first_side`` row, j != i from its
        ``second_side`` row, the hardest first when ``hardness`` (B x B) is given."""
        needed_second = 2 if first_side is second_side else 1
        eligible = torch.where((first_side.sum(1) >= 1) & (second_side.sum(1) >= needed_second))[0]
        device = first_side.device
        if self.mixes == "per_anchor":
            anchors = eligible.repeat_interleave(self.num_mixes)
            rank = torch.arange(self.num_mixes, device=device).repeat(len(eligible))
        else:
            num = self.num_mixes if len(eligible) else 0
            anchors = eligible[torch.randint(max(len(eligible), 1), (num,), generator=generator, device=device)]
            rank = torch.zeros(num, dtype=torch.long, device=device)
        first = _draw_random(first_side[anchors], generator)
        candidates = second_side[anchors]
        candidates[torch.arange(len(anchors), device=device), first] = False
        if hardness is None:
            second = _draw_random(candidates, generator)
        else:
            second = _draw_hardest(candidates, hardness[anchors], rank)
        return torch.stack([first, second], 1)

    def _draw_lam(self, num_mixed: int, generator) -> Tensor:
        device = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.distributions.Beta(self.alpha, self.alpha).sample((num_mixed,))

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]


def _draw_random(candidates: Tensor, generator) -> Tensor:
    """One uniformly drawn True column of each row of an N x B bool tensor (each row has one)."""
    keys = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    return keys.masked_fill(~candidates, -1).argmax(dim=1)


def _draw_hardest(candidates: Tensor, hardness: Tensor, rank: Tensor) -> Tensor:
    """The ``rank``-th hardest True column of each row (the last one when a row has fewer)."""
    order = hardness.masked_fill(~candidates, float("-inf")).argsort(dim=1, descending=True)
    rank = torch.minimum(rank, candidates.sum(1) - 1)
    return order[torch.arange(len(order), device=order.device), rank]

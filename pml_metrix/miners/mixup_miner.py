from numbers import Integral, Real
from typing import Optional, Sequence, Tuple, Union

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from ..checks import check_embeddings, check_keywords
from ..label_sets import check_labels_or_label_sets, get_label_similarity, is_label_sets
from ..mixed_batch import IndicesTuple, MixedBatch
from .. import names
from ..mixing import MixingPlan, pair_type_masks


class MixupMiner(BaseMiner):
    """Draws a mixing plan and returns a :class:`~pml_metrix.MixedBatch` of embedding-level mixes.

    Use it as PML's ``tuple_miner`` with a Metrix loss. Each mix k = (i, j) is drawn for an anchor a
    of the batch, by strategy, with ``lam_k ~ Beta(alpha, alpha)``; ``lam_k x_i + (1 - lam_k) x_j``
    has soft label ``lam_k [c(i) = c] + (1 - lam_k) [c(j) = c]`` for an anchor of class c.

    Labels are B class labels, or B x C multi-hot label sets (multi-label data). For label sets, a
    positive of anchor a is an item b != a with ``s(L_a, L_b) >= positive_threshold``, a negative one
    with ``s(L_a, L_b) <= negative_threshold`` (by default 0: no shared label), ``s`` the set
    similarity ``label_similarity``; the strategies draw from these, and the loss labels mix k
    ``lam_k s(L_a, L_i) + (1 - lam_k) s(L_a, L_j)`` (with ``num_classes``, for proxy c,
    ``lam_k [c in L_i] + (1 - lam_k) [c in L_j]``). With one label per item (and thresholds
    ``0 <= negative_threshold < positive_threshold <= 1``) these are the class labels' positives and
    negatives, and the plans are the same.

    Args:
        strategies: one or more of ``positive_negative`` (i a positive of the anchor, j a negative;
            the paper's default), ``anchor_negative`` (i the anchor), ``negative_negative``,
            ``positive_positive``.
        alpha: the Beta parameter of lam, at least 0.01 (:data:`~pml_metrix.names.MIN_MIX_ALPHA`).
        mixes: ``per_anchor`` (``num_mixes`` per eligible anchor and strategy) or ``per_batch``
            (``num_mixes`` per strategy, at anchors drawn uniformly, with replacement, among the
            eligible ones).
        num_mixes: how many mixes, as ``mixes`` says.
        negatives: ``random`` or ``hardest``: the r-th mix of an anchor takes its r-th most similar
            negative by ``distance`` (PML's ``distance`` argument; cosine by default; used for nothing
            else), the least similar one when it has fewer.
        inner_miner: a PML miner whose tuple the clean part of the loss uses, so that "MS + miner"
            stays the baseline that Metrix adds to. Its pair counts are this miner's
            ``num_pos_pairs`` / ``num_neg_pairs`` (or ``num_triplets``) stats, as PML's miners record.
        num_classes: for proxy anchor, the number of classes (of labels, for B x C label sets: a
            proxy per label): the pair mask then has one row per proxy instead of one per batch item,
            and an item belongs to the proxies of its class (of its labels).
        shown_to: which anchors see mix k in the loss (its pair mask): ``matching_anchors``, every
            anchor for which k is of one of ``strategies`` (for a proxy: every class); or
            ``drawing_anchor``, only the anchor k was drawn for (its class's proxy; its labels'
            proxies), as the reference code does.
        lam_per: ``mix`` (a lam drawn for each mix) or ``batch`` (one lam for all mixes of a step, as
            the reference code draws).
        strategy_per_step: draw one of ``strategies`` uniformly at each step and mix by it alone, as
            the reference code flips a coin between positive-negative and anchor-negative; the
            MixedBatch names it, so that a loss can weight it (``mix_weight`` per strategy).
        seed: seeds the miner's own ``torch.Generator``; ``None`` uses torch's global generator. Its
            state is the miner's ``state_dict`` (extra state), so a checkpoint resumes its draws.
        label_similarity: for label sets, the set similarity that picks positives
            (:data:`~pml_metrix.label_sets.LABEL_SIMILARITIES`); the loss's own ``label_similarity``
            labels the pairs.
        positive_threshold: for label sets, the similarity in (0, 1] from which an item is a
            positive of the anchor.
        negative_threshold: for label sets, the similarity in [0, positive_threshold) up to which an
            item is a negative of the anchor; raise it where nearly every pair shares some label
            (then no item is a negative at 0, and a strategy that needs negatives draws no mix).

    Other keyword arguments are PML's miner's (``distance``, ``collect_stats``).
    """

    STRATEGIES = names.STRATEGIES
    SHOWN_TO = names.SHOWN_TO
    LAM_PER = names.LAM_PER

    def __init__(
        self,
        strategies: Union[str, Sequence[str]] = "positive_negative",
        alpha: float = 2.0,
        mixes: str = "per_anchor",
        num_mixes: int = 1,
        negatives: str = "random",
        inner_miner: Optional[BaseMiner] = None,
        num_classes: Optional[int] = None,
        shown_to: str = "matching_anchors",
        lam_per: str = "mix",
        strategy_per_step: bool = False,
        seed: Optional[int] = None,
        label_similarity: str = "jaccard",
        positive_threshold: float = 0.5,
        negative_threshold: float = 0.0,
        **kwargs,
    ):
        check_keywords(type(self), kwargs)  # else PML's ModuleWithRecords refuses it, naming neither class nor options
        super().__init__(**kwargs)
        self.strategies = (strategies,) if isinstance(strategies, str) else tuple(strategies)
        unknown = [s for s in self.strategies if s not in self.STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies must be among {self.STRATEGIES}, got {self.strategies}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"strategies must not repeat, got {self.strategies}")
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 < alpha < float("inf"):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        if alpha < names.MIN_MIX_ALPHA:
            raise ValueError(
                f"alpha must be at least {names.MIN_MIX_ALPHA}, got {alpha!r}: below it torch's float32 Beta sampler draws lam "
                "towards 0.5, not towards 0 and 1 as Beta(alpha, alpha) does"
            )
        if mixes not in ("per_anchor", "per_batch"):
            raise ValueError(f"mixes must be 'per_anchor' or 'per_batch', got {mixes!r}")
        if isinstance(num_mixes, bool) or not isinstance(num_mixes, Integral) or num_mixes < 1:
            raise ValueError(f"num_mixes must be a positive int, got {num_mixes!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int (the number of proxies), got {num_classes!r}")
        if negatives not in ("random", "hardest"):
            raise ValueError(f"negatives must be 'random' or 'hardest', got {negatives!r}")
        if shown_to not in self.SHOWN_TO:
            raise ValueError(f"shown_to must be one of {self.SHOWN_TO}, got {shown_to!r}")
        if lam_per not in self.LAM_PER:
            raise ValueError(f"lam_per must be one of {self.LAM_PER}, got {lam_per!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        if not isinstance(strategy_per_step, bool):
            raise ValueError(f"strategy_per_step must be True or False, got {strategy_per_step!r}")
        get_label_similarity(label_similarity)  # raises for an unknown name
        if isinstance(positive_threshold, bool) or not isinstance(positive_threshold, Real) or not 0 < positive_threshold <= 1:
            raise ValueError(
                f"positive_threshold must be a number in (0, 1] (0 would make every item a positive), got {positive_threshold!r}"
            )
        if (isinstance(negative_threshold, bool) or not isinstance(negative_threshold, Real)
                or not 0 <= negative_threshold < positive_threshold):
            raise ValueError(
                f"negative_threshold must be a number in [0, positive_threshold = {positive_threshold}) (an item "
                f"cannot be a positive and a negative of one anchor), got {negative_threshold!r}"
            )
        self.label_similarity, self.positive_threshold = label_similarity, float(positive_threshold)
        self.negative_threshold = float(negative_threshold)
        self.alpha, self.mixes, self.num_mixes, self.negatives = float(alpha), mixes, int(num_mixes), negatives
        self.inner_miner = inner_miner
        self.num_classes = None if num_classes is None else int(num_classes)
        self.shown_to, self.lam_per, self.strategy_per_step = shown_to, lam_per, strategy_per_step
        self.seed = seed
        self._generators = {}
        self.add_to_recordable_attributes(list_of_names=["alpha", "num_mixes"], is_stat=False)
        self.add_to_recordable_attributes(name="num_mixed", is_stat=True)

    def get_default_distance(self):
        return CosineSimilarity()

    def forward(self, embeddings: Tensor, labels: Tensor, ref_emb=None, ref_labels=None) -> MixedBatch:
        """The MixedBatch of a plan drawn on this batch, mixed at the embedding level: the inner
        miner's tuple (:meth:`clean_tuple`), a plan (:meth:`plan`), the embeddings mixed with it."""
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("MixupMiner mixes items of one batch: ref_emb and ref_labels are not supported")
        check_embeddings(embeddings)
        if labels is None:
            raise ValueError("MixupMiner needs the class labels: call miner(embeddings, labels)")
        check_labels_or_label_sets(labels, embeddings.shape[0])
        labels = c_f.to_device(labels, embeddings)
        indices_tuple = self.clean_tuple(embeddings, labels)
        plan = self.plan(embeddings, labels)
        return plan.mixed_batch(plan.mix(embeddings), indices_tuple)

    def clean_tuple(self, embeddings: Tensor, labels: Tensor) -> IndicesTuple:
        """The inner miner's tuple for the loss's clean part (``None`` without an inner miner), on
        B x d clean embeddings and their B class labels; its pair counts become this miner's stats."""
        if self.inner_miner is None:
            return None
        if is_label_sets(labels):
            raise ValueError(
                "inner_miner is a PML miner, which takes class labels, but the labels are label sets: build the "
                "MixupMiner without inner_miner (the clean part then uses every pair of the batch)"
            )
        indices_tuple = self.inner_miner(embeddings, labels)
        self.output_assertion(indices_tuple)  # PML's: records the tuple's pair (or triplet) counts
        return indices_tuple

    @torch.no_grad()
    def plan(self, embeddings: Tensor, labels: Tensor) -> MixingPlan:
        """Draw a mixing plan for a batch (B x d embeddings, used for hardest negatives; B labels or
        B x C label sets). With ``num_classes``, labels outside ``[0, num_classes)`` have no proxy:
        the loss refuses them (``MetrixProxyAnchorLoss``), and no mix is shown to a proxy for them."""
        if self.num_classes is not None and is_label_sets(labels) and labels.shape[1] != self.num_classes:
            raise ValueError(
                f"num_classes={self.num_classes} gives one anchor per label (proxy anchor's proxies), but the label sets "
                f"are over {labels.shape[1]} labels: build the MixupMiner with num_classes={labels.shape[1]}, as the loss"
            )
        batch_size, device = labels.shape[0], labels.device
        generator = self._generator(device)
        positive, negatives = self.pair_relations(labels)
        identity = torch.eye(batch_size, dtype=torch.bool, device=device)
        hardness = None
        if self.negatives == "hardest":
            mat = self.distance(embeddings)
            hardness = mat if self.distance.is_inverted else -mat
        # the anchor's rows; an item is its own positive but for an empty label set under shares_any
        sides = {"anchor": identity & positive, "positive": positive & ~identity, "negative": negatives}
        strategies = self.strategies
        if self.strategy_per_step:
            strategies = (strategies[int(torch.randint(len(strategies), (1,), generator=generator, device=device))],)
        drawn = [
            # i from the anchor's first side, j from its second (the hardest first among negatives)
            self._draw_pairs(sides[first], sides[second], hardness if second == "negative" else None, generator)
            for first, second in (names.STRATEGY_SIDES[strategy] for strategy in strategies)
        ]
        drawn_for, source_index = (torch.cat(parts) for parts in zip(*drawn))
        lam = self._draw_lam(len(source_index), generator).to(device)
        if self.num_classes is None:
            anchor_index, anchor_items = torch.arange(batch_size, device=device), identity
        else:  # proxies: no batch item; the items of a proxy's class (or with its label) are its
            anchor_index = None
            if is_label_sets(labels):
                anchor_items = positive = labels.T.bool()
            else:
                anchor_items = positive = torch.arange(self.num_classes, device=device)[:, None] == labels[None, :]
            negatives = ~positive
        if self.shown_to == "drawing_anchor":  # the anchor each mix was drawn for (for proxies: its class's)
            pair_mask = anchor_items[:, drawn_for]
        else:
            masks = pair_type_masks(positive, negatives, source_index, anchor_index)
            pair_mask = torch.stack([masks[s] for s in strategies]).any(dim=0)
        strategy = strategies[0] if self.strategy_per_step else None
        self.num_mixed = len(source_index)
        return MixingPlan(source_index, lam, pair_mask, self.num_classes, strategy)

    def pair_relations(self, labels: Tensor) -> Tuple[Tensor, Tensor]:
        """B x B bool ``(positive, negative)``: b is a positive of a (a itself included), b is a
        negative of a (never a itself). Class labels: the same class, another class. Label sets:
        ``s(L_a, L_b) >= positive_threshold`` and ``s(L_a, L_b) <= negative_threshold``, ``s`` the
        ``label_similarity``; an item with no label (``shares_any`` alone takes one) is neither to
        itself, as it shares no label with itself, so no mix is drawn with it as the anchor's own side."""
        if is_label_sets(labels):
            similarity = get_label_similarity(self.label_similarity)(labels, labels)
            return similarity >= self.positive_threshold, (similarity <= self.negative_threshold).fill_diagonal_(False)
        same = labels[:, None] == labels[None, :]
        return same, ~same

    def _draw_pairs(self, first_side: Tensor, second_side: Tensor, hardness: Optional[Tensor], generator):
        """The anchors (N) that pairs are drawn for and the pairs (N x 2): i from the anchor's
        ``first_side`` row, j != i from its ``second_side`` row, the hardest first when ``hardness``
        (B x B) is given."""
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
        return anchors, torch.stack([first, second], 1)

    def _draw_lam(self, num_mixed: int, generator) -> Tensor:
        """``num_mixed`` factors from Beta(alpha, alpha): one each, or one for all (``lam_per="batch"``)."""
        device = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
        with torch.random.fork_rng(devices=[]):  # the CPU generator, restored after; CUDA's untouched
            torch.default_generator.manual_seed(seed)
            beta = torch.distributions.Beta(float(self.alpha), float(self.alpha))
            if self.lam_per == "batch":
                return beta.sample((1,)).expand(num_mixed).clone()
            return beta.sample((num_mixed,))

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def get_extra_state(self) -> dict:
        """The state of the miner's generators, one per device (torch's hook: part of ``state_dict``)."""
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def set_extra_state(self, state: dict) -> None:
        """Restore the generators' states from :meth:`get_extra_state` (``load_state_dict``). A state
        is a CPU byte tensor whatever its generator's device, so one that ``torch.load(map_location=...)``
        moved (PML's ``load_latest_saved_models`` maps to the GPU) is moved back."""
        if state and self.seed is None:
            raise ValueError("this state holds a seeded miner's generators: build the MixupMiner with a seed")
        for device, generator_state in state.items():
            try:
                generator = self._generator(torch.device(device))
            except RuntimeError as error:
                raise ValueError(
                    f"this state holds the generator of device {device}, which this machine cannot make ({error}): "
                    "load it where that device exists, or build a new MixupMiner (its draws start afresh)"
                ) from error
            generator.set_state(generator_state.cpu())


def _draw_random(candidates: Tensor, generator) -> Tensor:
    """One uniformly drawn True column of each row of an N x B bool tensor (each row has one)."""
    keys = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    return keys.masked_fill(~candidates, -1).argmax(dim=1)


def _draw_hardest(candidates: Tensor, hardness: Tensor, rank: Tensor) -> Tensor:
    """The ``rank``-th hardest True column of each row (the last one when a row has fewer)."""
    order = hardness.masked_fill(~candidates, float("-inf")).argsort(dim=1, descending=True)
    rank = torch.minimum(rank, candidates.sum(1) - 1)
    return order[torch.arange(len(order), device=order.device), rank]

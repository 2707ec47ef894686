"""The method's vocabularies: the values that the library's options take and the application's
configuration offers. Plain strings, no torch, so that both sides import them cheaply.

Each class also holds its own as a class attribute (``MixupMiner.STRATEGIES``, ``MixupMiner.SHOWN_TO``,
``MixupMiner.LAM_PER``, ``MetrixMSLoss.MIXED_FORMS``, ``MetrixTrainer.MIX_LEVELS``), as PML's
``PNPLoss.VARIANTS`` does.
"""

STRATEGY_SIDES = {
    "positive_negative": ("positive", "negative"),
    "anchor_negative": ("anchor", "negative"),
    "negative_negative": ("negative", "negative"),
    "positive_positive": ("positive", "positive"),
}
"""Each strategy, by the side of its anchor that the mix's i and j are drawn from: ``anchor`` (the
anchor itself), ``positive`` (a positive other than the anchor) or ``negative``. The miner draws
from these sides and tells which anchors a mix is of each type for
(:func:`pml_metrix.mixing.pair_type_masks`); a new strategy is a new line here."""

STRATEGIES = tuple(STRATEGY_SIDES)
"""Which pairs (i, j) a mix is drawn from, relative to its anchor: i a positive and j a negative
(the paper's default), i the anchor itself, both negatives, both positives."""

SHOWN_TO = ("matching_anchors", "drawing_anchor")
"""Which anchors see a mix: every anchor it is of a drawn strategy for, or the one it was drawn for."""

LAM_PER = ("mix", "batch")
"""Draw ``lam`` for each mix, or once for the whole batch (the reference code)."""

MS_MIXED_FORMS = ("soft_labels", "attract")
"""Multi-similarity's mixed term: the paper's two sums over soft labels, or the positive sum alone."""

MIX_LEVELS = ("input", "feature", "embedding")
"""Where a plan mixes: the images, the trunk's output, or the embeddings."""

LABEL_SIMILARITIES = ("jaccard", "dice", "cosine", "shares_any")
"""The similarities of two label sets (multi-label data) that give a pair its soft label
(:mod:`pml_metrix.label_sets`); ``shares_any`` is the hard workaround, 1 when the sets share a label."""

POSITIVE_LOSS_OPTIONS = ("alpha", "beta", "temperature")
"""The PML losses' options that a loss divides by: each must be > 0 (the Metrix losses check it,
and the application's config for the PML twins, which take them as given)."""

MIN_MIX_ALPHA = 0.01
"""The smallest Beta parameter of lam: below about 0.005 torch's float32 Beta sampler draws lam
towards 0.5 (at 0.001 a variance of 0.19, where Beta(alpha, alpha) has 0.25), not towards 0 and 1."""

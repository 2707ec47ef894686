"""Studies and the pairing of their variants (pml_metrix.app.study)."""

import pytest

from pml_metrix.app.config import RunConfig
from pml_metrix.app.study import Study, load_study


@pytest.mark.parametrize("path, pairs", [
    ("configs/studies/softmax_metrix.yaml", {
        "supcon_t0.1_metrix_embedding": "supcon_t0.1", "supcon_t0.1_metrix_feature": "supcon_t0.1",
        "ntxent_t0.07": "supcon_t0.1",  # a baseline: paired with the first
        "ntxent_t0.07_metrix_embedding": "ntxent_t0.07", "ntxent_t0.07_metrix_feature": "ntxent_t0.07",
        "contrastive": "supcon_t0.1", "contrastive_metrix_feature": "contrastive",  # mix_weight acts only under Metrix
    }),
    ("configs/studies/font_attributes_final.yaml", {  # the mixes' thresholds too
        "family_only": "shares_any", "jaccard": "shares_any", "dice": "shares_any", "jaccard_metrix_feature": "jaccard",
    }),
    ("configs/studies/contrastive_variants.yaml", {name: "baseline" for name in (
        "weight_0.1", "weight_0.2", "weight_0.4", "weight_1.0", "drawing_anchor", "lam_per_batch", "strategy_per_step",
        "reference_code")}),
])
def test_each_variant_is_paired_with_its_run_without_mixing_where_the_study_has_it(path, pairs, tmp_path):
    study = load_study(path, output=str(tmp_path))
    assert {name: study.baseline_of(name) for name in list(study.variants)[1:]} == pairs


def test_a_metrix_variant_without_its_own_baseline_is_paired_with_the_first(tmp_path):
    variants = {"small": {"model_width": 32}, "large": {"model_width": 64},
                "small_metrix": {"model_width": 32, "mix_level": "feature"},
                "medium_metrix": {"model_width": 48, "mix_level": "embedding", "mix_weight": 0.1}}
    study = Study(RunConfig(output=str(tmp_path)), variants, [0])
    assert [study.baseline_of(name) for name in ("large", "small_metrix", "medium_metrix")] == ["small", "small", "small"]
    variants["large_metrix"] = {"model_width": 64, "mix_level": "feature", "strategies": ["anchor_negative"]}
    assert Study(RunConfig(output=str(tmp_path)), variants, [0]).baseline_of("large_metrix") == "large"
    with pytest.raises(ValueError, match="small is the first variant"):
        study.baseline_of("small")

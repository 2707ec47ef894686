"""Studies and the pairing of their variants (pml_metrix.app.study)."""

import pytest

from pml_metrix.app.config import MIXING_OPTIONS, RunConfig
from pml_metrix.app.study import Study, load_study

NOT_DEFAULT = {  # a value other than RunConfig's default for each option that acts only under Metrix
    "mix_level": "feature", "strategies": ["anchor_negative"], "mix_alpha": 0.5, "mix_weight": 0.1, "num_mixes": 2,
    "shown_to": "drawing_anchor", "lam_per": "batch", "strategy_per_step": True, "ms_mixed_form": "attract",
    "positive_threshold": 0.6, "negative_threshold": 0.2,
}


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


@pytest.mark.parametrize("option", MIXING_OPTIONS)
def test_an_option_that_acts_only_under_metrix_keeps_a_variant_with_its_own_baseline(option, tmp_path):
    assert set(NOT_DEFAULT) == set(MIXING_OPTIONS)
    assert getattr(RunConfig(), option) != NOT_DEFAULT[option]
    variants = {"other_model": {"model_width": 16}, "own": {"eval_batch_size": 32},  # where files are: no matter
                "metrix": {"mix_level": "embedding", option: NOT_DEFAULT[option]}}
    study = Study(RunConfig(output=str(tmp_path)), variants, [0])
    assert study.baseline_of("metrix") == study.own_baseline("metrix") == "own"
    assert study.own_baseline("own") is None  # a baseline has none: it is paired with the first
    assert study.baseline_of("own") == "other_model"


def test_a_metrix_variant_without_its_own_baseline_is_paired_with_the_first(tmp_path):
    variants = {"small": {"model_width": 32}, "large": {"model_width": 64},
                "small_metrix": {"model_width": 32, "mix_level": "feature"},
                "medium_metrix": {"model_width": 48, "mix_level": "embedding", "mix_weight": 0.1}}
    study = Study(RunConfig(output=str(tmp_path)), variants, [0])
    assert [study.baseline_of(name) for name in ("large", "small_metrix", "medium_metrix")] == ["small", "small", "small"]
    assert study.own_baseline("small_metrix") == "small" and study.own_baseline("medium_metrix") is None
    variants["large_metrix"] = {"model_width": 64, "mix_level": "feature", "strategies": ["anchor_negative"]}
    assert Study(RunConfig(output=str(tmp_path)), variants, [0]).baseline_of("large_metrix") == "large"
    with pytest.raises(ValueError, match="small is the first variant"):
        study.baseline_of("small")


def test_a_saved_study_loads_again_and_a_study_file_s_own_seed_is_refused(tmp_path):
    from pml_metrix.app.config import ConfigError

    study = load_study("configs/main.yaml", seeds=[3, 4], output=str(tmp_path / "study"))
    study.save(tmp_path / "saved.yaml")
    again = load_study(str(tmp_path / "saved.yaml"))
    assert (again.base, again.variants, again.seeds) == (study.base, study.variants, study.seeds)
    (tmp_path / "older.yaml").write_text((tmp_path / "saved.yaml").read_text() + "seed: 0\n")  # as saved before
    assert load_study(str(tmp_path / "older.yaml")).seeds == [3, 4]
    (tmp_path / "seed.yaml").write_text("seed: 5\nvariants:\n  baseline: {mix_level: none}\n")
    with pytest.raises(ConfigError, match="a study file gives seeds, a list, not seed"):
        load_study(str(tmp_path / "seed.yaml"))


def test_dataset_options_are_merged_over_the_study_s_and_the_command_line_s(tmp_path):
    """A flag's dataset options join the study file's, and a variant's join the base's: a quick run cut
    by --dataset-options reaches every variant, a variant's own option (family only) included."""
    study = load_study("configs/studies/font_attributes.yaml", output=str(tmp_path), dataset_options={"max_classes": 5})
    for name in study.variants:
        options = study.config(name, 0).dataset_options
        assert options["train_fraction"] == 0.25 and options["max_classes"] == 5, name
    assert study.config("family_only", 0).dataset_options["train_attributes"] == ["family"]
    (tmp_path / "other_data.yaml").write_text(
        "dataset_options: {train_fraction: 0.25}\nvariants:\n  baseline: {mix_level: none}\n"
        "  fashion: {mix_level: none, dataset: fashion_mnist, dataset_options: {max_classes: 3}}\n")
    other = load_study(str(tmp_path / "other_data.yaml"), output=str(tmp_path))
    assert other.config("fashion", 0).dataset_options == {"max_classes": 3}  # another dataset's options replace them
    (tmp_path / "no_options.yaml").write_text(
        "dataset_options: {train_fraction: 0.25}\nvariants:\n  baseline: {mix_level: none}\n"
        "  fashion: {mix_level: none, dataset: fashion_mnist}\n")
    assert load_study(str(tmp_path / "no_options.yaml"), output=str(tmp_path)).config("fashion", 0).dataset_options == {}

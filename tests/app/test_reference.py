"""The main job's committed final rows: returned for the main job's settings, whatever its seeds,
output or pinning, and for no other study."""

from pathlib import Path

from pml_metrix.app.stats import mean_std
from pml_metrix.app.study import Study, load_study
from pml_metrix.app.reference import reference_rows

MAIN = str(Path(__file__).parents[2] / "configs" / "main.yaml")


def test_the_main_job_gets_the_committed_rows_and_another_study_none():
    study = load_study(MAIN, seeds=[3], output="elsewhere", reproducible=False)
    rows = reference_rows(study)
    assert rows["provenance"]["command"].startswith("pml-metrix compare --config configs/studies/softmax_final.yaml")
    assert set(rows["per_seed"]) == set(study.variants) and rows["baseline"] == study.baseline
    assert reference_rows(load_study(MAIN, mix_weight=0.4)) is None
    assert reference_rows(load_study(MAIN, dataset_options={"train_fraction": 0.5})) is None
    # the main job's base with other variants under its variants' names: not its rows
    other = Study(study.base, {"baseline": {"loss": "ms"}, "metrix_feature": {"loss": "ms", "mix_level": "embedding"}}, [0])
    assert reference_rows(other) is None
    assert reference_rows(Study(study.base, {"baseline": {}, "metrix_feature": {"mix_level": "input"}}, [0])) is None
    assert reference_rows(Study(study.base, {"baseline": {}, "metrix_weight_1": {"mix_level": "feature", "mix_weight": 1.0}}, [0])) is None


def test_the_rows_agree_with_themselves():
    # the per-seed scores are rounded to 3 decimals, the summary was computed from the unrounded ones
    rows = reference_rows(load_study(MAIN))
    per_seed = rows["per_seed"]
    for variant, seeds in per_seed.items():
        assert len(seeds["recall_at_1"]) == len(seeds["best_epoch"]) == len(rows["seeds"])
        mean, std = mean_std(seeds["recall_at_1"])
        assert abs(mean - rows["summary"][variant]["recall_at_1"][0]) <= 1e-3
        assert abs(std - rows["summary"][variant]["recall_at_1"][1]) <= 1e-3
    differences = [m - b for m, b in zip(per_seed["metrix_feature"]["recall_at_1"], per_seed["baseline"]["recall_at_1"])]
    assert abs(sum(differences) / len(differences) - rows["paired"]["metrix_feature"]["recall_at_1"][0]) <= 1e-3


def test_the_rows_come_from_runs_of_the_main_job_s_settings():
    # the study that made them trains the main job's two variants under other names: every option that
    # decides a run agrees (the description and output aside; a baseline's mix_weight acts on nothing)
    from pml_metrix.app.config import MIXING_OPTIONS

    main = load_study(MAIN)
    study = load_study(str(Path(MAIN).parent / "studies" / "softmax_final.yaml"))
    for variant, made_as in (("baseline", "contrastive"), ("metrix_feature", "contrastive_metrix_feature")):
        ours, theirs = main.config(variant, 0).to_dict(), study.config(made_as, 0).to_dict()
        differ = {name for name in ours if ours[name] != theirs[name]} - {"description", "output"}
        assert differ <= (set(MIXING_OPTIONS) if ours["mix_level"] == "none" else set()), (variant, differ)

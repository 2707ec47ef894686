"""A study's own files (pml_metrix.app.compare): they never describe runs that have changed since."""

import pytest
import torch

from pml_metrix.app import compare as compare_module
from pml_metrix.app.config import ConfigError, RunConfig
from pml_metrix.app.report import REPORT_FILES
from pml_metrix.app.run_folder import CONFIG, RESULTS
from pml_metrix.app.study import Study


def test_a_study_run_again_removes_its_results_and_report_before_any_run_changes(tmp_path, monkeypatch):
    study = Study(RunConfig(output=str(tmp_path), recall_at_k=[1]), {"baseline": {"mix_level": "none"}}, [0])
    for name in (RESULTS, CONFIG, *REPORT_FILES):
        (tmp_path / name).write_text("of the study's runs as they were")
    (tmp_path / "notes.txt").write_text("kept")

    class Stopped(Exception):
        pass

    def first_run(config):  # the first run of the study stops it, as a refused or failed run would
        raise Stopped
    monkeypatch.setattr(compare_module, "Run", first_run)
    with pytest.raises(Stopped):
        compare_module.compare(study, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", CONFIG, "notes.txt"]  # the study file may be the one given


def test_a_resume_refused_by_a_run_s_settings_leaves_the_study_s_files(tmp_path):
    """A run of the study trained with other settings is found before the study's results and report
    are removed (they still describe its runs as they are)."""
    from pml_metrix.app.checkpoints import FORMAT

    study = Study(RunConfig(output=str(tmp_path), recall_at_k=[1]), {"baseline": {"mix_level": "none"}}, [0])
    for name in (RESULTS, CONFIG, *REPORT_FILES):
        (tmp_path / name).write_text("of the study's runs as they were")
    run_config = study.config("baseline", 0)
    (tmp_path / "baseline" / "seed0").mkdir(parents=True)
    state = {"format": FORMAT, "epoch": 1, "config": run_config.replace(lr=0.5).to_dict(), "models": {}}
    torch.save(state, tmp_path / "baseline" / "seed0" / "checkpoint.pth")
    with pytest.raises(ConfigError, match=r"trained with other settings \(lr 0.5 there, 0.001 given\)"):
        compare_module.compare(study, resume=True)
    assert {p.name for p in tmp_path.iterdir()} >= {RESULTS, CONFIG, *REPORT_FILES}


def test_the_report_writes_only_the_files_a_study_removes(tmp_path):
    import dataclasses

    from pml_metrix.analysis import pair_positivity, positive_share_by_lam
    from pml_metrix.app.report import write_report
    from tests.app.test_stats import made_comparison
    from tests.test_analysis import BATCH, anchor_labels_of, batch, make_loss, positive_negative_mixes

    comparison = made_comparison(tmp_path, {"baseline": [0.7, 0.72, 0.71], "metrix": [0.72, 0.73, 0.7]})
    for results in comparison.runs.values():  # two evaluated epochs (the per-epoch plots) and train metrics (the gains')
        results[:] = [dataclasses.replace(r, history=[{**r.history[0], "epoch": 1}, {**r.history[0], "epoch": 2}],
                                          train_metrics={"recall_at_1": 0.9}) for r in results]
    embeddings, labels = batch()
    loss_fn = make_loss("contrastive")
    lam = torch.rand(3 * BATCH, generator=torch.Generator().manual_seed(16))
    mixed_batch = positive_negative_mixes(embeddings, labels, anchor_labels_of(loss_fn, labels), lam, seed=17)
    share = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, mixed_batch), num_bins=5)
    comparison.positivity["metrix"], comparison.positivity_by_label["metrix"] = share, share
    write_report(comparison, "pml-metrix compare ...")
    assert {p.name for p in tmp_path.iterdir()} == set(REPORT_FILES)  # every one written, and no other


def test_compare_overwrite_refuses_a_folder_with_another_program_s_checkpoint(tmp_path):
    from pml_metrix.app.config import ConfigError

    torch.save({"state_dict": {}}, tmp_path / "checkpoint.pth")  # not a pml_metrix run: left alone
    study = Study(RunConfig(output=str(tmp_path), recall_at_k=[1]), {"baseline": {"mix_level": "none"}}, [0])
    with pytest.raises(ConfigError, match="no training run of pml_metrix"):
        compare_module.compare(study, overwrite=True)
    assert (tmp_path / "checkpoint.pth").is_file()

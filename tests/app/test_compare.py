"""A study's own files (pml_metrix.app.compare): they never describe runs that have changed since."""

import pytest

from pml_metrix.app import compare as compare_module
from pml_metrix.app.config import RunConfig
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
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "notes.txt"]


def test_the_report_writes_only_the_files_a_study_removes(tmp_path):
    from pml_metrix.app.report import write_report
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.7, 0.72, 0.71], "metrix": [0.72, 0.73, 0.7]})
    write_report(comparison, "pml-metrix compare ...")
    assert {p.name for p in tmp_path.iterdir()} <= set(REPORT_FILES)

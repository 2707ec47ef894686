"""The report's plots (pml_metrix.app.report)."""

import math
import pytest
import torch

from pml_metrix.analysis import pair_positivity, positive_share_by_lam
from pml_metrix.app.report import plot_positive_share
from tests.test_analysis import BATCH, LOSS_NAMES, anchor_labels_of, batch, make_loss, positive_negative_mixes


def test_plot_writes_a_png_and_returns_its_path(tmp_path):
    embeddings, labels = batch()
    lam = torch.rand(3 * BATCH, generator=torch.Generator().manual_seed(16))
    shares = {}
    for name in LOSS_NAMES:
        loss_fn = make_loss(name)
        mixed_batch = positive_negative_mixes(embeddings, labels, anchor_labels_of(loss_fn, labels), lam, seed=17)
        shares[name] = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, mixed_batch), num_bins=5)
    path = plot_positive_share(shares, tmp_path / "positivity.png")
    assert path == tmp_path / "positivity.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_plot_refuses_what_it_cannot_draw(tmp_path):
    embeddings, labels = batch()
    lam = torch.rand(BATCH, generator=torch.Generator().manual_seed(18))
    loss_fn = make_loss("ms")
    share = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, positive_negative_mixes(embeddings, labels, labels, lam, seed=19)))
    for shares, path, message in [
        ({"ms": share}, "positivity.pdf", "\\.png"),
        ({}, "positivity.png", "non-empty mapping"),
        ({"ms": share.share}, "positivity.png", "PositiveShare"),
    ]:
        with pytest.raises(ValueError, match=message):
            plot_positive_share(shares, tmp_path / path)


def test_the_report_warns_at_the_top_where_raw_pixels_win(tmp_path):
    from pml_metrix.app.report import write_report
    from tests.app.test_stats import made_comparison

    # raw pixels 0.908, the trained variants at most 0.865: the short Fashion-MNIST compare
    comparison = made_comparison(tmp_path, {"baseline": [0.85, 0.86], "metrix": [0.865, 0.862]}, raw_pixels=0.908)
    report = write_report(comparison, "pml-metrix compare ...").read_text()
    top = report.split("## Setting")[0]  # verdict and warnings come before the setting and the scores
    for name in ("baseline", "metrix"):
        assert f"**`{name}` does not beat raw pixels (0.9080)**" in top
    assert "inconclusive at 2 seeds" in top and "the smallest p its 2 seed(s) whose scores differ can give is 0.5" in top
    assert "collapsed" not in top
    untrained = next(line for line in report.splitlines() if line.startswith("| untrained network"))
    assert untrained.count("†") == 2  # its utilization and alignment: low trivially
    trained = next(line for line in report.splitlines() if line.startswith("| **metrix**"))
    assert "†" not in trained
    # one evaluated epoch per run: tables, no plots that would zoom onto single points
    assert "one evaluated epoch: a table" in report and not list(tmp_path.glob("*.png"))
    assert "| epoch | baseline | metrix |" in report and "| 1 | 0.8550 | 0.8635 |" in report


def test_a_collapsed_run_is_flagged_and_a_variant_that_beats_both_references_is_not(tmp_path):
    from pml_metrix.app.report import warning_lines
    from tests.app.test_stats import made_comparison

    fine = made_comparison(tmp_path, {"baseline": [0.7, 0.72], "metrix": [0.71, 0.73]})
    assert warning_lines(fine) == []
    fallen = made_comparison(tmp_path, {"baseline": [0.7, 0.72], "metrix": [0.71, 0.73]}, alignment=0.001,
                             uniformity=-0.001, chance_recall_at_1=0.4)
    assert [line for line in warning_lines(fallen) if "collapsed" in line] == [
        "- **`baseline` collapsed** at seed(s) 0, 1: its embeddings lie at nearly one point and retrieve at chance "
        "(docs/metrics.md, collapse); its scores measure nothing.",
        "- **`metrix` collapsed** at seed(s) 0, 1: its embeddings lie at nearly one point and retrieve at chance "
        "(docs/metrics.md, collapse); its scores measure nothing.",
    ]
    assert all(run["collapsed"] for runs in fallen.to_dict()["runs"].values() for run in runs)


def test_a_variant_whose_utilization_counts_mixes_at_some_seeds_only_is_flagged(tmp_path):
    import dataclasses

    from pml_metrix.app.report import warning_lines
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.7, 0.72, 0.71], "metrix": [0.71, 0.73, 0.7]})
    assert warning_lines(comparison) == []  # no run counted mixes: nothing mixed up
    runs = comparison.runs["metrix"]
    runs[2] = dataclasses.replace(runs[2], final_with_mixes=True)  # trained on test; seeds 0, 1 evaluated again
    assert warning_lines(comparison) == [
        "- `metrix`'s utilization counts no mixed embeddings at seed(s) 0, 1 and counts them at the others (a run "
        "evaluated again after it ended, or resumed after its best epoch, no longer holds that epoch's mixes): its "
        "mean utilization mixes the two."
    ]


def test_a_metrix_variant_that_drew_no_mixes_is_flagged(tmp_path):
    import dataclasses

    from pml_metrix.app.report import warning_lines
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.7, 0.72], "metrix": [0.7, 0.72]})
    runs = comparison.runs["metrix"]
    runs[:] = [dataclasses.replace(runs[0], mixes_drawn=0), dataclasses.replace(runs[1], mixes_drawn=350)]
    assert warning_lines(comparison) == [
        "- **`metrix` drew no mixes** at seed(s) 0: no anchor had the pairs its strategies draw, so it trained as "
        "its baseline (label sets: raise negative_threshold, docs/multilabel.md)."
    ]


def test_runs_finished_under_different_arithmetic_are_flagged(tmp_path):
    import dataclasses

    from pml_metrix.app.report import warning_lines
    from pml_metrix.app.reproducible import arithmetic_record, arithmetic_summary
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.7, 0.72], "metrix": [0.7, 0.72]})
    record = arithmetic_record()
    for results in comparison.runs.values():
        results[:] = [dataclasses.replace(r, arithmetic=record) for r in results]
    assert warning_lines(comparison) == []  # one arithmetic: nothing to say
    assert comparison.to_dict()["runs"]["metrix"][0]["arithmetic"] == record
    other = {**record, "threads": record["threads"] + 1}
    comparison.runs["metrix"][1] = dataclasses.replace(comparison.runs["metrix"][1], arithmetic=other)
    (line,) = warning_lines(comparison)
    assert line.startswith("- **The runs were trained or evaluated under different arithmetic**")
    assert f"{arithmetic_summary(record)}: baseline seed 0, baseline seed 1, metrix seed 0" in line
    assert f"{arithmetic_summary(other)}: metrix seed 1" in line and f"{record['threads'] + 1} thread(s)" in line
    resumed = dataclasses.replace(comparison.runs["metrix"][1], arithmetic=record, trained_under=[other, record])
    comparison.runs["metrix"][1] = resumed  # trained under the other, resumed under this process's
    (line,) = warning_lines(comparison)
    assert f"{arithmetic_summary(other)} then {arithmetic_summary(record)}: metrix seed 1" in line
    older = {k: v for k, v in record.items() if k not in ("pytorch_metric_learning", "pml_metrix")}  # an older record
    comparison.runs["metrix"][1] = dataclasses.replace(resumed, arithmetic=older, trained_under=[])
    assert warning_lines(comparison) == []  # the same arithmetic: versions one record lacks are not compared


def test_the_main_job_s_report_shows_the_committed_final_rows_beside_its_seed(tmp_path):
    from pml_metrix.app.comparison import Comparison, Study
    from pml_metrix.app.config import load_config
    from pml_metrix.app.run_folder import RunResult
    from pml_metrix.app.report import arithmetic_line, reference_lines
    from pml_metrix.app.study import load_study

    main = load_study("configs/main.yaml", seeds=[0], output=str(tmp_path))
    metrics = {"recall_at_1": 0.41}
    runs = {name: [RunResult(main.config(name, 0), [], 1, metrics, tmp_path)] for name in main.variants}
    lines = reference_lines(Comparison(main, runs))
    text = "\n".join(lines)
    assert "## The committed final rows (5 seeds), beside this run" in text
    assert "| metrix_feature | 0.417 ± 0.032 | -0.024 (p = 0.125) |" in lines and "| raw_pixels | 0.055 |  |" in lines
    assert "Seeds 0 to 3 were trained and tested at earlier commits" in text
    assert "| baseline | 0 | 0.4100 | 0.413 |" in lines and "| metrix_feature | 0 | 0.4100 | 0.382 |" in lines
    assert "commit 202e0a8, pinned (reproducible mode)" in text
    other = Study(load_config(None, output=str(tmp_path)), {"baseline": {"mix_level": "none"}}, [0])
    assert reference_lines(Comparison(other, {})) == []  # other settings: no committed rows to compare with
    assert arithmetic_line(Comparison(other, {})) == "Arithmetic: not recorded."


def test_each_variant_is_reported_against_its_own_baseline_with_the_gain_against_the_gap(tmp_path):
    import statistics
    from pathlib import Path

    from pml_metrix.app.comparison import Comparison
    from pml_metrix.app.config import RunConfig
    from pml_metrix.app.report import gains_against_gaps, verdict_lines, write_report
    from pml_metrix.app.run_folder import RunResult
    from pml_metrix.app.study import Study

    variants = {"small": {"model_width": 32}, "small_metrix": {"model_width": 32, "mix_level": "feature"},
                "large": {"model_width": 64}, "large_metrix": {"model_width": 64, "mix_level": "feature"},
                "medium_metrix": {"model_width": 48, "mix_level": "feature"}}  # no baseline of its own
    study = Study(RunConfig(output=str(tmp_path), recall_at_k=[1]), variants, [0, 1, 2])
    # per seed: test Recall@1, and train and val Recall@1 at the picked epoch
    test = {"small": [0.60, 0.62, 0.61], "small_metrix": [0.61, 0.62, 0.62], "large": [0.50, 0.52, 0.51],
            "large_metrix": [0.55, 0.58, 0.56], "medium_metrix": [0.7, 0.7, 0.7]}
    train = {"small": [0.70, 0.72, 0.74], "small_metrix": [0.69, 0.69, 0.69], "large": [0.95, 0.90, 0.85],
             "large_metrix": [0.85, 0.85, 0.85], "medium_metrix": [0.9, 0.9, 0.9]}
    val = {"small": [0.65, 0.66, 0.67], "small_metrix": [0.66, 0.66, 0.66], "large": [0.55, 0.56, 0.57],
           "large_metrix": [0.60, 0.60, 0.60], "medium_metrix": [0.7, 0.7, 0.7]}
    metrics = {"mean_average_precision_at_r": 0.2, "utilization": 0.1, "alignment": 0.5, "uniformity": -2.0,
               "chance_recall_at_1": 0.1}

    def result(name, seed):
        config = study.config(name, seed)
        return RunResult(config, [{"recall_at_1": val[name][seed], **metrics, "epoch": 4}], 4,
                         {"recall_at_1": test[name][seed], **metrics}, Path(config.output),
                         train_metrics={"recall_at_1": train[name][seed]})

    runs = {name: [result(name, seed) for seed in study.seeds] for name in variants}
    reference = [{"recall_at_1": 0.3, **metrics}] * 3
    comparison = Comparison(study, runs, reference, reference, {},  # RunConfig's model_width: 64
                            {"model_width 32": reference, "model_width 48": reference})
    assert comparison.paired_with() == {"small_metrix": "small", "large": "small", "large_metrix": "large",
                                        "medium_metrix": "small"}
    assert comparison.verdicts()["large_metrix"]["baseline"] == "large"
    assert comparison.paired()["large_metrix"]["recall_at_1"][0] == pytest.approx((0.05 + 0.06 + 0.05) / 3)
    gains = gains_against_gaps(comparison)
    assert list(gains) == ["small_metrix", "large_metrix"]  # baselines have no gain; medium_metrix no baseline
    assert gains["large_metrix"]["baseline_gap"] == pytest.approx((0.40 + 0.34 + 0.28) / 3)
    assert gains["large_metrix"]["gap"] == pytest.approx(0.25)
    assert gains["large_metrix"]["gain_std"] == pytest.approx(statistics.stdev([0.05, 0.06, 0.05]))
    assert gains["small_metrix"]["baseline_gap"] == pytest.approx(0.06)
    assert gains["small_metrix"]["gap"] == pytest.approx(0.03)
    assert gains["small_metrix"]["gain"] == pytest.approx(0.02 / 3)
    orphan = next(line for line in verdict_lines(comparison) if "`medium_metrix`" in line)
    assert "over `small` (paired by seed, but they differ in more than Metrix: model_width)" in orphan
    other_network = next(line for line in verdict_lines(comparison) if "`large`" in line.split(":")[0])
    assert "over `small` (differing from it in: model_width)" in other_network  # no Metrix: the comparison itself
    assert not any("more than Metrix" in line for line in verdict_lines(comparison) if "_metrix`" in line.split(":")[0]
                   and "`medium_metrix`" not in line)  # a Metrix variant and its own run without mixing
    report = write_report(comparison, "pml-metrix compare ...").read_text()
    assert "on average over `large`, ahead on 3, behind on 0 of 3 seeds" in report
    assert "| large_metrix | large | +0.3400 | +0.2500 | +0.0533 (p=0.25) |" in report
    assert "| large_metrix | large | +0.0533 (p=0.25) |" in report  # the paired table names the baseline
    assert (tmp_path / "gain_against_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert comparison.to_dict()["paired_with"] == comparison.paired_with()
    two_seeds = Comparison(Study(study.base, variants, [0, 1]), {name: results[:2] for name, results in runs.items()},
                           reference[:2], reference[:2], {}, {"model_width 32": reference[:2], "model_width 48": reference[:2]})
    assert "| large_metrix | large | +0.3700 | +0.2500 | +0.0550 |" in write_report(two_seeds, "...").read_text()


def test_a_variant_is_warned_against_its_own_data_and_network_untrained(tmp_path):
    from pml_metrix.app.comparison import Comparison
    from pml_metrix.app.report import results_table, warning_lines
    from tests.app.test_stats import made_comparison

    made = made_comparison(tmp_path, {"baseline": [0.7, 0.72], "metrix": [0.71, 0.73]}, untrained=0.3)
    variants = {**made.study.variants, "resnet": {"mix_level": "none", "model": "resnet18"},
                "big": {"mix_level": "none", "model": "resnet18", "image_size": 64}}
    study = type(made.study)(made.study.base, variants, made.study.seeds)
    runs = {**made.runs, "resnet": made.runs["baseline"], "big": made.runs["baseline"]}  # 0.71 on average
    scores = lambda recall: [{**score, "recall_at_1": recall} for score in made.untrained]  # noqa: E731
    comparison = Comparison(study, runs, made.raw_pixels, made.untrained, {"image_size 64": scores(0.65)},
                            {"model 'resnet18'": scores(0.75), "image_size 64, model 'resnet18'": scores(0.6)})
    assert comparison.references_of("metrix") == {"raw pixels": made.raw_pixels, "untrained network": made.untrained}
    assert comparison.references_of("resnet") == {"raw pixels": made.raw_pixels,
                                                  "untrained network (model 'resnet18')": scores(0.75)}
    assert comparison.references_of("big") == {"raw pixels (image_size 64)": scores(0.65),
                                               "untrained network (image_size 64, model 'resnet18')": scores(0.6)}
    assert warning_lines(comparison) == [
        "- **`resnet` does not beat the untrained network (model 'resnet18') (0.7500)** on recall_at_1 (0.7100): its "
        "training learned nothing useful for unseen classes that these do not already give."]
    rows = results_table(comparison)
    row = next(line for line in rows if line.startswith("| untrained network (model 'resnet18')"))
    assert "| 0.7500 |" in row and row.count("†") == 2
    assert any(line.startswith("| raw pixels (image_size 64) |  | 0.6500 |") for line in rows)


def test_the_verdict_counts_level_seeds_and_names_those_without_a_score(tmp_path):
    from pml_metrix.app.report import verdict_lines
    from tests.app.test_stats import made_comparison

    level = made_comparison(tmp_path, {"baseline": [0.6] * 8, "metrix": [0.61, 0.62, 0.63, 0.64, 0.65, 0.66, 0.6, 0.6]})
    v = level.verdicts()["metrix"]
    assert (v["seeds_ahead"], v["seeds_behind"], v["seeds_level"]) == (6, 0, 2)
    assert v["smallest_attainable_p"] == 2 / 2**6  # a level seed's flip changes nothing
    assert "ahead on 6, behind on 0, level on 2 of 8 seeds" in verdict_lines(level)[0]
    missing = made_comparison(tmp_path, {"baseline": [0.6] * 6, "metrix": [0.61, 0.62, 0.63, math.nan, 0.65, 0.66]})
    line = verdict_lines(missing)[0]
    assert "no verdict" in line and "seed(s) 3" in line and "above" not in line and "without a score on 1 of 6" in line
    assert missing.verdicts()["metrix"]["smallest_attainable_p"] == 2 / 2**5  # the seed without a score counts nowhere
    all_level = made_comparison(tmp_path, {"baseline": [0.6] * 6, "metrix": [0.6] * 6})
    assert "no seed's scores differ, so p is 1" in verdict_lines(all_level)[0]


def test_a_study_whose_runs_measure_other_metrics_is_reported(tmp_path):
    """Label-set runs (nDCG, no MAP@R or alignment) beside class runs: nan where a run lacks a metric."""
    from pml_metrix.app.report import write_report
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.6, 0.61], "metrix": [0.62, 0.6]})
    for result in comparison.runs["metrix"]:
        del result.final["alignment"]
        result.final["ndcg_at_1"] = 0.7
    assert "ndcg_at_1" in comparison.metrics()
    assert math.isnan(comparison.summary()["baseline"]["ndcg_at_1"][0])
    assert math.isnan(comparison.to_dict()["summary"]["metrix"]["alignment"]["mean"])  # no value there
    assert "## Per epoch" in write_report(comparison, "...").read_text()


def test_a_study_without_selection_has_no_per_epoch_section(tmp_path):
    import dataclasses

    from pml_metrix.app.report import write_report
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.6, 0.61], "metrix": [0.62, 0.6]})
    for results in comparison.runs.values():
        results[:] = [dataclasses.replace(r, history=[]) for r in results]
    assert "## Per epoch" not in write_report(comparison, "...").read_text()


def test_a_variant_picked_within_its_warm_up_is_flagged(tmp_path):
    import dataclasses

    from pml_metrix.app.report import warning_lines
    from tests.app.test_stats import made_comparison

    comparison = made_comparison(tmp_path, {"baseline": [0.6, 0.61], "metrix": [0.62, 0.6]})
    runs = comparison.runs["metrix"]
    runs[:] = [dataclasses.replace(r, config=r.config.replace(warmup_epochs=1)) for r in runs]  # picked epoch 1
    assert any("`metrix`'s trunk never trained** at seed(s) 0, 1" in line for line in warning_lines(comparison))
    assert not any("trunk never trained" in line and "`baseline`" in line for line in warning_lines(comparison))

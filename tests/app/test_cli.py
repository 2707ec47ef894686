"""``pml-metrix train``, ``compare`` and ``eval`` end to end on a few fonts, and bad configurations."""

import hashlib
import json
import math
import sqlite3
import subprocess
import sys
import warnings

import pytest
import yaml

from pml_metrix.app.checkpoints import load_checkpoint
from pml_metrix.app.cli import build_parser, main
from tests.app.datasets.test_inshop import write_inshop
from tests.app.datasets.test_pml_benchmarks import write_cars, write_cub, write_sop
from tests.app.test_torchrun import write_tiny_fashion_mnist

pytestmark = pytest.mark.slow  # trains models, subprocesses

TINY = ["--embedding-size", "16", "--model-width", "8", "--batch-size", "24", "--samples-per-class", "4", "--epochs", "1"]


def no_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_strict_json(path):
    """``path`` read by a strict JSON parser: NaN, Infinity and -Infinity are refused."""
    return json.loads(path.read_text(), parse_constant=no_constant)


@pytest.fixture(autouse=True)
def every_results_file_is_strict_json(tmp_path):
    """After each test here: every results.json the command wrote under ``tmp_path`` parses strictly."""
    yield
    for path in tmp_path.rglob("results.json"):
        read_strict_json(path)


def options(font_list):
    return ["--dataset-options", f"font_list={font_list}"]


def finite_metrics(metrics):
    return all(math.isfinite(v) for k, v in metrics.items() if k != "epoch")


def test_train_then_resume_then_eval(small_font_list, tmp_path, capsys):
    font_list, _ = small_font_list
    out = tmp_path / "run"
    # patience: the run's own, which eval (selecting nothing) leaves out
    args = ["train", *options(font_list), *TINY, "--mix-level", "feature", "--patience", "8", "--output", str(out)]
    assert main(args) == 0
    state = load_checkpoint(out / "checkpoint.pth")
    assert state["epoch"] == 1 and finite_metrics(state["history"][0])
    assert (out / "config.yaml").read_text().count("mix_level: feature") == 1
    assert any((out / "tensorboard").iterdir()) and (out / "best.pth").is_file()
    assert_logged(out)
    # the same folder again: refused, the run kept
    capsys.readouterr()
    assert main(args) == 2
    assert "holds a run" in capsys.readouterr().err and load_checkpoint(out / "checkpoint.pth")["epoch"] == 1
    # the saved config, to epoch 4, evaluated after epochs 3 (every 3rd) and 4 (the last)
    assert main(["train", "--output", str(out), "--resume", "--epochs", "4", "--test-interval", "3"]) == 0
    resumed = load_checkpoint(out / "checkpoint.pth")
    assert resumed["epoch"] == 4 and [metrics["epoch"] for metrics in resumed["history"]] == [1, 3, 4]
    assert resumed["history"][0] == state["history"][0]  # epoch 1 kept, not retrained
    capsys.readouterr()
    assert main(["train", "--output", str(out), "--resume", "--loss", "contrastive"]) == 2
    assert "with other settings (loss 'ms' there, 'contrastive' given)" in capsys.readouterr().err
    assert main(["eval", str(out / "checkpoint.pth")]) == 0
    printed = capsys.readouterr().out
    assert "recall_at_1" in printed and "epoch 4" in printed
    assert "utilization: over the training split's embeddings alone" in printed  # train's counts the mixes
    evaluated = read_strict_json(out / "eval" / "checkpoint-fonts-test.json")
    assert evaluated["utilization_with_mixed_embeddings"] is False and evaluated["epoch"] == 4
    assert evaluated["checkpoint_sha256"] == hashlib.sha256((out / "checkpoint.pth").read_bytes()).hexdigest()
    assert list(evaluated["data"]) == ["test"] and evaluated["config"]["dataset"] == "fonts"
    # another dataset, whose 5 training classes could not fill the run's batch of 6: eval trains nothing
    fashion = write_tiny_fashion_mnist(tmp_path / "fashion")
    assert main(["eval", str(out / "best.pth"), "--dataset", "fashion_mnist", "--data-root", fashion]) == 0
    assert "on fashion_mnist/test" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "eval").glob("*.json")) == ["best-fashion_mnist-test.json", "checkpoint-fonts-test.json"]
    assert main([*args, "--overwrite", "--epochs", "1"]) == 0  # replaced: a run of one epoch again
    assert load_checkpoint(out / "checkpoint.pth")["epoch"] == 1 and len(list((out / "tensorboard").iterdir())) == 1
    assert not (out / "eval").exists()  # the replaced run's scores went with it


def assert_logged(out):
    """record-keeper's SQLite and CSV logs hold the accuracies, the losses (clean and mixed parts) and
    the miner's stats."""
    with sqlite3.connect(out / "logs" / "logs.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {t: {c[1] for c in db.execute(f"PRAGMA table_info('{t}')")} for t in tables}
        rows = {t: db.execute(f"SELECT COUNT(*) FROM '{t}'").fetchone()[0] for t in tables}
    val = next(t for t in tables if t.startswith("accuracies") and "VAL" in t)
    assert rows[val] >= 1 and "recall_at_1_level0" in columns[val] and rows["loss_histories"] >= 1
    assert {"clean_loss", "mixed_loss"} <= columns["metric_loss_MetrixMSLoss"]
    assert {"num_mixed", "num_pos_pairs", "num_neg_pairs"} <= columns["tuple_miner_MixupMiner"]
    assert rows["metric_loss_MetrixMSLoss"] >= 1 and rows["tuple_miner_MixupMiner"] >= 1
    assert {p.stem for p in (out / "logs").glob("*.csv")} >= {val, "loss_histories", "metric_loss_MetrixMSLoss"}


def test_help_describes_every_option_with_its_default():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps its subparsers there
    for name, command in commands.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 10, (name, action.option_strings)
    train_help = commands["train"].format_help()
    assert "(default: 0.4)" in train_help and "choices: none, input, feature, embedding" in train_help
    result = subprocess.run([sys.executable, "-m", "pml_metrix.app.cli", "--version"], capture_output=True, text=True)
    assert result.stdout.startswith("pml-metrix ")


def test_every_help_text_is_the_command_s_own():
    commands = build_parser()._subparsers._group_actions[0].choices
    helps = {name: {a.dest: a.help for a in command._actions if a.option_strings} for name, command in commands.items()}
    for flag in ("dataset", "data_root", "eval_split", "eval_reference"):
        assert helps["eval"][flag] != helps["train"][flag] and "checkpoint" in helps["eval"][flag]
    assert "study" in helps["compare"]["output"] and "runs/compare" in helps["compare"]["output"]
    assert "seed" in helps["train"] and "seed" not in helps["compare"]  # compare seeds each run (--seeds)


def test_no_requires_grad_warning_in_a_run(tmp_path):
    fashion = write_tiny_fashion_mnist(tmp_path / "fashion")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--dataset", "fashion_mnist", "--data-root", fashion, "--model-width", "8", "--epochs",
                     "1", "--mix-level", "feature", "--output", str(tmp_path / "run")]) == 0
        assert not [w for w in caught if "requires_grad=True to a scalar" in str(w.message)]
        # the filter is that warning's from PML's trainer alone: from our modules it would still show
        warnings.warn_explicit("Converting a tensor with requires_grad=True to a scalar may lead to unexpected "
                               "behavior.", UserWarning, "metrix_loss.py", 1, module="pml_metrix.losses.metrix_loss")
    assert len(caught) == 1 and caught[0].filename == "metrix_loss.py"


def test_compare_writes_a_report_results_and_plots(small_font_list, tmp_path, capsys, monkeypatch):
    import pml_metrix.app.compare as compare_module
    from pml_metrix.app.run_folder import RunFolder

    write_report = compare_module.write_report

    def write_report_locked(comparison, command):  # no other process replaces the results or a run meanwhile
        for folder in (comparison.study.base.output, *(run.output for runs in comparison.runs.values() for run in runs)):
            refusal = RunFolder(folder).lock()
            assert refusal and "is in use by another pml-metrix run" in refusal, folder
        return write_report(comparison, command)

    monkeypatch.setattr(compare_module, "write_report", write_report_locked)
    font_list, _ = small_font_list
    out = tmp_path / "compare"
    args = ["compare", *options(font_list), *TINY, "--seeds", "0", "1", "--output", str(out), "--description",
            "Settings chosen on the validation fonts."]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    for name in ("raw pixels", "untrained network", "baseline", "metrix_embedding", "metrix_feature", "chosen",
                 "no spread or p-value can be read", "epoch picked"):
        assert name in report
    assert "p=" not in report and "±" not in report.split("**baseline**")[1].splitlines()[0]  # 2 seeds: no spread
    assert (out / "positivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "recall_at_1.png").exists() and "| epoch | baseline | metrix_embedding | metrix_feature |" in report
    assert report.index("## Verdict") < report.index("## Scores") and "inconclusive at 2 seeds" in report
    results = json.loads((out / "results.json").read_text())
    assert set(results["verdicts"]) == {"metrix_embedding", "metrix_feature"}
    assert list(results["runs"]) == ["baseline", "metrix_embedding", "metrix_feature"] and results["seeds"] == [0, 1]
    for variant, runs in results["runs"].items():
        for run in runs:
            assert finite_metrics(run["final"]) and run["best_epoch"] == 1
            assert f"{run['final']['recall_at_1']:.4f}" in report or len(runs) > 1
            run_results = json.loads((out / variant / f"seed{run['seed']}" / "results.json").read_text())
            assert run_results["final"]["metrics"] == run["final"]
            # the picked model on its own training split too: the overfitting gap
            assert finite_metrics(run["train"]) and run_results["train"]["metrics"] == run["train"]
            assert 0 < run["train"]["recall_at_1"] <= 1 and "utilization" not in run["train"]
    train = [run["train"]["recall_at_1"] for run in results["runs"]["baseline"]]
    val = [run["history"][0]["recall_at_1"] for run in results["runs"]["baseline"]]
    gap = sum(train) / 2 - sum(val) / 2
    assert f"| **baseline** | {sum(train) / 2:.4f} | {sum(val) / 2:.4f} | {gap:+.4f} |" in report
    mean = results["summary"]["metrix_feature"]["recall_at_1"]["mean"]
    assert f"| **metrix_feature** | 1, 1 | {mean:.4f} |" in report
    assert "report:" in capsys.readouterr().out
    study = yaml.safe_load((out / "config.yaml").read_text())
    assert study["seeds"] == [0, 1] and list(study["variants"]) == ["baseline", "metrix_embedding", "metrix_feature"]
    # resumed: every run read back, none trained again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoint.pth")}
    assert main([*args, "--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoint.pth")} == stamps
    assert json.loads((out / "results.json").read_text())["summary"] == results["summary"]


def test_one_seed_where_raw_pixels_win_warns_and_writes_strict_json(tmp_path, capsys):
    """Fashion-MNIST made of a class pattern plus noise: raw pixels retrieve almost perfectly, a
    network of width 8 after one step does not. One seed: no spread (null in results.json)."""
    fashion = write_tiny_fashion_mnist(tmp_path / "fashion")
    out = tmp_path / "compare"
    assert main(["compare", "--dataset", "fashion_mnist", "--data-root", fashion, "--model-width", "8", "--epochs", "1",
                 "--seeds", "0", "--variants", "baseline", "metrix_feature", "--output", str(out)]) == 0
    results = read_strict_json(out / "results.json")  # the autouse check reads every run's too
    assert results["summary"]["baseline"]["recall_at_1"]["std"] is None
    raw_pixels = results["references"]["raw_pixels"][0]["recall_at_1"]
    report = (out / "report.md").read_text()
    top = report.split("## Setting")[0]
    for name in ("baseline", "metrix_feature"):
        assert results["summary"][name]["recall_at_1"]["mean"] < raw_pixels
        assert f"**`{name}` does not beat raw pixels ({raw_pixels:.4f})" in top
    assert results["verdicts"]["metrix_feature"]["verdict"] == "inconclusive" and "inconclusive at 1 seed**" in top


def test_a_study_of_two_networks_pairs_each_metrix_variant_with_its_own_and_scores_each_untrained(tmp_path):
    fashion = write_tiny_fashion_mnist(tmp_path / "fashion")
    study = tmp_path / "study.yaml"
    study.write_text(f"dataset: fashion_mnist\ndata_root: {fashion}\nmodel_width: 8\nepochs: 1\nseeds: [0, 1]\n"
                     "variants:\n  narrow: {}\n  wide: {model_width: 16}\n"
                     "  wide_metrix: {model_width: 16, mix_level: feature, mix_weight: 0.1}\n  larger: {image_size: 32}\n")
    out = tmp_path / "compare"
    assert main(["compare", "--config", str(study), "--output", str(out)]) == 0
    results = read_strict_json(out / "results.json")
    assert results["paired_with"] == {"wide": "narrow", "wide_metrix": "wide", "larger": "narrow"}
    assert results["verdicts"]["wide_metrix"]["baseline"] == "wide"
    references = results["references"]
    wide = references["other_untrained"]["model_width 16"]
    assert list(references["other_untrained"]) == ["model_width 16", "image_size 32"]
    assert list(references["other_raw_pixels"]) == ["image_size 32"]  # the same images for another network
    for scores in (wide, references["untrained"], references["raw_pixels"], *references["other_raw_pixels"].values()):
        assert len(scores) == 2  # one per seed
    assert wide != references["untrained"]  # another network, scored apart
    assert references["other_raw_pixels"]["image_size 32"] != references["raw_pixels"]  # other images
    report = (out / "report.md").read_text()
    untrained = next(line for line in report.splitlines() if line.startswith("| untrained network (model_width 16)"))
    assert f"{sum(s['recall_at_1'] for s in wide) / 2:.4f}" in untrained
    assert "| wide_metrix | wide |" in report and (out / "gain_against_gap.png").exists()


def test_a_study_file_names_its_variants_and_seeds(small_font_list, tmp_path):
    font_list, _ = small_font_list
    study = tmp_path / "study.yaml"
    study.write_text(
        "description: two weights\nseeds: [4]\nvariants:\n  baseline: {mix_level: none}\n"
        "  light: {mix_level: embedding, mix_weight: 0.1}\n  attract: {mix_level: embedding, ms_mixed_form: attract}\n"
    )
    out = tmp_path / "study"
    assert main(["compare", "--config", str(study), *options(font_list), *TINY, "--variants", "baseline", "light",
                 "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["runs"]) == ["baseline", "light"] and results["seeds"] == [4]
    assert load_checkpoint(out / "light" / "seed4" / "checkpoint.pth")["config"]["mix_weight"] == 0.1


def test_too_few_training_classes_for_the_batch_is_one_clear_line(small_font_list, tmp_path, capsys):
    font_list, _ = small_font_list
    assert main(["train", *options(font_list), "--batch-size", "100", "--output", str(tmp_path)]) == 2
    assert "batch_size 100 needs 25 training classes" in capsys.readouterr().err


def test_same_seed_gives_every_variant_the_same_initialisation(small_font_list, tmp_path):
    font_list, _ = small_font_list
    main(["compare", *options(font_list), *TINY, "--epochs", "1", "--seeds", "3", "--variants", "baseline",
          "metrix_embedding", "--output", str(tmp_path)])
    untrained = [load_checkpoint(tmp_path / v / "seed3" / "checkpoint.pth") for v in ("baseline", "metrix_embedding")]
    assert untrained[0]["config"]["seed"] == untrained[1]["config"]["seed"] == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--loss", "triplet"], "loss must be one of contrastive, ms, pa, supcon, ntxent"),
        (["train", "--batch-size", "-8"], "batch_size must be >= 1; got -8"),
        (["train", "--dataset", "sop", "--data-root", "/nonexistent"], "/nonexistent"),
        (["train", "--dataset", "cub200", "--data-root", "/nonexistent"], "/nonexistent"),
        (["eval", "/nonexistent/checkpoint.pth"], "no checkpoint at /nonexistent/checkpoint.pth"),
    ],
)
def test_bad_configuration_gives_one_line_and_a_non_zero_exit(args, message, tmp_path, capsys):
    assert main([*args, "--output", str(tmp_path)] if args[0] == "train" else args) == 2
    error = capsys.readouterr().err
    error_lines = [line for line in error.splitlines() if line.startswith("pml-metrix")]
    assert "Traceback" not in error and len(error_lines) == 1 and message in error_lines[0], error


def test_the_command_exits_with_status_2_and_one_line_on_a_bad_configuration(tmp_path):
    """The process itself, as a shell sees it (the cases above call the same ``main`` in this process)."""
    result = subprocess.run([sys.executable, "-m", "pml_metrix.app.cli", "train", "--loss", "triplet", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["pml-metrix train: error: loss must be one of contrastive, ms, pa, supcon, ntxent; got 'triplet'"]


def test_compare_writes_where_the_config_file_says(tmp_path, monkeypatch):
    import pml_metrix.app.cli as cli

    class Stop(Exception):
        """Raised by the stand-in for compare once it has seen the resolved config."""

    outputs = []

    def record_output(study, resume, overwrite, command):
        outputs.append(study.base.output)
        raise Stop

    import pml_metrix.app.compare

    monkeypatch.setattr(pml_metrix.app.compare, "compare", record_output)
    (tmp_path / "c.yaml").write_text(f"output: {tmp_path / 'from_file'}\n")
    for args in (["compare", "--config", str(tmp_path / "c.yaml")], ["compare"]):
        with pytest.raises(Stop):
            cli.cmd_compare(cli.build_parser().parse_args(args))
    assert outputs == [str(tmp_path / "from_file"), "runs/compare"]


@pytest.mark.parametrize("loss", ["supcon", "ntxent"])
@pytest.mark.parametrize("mix_level", ["none", "feature"])
def test_the_softmax_contrastive_losses_train_with_their_temperature(small_font_list, tmp_path, loss, mix_level):
    font_list, _ = small_font_list
    out = tmp_path / "run"
    args = ["train", *options(font_list), *TINY, "--loss", loss, "--loss-params", "temperature=0.2",
            "--miner-epsilon", "none", "--mix-level", mix_level, "--output", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert finite_metrics(results["final"]["metrics"]) and results["config"]["loss_params"] == {"temperature": 0.2}
    with sqlite3.connect(out / "logs" / "logs.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    twin = {"supcon": "SupConLoss", "ntxent": "NTXentLoss"}[loss]
    assert f"metric_loss_{'Metrix' if mix_level != 'none' else ''}{twin}" in tables


# made data in each reader's on-disk format, enough for the default flags: 2 val classes (val_fraction
# 0.2 of 10), more than 8 references per evaluated split (Recall@8)
PHOTO_CLASSES = tuple(range(1, 11))
DATA_WRITERS = {
    "fashion_mnist": write_tiny_fashion_mnist,
    "cub200": lambda root: write_cub(root, per_class=6, classes=PHOTO_CLASSES + (101, 102, 103)),
    "cars196": lambda root: write_cars(root, per_class=3, classes=PHOTO_CLASSES + (99, 100, 101)),
    "sop": lambda root: write_sop(root, per_class=6, classes=(PHOTO_CLASSES, (11319, 11320, 11321))),
    "inshop": lambda root: write_inshop(root, items={**{item: "train " * 6 for item in PHOTO_CLASSES},
                                                     **{item: "query query gallery gallery gallery" for item in (20, 21, 22)}}),
}
SUBSET = ["max_classes=3", "max_images_per_class=5"]


@pytest.mark.parametrize("subset", [False, True], ids=["whole", "subset"])
def test_every_listed_dataset_trains_with_the_default_flags(small_font_list, tmp_path, subset, capsys):
    """One tiny run (model width 8, 1 epoch) per dataset of ``--dataset``'s choices, with the default
    flags otherwise (their batch fits each split), and with the subset option every reader takes."""
    from pml_metrix.app.build import load_dataset
    from pml_metrix.app.config import RunConfig
    from pml_metrix.app.datasets import DATASETS

    from tests.app.datasets.test_font_attributes import write_attribute_table

    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    for dataset in DATASETS:
        if dataset == "fonts":
            data = ["--dataset-options", f"font_list={font_list}", *(SUBSET if subset else [])]
        elif dataset == "font_attributes":  # label sets: drawn, subset and scored by face
            data = ["--dataset-options", f"font_list={font_list}", f"attribute_table={table}", *(SUBSET if subset else [])]
        else:
            root = tmp_path / dataset / "data"
            root.parent.mkdir()
            DATA_WRITERS[dataset](root)
            data = ["--data-root", str(root), *(["--dataset-options", *SUBSET] if subset else [])]
        out = tmp_path / dataset / "run"
        assert main(["train", "--dataset", dataset, *data, "--model-width", "8", "--epochs", "1",
                     "--output", str(out)]) == 0, capsys.readouterr().err
        results = read_strict_json(out / "results.json")
        assert results["selection"]["best_epoch"] == 1 and "recall_at_1" in results["final"]["metrics"]
        train_set = load_dataset(RunConfig(**results["config"]), "train")  # what the run trained on
        classes = train_set.face_labels.unique() if dataset == "font_attributes" else train_set.labels.unique()
        assert (len(classes), len(train_set)) <= (3, 15) if subset else len(classes) > 3
        if dataset == "font_attributes":
            assert {"ndcg_at_1", "recall_at_1", "chance_recall_at_1"} <= set(results["final"]["metrics"])


def test_a_metrix_run_that_draws_no_mix_says_so_and_a_negative_threshold_gives_it_mixes(small_font_list, tmp_path, capsys):
    """Label sets where every pair of faces shares its four attributes: no item is a negative at
    --negative-threshold 0 (the run trains as its baseline, and says so); at 0.6, the faces of other
    families (Jaccard 4/8) are."""
    font_list, faces = small_font_list
    table = tmp_path / "attributes.tsv"
    table.write_text("\n".join(["path\ttypeface\tweight\tslant\twidth\tspacing",
                                *(f"{face.path}\t{face.face.split()[0]} Made\t80\t0\t100\t0" for face in faces)]) + "\n")
    common = ["train", "--dataset", "font_attributes", "--dataset-options", f"font_list={font_list}",
              f"attribute_table={table}", "--model-width", "8", "--epochs", "1", "--mix-level", "embedding"]
    assert main([*common, "--output", str(tmp_path / "none")]) == 0
    assert "NO MIXES: the miner drew no mix in the whole run" in capsys.readouterr().out
    assert read_strict_json(tmp_path / "none" / "results.json")["mixes_drawn"] == 0
    assert main([*common, "--positive-threshold", "0.8", "--negative-threshold", "0.6", "--output", str(tmp_path / "some")]) == 0
    assert "NO MIXES" not in capsys.readouterr().out
    assert read_strict_json(tmp_path / "some" / "results.json")["mixes_drawn"] > 0


def test_a_study_of_label_sets_with_metrix_runs_to_its_report(small_font_list, tmp_path):
    """compare on a dataset of label sets, with a Metrix variant: to the end, the mixes' positivity
    included (its analysis takes label sets)."""
    from tests.app.datasets.test_font_attributes import write_attribute_table

    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    out = tmp_path / "compare"
    assert main(["compare", "--dataset", "font_attributes", "--dataset-options", f"font_list={font_list}",
                 f"attribute_table={table}", "--model-width", "8", "--epochs", "1", "--seeds", "0",
                 "--variants", "baseline", "metrix_feature", "--output", str(out)]) == 0
    results = read_strict_json(out / "results.json")
    assert results["runs"]["metrix_feature"][0]["mixes_drawn"] > 0
    assert "ndcg_at_1" in results["summary"]["baseline"] and (out / "positivity.png").is_file()
    assert "### Positivity of the mixes" in (out / "report.md").read_text()


def test_proxy_anchor_trains_on_label_sets_with_a_proxy_per_label(small_font_list, tmp_path):
    """--loss pa on a dataset of label sets: a proxy per label (attribute value), mixes drawn with a
    pair-mask row per proxy, to the end of the run."""
    from tests.app.datasets.test_font_attributes import write_attribute_table

    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    out = tmp_path / "pa"
    assert main(["train", "--dataset", "font_attributes", "--dataset-options", f"font_list={font_list}",
                 f"attribute_table={table}", "--loss", "pa", "--model-width", "8", "--epochs", "1",
                 "--mix-level", "feature", "--output", str(out)]) == 0
    results = read_strict_json(out / "results.json")
    assert results["mixes_drawn"] > 0 and 0 <= results["final"]["metrics"]["ndcg_at_1"] <= 1


@pytest.mark.parametrize("command, after", [
    ("train", "every finished epoch is checkpointed: continue with --resume (before the first epoch ends there is "
              "none: start again with --overwrite)"),
    ("compare", "every finished epoch of its runs is checkpointed: continue with --resume and the same study options "
                "(--config, --variants, --seeds and flags)"),
    ("eval", "nothing was written: run it again"),
])
def test_an_interrupted_command_says_what_it_left(command, after, monkeypatch, capsys):
    from pml_metrix.app import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
    assert main([command] + (["checkpoint.pth"] if command == "eval" else [])) == 130
    assert capsys.readouterr().err == f"pml-metrix {command}: interrupted; {after}\n"

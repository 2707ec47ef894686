import dataclasses
from pathlib import Path

import pytest

from pml_metrix.app.config import (FLOAT32_MAX, FLOAT32_TINY, INT64_MAX, ConfigError, RunConfig, base_type, checked,
                                   field_types, load_config)
from pml_metrix.app.study import load_study


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loss: contrastive\nbatch_size: 60\nloss_params: {neg_margin: 0.5}\n")
    config = load_config(str(path), batch_size=80, epochs=None)
    assert (config.loss, config.batch_size, config.epochs) == ("contrastive", 80, RunConfig().epochs)
    assert config.loss_params == {"neg_margin": 0.5}
    config.save(tmp_path / "resolved.yaml")
    assert load_config(str(tmp_path / "resolved.yaml")) == config
    # the dataset's options are merged over the file's (the loss's replace them: they belong to one loss)
    path.write_text("dataset_options: {train_fraction: 0.25}\nloss_params: {neg_margin: 0.5}\n")
    config = load_config(str(path), dataset_options={"max_classes": 5}, loss_params={"pos_margin": 0.1})
    assert config.dataset_options == {"train_fraction": 0.25, "max_classes": 5} and config.loss_params == {"pos_margin": 0.1}
    assert load_config(str(path), dataset="fashion_mnist", dataset_options={"max_classes": 5}).dataset_options == {"max_classes": 5}
    assert load_config(str(path), dataset="fashion_mnist").dataset_options == {}  # the fonts' options stay with the fonts


@pytest.mark.parametrize(
    "values,message",
    [
        (dict(loss="triplet"), "loss must be one of contrastive, ms, pa, supcon, ntxent; got 'triplet'"),
        (dict(batch_size=-4), "batch_size must be >= 1; got -4"),
        (dict(batch_size=30, samples_per_class=4), "multiple of samples_per_class"),
        (dict(mix_level="pixels"), "mix_level must be one of"),
        (dict(recall_at_k=[0]), "recall_at_k entry must be >= 1; got 0"),
        (dict(recall_at_k=[1, 2, 1]), "recall_at_k must not repeat an entry"),
        (dict(strategies=["positive_negative", "positive_negative"]), "strategies must not repeat an entry"),
        (dict(learning_rate=0.1), "unknown option\\(s\\) learning_rate"),
        (dict(freeze_bn="maybe"), "freeze_bn must be true or false; got 'maybe'"),
        (dict(pretrained=1), "pretrained must be true or false; got 1"),
        (dict(epochs=2.5), "epochs must be an integer; got 2.5"),
        (dict(epochs=True), "epochs must be an integer; got True"),
        (dict(lr=float("nan")), "lr must be a finite number"),
        (dict(lr="fast"), "lr must be a number; got 'fast'"),
        (dict(mix_weight=float("inf")), "mix_weight must be a finite number"),
        (dict(mix_weight={"positive": 0.4}), "mix_weight's key must be one of"),
        (dict(mix_weight={"positive_negative": 0.4}), "mix_weight per strategy .* needs strategy_per_step"),
        (dict(grad_clip=0), "grad_clip must be > 0; got 0"),
        (dict(samples_per_class=1, batch_size=10), "samples_per_class 1 gives the ms loss no positive pair"),
        (dict(select_split="test"), "select_split test would pick the epoch on a test split"),
        (dict(eval_split="gallery"), "eval_split must be a split of fonts"),
        (dict(dataset_options=["train_fraction=0.5"]), "dataset_options must be a mapping"),
        (dict(epochs=None), "epochs needs a value"),
    ],
)
def test_bad_configuration_is_one_clear_line(values, message):
    with pytest.raises(ConfigError, match=message) as error:
        RunConfig(**values) if values.get("epochs", 0) is None else load_config(None, **values)
    assert "\n" not in str(error.value)


def test_yaml_spellings_are_converted_not_coerced():
    config = RunConfig(model="resnet18", freeze_bn="no", pretrained="Yes", lr="1e-3", epochs="7", patience="none", grad_clip="None",
                       recall_at_k=["1", 10], strategies="anchor_negative")
    assert (config.freeze_bn, config.pretrained, config.lr, config.epochs) == (False, True, 0.001, 7)
    assert (config.patience, config.grad_clip, config.recall_at_k) == (None, None, [1, 10])
    assert config.strategies == ["anchor_negative"]
    assert isinstance(RunConfig(weight_decay=0).weight_decay, float)
    per_strategy = RunConfig(strategies=["positive_negative", "anchor_negative"], strategy_per_step=True,
                             mix_weight={"positive_negative": 0.4, "anchor_negative": "0.3"})
    assert per_strategy.mix_weight == {"positive_negative": 0.4, "anchor_negative": 0.3}


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("loss: [ms\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))
    (tmp_path / "list.yaml").write_text("- ms\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(str(tmp_path / "list.yaml"))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_configs_load(path):  # every key known, every value valid, the choice explained
    assert load_study(str(path)).base.description  # a run's options, or a study's (main.yaml)


NUMBER_FIELDS = [f for f in dataclasses.fields(RunConfig)
                 if base_type(field_types()[f.name])[0] in (int, float) or f.name == "mix_weight"]  # (or per strategy)


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=lambda f: f.name)
def test_every_number_stays_within_what_the_run_makes_of_it(f):
    """One rule for every number option: a float within float32's range (0, or a normal magnitude),
    an integer within int64 and the field's maximum; the bounds are accepted."""
    if base_type(field_types()[f.name])[0] is not int:
        smallest = max(FLOAT32_TINY, f.metadata["minimum"] or 0)
        for good in (f.metadata["maximum"] or FLOAT32_MAX, smallest):
            assert checked(f, good) == good
        for bad in (1e39, FLOAT32_MAX * 1.0001, 1e-39, 10**400):
            with pytest.raises(ConfigError, match=f"^{f.name} must be"):
                checked(f, bad)
    else:
        largest = f.metadata["maximum"] or INT64_MAX
        assert checked(f, largest) == largest
        for bad in (largest + 1, 2**70, 16**100_000):
            with pytest.raises(ConfigError, match=f"^{f.name} must be <= {largest}; got ") as refused:
                checked(f, bad)
            assert len(str(refused.value)) < 120


def test_loss_params_and_mix_weights_follow_the_float32_rule():
    for values in (dict(loss_params={"beta": 1e39}), dict(strategy_per_step=True, mix_weight={"positive_negative": 1e-40})):
        with pytest.raises(ConfigError, match="float32's range"):
            RunConfig(**values)


def test_messages_show_a_huge_value_shortened():
    with pytest.raises(ConfigError) as refused:
        RunConfig(description=list(range(100_000)))
    assert str(refused.value).startswith("description must be a string; got [0, 1, 2, 3, 4, 5, ...]")
    with pytest.raises(ConfigError) as refused:
        load_config(None, **{f"k{i}": 1 for i in range(5000)})
    assert "and 4990 more" in str(refused.value) and len(str(refused.value)) < 1200

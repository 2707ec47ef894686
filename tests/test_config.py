from pathlib import Path

import pytest

from pml_metrix.config import ConfigError, RunConfig, load_config


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loss: contrastive\nbatch_size: 60\nloss_params: {neg_margin: 0.5}\n")
    config = load_config(str(path), batch_size=80, epochs=None)
    assert (config.loss, config.batch_size, config.epochs) == ("contrastive", 80, RunConfig().epochs)
    assert config.loss_params == {"neg_margin": 0.5}
    config.save(tmp_path / "resolved.yaml")
    assert load_config(str(tmp_path / "resolved.yaml")) == config


@pytest.mark.parametrize(
    "values,message",
    [
        (dict(loss="triplet"), "loss must be one of contrastive, ms, pa; got 'triplet'"),
        (dict(batch_size=-4), "batch_size must be a positive number; got -4"),
        (dict(batch_size=30, samples_per_class=4), "multiple of samples_per_class"),
        (dict(mix_level="pixels"), "mix_level must be one of"),
        (dict(recall_at_k=[0]), "recall_at_k must list positive integers"),
        (dict(learning_rate=0.1), "unknown option\\(s\\) learning_rate"),
    ],
)
def test_bad_configuration_is_one_clear_line(values, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, **values)
    assert "\n" not in str(error.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("loss: [ms\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))
    (tmp_path / "list.yaml").write_text("- ms\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(str(tmp_path / "list.yaml"))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_configs_load(path):  # every key known, every value valid, the choice explained
    assert load_config(str(path)).description

"""The paper's recipes: one valid config per cell, and the committed files are what the script writes."""

import runpy
from pathlib import Path

from pml_metrix.app.config import load_config

PAPER = Path(__file__).parents[2] / "configs" / "paper"


def test_every_cell_has_a_valid_config_matching_the_generator(tmp_path):
    runpy.run_path(str(PAPER / "make_recipes.py"), run_name="recipes")["write"](tmp_path)
    generated = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert len(generated) == 3 * 4 * 4
    assert generated == sorted(p.name for p in PAPER.glob("*.yaml"))
    for name in generated:
        assert (tmp_path / name).read_text() == (PAPER / name).read_text()
        config = load_config(str(PAPER / name))
        assert config.model == "resnet50" and config.embedding_size == 512 and config.batch_size == 100


def test_recipes_carry_the_paper_hyperparameters():
    ms = load_config(str(PAPER / "cub200_ms_feature.yaml"))
    assert ms.loss_params == {"alpha": 17.97, "beta": 75.66, "base": 0.77} and ms.miner_epsilon == 0.39
    assert ms.freeze_bn and ms.warmup_epochs == 5 and ms.grad_clip == 10 and ms.mix_level == "feature"
    assert load_config(str(PAPER / "sop_pa_baseline.yaml")).recall_at_k == [1, 10, 100, 1000]
    inshop = load_config(str(PAPER / "inshop_contrastive_input.yaml"))
    assert (inshop.eval_split, inshop.eval_reference, inshop.distance) == ("query", "gallery", "lp")

"""Every committed study (configs/studies/*.yaml, and the main job's configs/main.yaml) loads, and
each of its variants runs one training step on a few fonts."""

from pathlib import Path

import pytest
import torch

from pml_metrix.app.build import build_trainer
from pml_metrix.app.experiment import Run
from pml_metrix.app.study import load_study

CONFIGS = Path(__file__).parents[2] / "configs"
STUDIES = sorted((CONFIGS / "studies").glob("*.yaml")) + [CONFIGS / "main.yaml"]


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_each_variant_of_a_study_runs_a_step(path, small_font_list, tmp_path):
    font_list, _ = small_font_list
    study = load_study(str(path), output=str(tmp_path))
    assert study.base.description and study.base.select_split == "val"
    assert study.base.reproducible and study.base.device == "cpu"  # every committed study runs pinned
    for name in study.variants:
        config = study.config(name, study.seeds[0])
        # unpinned: pytest loaded torch (test_reproducible pins); batch 8: a quarter of the small list's
        # training families is 2 classes, 4 items each
        config = config.replace(
            dataset_options={**config.dataset_options, "font_list": font_list}, batch_size=8, model_width=8,
            embedding_size=16, reproducible=False,
        )
        run = Run(config)
        trainer = build_trainer(config, run.parts, run.device, 1, None, run.end_of_epoch)
        trainer.initialize_dataloader()
        trainer.set_to_train()
        batch = next(iter(trainer.dataloader))
        trainer.calculate_loss(batch)
        loss = trainer.losses["metric_loss"]
        assert torch.isfinite(loss) and loss.requires_grad, name
        loss.backward()

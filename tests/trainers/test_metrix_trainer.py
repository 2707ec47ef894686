"""MetrixTrainer: whole epochs at each mixing level inside PML's machinery, with hooks and a tester."""

import logging
import warnings
from pathlib import Path

import pytest
import torch
from pytorch_metric_learning import miners, testers
from pytorch_metric_learning.utils import logging_presets

import pml_metrix
from pml_metrix.app.models import PoolingEmbedder
from pml_metrix.trainers import MetrixTrainer


class TinyImages(torch.utils.data.Dataset):
    """8 classes of 1 x 8 x 8 images: a class-specific pattern plus noise."""

    def __init__(self, n_per_class=10, seed=0):
        g = torch.Generator().manual_seed(seed)
        patterns = torch.randn(8, 1, 8, 8, generator=g)
        self.labels = torch.arange(8).repeat_interleave(n_per_class)
        self.images = patterns[self.labels] + 0.5 * torch.randn(len(self.labels), 1, 8, 8, generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.images[idx], self.labels[idx]


def small_models():
    trunk = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
    return {"trunk": trunk, "embedder": PoolingEmbedder(16, 8)}


@pytest.mark.parametrize("mix_level", ["input", "feature", "embedding"])
def test_whole_epochs_with_hooks_and_tester_and_the_loss_goes_down(mix_level, tmp_path):
    logging.getLogger("PML").setLevel(logging.WARNING)
    torch.manual_seed(0)
    models = small_models()
    dataset = TinyImages()
    record_keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "logs"), str(tmp_path / "tb"))
    hooks = logging_presets.get_hook_container(record_keeper, primary_metric="precision_at_1")
    tester = testers.GlobalEmbeddingSpaceTester(end_of_testing_hook=hooks.end_of_testing_hook, dataloader_num_workers=0)
    end_of_epoch = hooks.end_of_epoch_hook(tester, {"val": dataset}, str(tmp_path / "models"), test_interval=2)
    losses_seen = []

    def end_of_iteration(trainer):
        hooks.end_of_iteration_hook(trainer)
        losses_seen.append(trainer.losses["metric_loss"].item())

    optimizers = {
        "trunk_optimizer": torch.optim.Adam(models["trunk"].parameters(), lr=1e-2),
        "embedder_optimizer": torch.optim.Adam(models["embedder"].parameters(), lr=1e-2),
    }
    trainer = MetrixTrainer(
        models=models,
        optimizers=optimizers,
        batch_size=40,
        loss_funcs={"metric_loss": pml_metrix.MetrixMSLoss(collect_stats=True)},
        mining_funcs={"tuple_miner": pml_metrix.MixupMiner(inner_miner=miners.MultiSimilarityMiner(), seed=0,
                                                           collect_stats=True)},
        dataset=dataset,
        dataloader_num_workers=0,
        loss_weights={"metric_loss": 1.0},
        gradient_clippers={"trunk_grad_clipper": lambda: torch.nn.utils.clip_grad_norm_(models["trunk"].parameters(), 10)},
        lr_schedulers={"trunk_scheduler_by_epoch": torch.optim.lr_scheduler.StepLR(optimizers["trunk_optimizer"], 2)},
        freeze_trunk_batchnorm=True,
        end_of_iteration_hook=end_of_iteration,
        end_of_epoch_hook=end_of_epoch,
        mix_level=mix_level,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(num_epochs=8)
    converted = {Path(w.filename).name for w in caught if "requires_grad=True to a scalar" in str(w.message)}
    assert converted <= {"base_trainer.py"}  # PML's progress bar alone; the loss and miner record detached values
    assert sum(losses_seen[-3:]) < sum(losses_seen[:3])
    assert (tmp_path / "logs").is_dir() and any((tmp_path / "logs").iterdir())
    assert not models["trunk"][1].training  # freeze_trunk_batchnorm still applies


@pytest.mark.parametrize("mix_level", ["input", "feature", "embedding"])
@pytest.mark.parametrize("loss_cls", [pml_metrix.MetrixSupConLoss, pml_metrix.MetrixNTXentLoss], ids=["supcon", "ntxent"])
def test_the_softmax_losses_train_with_mixes_at_every_level(loss_cls, mix_level):
    """SupCon and NT-Xent as the study trains them (MixupMiner without an inner miner): each step
    has a mixed part, and the loss goes down."""
    torch.manual_seed(0)
    models = small_models()
    loss_fn = loss_cls(collect_stats=True)
    losses_seen, mixed_seen = [], []

    def end_of_iteration(trainer):
        losses_seen.append(trainer.losses["metric_loss"].item())
        mixed_seen.append(loss_fn.mixed_loss)

    trainer = MetrixTrainer(
        models=models,
        optimizers={f"{name}_optimizer": torch.optim.Adam(m.parameters(), lr=1e-2) for name, m in models.items()},
        batch_size=40,
        loss_funcs={"metric_loss": loss_fn},
        mining_funcs={"tuple_miner": pml_metrix.MixupMiner(seed=0)},
        dataset=TinyImages(),
        dataloader_num_workers=0,
        end_of_iteration_hook=end_of_iteration,
        mix_level=mix_level,
    )
    trainer.train(num_epochs=6)
    assert len(losses_seen) == 12 and all(mixed > 0 for mixed in mixed_seen)
    assert sum(losses_seen[-3:]) < sum(losses_seen[:3])


def test_feature_level_mixes_are_the_embedder_of_mixed_features():
    torch.manual_seed(0)
    models = small_models()
    images, labels = TinyImages()[torch.arange(16)]
    miner = pml_metrix.MixupMiner(seed=3)
    features = models["trunk"](images)
    plan = miner.plan(models["embedder"](features), labels)
    i, j = plan.source_index.T
    lam = plan.lam[:, None, None, None]
    expected = models["embedder"](lam * features[i] + (1 - lam) * features[j])
    assert torch.allclose(models["embedder"](plan.mix(features)), expected, atol=1e-6)


def test_metrix_trainer_needs_a_mixup_miner_and_a_known_level():
    models = small_models()
    kwargs = dict(models=models, optimizers={}, batch_size=8, loss_funcs={"metric_loss": pml_metrix.MetrixMSLoss()},
                  dataset=TinyImages())
    with pytest.raises(ValueError, match="needs mining_funcs"):
        MetrixTrainer(mining_funcs={"tuple_miner": miners.MultiSimilarityMiner()}, **kwargs)
    with pytest.raises(ValueError, match="mix_level must be one of"):
        MetrixTrainer(mining_funcs={"tuple_miner": pml_metrix.MixupMiner()}, mix_level="pixel", **kwargs)


def test_mixed_embeddings_are_kept_when_asked():
    torch.manual_seed(0)
    models = small_models()
    trainer = MetrixTrainer(
        models=models,
        optimizers={"trunk_optimizer": torch.optim.SGD(models["trunk"].parameters(), lr=0.01)},
        batch_size=40,
        loss_funcs={"metric_loss": pml_metrix.MetrixMSLoss()},
        mining_funcs={"tuple_miner": pml_metrix.MixupMiner(seed=0)},
        dataset=TinyImages(),
        dataloader_num_workers=0,
        mix_level="feature",
        keep_mixed_embeddings=True,
    )
    trainer.train(num_epochs=1)
    assert len(trainer.mixed_embeddings_seen) == 2  # 80 items, batches of 40
    assert all(m.shape[1] == 8 and not m.requires_grad for m in trainer.mixed_embeddings_seen)


@pytest.mark.parametrize("mix_level", ["input", "feature", "embedding"])
def test_the_miner_records_its_mixes_and_the_inner_miner_s_pairs_at_every_level(mix_level):
    torch.manual_seed(0)
    models = small_models()
    miner = pml_metrix.MixupMiner(inner_miner=miners.MultiSimilarityMiner(epsilon=0.5), seed=0, collect_stats=True)
    trainer = MetrixTrainer(
        models=models, optimizers={}, batch_size=40, loss_funcs={"metric_loss": pml_metrix.MetrixMSLoss()},
        mining_funcs={"tuple_miner": miner}, dataset=TinyImages(), mix_level=mix_level,
    )
    images, labels = TinyImages()[torch.arange(0, 80, 2)]
    trainer.calculate_loss((images, labels))
    mixed = trainer.losses["metric_loss"]
    assert miner.num_mixed == 40  # one positive-negative mix per anchor
    assert miner.num_pos_pairs > 0 and miner.num_neg_pairs > 0  # the inner miner's tuple, as PML's miners record
    assert mixed.requires_grad


class ByteImages(TinyImages):
    """TinyImages as uint8 pixels, which PML's trainer turns into its ``dtype`` before the trunk."""

    def __getitem__(self, idx):
        image, label = super().__getitem__(idx)
        return (image.clamp(-2, 2) * 60 + 128).to(torch.uint8), label


@pytest.mark.parametrize("mix_level", ["input", "feature", "embedding"])
def test_byte_inputs_are_mixed_in_the_trainer_s_dtype_at_every_level(mix_level):
    """PML's trainer converts the inputs to its ``dtype`` before the trunk; the input level mixes
    them after that conversion, as the trunk sees them."""
    torch.manual_seed(0)
    models = small_models()
    plans = []
    miner = pml_metrix.MixupMiner(seed=0)
    trainer = MetrixTrainer(
        models=models,
        optimizers={"trunk_optimizer": torch.optim.SGD(models["trunk"].parameters(), lr=0.01)},
        batch_size=40,
        loss_funcs={"metric_loss": pml_metrix.MetrixMSLoss()},
        mining_funcs={"tuple_miner": miner},
        dataset=ByteImages(),
        dataloader_num_workers=0,
        dtype=torch.float32,
        mix_level=mix_level,
        end_of_iteration_hook=lambda trainer: plans.append(miner.num_mixed),
    )
    trainer.train(num_epochs=1)
    assert len(plans) == 2 and all(num_mixed > 0 for num_mixed in plans)

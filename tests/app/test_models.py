"""The paper's ResNet-50 model, offline: random init, local weights, a clear error without either."""

from urllib.error import URLError

import pytest
import torch
import torchvision

import pml_metrix
from pml_metrix.app.datasets.image_files import IMAGENET_MEAN, IMAGENET_STD
from pml_metrix.app.models import BACKBONES, CHANNELS, GoogLeNetInput, GrayscaleTrunk, backbone, metrix_resnet50


@pytest.mark.parametrize("mix_level", ["input", "feature", "embedding"])
def test_resnet50_forward_and_backward_at_each_level(mix_level):
    torch.manual_seed(0)
    model = metrix_resnet50(embedding_size=32, pretrained=False)
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 0, 1, 1])
    features = model["trunk"](images)
    assert features.shape == (4, 2048, 2, 2)
    embeddings = model["embedder"](features)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(4))
    plan = pml_metrix.MixupMiner(seed=0).plan(embeddings, labels)
    mixed = {
        "input": lambda: model["embedder"](model["trunk"](plan.mix(images))),
        "feature": lambda: model["embedder"](plan.mix(features)),
        "embedding": lambda: plan.mix(embeddings),
    }[mix_level]()
    loss = pml_metrix.MetrixMSLoss()(embeddings, labels, plan.mixed_batch(mixed))
    loss.backward()
    assert model["embedder"].linear.weight.grad.abs().sum() > 0
    assert next(model["trunk"].parameters()).grad is not None


def test_local_weights_file(tmp_path):
    state = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    trunk = metrix_resnet50(pretrained=True, weights_path=str(path))["trunk"]
    assert torch.equal(trunk[0].weight, state["conv1.weight"])


def test_offline_pretrained_weights_give_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="pretrained=False.*weights_path"):
        metrix_resnet50(pretrained=True)


@pytest.mark.parametrize("name", BACKBONES)
def test_each_backbone_runs_a_feature_level_metrix_step(name):
    torch.manual_seed(0)
    model = backbone(name, embedding_size=16, pretrained=False)
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 0, 1, 1])
    features = model["trunk"](images)
    assert features.shape == (4, CHANNELS[name], 2, 2)
    embeddings = model["embedder"](features)
    plan = pml_metrix.MixupMiner(seed=0).plan(embeddings, labels)
    loss = pml_metrix.MetrixMSLoss()(embeddings, labels, plan.mixed_batch(model["embedder"](plan.mix(features))))
    loss.backward()
    assert all(p.grad is not None for p in model["trunk"].parameters() if p.requires_grad)


def test_googlenet_weights_get_their_input_transform_and_lose_their_aux_heads(tmp_path):
    state = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).state_dict()
    path = tmp_path / "googlenet.pth"
    torch.save(state, path)
    trunk = backbone("googlenet", pretrained=True, weights_path=str(path))["trunk"]
    assert isinstance(trunk[0], GoogLeNetInput) and torch.equal(trunk[1].conv.weight, state["conv1.conv.weight"])
    images = torch.randn(2, 3, 8, 8)
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True, transform_input=True)
    assert torch.allclose(trunk[0](images), reference._transform_input(images), atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_a_backbone_takes_grayscale_images_as_their_channel_repeated(name):
    torch.manual_seed(0)
    model = backbone(name, embedding_size=16, pretrained=False, in_channels=1)
    rgb_trunk = backbone(name, embedding_size=16, pretrained=False)["trunk"]
    assert isinstance(model["trunk"], GrayscaleTrunk)
    assert list(model["trunk"].state_dict()) == list(rgb_trunk.state_dict())  # checkpoints load either way
    rgb_trunk.load_state_dict(model["trunk"].state_dict())
    gray = torch.rand(2, 1, 32, 32)
    assert torch.equal(model["trunk"].eval()(gray), rgb_trunk.eval()(gray.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match="RGB images \\(3 channels\\) or grayscale ones.*the images have 2 channels"):
        backbone(name, pretrained=False, in_channels=2)


def test_grayscale_images_meet_imagenet_weights_normalised_as_imagenet_s_images(tmp_path):
    """[0, 1] glyphs into ImageNet weights: per channel (x - mean) / std, as the photo readers' transforms
    give their images; a network trained from scratch takes them as they are."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    gray_trunk = backbone("resnet18", embedding_size=16, weights_path=str(weights), in_channels=1)["trunk"].eval()
    rgb_trunk = backbone("resnet18", embedding_size=16, weights_path=str(weights))["trunk"].eval()
    gray = torch.rand(2, 1, 32, 32)
    normalised = torchvision.transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(gray.repeat(1, 3, 1, 1))
    assert torch.allclose(gray_trunk(gray), rgb_trunk(normalised), atol=1e-6)
    assert list(gray_trunk.state_dict()) == list(rgb_trunk.state_dict())  # the statistics are not saved
    assert not backbone("resnet18", embedding_size=16, pretrained=False, in_channels=1)["trunk"].imagenet_input
    # a pretrained run's model rebuilt to load its checkpoint (pml-metrix eval): no download, the same input
    from pml_metrix.app.build import build_models
    from pml_metrix.app.checkpoints import trunk_input
    from pml_metrix.app.config import RunConfig

    rebuilt = build_models(RunConfig(model="resnet18", pretrained=True), in_channels=1, download=False)
    assert rebuilt["trunk"].imagenet_input and trunk_input(rebuilt) == "imagenet"
    assert trunk_input(build_models(RunConfig(model="resnet18"), in_channels=1)) == "as read"

"""Writes one config per cell of the paper's table (docs/paper.md) into this folder:
3 losses x {baseline, input, feature, embedding} x {CUB200, Cars196, SOP, In-Shop}.

    python configs/paper/make_recipes.py [FOLDER]

The recipe: ImageNet ResNet-50, average + max pooling, 512-d L2-normalised embedding, batch 100,
Adam (lr 1e-4, weight decay 1e-4), frozen BatchNorm on CUB/Cars, 5 warm-up epochs on the head,
gradient clipping at 10; MS alpha 17.97, beta 75.66, base 0.77 with its miner at epsilon 0.39;
contrastive negative margin 0.5, Euclidean; proxy lr x100; the reference code's 60 epochs and step
schedule (learning rate x0.1 every 10 epochs). Not in the paper, our choices: 4 images per class
in a batch (2 for SOP and In-Shop, whose classes are small), and the epoch picked by Recall@1 on a
validation split (a fifth of the training classes, every 5 epochs), never on the test split.
"""

import sys
from pathlib import Path

import yaml

DATASETS = {
    "cub200": dict(freeze_bn=True, samples_per_class=4, recall_at_k=[1, 2, 4, 8]),
    "cars196": dict(freeze_bn=True, samples_per_class=4, recall_at_k=[1, 2, 4, 8]),
    "sop": dict(freeze_bn=False, samples_per_class=2, recall_at_k=[1, 10, 100, 1000]),
    "inshop": dict(freeze_bn=False, samples_per_class=2, recall_at_k=[1, 10, 20, 30],
                   eval_split="query", eval_reference="gallery"),
}
LOSSES = {
    "ms": dict(loss_params={"alpha": 17.97, "beta": 75.66, "base": 0.77}, miner_epsilon=0.39),
    "contrastive": dict(loss_params={"neg_margin": 0.5}, distance="lp", miner_epsilon=0.39),
    "pa": dict(loss_params={}, proxy_lr_multiplier=100.0),
}
LEVELS = ("none", "input", "feature", "embedding")
COMMON = dict(model="resnet50", pretrained=True, embedding_size=512, batch_size=100, lr=1e-4,
              weight_decay=1e-4, lr_decay_step=10, lr_decay_gamma=0.1, warmup_epochs=5, grad_clip=10.0,
              epochs=60, test_interval=5, mix_alpha=2.0,
              mix_weight=0.4, strategies=["positive_negative"])


def recipes():
    for dataset, data in DATASETS.items():
        for loss, loss_settings in LOSSES.items():
            for level in LEVELS:
                name = f"{dataset}_{loss}_{'baseline' if level == 'none' else level}"
                yield name, dict(dataset=dataset, loss=loss, mix_level=level, **COMMON, **data, **loss_settings,
                                 output=f"runs/paper/{name}")


def write(folder: Path) -> None:
    for name, recipe in recipes():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)

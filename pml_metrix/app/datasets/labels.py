"""What a dataset's labels are: one class per item (``labels`` N), or label sets (``labels`` N x C
multi-hot, with the class each item is drawn by in ``face_labels``, as font_attributes has)."""

import torch
from torch.utils.data import Dataset

from ...label_sets import is_label_sets


def has_label_sets(dataset: Dataset) -> bool:
    """Whether the dataset's labels are N x C label sets (multi-label data) rather than N classes."""
    return is_label_sets(dataset.labels)


def sampling_labels(dataset: Dataset) -> torch.Tensor:
    """The N classes a batch is drawn by (``samples_per_class`` items of each): the labels, or for
    label sets the class each item belongs to (``face_labels``: font_attributes' faces)."""
    return dataset.face_labels if has_label_sets(dataset) else dataset.labels

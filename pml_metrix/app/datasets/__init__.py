"""Datasets for training and evaluating on unseen classes; see ``get_dataset``."""

from .font_attributes import FontAttributes
from .font_list import install_command, missing_fonts, read_font_list
from .fonts import FontGlyphs
from .labels import has_label_sets, sampling_labels
from .registry import DATASETS, SPLITS, get_dataset

__all__ = [
    "DATASETS",
    "SPLITS",
    "FontAttributes",
    "FontGlyphs",
    "get_dataset",
    "has_label_sets",
    "install_command",
    "missing_fonts",
    "read_font_list",
    "sampling_labels",
]

"""Datasets for training and evaluating on unseen classes; see ``get_dataset``."""

from .font_list import install_command, missing_fonts, read_font_list
from .fonts import FontGlyphs
from .registry import DATASETS, SPLITS, get_dataset

__all__ = [
    "DATASETS",
    "SPLITS",
    "FontGlyphs",
    "get_dataset",
    "install_command",
    "missing_fonts",
    "read_font_list",
]

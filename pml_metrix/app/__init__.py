"""The application behind the ``pml-metrix`` command: run configuration, datasets, models, training
runs with selection on the validation split, studies over seeds, reports.

It imports the library (:mod:`pml_metrix`) and is never imported by it. Its own dependencies are the
``app`` extra: ``pip install "pml-metrix[app]"``.
"""

import importlib.util

# module name -> the package that provides it; checked without importing them (``--help`` stays fast)
REQUIREMENTS = {"yaml": "pyyaml", "matplotlib": "matplotlib", "record_keeper": "record-keeper",
                "tensorboard": "tensorboard", "torchvision": "torchvision", "PIL": "pillow", "tqdm": "tqdm"}

_missing = [package for module, package in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
if _missing:
    raise ImportError(
        f"the pml-metrix command (pml_metrix.app) needs {', '.join(_missing)}, which the library alone does not "
        "install: pip install \"pml-metrix[app]\""
    )

"""The package is two programs: the library (``pml_metrix``) never imports the application
(``pml_metrix.app``) nor what only the application needs, and the command's ``--help`` waits for no torch."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pml_metrix

APPLICATION_ONLY = ("pml_metrix.app", "yaml", "matplotlib", "record_keeper", "tensorboard", "torchvision", "PIL")
PACKAGE = Path(pml_metrix.__file__).parent


def library_modules():
    """Every module of the package outside ``pml_metrix.app``."""
    names = ["pml_metrix"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="pml_metrix."):
        if not info.name.startswith("pml_metrix.app"):
            names.append(info.name)
    return names


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_walk_finds_the_library_and_leaves_out_the_application():
    modules = library_modules()
    assert {"pml_metrix.losses.multi_similarity", "pml_metrix.miners.mixup_miner", "pml_metrix.names"} <= set(modules)
    assert not [name for name in modules if ".app" in name]


def test_no_library_module_loads_the_application_or_its_dependencies():
    # one fresh process imports the library module by module and names, after each, any
    # application-only module that has appeared: none may ever appear, whichever module brought it
    code = f"""
import importlib, sys
forbidden = {APPLICATION_ONLY!r}
for name in {library_modules()!r}:
    importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in forbidden or m.startswith('pml_metrix.app'))
    if loaded:
        print(name, 'loaded', ', '.join(loaded))
        break
else:
    print('clean')
"""
    assert run_python(code).strip() == "clean"


def test_the_command_line_help_loads_no_torch():
    code = """
import sys
from pml_metrix.app.cli import main
for argv in (["--help"], ["train", "--help"], ["compare", "--help"], ["eval", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch') or 'no torch')
"""
    assert run_python(code).strip().splitlines()[-1] == "no torch"

"""The documentation builds, and every example in it runs.

1. ``mkdocs build --strict`` (mkdocs, mkdocs-material and mkdocstrings[python] come with the
   ``docs`` extra, which scripts/env.sh installs; a missing one fails the test, it is never skipped).
2. Every ```python block of docs/*.md and README.md runs; the blocks of one page run in order in one namespace.
   A block whose first line is ``# raises: SomeError`` must raise an exception of that class name
   (or a subclass), e.g. to show an error message; any other block must not raise.
3. Every ```bash line that starts with ``pml-metrix`` (or runs it under ``torchrun --no-python``)
   parses with the CLI's own parser.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import pml_metrix
from pml_metrix.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]  # the README's examples run as written too
RAISES = re.compile(r"^#\s*raises:\s*(\w+)")
TORCHRUN = re.compile(r"^torchrun\s.*--no-python\s+(pml-metrix\s.*)$")
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def blocks(page: Path, language: str):
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def pml_metrix_commands(page: Path):
    """The ``pml-metrix`` command lines of a page's bash blocks (continuation lines joined), also
    those that ``torchrun ... --no-python`` launches."""
    commands = []
    for body in blocks(page, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            launched = TORCHRUN.match(line)
            line = launched.group(1) if launched else line
            if line.startswith("pml-metrix"):
                commands.append(line)
    return commands


def test_pages_exist():
    assert PAGES, f"no pages in {DOCS}"
    assert any(blocks(page, "python") for page in PAGES)


@pytest.mark.slow  # builds the site
def test_mkdocs_build_strict(tmp_path):
    # imported, never importorskip'ed: without the docs tooling this test fails
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        __import__(module)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "losses" / "index.html").is_file()


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks(page, "python"), start=1):
        expected = RAISES.match(code)
        try:
            exec(compile(code, f"{page.name} [python block {number}]", "exec"), namespace)
        except Exception as error:
            if expected and any(cls.__name__ == expected.group(1) for cls in type(error).__mro__):
                continue
            raise AssertionError(f"{page.name}, python block {number} failed:\n{code}") from error
        if expected:
            raise AssertionError(f"{page.name}, python block {number} should raise {expected.group(1)}:\n{code}")


def test_the_readme_swap_logs_the_clean_and_mixed_parts(tmp_path, monkeypatch):
    """The README's swap trains as written, and its loss and miner record what its text says the logs hold."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_README"}
    exec(compile(blocks(ROOT / "README.md", "python")[0], "README.md [python block 1]", "exec"), namespace)
    loss_fn, miner = namespace["loss_fn"], namespace["miner"]
    assert isinstance(loss_fn, pml_metrix.MetrixContrastiveLoss) and loss_fn.mix_weight == 0.1
    assert {"clean_loss", "mixed_loss"} <= set(loss_fn._record_these_stats) and loss_fn.mixed_loss > 0
    assert miner.num_mixed > 0 and miner.num_pos_pairs > 0 and miner.num_neg_pairs > 0
    assert namespace["trainer"].mix_level == "feature"


@pytest.mark.parametrize("page", [p for p in PAGES if pml_metrix_commands(p)], ids=lambda p: p.name)
def test_cli_commands_parse(page):
    parser = build_parser()
    for command in pml_metrix_commands(page):
        argv = shlex.split(command, comments=True)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as error:
            raise AssertionError(f"{page.name}: {command!r} does not parse") from error

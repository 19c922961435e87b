"""The Python examples of README.md and of the pages in docs/ run as written.

A block fenced with ```python runs, each in a fresh namespace, in a temporary working
directory (the tour writes a map file). A block fenced with ```python skip is shown, not run:
it needs a long run or a file that the page's commands write (docs/index.md, "Code in these
pages").
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(python[^\n]*)\n(.*?)^```", flags=re.S | re.M)
INFO_STRINGS = {"python", "python skip"}


def python_blocks(path):
    """The (info string, code) of every fenced block whose info string starts with python."""
    return FENCE.findall(path.read_text(encoding="utf-8"))


def run_blocks(path):
    for info, code in python_blocks(path):
        if info == "python":
            exec(compile(code, str(path), "exec"), {})


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tour writes a map file
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_docs_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_blocks(page)


@pytest.mark.parametrize("path", [README, *PAGES], ids=["README.md", *(p.name for p in PAGES)])
def test_python_blocks_are_marked_to_run_or_skip(path):
    infos = {info for info, _ in python_blocks(path)}
    assert infos <= INFO_STRINGS, f"unknown info strings {infos - INFO_STRINGS} in {path.name}"


def test_skipped_blocks_are_found_and_not_run(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```python skip\nraise SystemExit('ran')\n```\n")
    assert [info for info, _ in python_blocks(page)] == ["python", "python skip"]
    run_blocks(page)  # the skipped block would raise

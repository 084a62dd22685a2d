"""The examples users copy: docstrings (doctest), the README's Python example (the script in
examples/, run as a script), and every Python block of docs/*.md (run against a small trained
workspace). A block whose first line is ``# not run by the tests: REASON`` is only shown."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sfrdask

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sfr_catalogue.py"
SKIP = "# not run by the tests:"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(sfrdask.__path__, "sfrdask.") if m.name != "sfrdask.__main__"
    )


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_no_docstring_example_is_skipped():
    text = "".join(p.read_text() for p in (ROOT / "src" / "sfrdask").rglob("*.py"))
    assert "doctest: +SKIP" not in text


def test_the_readme_example_is_the_example_script():
    blocks = python_blocks(ROOT / "README.md")
    assert EXAMPLE.read_text().strip() in [b.strip() for b in blocks]


@pytest.mark.slow
def test_the_example_script_runs_as_a_script(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = re.search(r"sfr\.fits (\d+) rows", r.stdout)  # a row per spectrum: >= 1 per object
    assert (tmp_path / "sfr.fits").exists() and rows and 1000 <= int(rows.group(1)) < 1200, r.stdout
    assert "\r" not in r.stdout + r.stderr  # progress as plain lines: this is no terminal
    assert "still alive" not in r.stderr  # no shutdown warning in a normal run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """What the docs' examples assume: survey/, store.zarr (16 px, 1155 samples) preprocessed, and
    runs/gbt-both/image2-spectrum2-AVG trained on it."""
    d = tmp_path_factory.mktemp("docs")
    s = sfrdask.synth(d / "survey", objects=1000, seed=1, flag0_fraction=0.55, client="threads")
    store = sfrdask.ingest(
        s.cube, d / "store.zarr", catalog=d / "survey", image_zooms=[2], spectrum_zooms=[2], client="threads"
    ).store
    sfrdask.preprocess(store, d / "plots", client="threads")
    sfrdask.train(store, "gbt-both", image_zoom=2, spectrum_zoom=2, out=d / "runs")
    return d


DOC_BLOCKS = [
    (p.name, i, b)
    for p in sorted((ROOT / "docs").glob("*.md"))
    for i, b in enumerate(python_blocks(p))
    if not b.startswith(SKIP)
]


@pytest.mark.slow
@pytest.mark.parametrize("doc,i,code", DOC_BLOCKS, ids=[f"{d}-{i}" for d, i, _ in DOC_BLOCKS])
def test_docs_python_blocks_run(workspace, doc, i, code):
    script = workspace / f"{Path(doc).stem}-{i}.py"
    script.write_text('if __name__ == "__main__":\n' + "".join(f"    {line}\n" for line in code.splitlines()))
    r = subprocess.run(
        [sys.executable, str(script)], cwd=workspace, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"{doc} block {i}:\n{code}\n{r.stderr[-3000:]}"


def test_every_public_name_is_what_it_says_after_every_submodule_is_imported():
    """A lazy attribute that shares a submodule's name would turn into that module once the
    submodule is imported (``sfrdask.cluster`` did, when ``src/sfrdask/cluster.py`` existed)."""
    import types

    for name in _modules():
        importlib.import_module(name)
    modules = [
        n for n in sfrdask.__all__ if n != "config" and isinstance(getattr(sfrdask, n), types.ModuleType)
    ]
    assert modules == []
    assert callable(sfrdask.cluster) and callable(sfrdask.preprocess) and callable(sfrdask.train)


def test_importing_the_pipeline_imports_no_cli():
    code = (
        "import sys, sfrdask.pipeline; print(sorted(m for m in sys.modules if m.startswith('sfrdask.cli')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_study_notebook_runs_and_a_rerun_trains_nothing(tmp_path):
    """examples/resolution_study.ipynb, executed as a user would run it (nbmake): a cluster from
    Python, a small study, its recommendation, intervals and figures; run again, it resumes (its
    study directory is fixed under the temporary directory, here this test's own)."""
    notebook = ROOT / "examples" / "resolution_study.ipynb"
    record = tmp_path / "sfrdask-resolution-study" / "study" / "work" / "done.jsonl"
    runs = []
    for _ in range(2):
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbmake", "--nbmake-timeout=900", "-p", "no:cacheprovider",
             "-o", "addopts=", str(notebook)],
            cwd=tmp_path, capture_output=True, text=True, timeout=1000,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )  # fmt: skip
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        assert "1 passed" in r.stdout
        runs.append(record.read_text())
    assert runs[0] == runs[1] and len(runs[0].splitlines()) > 10  # the rerun recorded nothing new

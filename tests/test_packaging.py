"""The pip and conda dependency lists must name the same packages (and the same torch pin)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "py-opencv": "opencv-python-headless"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_names = {_name(d) for d in deps}
    conda_names = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in conda} - {"python", "pip"}
    assert pip_names == conda_names, (
        f"only in pyproject: {pip_names - conda_names}; only in conda: {conda_names - pip_names}"
    )


def test_torch_is_pinned_everywhere():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.*" in deps
    assert "pytorch=2.13.*" in (ROOT / "environment.yml").read_text()
    assert "torch==2.13.*" in (ROOT / "constraints.txt").read_text()


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_folder_named_sfrdask_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    """The SLURM guide clones into ~/sfrdask; working from ~ put that clone, a folder named
    sfrdask, first on the path as a namespace package (the flat layout's editable install loses to
    it). With the src layout the installed package wins."""
    (tmp_path / "sfrdask" / "docs").mkdir(parents=True)
    (tmp_path / "sfrdask" / "README.md").write_text("a clone of the repository\n")
    code = (
        "import sfrdask; print(sfrdask.__file__); print(callable(sfrdask.cluster), callable(sfrdask.study))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    where, ok = r.stdout.split()[0], r.stdout.split()[1:]
    assert not where.startswith(str(tmp_path)) and ok == ["True", "True"]

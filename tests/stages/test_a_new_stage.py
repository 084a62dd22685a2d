"""A new stage in one module and one table row: a stage that counts a cube's targets, written as a
module of its own outside sfrdask, runs from the command line, from a run file (taking the cube
that the run's synth stage writes) and from the Python API, with no file of sfrdask touched
(issue 36: stages that register themselves)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

import sfrdask
from sfrdask import api
from sfrdask.cli import main
from sfrdask.config import ConfigError
from sfrdask.pipeline import load_run_config, run_pipeline, stages
from sfrdask.stages import TABLE

SRC = Path(sfrdask.__file__).parent

# the whole stage: its Params, run, report and its part of a run file (section and wiring)
MODULE = '''
"""The count stage: how many targets a HiSS-Cube file holds."""

import json
from dataclasses import dataclass
from pathlib import Path

from sfrdask.io.atomic import write_text
from sfrdask.io.hisscube import open_hisscube
from sfrdask.stages.base import Stage, from_mapping, option, required


@dataclass(frozen=True)
class Params:
    cube: Path = required("HiSS-Cube file", positional=True, input=True)
    out: Path = required("a JSON file")
    level: int = option(3, "which image level to read")
    overwrite: bool = option(False, "replace an existing file")


@dataclass(frozen=True)
class Result:
    out: Path
    targets: int


def run(rt, p):
    n = open_hisscube(p.cube, p.level, p.level).sizes["object"]
    return Result(write_text(p.out, json.dumps({"targets": n})), n)


def report(r):
    return [f"{r.targets} targets"]


def wire(section, w):
    if section is None:
        return None
    return from_mapping(Params, section, "count", cube=w.take("cube", "count"),
                        out=w.run / "count.json", overwrite=True)


STAGE = Stage(Params, run, report, uses_cluster=False, section="count", wire=wire)
'''


def _package_files() -> dict[str, float]:
    return {str(p.relative_to(SRC)): p.stat().st_mtime for p in SRC.rglob("*.py")}


@pytest.fixture
def count(tmp_path, monkeypatch):
    """The stage's module written where Python finds it, and its one table row, for this test only."""
    where = tmp_path / "plugins"
    where.mkdir()
    (where / "count_stage.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(where))
    before = dict(TABLE)
    monkeypatch.setitem(TABLE, "count", ("count_stage", "count the targets of a HiSS-Cube file"))
    assert {k: v for k, v in TABLE.items() if k not in before} == {
        "count": ("count_stage", "count the targets of a HiSS-Cube file")
    }  # one table row
    assert sorted(p.name for p in where.iterdir()) == ["count_stage.py"]  # one module
    return where


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("count") / "survey"
    return sfrdask.synth(d, objects=24, seed=2, client="synchronous")


def test_a_stage_added_in_one_module_runs_from_the_cli_a_run_file_and_the_api(
    count, survey, tmp_path, capsys
):
    package = _package_files()

    # the command line: a subcommand with the Params' options, its help from the table
    assert main(["count", str(survey.cube), "--out", str(tmp_path / "cli.json"), "--level", "2"]) == 0
    assert json.loads((tmp_path / "cli.json").read_text()) == {"targets": 24}
    assert "24 targets" in capsys.readouterr().out
    assert main(["count", str(tmp_path / "none.h5"), "--out", str(tmp_path / "x.json")]) == 2
    assert "none.h5: no such file" in capsys.readouterr().err  # the input check every stage gets

    # the Python API: sfrdask.count and sfrdask.api.count, with the Params as signature
    assert sfrdask.count(survey.cube, tmp_path / "api.json").targets == 24
    assert list(api.count.__signature__.parameters) == ["cube", "out", "level", "overwrite", "client"]

    # a run file: its section known, its stage in the run's order, the cube taken from synth
    assert stages()[-1] == "count"
    cfg = {
        "input": {"synthetic": {"objects": 24, "seed": 2}},
        "zooms": {"image": [3], "spectrum": [3]},
        "stages": ["synth", "count"],
        "count": {"level": 3},
        "cluster": {"kind": "threads"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = run_pipeline(path, run_dir=tmp_path / "run")
    assert json.loads((run / "count.json").read_text()) == {"targets": 24}
    assert json.loads((run / "stages" / "count.json").read_text())["params"]["level"] == 3
    path.write_text(yaml.safe_dump({**cfg, "count": {"levle": 3}}))
    with pytest.raises(ConfigError, match="count: unknown key 'levle'"):
        run_pipeline(path, run_dir=tmp_path / "run")

    assert _package_files() == package  # no file of sfrdask written


def test_without_its_row_the_stage_and_its_section_are_unknown(tmp_path):
    assert "count" not in stages()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"input": {"synthetic": {"objects": 8}}, "count": {}}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['count'\]"):
        load_run_config(path)
    with pytest.raises(AttributeError):
        api.count  # noqa: B018

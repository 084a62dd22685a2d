"""``sfrdask run CONFIG.yaml``: stages in order, outputs in the run directory, resume by digest."""

from __future__ import annotations

import json

import pytest
import yaml

from sfrdask.cli import main
from sfrdask.config import ConfigError
from sfrdask.pipeline import load_run_config, run_pipeline, stage_commands

pytestmark = pytest.mark.slow

TINY = {
    "input": {"synthetic": {"objects": 96, "seed": 5, "flag0-fraction": 0.55}},
    "levels": {"image": [3], "spectrum": [3]},
    "train": {
        "models": ["tree-both", "early-fusion"],
        "image-zoom": 3,
        "spectrum-zoom": 3,
        "epochs": 2,
        "batch-size": 16,
    },
    "cluster": {"kind": "threads"},
    "settings": {"preprocess": {"pca": {"image-components": 8, "spectrum-components": 6}}},
}


def _write(tmp_path, cfg, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_run_goes_through_every_stage_then_resumes(tmp_path, capsys):
    path = _write(tmp_path, {**TINY, "run-dir": str(tmp_path / "out")})
    run = run_pipeline(path)
    outputs = ["config.yaml", "run.log", "survey/survey.h5", "store.zarr/selection/zarr.json"]
    outputs += [
        "plots/label_distribution.png",
        "runs/results.md",
        "runs/early-fusion/image3-spectrum3-AVG/best.pt",
    ]
    for f in outputs:
        assert (run / f).exists(), f
    for stage in ("synth", "ingest", "preprocess", "train"):
        assert json.loads((run / "stages" / f"{stage}.json").read_text())["seconds"] > 0
    log = (run / "run.log").read_text()
    assert "train finished" in log
    capsys.readouterr()

    first = {s: (run / "stages" / f"{s}.json").read_text() for s in ("synth", "train")}
    run_pipeline(path)  # nothing changed: every stage is skipped
    out = capsys.readouterr().out
    assert out.count("up to date") == 4
    assert (run / "stages" / "synth.json").read_text() == first["synth"]

    changed = {**TINY, "run-dir": str(tmp_path / "out"), "train": {**TINY["train"], "epochs": 3}}
    run_pipeline(_write(tmp_path, changed))  # only the train stage's command changed
    out = capsys.readouterr().out
    assert "[synth] up to date" in out and "[preprocess] up to date" in out and "[train] sfrdask train" in out
    assert (run / "stages" / "train.json").read_text() != first["train"]


def test_bad_run_files_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_run_config(_write(tmp_path, {**TINY, "stagse": ["train"]}))
    with pytest.raises(ConfigError, match="unknown stage"):
        load_run_config(_write(tmp_path, {**TINY, "stages": ["deblend"]}))
    with pytest.raises(ConfigError, match="exactly one of"):
        load_run_config(_write(tmp_path, {**TINY, "input": {}}))
    bad = {**TINY, "settings": {"train": {"epochs": "many"}}}
    assert main(["run", str(_write(tmp_path, bad)), "--run-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x" / "stages").exists()


def test_the_predict_stage_names_the_trained_runs(tmp_path):
    cfg = {
        **TINY,
        "stages": ["predict"],
        "predict": {"models": ["tree-both", "early-fusion"], "out": "sfr.csv"},
    }
    cmd = stage_commands(load_run_config(_write(tmp_path, cfg)), tmp_path / "r")["predict"]
    runs = [str(tmp_path / "r" / "runs" / m / "image3-spectrum3-AVG") for m in ("tree-both", "early-fusion")]
    assert cmd[:3] == ["predict", *runs] and cmd[cmd.index("--out") + 1] == str(tmp_path / "r" / "sfr.csv")
    assert cmd[cmd.index("--cube") + 1] == str(tmp_path / "r" / "survey" / "survey.h5")
    with pytest.raises(ConfigError, match="'predict' takes"):
        load_run_config(_write(tmp_path, {**TINY, "predict": {"model": ["tree-both"]}}))


def test_a_run_file_cannot_run_code(tmp_path):
    """Run files go through yaml.safe_load: a python/object tag is refused, never executed."""
    marker = tmp_path / "pwned"
    path = tmp_path / "run.yaml"
    path.write_text(f'input: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(path)
    assert not marker.exists()

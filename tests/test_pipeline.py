"""``sfrdask run CONFIG.yaml``: stages in order, outputs in the run directory, resume by digest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
import torch
import yaml

from sfrdask.cli import main
from sfrdask.config import ConfigError
from sfrdask.io.hisscube import layout as L
from sfrdask.pipeline import load_run_config, run_pipeline, stage_params

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "input": {"synthetic": {"objects": 96, "seed": 5, "flag0-fraction": 0.55}},
    "zooms": {"image": [3], "spectrum": [3]},
    "train": {
        "models": ["tree-both", "early-fusion"],
        "image-zoom": 3,
        "spectrum-zoom": 3,
        "epochs": 2,
        "batch-size": 16,
        "learning-rate": 0.0123,
    },
    "cluster": {"kind": "threads"},
    "settings": {"preprocess": {"pca": {"image-components": 8, "spectrum-components": 6}}},
}


def _write(tmp_path, cfg, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
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
    ck = torch.load(run / "runs/early-fusion/image3-spectrum3-AVG/last.pt", weights_only=True)
    assert [g["lr"] for g in ck["optimizer"]["param_groups"]] == [0.0123]  # the run file's learning-rate
    capsys.readouterr()

    first = {s: (run / "stages" / f"{s}.json").read_text() for s in ("synth", "train")}
    run_pipeline(path)  # nothing changed: every stage is skipped
    out = capsys.readouterr().out
    assert out.count("up to date") == 4
    assert (run / "stages" / "synth.json").read_text() == first["synth"]

    changed = {**TINY, "run-dir": str(tmp_path / "out"), "train": {**TINY["train"], "epochs": 3}}
    run_pipeline(_write(tmp_path, changed))  # only the train stage's command changed
    out = capsys.readouterr().out
    assert "[synth] up to date" in out and "[preprocess] up to date" in out and '[train] {"store"' in out
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
    p = stage_params(load_run_config(_write(tmp_path, cfg)), tmp_path / "r")["predict"]
    runs = tuple(tmp_path / "r" / "runs" / m / "image3-spectrum3-AVG" for m in ("tree-both", "early-fusion"))
    assert p.runs == runs and p.out == tmp_path / "r" / "sfr.csv"
    assert p.cube == tmp_path / "r" / "survey" / "survey.h5"
    with pytest.raises(ConfigError, match="unknown key 'model'"):
        stage_params(
            load_run_config(_write(tmp_path, {**TINY, "predict": {"model": ["tree-both"]}})), tmp_path
        )


def test_seeds_make_predict_a_deep_ensemble_and_explain_names_one_run(tmp_path):
    cfg = {
        **TINY,
        "train": {**TINY["train"], "seeds": [0, 1], "context": "redshift"},
        "predict": {"models": ["early-fusion"]},
        "explain": {"model": "early-fusion", "objects": 16},
    }
    params = stage_params(load_run_config(_write(tmp_path, cfg)), tmp_path / "r")
    base = tmp_path / "r" / "runs" / "early-fusion" / "image3-spectrum3-AVG"
    assert params["predict"].runs == (Path(f"{base}-ctx-redshift"), Path(f"{base}-seed1-ctx-redshift"))
    ex = params["explain"]
    assert (
        ex.run == Path(f"{base}-ctx-redshift") and ex.objects == 16 and ex.out == tmp_path / "r" / "explain"
    )
    with pytest.raises(ConfigError, match=r"explain\.model"):
        stage_params(load_run_config(_write(tmp_path, {**TINY, "explain": {"model": "image-cnn"}})), tmp_path)


@pytest.mark.parametrize(
    "section,where,key",
    [
        ({"input": {"synthetic": {"object": 10}}}, "input.synthetic", "object"),
        ({"train": {**TINY["train"], "learning-rat": 0.1}}, "train", "learning-rat"),
        ({"preprocess": {"strategi": "crop"}}, "preprocess", "strategi"),
        ({"zooms": {"images": [3]}}, "zooms", "images"),
    ],
)
def test_an_unknown_key_in_a_section_exits_2_naming_it(tmp_path, capsys, section, where, key):
    path = _write(tmp_path, {**TINY, **section})
    assert main(["run", str(path), "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert where in err and key in err and "Traceback" not in err
    assert not (tmp_path / "x" / "stages").exists()


def test_sections_reach_the_stages_and_settings_fill_the_rest(tmp_path):
    import dask

    from sfrdask.pipeline import settings_of

    cfg = {
        **TINY,
        "input": {"synthetic": {"seed": 3}},
        "settings": {"synth": {"objects": 77}},
        "train": {**TINY["train"], "learning-rate": 0.0123},
    }
    cfg = load_run_config(_write(tmp_path, cfg))
    with dask.config.set(settings_of(cfg)):
        p = stage_params(cfg, tmp_path / "r")
    assert p["synth"].objects == 77 and p["synth"].seed == 3  # the settings' default, the section's seed
    assert p["train"].learning_rate == 0.0123 and p["train"].models == ("tree-both", "early-fusion")


def test_a_run_file_cannot_run_code(tmp_path):
    """Run files go through yaml.safe_load: a python/object tag is refused, never executed."""
    marker = tmp_path / "pwned"
    path = tmp_path / "run.yaml"
    path.write_text(f'input: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(path)
    assert not marker.exists()


@pytest.mark.parametrize("path", ["configs/demo.yaml", "deploy/slurm/sfrdask-run.yaml"])
def test_the_shipped_run_files_map_onto_the_stages(path, tmp_path):
    import dask

    from sfrdask.pipeline import settings_of

    cfg = load_run_config(ROOT / path)
    with dask.config.set(settings_of(cfg)):
        p = stage_params(cfg, tmp_path)
        assert p["predict"].runs and p["train"].models
        if "slurm" in path:
            assert dask.config.get("sfrdask.cluster.slurm.adapt") == {"minimum-jobs": 4, "maximum-jobs": 32}


def test_the_shipped_study_run_file_maps_onto_the_study_stage(tmp_path):
    """deploy/slurm/sfrdask-study.yaml: the study section becomes the study stage's Params, its
    outputs inside the run directory; as shipped it asks for CPU workers only (GPUs are its EDIT
    lines), at the matched levels, with every default model."""
    import dask

    from sfrdask.pipeline import settings_of

    cfg = load_run_config(ROOT / "deploy/slurm/sfrdask-study.yaml")
    with dask.config.set(settings_of(cfg)):
        p = stage_params(cfg, tmp_path)
        study = p["study"]
        assert study.out == tmp_path / "study" and study.gpus == 0 and study.pairs == "diagonal"
        assert study.seeds == (0, 1, 2) and {"hybrid-fusion", "cross-attention", "contrastive"} <= set(
            study.models
        )
        assert dask.config.get("sfrdask.cluster.slurm.worker-extra-args") == []
        assert dask.config.get("sfrdask.cluster.slurm.job-extra-directives") == []
    edits = [x for x in (ROOT / "deploy/slurm/sfrdask-study.yaml").read_text().splitlines() if "EDIT" in x]
    for key in (
        "gpus",
        "queue",
        "account",
        "cores",
        "memory",
        "walltime",
        "job-extra-directives",
        "worker-extra",
    ):
        assert any(x.strip().startswith(key) for x in edits), key  # every site-specific line is marked
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {synthetic: {objects: 64}}\nstudy: {modles: [gbt]}\n")
    with pytest.raises(ConfigError, match="study: unknown key 'modles'"):
        stage_params(load_run_config(bad), tmp_path)


def test_an_output_under_a_file_is_refused_before_any_cluster_starts(tmp_path, capsys):
    """A file where the output's directory should be: exit 2 naming both, no cluster started (a
    LocalCluster closed at once can log a heartbeat traceback)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file")
    synth = ["synth", "--objects", "8", "--out"]
    assert main([*synth, str(blocker / "deeper" / "survey"), "--cluster", "local"]) == 2
    out, err = capsys.readouterr()
    assert "not-a-dir is a file, not a directory" in err and "dashboard" not in out + err
    assert main([*synth, str(tmp_path / "new" / "survey"), "--cluster", "threads"]) == 0


def _no_cluster(monkeypatch):
    """Any cluster started (and so any SLURM job queued) fails the test."""
    import sfrdask.clusters

    def refuse(*a, **k):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(sfrdask.clusters, "cluster", refuse)


def test_a_missing_cube_on_slurm_is_refused_before_any_cluster_or_job(tmp_path, capsys, monkeypatch):
    """``kind: slurm`` and a cube path with a typo: exit 2 naming the path, from ``run`` and from
    ``run --check`` alike, with no cluster started (so no job in the queue) and nothing written."""
    _no_cluster(monkeypatch)
    catalog = tmp_path / "mpajhu"
    catalog.mkdir()
    cfg = {**TINY, "input": {"cube": str(tmp_path / "cueb.h5"), "catalog": str(catalog)}}
    cfg["cluster"] = {"kind": "slurm"}
    path = _write(tmp_path, cfg)
    for extra in ([], ["--check"]):
        assert main(["run", str(path), "--run-dir", str(tmp_path / "r"), *extra]) == 2
        err = capsys.readouterr().err
        assert "ingest: cube" in err and str(tmp_path / "cueb.h5") in err and "no such file" in err
    assert not (tmp_path / "r").exists()


def test_run_check_passes_a_good_run_file_and_starts_nothing(tmp_path, capsys, monkeypatch):
    """Inputs that earlier stages write into the run directory (the synthetic cube, the store)
    are theirs to make: a synthetic run checks clean without them."""
    _no_cluster(monkeypatch)
    path = _write(tmp_path, {**TINY, "cluster": {"kind": "slurm"}})
    assert main(["run", str(path), "--run-dir", str(tmp_path / "r"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "checks passed for stages synth, ingest, preprocess, train" in out
    assert not (tmp_path / "r").exists()


def test_a_train_level_the_run_does_not_ingest_is_refused_naming_both(tmp_path):
    cfg = {**TINY, "train": {**TINY["train"], "image-zoom": 1}}
    with pytest.raises(ConfigError, match=r"train.image-zoom 1 is not among .* \(zooms.image: \[3\]\)"):
        stage_params(load_run_config(_write(tmp_path, cfg)), tmp_path)


def test_check_refuses_what_the_run_refuses_with_the_same_message_and_leaves_nothing(
    cube, survey_dir, tmp_path, capsys, monkeypatch
):
    """A valid study run file mutated with each bad value a new user tried: ``run --check`` and
    ``run`` both exit 2 with one line naming the key, before any cluster, and write nothing (no run
    directory, no empty work/, no report)."""
    _no_cluster(monkeypatch)
    shutil.copytree(survey_dir, tmp_path / "no-totsfr", ignore=shutil.ignore_patterns("gal_totsfr*"))
    two_levels = shutil.copyfile(cube, tmp_path / "two-levels.h5")
    with h5py.File(two_levels, "r+") as f:  # a cube made with levels 2 and 3 only
        for z in ("0", "1"):
            del f[f"{L.DENSE}/{z}"]
    good = {"input": {"cube": str(cube), "catalog": str(survey_dir)}, "stages": ["study"],
            "study": {"models": ["gbt", "intermediate-fusion"], "image-zooms": [2, 3],
                      "spectrum-zooms": [2, 3], "seeds": [0, 1], "epochs": 2},
            "cluster": {"kind": "slurm"}}  # fmt: skip
    assert main(["run", str(_write(tmp_path, good)), "--run-dir", str(tmp_path / "r"), "--check"]) == 0
    capsys.readouterr()
    mutations = [
        ({"cluster": {"kind": "locall"}}, "sfrdask.cluster.kind = 'locall'"),
        ({"study": {**good["study"], "seeds": []}}, "--seeds must be at least 1"),
        ({"study": {**good["study"], "epochs": 0}}, "--epochs must be at least 1"),
        (
            {"study": {**good["study"], "models": ["intermedate-fusion"]}},
            "unknown model 'intermedate-fusion'",
        ),
        ({"study": {**good["study"], "image-zooms": [2, 5]}}, "--image-zooms must be zoom levels 0..3"),
        (
            {
                "input": {**good["input"], "cube": str(two_levels)},
                "study": {**good["study"], "image-zooms": [1, 2]},
            },
            "image zoom level 1 not found",
        ),
        ({"input": {"cube": str(cube), "catalog": str(tmp_path / "no-totsfr")}}, "gal_totsfr_dr7_v5_2.fits"),
    ]
    for change, message in mutations:
        path = _write(tmp_path, {**good, **change}, name="bad.yaml")
        for extra in (["--check"], []):
            assert main(["run", str(path), "--run-dir", str(tmp_path / "r"), *extra]) == 2, (change, extra)
            err = capsys.readouterr().err.strip()
            assert message in err and len(err.splitlines()) == 1, (change, extra, err)
        assert not (tmp_path / "r").exists(), change

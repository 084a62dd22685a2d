"""Benchmark scripts stay runnable: their --quick mode runs here (figures come from real runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import md_rows

# every --quick run starts its own cluster and synthetic survey: CI's second job runs them
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _quick(name: str, out: Path) -> dict:
    """Run ``benchmarks/{name}.py --quick`` and return the JSON it writes."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]  # show why, not only that it failed
    return json.loads((out / f"{name}.json").read_text())


def test_ingest_benchmark_quick(tmp_path):
    res = _quick("ingest", tmp_path)
    assert res["objects"] == 64 and res["synth_objects_per_s"] > 0
    assert res["raw_h5py_mb_per_s"] > 0 and 0 < res["ingest_over_raw"]
    assert not (tmp_path / "ingest-work").exists()


def test_preprocess_benchmark_quick(tmp_path):
    res = _quick("preprocess", tmp_path)
    assert [r["zoom"] for r in res["deblend"]] == [0, 1, 2, 3]
    assert all(r["dask_per_s"] > 0 and 0 <= r["mask_kept"] <= 1 for r in res["deblend"])
    assert res["pca"]["incremental_s"] > 0 and res["memory_ratio"] > 0


def test_train_benchmark_quick(tmp_path):
    res = _quick("train", tmp_path)
    assert [r["model"] for r in res["accuracy"]["rows"]] == ["tree-both", "early-fusion"]
    assert all(np.isfinite(r["mse"]) for r in res["accuracy"]["rows"])
    assert res["throughput"][0]["train_samples_per_s"] > 0
    assert res["ddp"]["speedup"] > 0


def test_model_study_quick(tmp_path):
    res = _quick("model_study", tmp_path)
    models = {(r["model"], r["seeds"]) for r in res["summary"]}
    assert models == {("gbt-both", 2), ("spectrum-mlp", 2), ("intermediate-fusion", 2)}
    assert set(res["ceilings"]) == {"ceiling-label-noise", "ceiling-information"}
    assert res["best"]["single"]["model"] == "spectrum-mlp" and "in_sd" in res["fusion_gain"]
    assert {e["ensemble"] for e in res["ensembles"]} >= {
        "gbt-both x 2 seeds",
        "intermediate-fusion x 2 seeds",
    }
    assert (tmp_path / "model_study.md").read_text().count("+-") >= 3
    assert not (tmp_path / "study-work").exists()


def test_ddp_ceiling_benchmark_quick(tmp_path):
    res = _quick("ddp_ceiling", tmp_path)
    assert res["one_process_samples_per_s"] > 0 and res["two_ranks_samples_per_s"] > 0


def test_stages_benchmark_quick(tmp_path):
    res = _quick("stages", tmp_path)
    assert [r["stage"].split(" ")[0] for r in res["table"]] == [
        "ingest",
        "deblend",
        "the",  # the same per worker: the efficiency
        "PCA",
        "the",
        "incremental",
        "incremental",
        "DDP",
    ]
    assert all(r["ratio"] > 0 for r in res["table"])
    assert res["pca_transform"]["source"] == "clean/2" and res["pca_transform"]["rows"] > 0
    assert (tmp_path / "stages.md").exists() and not (tmp_path / "stages-work").exists()


def test_scaling_benchmark_quick(tmp_path):
    res = _quick("scaling", tmp_path)
    assert [r["objects"] for r in res["rows"]] == [48, 96]
    assert all(r[s]["seconds"] > 0 and r[s]["peak_mb"] > 0 for r in res["rows"] for s in ("generate", "pca"))
    assert set(res["fits"]) == {"generate", "ingest", "filter", "deblend", "pca", "total"}
    assert [p["stage"] for p in res["projection"]] == ["ingest", "filter", "deblend", "pca"]
    assert (tmp_path / "scaling.png").stat().st_size > 0


def test_resolution_study_quick(tmp_path):
    """2 x 2 levels, tree family + early fusion: every model at every level pair it reads."""
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "resolution_study.py"), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    res = json.loads((tmp_path / "study.json").read_text())
    got = sorted(
        (r["model"], r["image_zoom"] or -1, r["spectrum_zoom"] or -1, r["seed"], r["setup"])
        for r in res["rows"]
    )
    want = {("tree-image", z, -1) for z in (2, 3)} | {("tree-spectrum", -1, z) for z in (2, 3)}
    want |= {(m, i, s) for m in ("tree-both", "early-fusion") for i in (2, 3) for s in (2, 3)}
    cells = sorted((*w, seed, "") for w in want for seed in (0, 1))  # every training once per seed
    curve = [("early-fusion", 3, 3, seed, "frac0.5") for seed in (0, 1)]  # the best network on half the split
    assert got == sorted(cells + curve)
    assert "## Learning curves" in (tmp_path / "study.md").read_text()
    assert set(res["ceilings"]) == {"ceiling-label-noise", "ceiling-information"}
    md = (tmp_path / "study.md").read_text()
    assert "+-" in md
    by_level = md_rows(md.split("## R^2 by level")[1].split("##")[0])
    assert "early-fusion" in [row[0] for row in by_level]  # matched levels, 2 seeds
    assert any(cell.endswith("(2)") for row in by_level for cell in row)
    assert all(np.isfinite(r["r2"]) and r["end_to_end_objects_per_s"] > 0 for r in res["rows"])
    assert {"read/image/2", "deblend/image/3", "pca/spectrum/2", "filter"} <= set(res["stages"])
    for png in ("r2_heatmap.png", "pareto.png"):
        assert (tmp_path / png).stat().st_size > 0
    assert not (tmp_path / "work").exists()


def test_study_concurrency_benchmark_quick(tmp_path):
    """--quick: 4 trainings on 2 workers, the same 4 in one process, 4 short ones: the figures exist
    and the same seeds were trained both ways."""
    res = _quick("study_concurrency", tmp_path)
    assert res["concurrent"]["trainings"] == len(res["rows"]) == 4
    assert res["concurrent"]["wall_s"] > 0 and res["sequential"]["wall_s"] > 0
    assert res["overhead"]["tasks"] == 4 and len({r["worker"] for r in res["rows"]}) == 2
    assert not (tmp_path / "study-concurrency-work").exists()


def test_predict_benchmark_quick(tmp_path):
    res = _quick("predict", tmp_path)
    (cal,) = res["calibration"]
    assert cal["n_test"] > 20 and 0 < cal["cov68"] < cal["cov95"] <= 1
    assert all(
        t["objects_per_s_2_workers"] > 0 and t["objects_per_s_1_process"] > 0 for t in res["throughput"]
    )


def test_open_cube_benchmark_quick(tmp_path):
    """The reference-layout cube (uncompressed reference tables) is written and read both ways."""
    res = _quick("open_cube", tmp_path)
    assert [r["how"] for r in res["rows"]] == ["sfrdask", "whole rows"]
    assert all(r["targets"] == 64 and r["seconds"] > 0 for r in res["rows"])
    assert not (tmp_path / "open-cube-work").exists()


def test_tree_metadata_benchmark_quick(tmp_path):
    """A TREE file is written and its targets found both ways: the same count."""
    res = _quick("tree_metadata", tmp_path)
    assert [r["how"] for r in res["rows"]] == ["sfrdask", "typed walk"]
    assert [r["targets"] for r in res["rows"]] == [64, 64] and all(r["seconds"] > 0 for r in res["rows"])
    assert not (tmp_path / "tree-metadata-work").exists()


def test_deblend_profile_benchmark_quick(tmp_path):
    res = _quick("deblend_profile", tmp_path)
    assert res["wall_s"] > 0 and res["bare_loop_s"] > 0 and res["rows"][-1]["what"].startswith("idle")


def test_loaded_node_benchmark_quick(tmp_path):
    res = _quick("loaded_node", tmp_path)
    assert res["finished"] and res["removed"] == []  # closing the cluster's own removals not counted
    assert res["timeouts_in_force"]["distributed.comm.timeouts.tcp"] == "120s"  # sfrdask's, not Dask's 30s
    assert 0 < res["max_silence_s"] < 120
    assert not (tmp_path / "loaded-node-work").exists()

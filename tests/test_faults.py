"""Faults injected into real runs: a worker process killed mid-stage, the run process interrupted,
a full disk and an unwritable output path. What must hold: the stage completes with output identical
to a fault-free run, or it stops with one clear line and leaves nothing that looks complete."""

from __future__ import annotations

import hashlib
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
import zarr

from sfrdask import make_survey, read_catalog_dir, write_store
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects
from tests.conftest import TINY, kill_a_busy_worker_during

pytestmark = pytest.mark.slow


def h5_digest(path: Path) -> str:
    """SHA-256 over every dataset's name and bytes (not the file's bytes: those hold free space)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        for n in sorted(names):
            h.update(n.encode())
            h.update(np.ascontiguousarray(f[n][()]).tobytes())
    return h.hexdigest()


def zarr_digest(path: Path, group: str = "") -> str:
    """SHA-256 over every array's path and values in a zarr store (or one group of it)."""
    h = hashlib.sha256()
    root = zarr.open_group(str(path), mode="r")
    node = root[group] if group else root
    arrays = []

    def walk(g, prefix):
        for name, a in sorted(g.arrays()):
            arrays.append((f"{prefix}/{name}", a))
        for name, sub in sorted(g.groups()):
            walk(sub, f"{prefix}/{name}")

    walk(node, group)
    for name, a in arrays:
        h.update(name.encode())
        h.update(np.ascontiguousarray(a[...]).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """Fault-free outputs of every stage (Dask's threads: the same bytes as on any cluster)."""
    d = tmp_path_factory.mktemp("clean")
    cube = make_survey(d / "survey", objects=384, seed=11, params=TINY, chunk_objects=64, progress=False)
    catalog = read_catalog_dir(d / "survey")
    store = write_store(cube, d / "s.zarr", catalog=catalog, image_zooms=(0, 3), spectrum_zooms=(3,))
    select_objects(store)
    deblend_store(store, 0)
    fit_pca_store(store, "image", 0, n_components=12, progress=False)
    return {"dir": d, "cube": cube, "store": store, "catalog": catalog}


def test_worker_killed_during_generation(clean_run, tmp_path):
    cube = kill_a_busy_worker_during(
        lambda c: make_survey(tmp_path / "survey", objects=384, seed=11, params=TINY, chunk_objects=64,
                              progress=False, client=c),
    )  # fmt: skip
    assert h5_digest(cube) == h5_digest(clean_run["cube"])
    for name in ("truth_objects.csv", "gal_info_dr7_v5_2.fit"):
        assert (cube.parent / name).read_bytes() == (clean_run["cube"].parent / name).read_bytes()


def test_worker_killed_during_ingest(clean_run, tmp_path):
    store = kill_a_busy_worker_during(
        lambda c: write_store(clean_run["cube"], tmp_path / "s.zarr", catalog=clean_run["catalog"],
                              image_zooms=(0, 3), spectrum_zooms=(3,), client=c),
    )  # fmt: skip
    for group in ("image/0", "image/3", "spectrum/3"):
        assert zarr_digest(store, group) == zarr_digest(clean_run["store"], group)


def test_worker_killed_during_deblending(clean_run, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_run["store"], store)
    shutil.rmtree(store / "clean")
    shutil.rmtree(store / "pca")
    kill_a_busy_worker_during(lambda c: deblend_store(store, 0))
    assert zarr_digest(store, "clean/0") == zarr_digest(clean_run["store"], "clean/0")


def test_worker_killed_during_pca(clean_run, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_run["store"], store)
    shutil.rmtree(store / "pca")
    kill_a_busy_worker_during(lambda c: fit_pca_store(store, "image", 0, n_components=12, progress=False))
    assert zarr_digest(store, "pca/image/0") == zarr_digest(clean_run["store"], "pca/image/0")


RUN = {
    "input": {"synthetic": {"objects": 160, "seed": 5, "flag0-fraction": 0.55}},
    "zooms": {"image": [0, 3], "spectrum": [3]},
    "train": {"models": ["tree-both"], "image-zoom": 3, "spectrum-zoom": 3},
    "cluster": {"kind": "threads"},
    "settings": {"preprocess": {"pca": {"image-components": 8, "spectrum-components": 6}}},
}


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_run_leaves_nothing_half_done_and_resumes(tmp_path, sig, code):
    cfg = tmp_path / "run.yaml"
    run = tmp_path / "out"
    cfg.write_text(yaml.safe_dump({**RUN, "run-dir": str(run)}))
    p = subprocess.Popen([sys.executable, "-m", "sfrdask", "run", str(cfg)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run / "stages" / "synth.json").exists():  # the first stage has finished
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    p.send_signal(sig)  # during ingest (or the stage after it)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err and ("terminated" in err or "interrupted" in err)
    finished = sorted(f.stem for f in (run / "stages").glob("*.json"))
    assert "train" not in finished
    leftovers = [str(f) for f in run.rglob("*") if ".tmp-" in f.name or "__tmp_" in f.name]
    assert leftovers == []
    if "ingest" not in finished:  # the interrupted ingest left no store that looks complete
        assert not (run / "store.zarr").exists()
    records = {f.stem: f.read_text() for f in (run / "stages").glob("*.json")}
    r = subprocess.run([sys.executable, "-m", "sfrdask", "run", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for stage, text in records.items():  # finished stages are not redone
        assert f"[{stage}] up to date" in r.stdout
        assert (run / "stages" / f"{stage}.json").read_text() == text
    assert (run / "stages" / "train.json").exists()


def _limit_file_size(limit: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


def test_full_disk_keeps_the_previous_store(clean_run, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_run["store"], store)
    before = zarr_digest(store)
    cmd = [sys.executable, "-m", "sfrdask", "ingest", str(clean_run["cube"]), "--out", str(store),
           "--catalog", str(clean_run["dir"] / "survey"), "--overwrite", "--cluster", "threads"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_limit_file_size(200_000))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "File too large" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert zarr_digest(store) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unwritable_output_path_is_one_line(clean_run, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    for argv in (
        ["ingest", str(clean_run["cube"]), "--out", str(blocker / "s.zarr"), "--cluster", "threads"],
        ["synth", "--objects", "8", "--out", str(blocker / "survey")],
    ):
        r = subprocess.run([sys.executable, "-m", "sfrdask", *argv], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and "not-a-dir" in r.stderr

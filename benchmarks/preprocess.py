"""Benchmark the preprocessing stages on the synthetic survey.

    python benchmarks/preprocess.py --out bench-output                  # the figures in docs/benchmarks.md
    python benchmarks/preprocess.py --quick --out /tmp/b                # seconds; run by the test suite

1. Deblending throughput: the Dask stage (map_blocks over batches) on N single-thread process
   workers against a bare sep loop (``deblend_cutouts``) in one process, on the same cutouts, in the
   same run; cutouts/s at each zoom level. Target: >= 1.7x on 2 workers.
2. Deblending quality per zoom level and strategy, against the ground truth: share of neighbour
   flux removed and of the target's flux kept.
3. PCA: the out-of-core fit (``fit_incremental``) against scikit-learn's in-memory PCA on the same
   training rows (images at zoom 1, 32 x 32 x 5): wall time and peak memory (process tree, sampled).
   Target: no slower, at most half the peak memory.
4. Memory flat with N: peak memory of filter + deblend + PCA for two survey sizes. Target: the
   larger at most 1.3x the smaller.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import PeakMemory, machine

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.preprocessing import deblend_cutouts, deblend_store, fit_pca_store, select_objects
from sfrdask.preprocessing.pca import fit_incremental
from sfrdask.preprocessing.quality import selected_objects as selected_objects_of
from sfrdask.synthetic import SynthParams
from sfrdask.synthetic.truth import score_masks, truth_models

PARAMS = SynthParams(flag0_fraction=0.5)  # more labelled objects per generated one


def make(work: Path, n: int, seed: int, image_zooms=(0, 1, 2, 3), spectrum_zooms=(0, 2)) -> Path:
    d = work / f"survey-{n}"
    cube = sfrdask.make_survey(d, objects=n, seed=seed, params=PARAMS, progress=False)
    store = sfrdask.write_store(
        cube,
        work / f"store-{n}.zarr",
        catalog=sfrdask.read_catalog_dir(d),
        image_zooms=image_zooms,
        spectrum_zooms=spectrum_zooms,
    )
    return store


def deblend_speed(store: Path, z: int, workers: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """The Dask stage against a bare sep loop on the same selected cutouts at zoom ``z``."""
    deblend_store(store, z, strategy="mask")  # warm-up
    ids = selected_objects_of(store)  # the same cutouts for both, the selection only
    images = sfrdask.open_store(store, image_zoom=z, spectrum_zoom=None).image.values[ids]
    t0 = time.perf_counter()
    deblend_cutouts(images, ids, strategy="mask", zoom=z)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    deblend_store(store, z, strategy="mask")
    t_dask = time.perf_counter() - t0
    row = {
        "zoom": z,
        "px": images.shape[-1],
        "cutouts": len(ids),
        "bare_loop_per_s": round(len(ids) / t_loop, 1),
        "dask_per_s": round(len(ids) / t_dask, 1),
        "speedup": round(t_loop / t_dask, 2),
        "workers": workers,
    }
    return row, images, ids


def pca_transform_speed(store: Path, z: int, workers: int, n_components: int = 100) -> dict:
    """The PCA stage's transform on the workers (read the selection's deblended cutouts at zoom
    ``z``, standardise, project; features gathered on the client) against a bare loop of the same
    arithmetic over the same rows in memory, in one process with one BLAS thread (as a worker has)."""
    from threadpoolctl import threadpool_limits

    from sfrdask.preprocessing.pca import project_rows, selection_rows, transform

    group = fit_pca_store(store, "image", z, n_components=n_components, progress=False)
    g = {k: group[k].values for k in ("scaler_mean", "scaler_scale", "pca_mean", "components")}
    x, ids, src = selection_rows(store, "image", z)
    feats = project_rows(x, g["scaler_mean"], g["scaler_scale"], g["pca_mean"], g["components"])
    feats.compute()  # warm-up: the graph, the workers' imports and the page cache
    t0 = time.perf_counter()
    ours = feats.compute()
    t_dask = time.perf_counter() - t0
    t0 = time.perf_counter()
    x.sum().compute()  # the read alone (decode, float64) on the workers: the stage's share that is I/O
    t_read = time.perf_counter() - t0
    rows = x.compute()
    step = int(x.chunks[0][0])  # the stage's chunks of rows
    with threadpool_limits(1):
        t0 = time.perf_counter()
        ref = np.concatenate([transform(rows[a : a + step], g) for a in range(0, len(rows), step)])
        t_loop = time.perf_counter() - t0
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4, err_msg="the stage and the bare loop differ")
    return {
        "zoom": z,
        "source": src,
        "rows": len(ids),
        "features": int(x.shape[1]),
        "components": int(g["components"].shape[0]),
        "bare_loop_per_s": round(len(ids) / t_loop, 1),
        "dask_per_s": round(len(ids) / t_dask, 1),
        "read_only_per_s": round(len(ids) / t_read, 1),
        "speedup": round(t_loop / t_dask, 2),
        "workers": workers,
    }


def bench_deblend(store: Path, survey: Path, workers: int) -> list[dict]:
    select_objects(store)
    rows = []
    for z in (0, 1, 2, 3):
        row, images, ids = deblend_speed(store, z, workers)
        sub = slice(0, 800)  # scoring re-renders noise-free models: a fixed subset is plenty
        tgt, nb = truth_models(survey, ids[sub], z)
        for strategy in ("none", "crop", "mask", "noise"):
            r = deblend_cutouts(images[sub], ids[sub], strategy=strategy, zoom=z)
            sc = score_masks(r["mask"], tgt, nb)
            row[f"{strategy}_kept"] = round(float(sc["central_kept"].mean()), 3)
            row[f"{strategy}_removed"] = round(float(sc["neighbour_removed"].mean()), 3)
        row["found"] = round(float(r["found"].mean()), 3)
        row["scored_with_neighbours"] = int(sc["has_neighbour"].sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_pca(store: Path, n_components: int = 100) -> dict:
    x = sfrdask.open_store(store, image_zoom=1, spectrum_zoom=None).image.data
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        fit_incremental(x, n_components, batch_mb=64)
        t_inc = time.perf_counter() - t0
    inc_peak = mem.peak
    from sklearn.decomposition import PCA

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        arr = x.compute()
        mean, std = np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)
        arr = np.nan_to_num((arr - mean) / np.where(std > 0, std, 1))
        PCA(n_components=n_components, svd_solver="full").fit(arr)
        t_full = time.perf_counter() - t0
        del arr
    return {
        "rows": int(x.shape[0]),
        "features": int(x.shape[1]),
        "components": n_components,
        "incremental_s": round(t_inc, 2),
        "sklearn_pca_s": round(t_full, 2),
        "incremental_peak_mb": round(inc_peak / 2**20),
        "sklearn_peak_mb": round(mem.peak / 2**20),
        "time_ratio": round(t_inc / t_full, 2),
        "memory_ratio": round(inc_peak / mem.peak, 2),
    }


def bench_memory(work: Path, sizes: list[int], seed: int) -> list[dict]:
    rows = []
    work = work / "memory"
    work.mkdir()
    for n in sizes:
        store = make(work, n, seed, image_zooms=(1,), spectrum_zooms=(2,))
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            select_objects(store)
            deblend_store(store, 1)
            fit_pca_store(store, "image", 1, progress=False)
            fit_pca_store(store, "spectrum", 2, progress=False)
            dt = time.perf_counter() - t0
        rows.append({"objects": n, "seconds": round(dt, 1), "peak_mb": round(mem.peak / 2**20)})
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(store)
        shutil.rmtree(work / f"survey-{n}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=3000, help="survey for deblending and PCA")
    p.add_argument("--memory-sizes", default="10000,40000")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--parts", default="deblend,pca,memory", help="which measurements to run")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.objects, args.memory_sizes = 64, "64,128"
    work = args.out / "preprocess-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kind = "threads" if args.quick else "local"
    parts = args.parts.split(",")
    res: dict = {}
    with sfrdask.cluster(kind, **({} if args.quick else {"n_workers": args.workers})):
        if "deblend" in parts or "pca" in parts:
            store = make(work, args.objects, args.seed)
        if "deblend" in parts:
            workers = 1 if args.quick else args.workers
            res["deblend"] = bench_deblend(store, work / f"survey-{args.objects}", workers)
        if "pca" in parts:
            res["pca"] = bench_pca(store, n_components=min(100, args.objects // 2))
            print(json.dumps(res["pca"]), flush=True)
        if "memory" in parts:
            res["memory"] = bench_memory(work, [int(s) for s in args.memory_sizes.split(",")], args.seed + 1)
            m = res["memory"]
            res["memory_ratio"] = round(m[-1]["peak_mb"] / m[0]["peak_mb"], 2)
    res["machine"] = machine()
    write_text(args.out / "preprocess.json", json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "deblend"}, indent=2))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

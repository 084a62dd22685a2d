"""Stage efficiency against its limit, each ratio measured in one run on one survey.

    python benchmarks/stages.py --out bench-output          # the figures in docs/benchmarks.md
    python benchmarks/stages.py --quick --out /tmp/b        # seconds; run by the test suite

1. ingest (all 4 levels of both modalities, data and errors, into zarr) against a raw sequential
   h5py read of the same datasets, page cache emptied before each (root);
2. deblending on N single-thread process workers (the Dask stage, store in and out) against a bare
   sep loop over the same cutouts in one process;
3. the PCA stage's transform (read the deblended cutouts, standardise, project) on the N workers
   against a bare loop of the same arithmetic over the same rows in memory, one BLAS thread;
4. incremental PCA (out of core, sfrdask) against scikit-learn's in-memory PCA on the same training
   rows (images at 32 px): time and peak memory;
5. DDP training with 2 ranks against 1 rank (samples/s of epoch 2, same global batch).
A ratio above 1 means sfrdask's stage is faster (or, for memory, smaller) than its reference.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import dask
from common import drop_page_cache, machine, markdown, write_json
from ingest import raw_read
from preprocess import bench_pca, deblend_speed, pca_transform_speed
from train import bench_ddp

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.preprocessing import fit_pca_store, select_objects, write_compact
from sfrdask.synthetic import SynthParams


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=5000)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--deblend-zoom", type=int, default=0)
    p.add_argument("--ddp-model", default="intermediate-fusion")
    p.add_argument("--ddp-zoom", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="global batch of the DDP comparison")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="tiny survey: checks the script runs")
    p.add_argument("--no-compact", action="store_true", help="no compact copy of the selection")
    p.add_argument(
        "--worker-env", action="append", default=[], metavar="KEY=VALUE",
        help="override one variable of sfrdask.cluster.worker-env (VALUE null: unset), e.g. "
        "MALLOC_MMAP_THRESHOLD_=null to measure the allocator without the fixed mmap threshold",
    )  # fmt: skip
    args = p.parse_args()
    for item in args.worker_env:
        key, _, value = item.partition("=")
        dask.config.set({f"sfrdask.cluster.worker-env.{key}": None if value == "null" else value})
    if args.quick:
        args.objects, args.deblend_zoom, args.ddp_zoom, args.ddp_model, args.batch_size = (
            64,
            2,
            2,
            "early-fusion",
            16,
        )
    work = args.out / "stages-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res: dict = {"objects": args.objects, "seed": args.seed, "workers": args.workers}
    res["worker_env"] = dict(sfrdask.config.get("cluster.worker-env"))
    kind = "threads" if args.quick else "local"
    with sfrdask.cluster(
        kind, **({} if args.quick else {"n_workers": args.workers, "threads_per_worker": 1})
    ):
        cube = sfrdask.make_survey(
            work / "survey", objects=args.objects, seed=args.seed, params=SynthParams(flag0_fraction=0.55),
            progress=not args.quick,
        )  # fmt: skip
        cold = drop_page_cache()
        raw_bytes, t_raw = raw_read(cube)
        drop_page_cache()
        t0 = time.perf_counter()
        store = sfrdask.write_store(cube, work / "store.zarr", catalog=sfrdask.read_catalog_dir(cube.parent))
        t_ingest = time.perf_counter() - t0
        res["ingest"] = {
            "mb": round(raw_bytes / 2**20),
            "page_cache_dropped": cold,
            "raw_mb_per_s": round(raw_bytes / 2**20 / t_raw, 1),
            "ingest_mb_per_s": round(raw_bytes / 2**20 / t_ingest, 1),
            "ratio": round(t_raw / t_ingest, 3),
        }
        select_objects(store)
        if not args.no_compact:  # as the filter stage does: later stages read only the selection
            write_compact(store)
        res["compact"] = not args.no_compact
        res["deblend"] = deblend_speed(store, args.deblend_zoom, 1 if args.quick else args.workers)[0]
        res["pca_transform"] = pca_transform_speed(
            store,
            args.deblend_zoom,
            1 if args.quick else args.workers,
            n_components=min(100, args.objects // 4),
        )
        res["pca"] = bench_pca(store, n_components=min(100, args.objects // 4))
        if args.ddp_model == "early-fusion":  # works on PCA features
            for modality in ("image", "spectrum"):
                fit_pca_store(store, modality, args.ddp_zoom, n_components=8, progress=False)
    res["ddp"] = bench_ddp(store, work, args.ddp_model, args.ddp_zoom, 2, args.batch_size)
    res["machine"] = machine()
    pca, ddp = res["pca"], res["ddp"]
    ing, deb, tr = res["ingest"], res["deblend"], res["pca_transform"]

    def row(stage: str, ours: float, ref: float, unit: str, ratio: float) -> dict:
        return {"stage": stage, "sfrdask": f"{ours:,.1f} {unit}", "reference": f"{ref:,.1f} {unit}",
                "ratio": round(ratio, 3)}  # fmt: skip

    rows = [
        row("ingest vs raw h5py read", ing["ingest_mb_per_s"], ing["raw_mb_per_s"], "MB/s", ing["ratio"]),
        row(f"deblend ({deb['workers']} workers) vs bare sep loop", deb["dask_per_s"], deb["bare_loop_per_s"],
            "cutouts/s", deb["speedup"]),
        row("the same per worker (efficiency)", deb["dask_per_s"] / deb["workers"], deb["bare_loop_per_s"],
            "cutouts/s", deb["speedup"] / deb["workers"]),
        row(f"PCA transform ({tr['workers']} workers) vs bare loop, 1 BLAS thread", tr["dask_per_s"],
            tr["bare_loop_per_s"], "cutouts/s", tr["speedup"]),
        row("the same per worker (efficiency)", tr["dask_per_s"] / tr["workers"], tr["bare_loop_per_s"],
            "cutouts/s", tr["speedup"] / tr["workers"]),
        row("incremental PCA vs sklearn PCA: time", pca["incremental_s"], pca["sklearn_pca_s"], "s",
            pca["sklearn_pca_s"] / pca["incremental_s"]),
        row("incremental PCA vs sklearn PCA: peak memory", pca["incremental_peak_mb"], pca["sklearn_peak_mb"],
            "MB", pca["sklearn_peak_mb"] / pca["incremental_peak_mb"]),
        row("DDP 2 ranks vs 1 rank", ddp["ranks2_samples_per_s"], ddp["ranks1_samples_per_s"], "samples/s",
            ddp["speedup"]),
    ]  # fmt: skip
    res["table"] = rows
    write_json(args.out / "stages.json", res)
    write_text(args.out / "stages.md", markdown(rows))
    print(markdown(rows))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

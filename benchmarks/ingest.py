"""Benchmark: synthetic generation (objects/s) and ingest throughput against a raw h5py read.

    python benchmarks/ingest.py --objects 3000 --out bench-output       # the figures in docs/benchmarks.md
    python benchmarks/ingest.py --quick --out /tmp/b                     # seconds; run by the test suite

Ingest reads every image and spectrum dataset of the dense cube (all 4 levels, data and errors),
joins the labels and writes the zarr store. The reference is a plain sequential h5py read of
exactly those datasets in blocks of rows, one process, in the same run on the same file. Where
allowed (root on Linux) the page cache is emptied before the raw read and before the ingest, so
both read from disk as they would for a full survey that does not fit in memory; the warm
(page-cache) raw rate is reported too. Target: ingest >= 0.5 x the raw read rate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import h5py
from common import PeakMemory, drop_page_cache, machine

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.io.hisscube import layout as L
from sfrdask.io.levels import N_ZOOM


def raw_read(cube: Path, block: int = 256) -> tuple[int, float]:
    """Bytes and seconds for a sequential h5py read of every dense-cube image/spectrum dataset."""
    names = []
    for z in range(N_ZOOM):
        names += [L.image_dataset(z), f"{L.image_group(z)}/errors"]
        names += [L.spectrum_dataset(z), f"{L.spectrum_group(z)}/errors"]
    total = 0
    t0 = time.perf_counter()
    with h5py.File(cube, "r") as f:
        for name in names:
            ds = f[name]
            for a in range(0, ds.shape[0], block):
                total += ds[a : a + block].nbytes
    return total, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=3000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="tiny survey on threads: checks the script runs")
    args = p.parse_args()
    if args.quick:
        args.objects = 64
    work = args.out / "ingest-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    kind = "threads" if args.quick else "local"
    overrides = {} if args.quick else {"n_workers": args.workers}
    with sfrdask.cluster(kind, **overrides):
        t0 = time.perf_counter()
        with PeakMemory() as mem_synth:
            cube = sfrdask.make_survey(
                work / "survey", objects=args.objects, seed=args.seed, progress=not args.quick
            )
        t_synth = time.perf_counter() - t0

        cold = drop_page_cache()
        raw_bytes, t_raw = raw_read(cube)
        _, t_raw_warm = raw_read(cube)
        cat = sfrdask.read_catalog_dir(cube.parent)
        drop_page_cache()
        t0 = time.perf_counter()
        with PeakMemory() as mem_ingest:
            store = sfrdask.write_store(cube, work / "store.zarr", catalog=cat)
        t_ingest = time.perf_counter() - t0

    store_bytes = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    mb = raw_bytes / 2**20
    res = {
        "objects": args.objects,
        "seed": args.seed,
        "workers": 1 if args.quick else args.workers,
        "cube_mb": round(cube.stat().st_size / 2**20, 1),
        "synth_seconds": round(t_synth, 2),
        "synth_objects_per_s": round(args.objects / t_synth, 1),
        "synth_peak_rss_mb": round(mem_synth.peak / 2**20),
        "dense_cube_mb_read": round(mb, 1),
        "page_cache_dropped": cold,
        "raw_h5py_mb_per_s": round(mb / t_raw, 1),
        "raw_h5py_warm_mb_per_s": round(mb / t_raw_warm, 1),
        "ingest_seconds": round(t_ingest, 2),
        "ingest_mb_per_s": round(mb / t_ingest, 1),
        "ingest_over_raw": round(t_raw / t_ingest, 3),
        "ingest_over_raw_warm": round(t_raw_warm / t_ingest, 3),
        "ingest_peak_rss_mb": round(mem_ingest.peak / 2**20),
        "store_mb": round(store_bytes / 2**20, 1),
        "machine": machine(),
    }
    write_text(args.out / "ingest.json", json.dumps(res, indent=2))
    rows = "\n".join(f"| {k} | {v} |" for k, v in res.items())
    write_text(args.out / "ingest.md", f"| measure | value |\n|---|---|\n{rows}\n")
    print(json.dumps(res, indent=2))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

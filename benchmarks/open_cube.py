"""Opening a cube in HiSS-Cube's own byte layout: the per-target metadata and band map at scale.

    python benchmarks/open_cube.py --out bench-output                  # 10,000 and 20,000 objects
    python benchmarks/open_cube.py --quick --out /tmp/b                # seconds; run by the test suite

HiSS-Cube writes its reference tables uncompressed, in chunks of (1, 5, 200) rows of 88 bytes: 88 kB
per target and level for the image tables and 17.6 kB for the spectrum table. sfrdask's synthetic
cubes compress them (~100x smaller), which hides that cost; here the survey is written with
``io.reference-compression: null``, the reference layout. Each size is read twice, each time in a
fresh process with the page cache emptied:

- ``sfrdask``: :func:`sfrdask.io.hisscube.meta.read_target_metadata` as shipped (slot 0 of the image
  tables and the first slots of the spectrum table selected, headers parsed) + ``open_hisscube``;
- ``whole rows``: the reference tables only, read as the reader did before (whole rows of the
  spectrum table, kept as trimmed views), for comparison.

Seconds and peak client RSS per 1,000 targets give a linear projection to 150,000 (the model: cost =
a + b x targets, fitted over the sizes).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import dask
from common import machine, markdown, read_cold, write_json

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.synthetic import SynthParams

READ = """
import json, sys, time
import numpy as np
path, how = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if how == "sfrdask":
    from sfrdask.io.hisscube import open_hisscube
    from sfrdask.io.hisscube.meta import read_target_metadata
    meta = read_target_metadata(path)
    ds = open_hisscube(path, metadata=meta)
    n = ds.sizes["object"]
else:  # the reader before: whole rows of the spectrum table, trimmed by slicing (a view)
    import h5py
    kept = []
    with h5py.File(path, "r") as f:
        s = f["dense_cube/0/ml_spectrum/spec_metadata_refs"]
        i = f["dense_cube/0/ml_image/image_metadata_refs"]
        n = s.shape[0]
        for a in range(0, n, 4096):
            rows = s[a:a + 4096]
            used = int((rows["ds_path"] != b"").sum(axis=1).max(initial=0))
            kept += [rows[:, :max(used, 1)], i[a:a + 4096, :, 0]]
# VmHWM: this process's own peak (ru_maxrss would carry the parent's across exec)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - t0, "targets": n, "peak_mb": hwm / 1024}))
"""


def projection(how: str, raw: list[dict]) -> dict:
    """cost = a + b x targets through the smallest and largest size, extended to 150,000."""
    pts = [(r["objects"], r["seconds"], r["peak_mb"]) for r in raw if r["how"] == how]
    (n0, t0, m0), (n1, t1, m1) = pts[0], pts[-1]
    bt, bm = (t1 - t0) / (n1 - n0), (m1 - m0) / (n1 - n0)
    at150 = f"{t1 + bt * (150_000 - n1):.0f} s, {m1 + bm * (150_000 - n1):,.0f} MB"
    return {"reader": how, "s per 1,000 targets": round(1000 * bt, 3),
            "MB per 1,000 targets": round(1000 * bm, 1), "150,000 targets": at150}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="tiny survey: checks the script runs")
    args = p.parse_args()
    sizes = [64] if args.quick else args.sizes
    work = args.out / "open-cube-work"
    rows, raw = [], []
    for n in sizes:
        shutil.rmtree(work, ignore_errors=True)
        with (
            dask.config.set({"sfrdask.io.reference-compression": None}),
            sfrdask.cluster("threads" if args.quick else "local"),
        ):
            t0 = time.perf_counter()
            cube = sfrdask.make_survey(work / "survey", objects=n, seed=args.seed, params=SynthParams(),
                                       progress=not args.quick)  # fmt: skip
            t_write = time.perf_counter() - t0
        size_gb = cube.stat().st_size / 1e9
        for how in ("sfrdask", "whole rows"):
            r = read_cold(READ, str(cube), how)
            raw.append({"objects": n, "how": how, "file_gb": round(size_gb, 2), "write_s": round(t_write, 1)})
            raw[-1].update(r)
            rows.append(
                {
                    "targets": f"{n:,}",
                    "file": f"{size_gb:.1f} GB",
                    "reader": how,
                    "seconds": round(r["seconds"], 2),
                    "peak client MB": round(r["peak_mb"]),
                    "s per 1,000": round(1000 * r["seconds"] / n, 3),
                }
            )
        shutil.rmtree(work, ignore_errors=True)
    proj = [projection(how, raw) for how in ("sfrdask", "whole rows") if len(sizes) >= 2]
    res = {"rows": raw, "projection": proj, "machine": machine()}
    write_json(args.out / "open_cube.json", res)
    text = markdown(rows) + ("\n\n" + markdown(proj) if proj else "")
    write_text(args.out / "open_cube.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()

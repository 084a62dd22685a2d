"""Opening a cube in HiSS-Cube's TREE layout: finding its targets and reading their metadata at scale.

    python benchmarks/tree_metadata.py --out bench-output               # 5,000 and 20,000 targets
    python benchmarks/tree_metadata.py --quick --out /tmp/b             # seconds; run by the test suite

In the TREE layout the dense cube's reference tables are empty: the reader walks the semi-sparse
HEALPix tree (17 levels of groups down to each target's order-15 cell), reads each spectrum's
header and follows the cell's ``image_cutouts_<zoom>`` region references to the frames' FILTERs.
A synthetic survey is written and converted with ``write_tree`` (HiSS-Cube's TREE structure); each
size is then read in a fresh process with the page cache emptied, two ways:

- ``sfrdask``: :func:`sfrdask.io.hisscube.meta.read_target_metadata` as shipped (one C-level walk of the
  link names, then per cell its spectrum headers and its frames' FILTERs);
- ``typed walk``: the cells found as the reader found them before, opening every group and reading
  its ``type`` attribute (:func:`sfrdask.io.hisscube.tree.spectrum_cells`), the walk alone.

Seconds per 1,000 targets give a linear projection to the user's 150,000 (cost = a + b x targets
through the smallest and largest size).
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
from sfrdask.io.hisscube.write import write_tree
from sfrdask.synthetic import SynthParams

READ = """
import json, sys, time
path, how = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if how == "sfrdask":
    from sfrdask.io.hisscube.meta import read_target_metadata
    n = int((read_target_metadata(path)["spec_plateid"][:, 0] > 0).sum())
else:
    import h5py
    from sfrdask.io.hisscube.tree import spectrum_cells
    with h5py.File(path, "r") as f:
        n = len(spectrum_cells(f))
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - t0, "targets": n, "peak_mb": hwm / 1024}))
"""
HOWS = ("sfrdask", "typed walk")


def projection(how: str, raw: list[dict]) -> dict:
    """cost = a + b x targets through the smallest and largest size, extended to 150,000."""
    pts = [(r["targets"], r["seconds"]) for r in raw if r["how"] == how]
    (n0, t0), (n1, t1) = pts[0], pts[-1]
    b = (t1 - t0) / (n1 - n0)
    return {"reader": how, "s per 1,000 targets": round(1000 * b, 3),
            "150,000 targets": f"{t1 + b * (150_000 - n1):.0f} s"}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="tiny survey: checks the script runs")
    args = p.parse_args()
    sizes = [64] if args.quick else args.sizes
    work = args.out / "tree-metadata-work"
    rows, raw = [], []
    for n in sizes:
        shutil.rmtree(work, ignore_errors=True)
        with sfrdask.cluster("threads" if args.quick else "local"):
            cube = sfrdask.make_survey(work / "survey", objects=n, seed=args.seed, params=SynthParams(),
                                       progress=not args.quick)  # fmt: skip
        with dask.config.set(scheduler="threads"):
            t0 = time.perf_counter()
            tree = write_tree(cube, work / "tree.h5")
            t_write = time.perf_counter() - t0
        cube.unlink()
        size_gb = tree.stat().st_size / 1e9
        for how in HOWS:
            r = read_cold(READ, str(tree), how)
            raw.append({"objects": n, "how": how, "file_gb": round(size_gb, 2),
                        "write_tree_s": round(t_write, 1), **r})  # fmt: skip
            rows.append({"targets": f"{r['targets']:,}", "file": f"{size_gb:.1f} GB", "reader": how,
                         "seconds": round(r["seconds"], 2), "peak MB": round(r["peak_mb"]),
                         "ms per target": round(1000 * r["seconds"] / max(r["targets"], 1), 3),
                         "page cache dropped": r["page_cache_dropped"]})  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    proj = [projection(how, raw) for how in HOWS if len(sizes) >= 2]
    res = {"rows": raw, "projection": proj, "machine": machine()}
    write_json(args.out / "tree_metadata.json", res)
    text = markdown(rows) + ("\n\n" + markdown(proj) if proj else "")
    write_text(args.out / "tree_metadata.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()

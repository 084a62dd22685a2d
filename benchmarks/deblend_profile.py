"""Where the deblend stage's time goes: Dask's task stream, summed by task kind.

    python benchmarks/deblend_profile.py --out bench-output       # 5,000 objects, seed 21, 64 px
    python benchmarks/deblend_profile.py --quick --out /tmp/b     # seconds; run by the test suite

One synthetic survey, ingested at image zoom 0, selected and copied compactly (as ``filter`` does),
then ``deblend_store`` on a LocalCluster of N single-thread workers, with the task stream recorded.
Each task's compute time is attributed to its kind (reading the compact chunks, sep on a block,
encoding and writing the ``clean`` group, ...); the rest of N x wall time is the workers' idle time.
The same cutouts through a bare sep loop in this process give the reference.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import defaultdict
from pathlib import Path

from common import machine, markdown, write_json
from distributed import get_task_stream

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.preprocessing import deblend_cutouts, deblend_store, select_objects, write_compact
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.synthetic import SynthParams


def _row(what: str, seconds: float, total: float) -> dict:
    return {
        "what": what,
        "seconds (all workers)": round(seconds, 2),
        "share of workers' time": f"{seconds / total:.1%}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=5000)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--zoom", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="tiny survey: checks the script runs")
    args = p.parse_args()
    if args.quick:
        args.objects, args.zoom = 64, 2
    work = args.out / "deblend-profile-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with sfrdask.cluster("local", n_workers=args.workers, threads_per_worker=1) as client:
        cube = sfrdask.make_survey(work / "survey", objects=args.objects, seed=args.seed,
                                   params=SynthParams(flag0_fraction=0.55), progress=False)  # fmt: skip
        store = sfrdask.write_store(cube, work / "store.zarr", catalog=sfrdask.read_catalog_dir(cube.parent),
                                    image_zooms=(args.zoom,), spectrum_zooms=())  # fmt: skip
        select_objects(store)
        write_compact(store)
        deblend_store(store, args.zoom)  # warm-up: imports and first-touch costs on the workers
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            deblend_store(store, args.zoom)
        wall = time.perf_counter() - t0
    ids = selected_objects(store)
    images = sfrdask.open_store(store, image_zoom=args.zoom, spectrum_zoom=None).image.values[ids]
    t0 = time.perf_counter()
    deblend_cutouts(images, ids, zoom=args.zoom)
    bare = time.perf_counter() - t0

    by_kind: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for task in ts.data:
        kind = task["key"][0] if isinstance(task["key"], tuple) else str(task["key"])
        kind = kind.rsplit("-", 1)[0]
        for part in task["startstops"]:
            by_kind[f"{kind} ({part['action']})"] += part["stop"] - part["start"]
        count[kind] += 1
    busy = sum(by_kind.values())
    total = args.workers * wall
    ranked = sorted(by_kind.items(), key=lambda kv: -kv[1])
    rows = [_row(k, v, total) for k, v in ranked if v >= 0.01 * total]
    small = [v for _, v in ranked if v < 0.01 * total]
    if small:
        rows.append(_row(f"{len(small)} other kinds of task, each < 1%", sum(small), total))
    rows.append(_row("idle (workers' time in no task)", total - busy, total))
    res = {
        "objects": args.objects, "selected": int(ids.size), "zoom": args.zoom, "workers": args.workers,
        "wall_s": round(wall, 2), "bare_loop_s": round(bare, 2), "tasks": dict(count), "rows": rows,
        "machine": machine(),
    }  # fmt: skip
    write_json(args.out / "deblend_profile.json", res)
    head = (f"deblend of {ids.size} cutouts at zoom {args.zoom}: {wall:.2f} s on {args.workers} workers, "
            f"bare sep loop {bare:.2f} s in one process")  # fmt: skip
    text = head + "\n\n" + markdown(rows)
    write_text(args.out / "deblend_profile.md", text + "\n")
    print(text)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

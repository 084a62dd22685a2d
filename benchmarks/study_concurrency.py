"""How well the study stage fans trainings out: concurrent against sequential, and the cost per task.

    python benchmarks/study_concurrency.py --out bench-output          # ~15 minutes on 2 cores
    python benchmarks/study_concurrency.py --quick --out /tmp/b        # seconds; the test suite

1. *Concurrency*: a fixed grid of 16 trainings (gbt-both, image-cnn, early-fusion and
   intermediate-fusion at 16 px / 1155 and 8 px / 577, seeds 0 and 1) on a synthetic survey, run
   by ``sfrdask.study`` on a LocalCluster of 2 single-thread workers. Each row records the
   training's own seconds on its one thread; the wall time is compared with their sum / 2 (the
   ideal on 2 workers: the overhead of scheduling plus the tail).
2. *Sequential*: the same 16 trainings the way benchmarks/resolution_study.py trained them before
   the stage existed: one after another in this process, torch using both cores. Same seeds: the
   R^2 of each training is compared with the concurrent one's.
3. *Overhead per task*: 16 short trainings (gbt-spectrum at both levels, 8 seeds) on the
   same 2 workers: (wall x workers - sum of the tasks' own seconds) / tasks.

The store is prepared once (not timed here: the study's stages.csv has its per-level figures).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from common import machine, markdown, write_json

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.resolution.grid import plan
from sfrdask.trained.modelling import train

GRID = dict(models=("gbt-both", "image-cnn", "early-fusion", "intermediate-fusion"), image_zooms=(2, 3),
            spectrum_zooms=(2, 3), pairs="diagonal", seeds=(0, 1),
            tune_trials=0, control="", curves=False, bootstrap=False)  # fmt: skip  # the trainings alone
# the same levels (so the same prepared store): gbt-spectrum at 1155 and 577 samples, 8 seeds
TINY = dict(GRID, models=("gbt-spectrum",), seeds=tuple(range(8)))


def study(cube: Path, out: Path, grid: dict, client: object, epochs: int) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    r = sfrdask.study(cube, cube.parent, out, **grid, epochs=epochs, client=client)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "work" / "done.jsonl").read_text().splitlines()]
    keys = ("models", "image_zooms", "spectrum_zooms", "seeds")
    planned = plan(*(list(grid[k]) for k in keys), grid["pairs"])
    assert r.trained_now == len(planned)
    return wall, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=3000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=15, help="the cap of every network training")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    grid, tiny_grid = GRID, TINY
    if args.quick:  # the script runs: 4 trainings both ways, 4 short ones
        args.objects, args.epochs = 200, 2
        grid = dict(GRID, models=("gbt-both", "early-fusion"), seeds=(0,))
        tiny_grid = dict(TINY, seeds=(0, 1))
    work = args.out / "study-concurrency-work"
    shutil.rmtree(work, ignore_errors=True)
    survey = sfrdask.synth(work / "survey", objects=args.objects, seed=args.seed, flag0_fraction=0.55,
                           client="threads")  # fmt: skip
    res: dict = {"objects": args.objects, "epochs": args.epochs, "machine": machine()}
    with sfrdask.cluster("local", n_workers=2, threads_per_worker=1) as client:
        # the store, prepared once by a study of one tree training (its figures are in stages.csv)
        one = dict(GRID, models=("gbt-both",), seeds=(9,))
        sfrdask.study(survey.cube, survey.cube.parent, work / "conc", **one, client=client)
        wall, rows = study(survey.cube, work / "conc", grid, client, args.epochs)
        rows = [r for r in rows if r["seed"] != 9]
        tiny_wall, tiny = study(survey.cube, work / "conc", tiny_grid, client, args.epochs)
        tiny = [r for r in tiny if r["model"] == "gbt-spectrum"]
    own = sum(r["train_seconds"] for r in rows)
    res["concurrent"] = {"trainings": len(rows), "wall_s": round(wall, 1), "sum_own_s": round(own, 1),
                         "ideal_s": round(own / 2, 1),
                         "wall_over_ideal": round(wall / (own / 2), 3)}  # fmt: skip
    store = work / "conc" / "work" / "store.zarr"
    t0 = time.perf_counter()
    seq = {}
    for r in rows:  # the loop the benchmark ran before the stage: in this process, torch on both cores
        s = train(store, r["model"], r["image_zoom"], r["spectrum_zoom"], out=work / "seq",
                  epochs=args.epochs, seed=r["seed"], progress=False)  # fmt: skip
        seq[(r["model"], r["image_zoom"], r["spectrum_zoom"], r["seed"])] = float(s.metrics["r2"])
    seq_wall = time.perf_counter() - t0
    diffs = [abs(seq[(r["model"], r["image_zoom"], r["spectrum_zoom"], r["seed"])] - r["r2"]) for r in rows]
    res["sequential"] = {"wall_s": round(seq_wall, 1),
                         "sequential_over_concurrent": round(seq_wall / wall, 3),
                         "max_abs_r2_difference": float(np.max(diffs)),
                         "trainings_with_r2_difference": int(np.sum(np.array(diffs) > 0))}  # fmt: skip
    tiny_own = sum(r["train_seconds"] for r in tiny)
    res["overhead"] = {"tasks": len(tiny), "wall_s": round(tiny_wall, 2), "sum_own_s": round(tiny_own, 2),
                       "per_task_s": round((tiny_wall * 2 - tiny_own) / len(tiny), 3)}  # fmt: skip
    res["rows"] = [{k: r[k] for k in ("model", "image_zoom", "spectrum_zoom", "seed", "r2", "train_seconds",
                                      "worker")} for r in rows]  # fmt: skip
    write_json(args.out / "study_concurrency.json", res)
    text = "\n\n".join(markdown([res[k]]) for k in ("concurrent", "sequential", "overhead"))
    text += "\n\n" + markdown(res["rows"])
    write_text(args.out / "study_concurrency.md", text + "\n")
    print(text)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

"""Scaling with survey size: wall time and peak memory of every stage for growing surveys.

    python benchmarks/scaling.py --out bench-output                 # 5k, 10k, 20k, 40k: docs/benchmarks.md
    python benchmarks/scaling.py --quick --out /tmp/b               # seconds; run by the test suite

For each size a synthetic survey (seed --seed, FLAG == 0 fraction 0.5) goes through the stages on
one LocalCluster (2 single-thread worker processes): generate (all 4 levels of both modalities),
ingest (images at --image-zoom, spectra at --spectrum-zoom), filter (FLAG + bad pixels + splits),
deblend (the selected cutouts at --image-zoom) and PCA (images and spectra, fitted on the training
split). Peak memory is the resident set of the client and its workers, sampled every 0.2 s.
Expected: time linear in the number of objects, peak memory flat (everything is out of core). The
fitted slope (seconds per 1,000 objects) and the log-log exponent of each stage are reported,
with a PNG of both curves. Each survey is deleted before the next one is made. With
``--workers 1,2`` every stage after generation runs on both cluster sizes (same survey), and a
projection for the user's 150,000 objects (11,000 selected) on N workers follows from the measured
per-object cost and per-worker efficiency (model in :func:`projection`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from common import machine, markdown, measured, write_json

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.plots import save_figure
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects, write_compact
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.synthetic import SynthParams

STAGES = ("generate", "ingest", "filter", "deblend", "pca")


def generate(work: Path, n: int, seed: int, rec: dict) -> Path:
    with measured(rec, "generate", n):
        cube = sfrdask.make_survey(
            work / f"survey-{n}", objects=n, seed=seed, params=SynthParams(flag0_fraction=0.5), progress=False
        )
    return cube


def run_stages(work: Path, cube: Path, n: int, image_zoom: int, spectrum_zoom: int, rec: dict) -> dict:
    """The stages after generation on survey ``cube``: seconds, peak MB and objects/s per stage."""
    with measured(rec, "ingest", n):
        store = sfrdask.write_store(
            cube, work / f"store-{n}.zarr", catalog=sfrdask.read_catalog_dir(cube.parent),
            image_zooms=(image_zoom,), spectrum_zooms=(spectrum_zoom,),
        )  # fmt: skip
    with measured(rec, "filter", n):  # as the filter stage: the selection and its compact copy
        select_objects(store)
        write_compact(store)
    selected = len(selected_objects(store))
    with measured(rec, "deblend", selected):
        deblend_store(store, image_zoom)
    with measured(rec, "pca", selected):
        fit_pca_store(store, "image", image_zoom, progress=False)
        fit_pca_store(store, "spectrum", spectrum_zoom, progress=False)
    shutil.rmtree(store)
    return {"objects": n, "selected": selected, **rec}


def projection(
    rows: list[dict], workers: list[int], n_user: int = 150_000, n_selected: int = 11_000
) -> list[dict]:
    """Per stage: seconds per object on the fewest workers measured and the per-worker efficiency of
    the most, at the largest size; and the time for the user's cube on N workers, assuming that
    efficiency holds: t = n x s_1 / (N x e), with n = ``n_user`` objects for ingest and filter and
    ``n_selected`` for deblending and PCA, s_1 one worker's seconds per object."""
    big = rows[-1]
    lo, hi = min(workers), max(workers)
    out = []
    for stage in STAGES[1:]:
        wall = {w: big["by_workers"][w][stage] for w in workers}
        per_obj = {w: r["seconds"] / r.get("objects", big["objects"]) for w, r in wall.items()}
        s1 = per_obj[lo] * lo
        eff = s1 / (per_obj[hi] * hi)
        n = n_selected if stage in ("deblend", "pca") else n_user
        row = {"stage": stage, f"s per 1,000 objects, {lo} worker": round(1000 * s1, 2),
               f"per-worker efficiency, {hi} workers": round(eff, 2)}  # fmt: skip
        for nw in (2, 16, 64):
            row[f"{nw} workers"] = f"{n * s1 / (nw * eff) / 60:.1f} min"
        out.append(row)
    return out


def fit_slopes(rows: list[dict]) -> dict:
    """Per stage and in total: least-squares seconds per 1,000 objects, log-log exponent, memory ratio."""
    n = np.array([r["objects"] for r in rows], float)
    out = {}
    for stage in (*STAGES, "total"):
        t = np.array([r[stage]["seconds"] for r in rows], float)
        mem = np.array([r[stage]["peak_mb"] for r in rows], float)
        slope, intercept = np.polyfit(n / 1000, t, 1)
        exponent = np.polyfit(np.log(n), np.log(np.maximum(t, 1e-6)), 1)[0] if len(n) > 1 else float("nan")
        out[stage] = {
            "seconds_per_1000": round(float(slope), 3),
            "intercept_s": round(float(intercept), 2),
            "loglog_exponent": round(float(exponent), 3),
            "memory_ratio_largest_smallest": round(float(mem[-1] / mem[0]), 3),
        }
    return out


def plot(rows: list[dict], fits: dict, out: Path) -> Path:
    import matplotlib.pyplot as plt

    n = np.array([r["objects"] for r in rows], float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    grid = np.linspace(0, n.max() * 1.05, 50)
    for stage in (*STAGES, "total"):
        t = [r[stage]["seconds"] for r in rows]
        f = fits[stage]
        (line,) = a.plot(
            n, t, "o", label=f"{stage}: {f['seconds_per_1000']:.2f} s / 1k (exp {f['loglog_exponent']:.2f})"
        )
        a.plot(
            grid, f["intercept_s"] + f["seconds_per_1000"] * grid / 1000, "-", color=line.get_color(), lw=0.8
        )
        b.plot(n, [r[stage]["peak_mb"] for r in rows], "o-", color=line.get_color(), label=stage)
    a.set(xlabel="objects in the survey", ylabel="wall time [s]", title="Time: linear fit per stage")
    b.set(
        xlabel="objects in the survey",
        ylabel="peak RSS, client + workers [MB]",
        title="Peak memory per stage",
    )
    b.set_ylim(0, None)
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    return save_figure(fig, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5000,10000,20000,40000")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--workers", default="2", help="worker counts, e.g. 1,2: the stages run on each")
    p.add_argument("--image-zoom", type=int, default=1)
    p.add_argument("--spectrum-zoom", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="two tiny surveys on threads: checks the script runs")
    args = p.parse_args()
    sizes = [48, 96] if args.quick else [int(s) for s in args.sizes.split(",")]
    workers = [1, 2] if args.quick else sorted(int(w) for w in args.workers.split(","))
    work = args.out / "scaling-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    kind = "threads" if args.quick else "local"

    def on(w: int):
        return sfrdask.cluster(kind, **({} if args.quick else {"n_workers": w, "threads_per_worker": 1}))

    for n in sizes:
        gen: dict = {}
        with on(workers[-1]):
            cube = generate(work, n, args.seed, gen)
        by_workers = {}
        for w in workers:
            with on(w):
                by_workers[w] = run_stages(work, cube, n, args.image_zoom, args.spectrum_zoom, dict(gen))
        shutil.rmtree(cube.parent)
        r = {**by_workers[workers[-1]], "by_workers": by_workers}
        r["total"] = {
            "seconds": round(sum(r[s]["seconds"] for s in STAGES), 3),
            "peak_mb": max(r[s]["peak_mb"] for s in STAGES),
        }
        rows.append(r)
        print({s: r[s]["seconds"] for s in (*STAGES, "total")}, flush=True)
    fits = fit_slopes(rows)
    proj = projection(rows, workers) if len(workers) > 1 else []
    res = {
        "sizes": sizes,
        "workers": workers,
        "projection": proj,
        "seed": args.seed,
        "image_zoom": args.image_zoom,
        "spectrum_zoom": args.spectrum_zoom,
        "rows": rows,
        "fits": fits,
        "machine": machine(),
    }
    write_json(args.out / "scaling.json", res)
    table = [
        {"objects": r["objects"], "selected": r["selected"]}
        | {f"{s} s": r[s]["seconds"] for s in (*STAGES, "total")}
        | {f"{s} MB": r[s]["peak_mb"] for s in STAGES}
        for r in rows
    ]
    fit_rows = [{"stage": s, **f} for s, f in fits.items()]
    write_text(
        args.out / "scaling.md",
        markdown(table) + "\n" + markdown(fit_rows) + ("\n" + markdown(proj) if proj else ""),
    )
    plot(rows, fits, args.out / "scaling.png")
    print(markdown(fit_rows))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

"""The predict stage: interval calibration on the test split and throughput, on a trained store.

    # after `make bench`'s train-store steps and `sfrdask train ... --out bench-output/predict-runs`:
    python benchmarks/predict.py --store bench-output/train-store.zarr \\
        --runs bench-output/predict-runs/gbt-both/image2-spectrum2-AVG \\
        --throughput-runs bench-output/predict-runs/gbt-both/image2-spectrum2-AVG \\
                          bench-output/predict-runs/gbt-both/image0-spectrum0-AVG \\
        --out bench-output/predict
    python benchmarks/predict.py --quick --out /tmp/b      # seconds; run by the test suite

1. calibration: ``sfrdask predict`` on the training store's cube with each of ``--runs`` on a
   LocalCluster of 2 single-thread workers; coverage of the 68% and 95% intervals on the test
   split (against the MPA-JHU-format labels and the true SFR), overall, per class, per decile of
   the prediction, the mean widths, and the 68% coverage of catalogue values of FLAG != 0
   galaxies and quasars that carry one (never used in training or calibration);
2. throughput: objects/s of the prediction pass over every object of the cube (calibration not
   counted) on the 2-worker cluster and in one process (Dask's synchronous scheduler), for each
   of ``--throughput-runs``; the projection to 150,000 objects assumes the measured rate holds
   (the pass is one independent task per chunk, so it scales with workers until the file
   system's read rate limits it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dask
import numpy as np
import zarr
from common import machine, markdown, write_json

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.runtime import Runtime
from sfrdask.stages.predict import Params, run
from sfrdask.trained.calibration import POOLED_CHECK
from sfrdask.trained.inference import load_run

USER_OBJECTS = 150_000


def _cube_of(store: Path) -> tuple[Path, Path]:
    source = Path(zarr.open_group(store, mode="r").attrs["source"])
    return source, source.parent


def calibration(runs: list[Path], store: Path, out: Path, client) -> list[dict]:
    cube, catalog = _cube_of(store)
    rows = []
    for r in runs:
        res = run(Runtime.of(client), _params(r, cube, catalog, out / f"{r.parent.name}-{r.name}.fits"))
        cal = res.calibration
        test = cal[cal["split"].isin(["test", POOLED_CHECK])]  # pooled when the validation split is small
        allrow = test[test["group"] == "all"].iloc[0]
        classes = test[test["group"].str.startswith("class")]
        deciles = test[test["group"].str.startswith("decile")]
        held = cal[cal["split"].str.startswith("FLAG")]
        held_all = held[held["group"] == "all"]
        rows.append(
            {
                "model": allrow["model"],
                "level": r.name,
                "n_test": int(allrow["n"]),
                "cov68": allrow["coverage_68"],
                "cov95": allrow["coverage_95"],
                "width68": allrow["width_68"],
                "width95": allrow["width_95"],
                "cov68_true": allrow.get("coverage_68_true", np.nan),
                "cov95_true": allrow.get("coverage_95_true", np.nan),
                "class_cov68": _per(classes, "coverage_68"),
                "class_cov95": _per(classes, "coverage_95"),
                "decile_cov68_range": _span(deciles["coverage_68"]),
                "decile_cov95_range": _span(deciles["coverage_95"]),
                "decile_n": int(deciles["n"].min()),
                "flag_not0_cov68": held_all["coverage_68"].iloc[0] if len(held_all) else np.nan,
                "flag_not0_n": int(held_all["n"].iloc[0]) if len(held_all) else 0,
                "flag_not0_class_cov68": _per(held[held["group"].str.startswith("class")], "coverage_68"),
            }
        )
    return rows


def _per(rows, col: str) -> str:
    return "; ".join(
        f"{g[6:]} {c:.3f} (n {n})" for g, c, n in zip(rows["group"], rows[col], rows["n"], strict=True)
    )


def _span(values) -> str:
    return f"{values.min():.3f}-{values.max():.3f}"


def _params(run_dir: Path, cube: Path, catalog: Path, out: Path, plots: bool = True) -> Params:
    return Params(runs=(run_dir,), out=out, cube=cube, catalog=catalog, overwrite=True, plots=plots)


def throughput(runs: list[Path], store: Path, out: Path, client) -> list[dict]:
    cube, catalog = _cube_of(store)
    rows = []
    for r in runs:
        t = load_run(r)
        rates = {}
        for where, c in (("2 workers", client), ("1 process", "synchronous")):
            res = run(
                Runtime.of(c), _params(r, cube, catalog, out / f"throughput-{r.name}.parquet", plots=False)
            )
            rates[where] = res.objects_per_s
        rows.append(
            {
                "model": t.model,
                "image_px": None if t.image_zoom is None else image_size(t.image_zoom),
                "spectrum_samples": None if t.spectrum_zoom is None else spectrum_samples(t.spectrum_zoom),
                "objects": res.rows,
                "objects_per_s_2_workers": rates["2 workers"],
                "objects_per_s_1_process": rates["1 process"],
                "speed_up": rates["2 workers"] / rates["1 process"],
                "projected_min_150k_2_workers": USER_OBJECTS / rates["2 workers"] / 60,
            }
        )
    return rows


def quick(out: Path) -> tuple[Path, list[Path]]:
    """A tiny trained store for --quick (seconds)."""
    from sfrdask.preprocessing import fit_pca_store, select_objects
    from sfrdask.synthetic import SynthParams, make_survey
    from sfrdask.trained.modelling import train

    survey = out / "survey"
    make_survey(survey, objects=400, seed=5, params=SynthParams(flag0_fraction=0.8), progress=False)
    store = out / "store.zarr"
    catalog = sfrdask.read_catalog_dir(survey)
    sfrdask.write_store(
        survey / "survey.h5", store, catalog, image_zooms=(3,), spectrum_zooms=(3,), overwrite=True
    )
    select_objects(store)
    fit_pca_store(store, "image", 3, n_components=8, progress=False)
    fit_pca_store(store, "spectrum", 3, n_components=8, progress=False)
    r = train(store, "gbt-both", 3, 3, out=out / "runs", progress=False)
    return store, [Path(r.run_dir)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--runs", type=Path, nargs="*", default=[])
    ap.add_argument("--throughput-runs", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=Path("bench-output/predict"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with sfrdask.cluster("local", n_workers=2, threads_per_worker=1) as client:
        if args.quick:
            with dask.config.set(scheduler="threads"):
                args.store, args.runs = quick(args.out)
            args.throughput_runs = args.runs
        cal = calibration(args.runs, args.store, args.out, client)
        thr = throughput(args.throughput_runs, args.store, args.out, client)
    result = {
        "machine": machine(),
        "store": str(args.store),
        "calibration": cal,
        "throughput": thr,
        "seconds": time.perf_counter() - t0,
    }
    write_json(args.out / "predict.json", result)
    text = "## Calibration (test split)\n\n" + markdown(cal) + "\n## Throughput\n\n" + markdown(thr)
    write_text(args.out / "predict.md", text)
    print(text)


if __name__ == "__main__":
    main()

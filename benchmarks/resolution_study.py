"""Resolution study: processing speed against prediction accuracy at every image and spectrum level.

    python benchmarks/resolution_study.py --objects 8000 --out bench-output/resolution   # 3 seeds each
    python benchmarks/resolution_study.py --cube CUBE.h5 --catalog MPAJHU_DIR --out study   # your data
    python benchmarks/resolution_study.py --quick --out /tmp/b                # seconds; the test suite

The cube (synthetic with --objects/--seed, or any HiSS-Cube file with its MPA-JHU catalogues) is
ingested at all four levels of both modalities, filtered once, deblended at every image level and
reduced by PCA at every level of both modalities (fitted on the training split). Then every model
is trained on the same split at every level it reads: fusion models over the 4 x 4 grid of image
level x spectrum level (``--pairs diagonal``: the four matched pairs only), single-modality
models at each level of their modality alone.

Recorded per stage and level: objects/s and peak memory (client + workers) of read (the level's
data and errors from the HDF5 file, page cache emptied first where allowed), filter, deblend and
PCA; per model and levels: training and inference samples/s, peak memory, and R^2, RMSE, MAE, MSE
on the test split. *End-to-end objects/s* of a model at a level pair is the selected objects over
the seconds of everything that model needs there: reading its levels, filter, deblending (images),
PCA (models on PCA features) and training including the test predictions.

Outputs in --out: study.csv / study.json (one row per model and levels), study.md (tables),
stages.csv, r2_heatmap.png (R^2 over the grid, one panel per model) and pareto.png (end-to-end
objects/s and inference samples/s against R^2, with the Pareto front). Every network trains to
early stopping (converged: at most sfrdask.train.epochs) once per seed of --train-seeds; the tables
give the mean +- standard deviation over the seeds, beside the survey's ceilings (synthetic data).
Finished trainings are recorded in work/done.jsonl, so an interrupted study resumes where it
stopped (--fresh restarts); runs with other --image-levels, --spectrum-levels or --train-seeds add
to the same record, and --report-only reports everything finished so far (the tables give the
seeds behind every cell).
The cluster comes from sfrdask's config (``sfrdask.cluster.kind``; DASK_SFRDASK__... variables or
~/.config/dask/*.yaml), or --cluster local|slurm|tls://host:port.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import dask
import numpy as np
import pandas as pd
from common import drop_page_cache, machine, markdown, measured, write_json

import sfrdask
from sfrdask import config
from sfrdask.io.atomic import write_text
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model
from sfrdask.plots import save_figure
from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.synthetic import SynthParams
from sfrdask.training import train
from sfrdask.training.ceilings import ceilings

DEFAULT_MODELS = "gbt,image-cnn,spectrum-hybrid,early-fusion,intermediate-fusion,late-fusion"
METRICS = ("r2", "rmse", "mae", "mse")


def expand_models(names: str) -> list[str]:
    """``tree`` / ``gbt`` stand for the family on images alone, spectra alone and both."""
    out = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        out += [f"{name}-{m}" for m in ("image", "spectrum", "both")] if name in ("tree", "gbt") else [name]
    for name in out:
        get_model(name)  # an unknown name fails now, listing the known ones
    return out


def level_pairs(
    model: str, image_levels: list[int], spectrum_levels: list[int], diagonal: bool = False
) -> list[tuple]:
    """The (image zoom, spectrum zoom) pairs a model is trained at (None for a modality it ignores):
    the whole grid, or with ``diagonal`` only the matched levels (64 px with 4620 samples, ...)."""
    spec = get_model(model)
    img = [z for z in image_levels if image_size(z) >= spec.min_image_px] if spec.uses_images else [None]
    spe = spectrum_levels if spec.uses_spectra else [None]
    pairs = [(i, s) for i in img for s in spe]
    if diagonal and spec.uses_images and spec.uses_spectra:
        pairs = [(i, s) for i, s in pairs if i == s]
    return pairs


def prepare(
    cube: Path,
    catalog: pd.DataFrame,
    work: Path,
    image_levels: list[int],
    spectrum_levels: list[int],
    pca: dict,
) -> tuple[Path, dict]:
    """Ingest, filter, deblend and PCA at every level; the seconds, objects/s and peak MB of each."""
    stages: dict = {}
    n = sfrdask.open_hisscube(cube, image_zoom=image_levels[0], spectrum_zoom=spectrum_levels[0]).sizes[
        "object"
    ]
    for z in image_levels:
        drop_page_cache()
        with measured(stages, f"read/image/{z}", n):
            ds = sfrdask.open_hisscube(cube, image_zoom=z, spectrum_zoom=spectrum_levels[0])
            dask.compute(ds.image.data.sum(), ds.image_error.data.sum())
    for z in spectrum_levels:
        drop_page_cache()
        with measured(stages, f"read/spectrum/{z}", n):
            ds = sfrdask.open_hisscube(cube, image_zoom=image_levels[0], spectrum_zoom=z)
            dask.compute(ds.spectrum.data.sum(), ds.spectrum_error.data.sum())
    store = work / "store.zarr"
    with measured(stages, "ingest/all", n):
        sfrdask.write_store(cube, store, catalog=catalog, image_zooms=image_levels,
                            spectrum_zooms=spectrum_levels, overwrite=True)  # fmt: skip
    with measured(stages, "filter", n):
        select_objects(store)
    selected = len(selected_objects(store))
    for z in image_levels:
        with measured(stages, f"deblend/image/{z}", selected):
            deblend_store(store, z)
    for modality, levels in (("image", image_levels), ("spectrum", spectrum_levels)):
        for z in levels:
            with measured(stages, f"pca/{modality}/{z}", selected):
                fit_pca_store(store, modality, z, n_components=pca[modality], progress=False)
    return store, stages


def pipeline_seconds(model: str, zi: int | None, zs: int | None, stages: dict, train_s: float) -> float:
    """Seconds of everything ``model`` needs at (zi, zs): its reads, filter, deblend, PCA, training."""
    spec = get_model(model)
    t = stages["filter"]["seconds"] + train_s
    if zi is not None:
        t += stages[f"read/image/{zi}"]["seconds"] + stages[f"deblend/image/{zi}"]["seconds"]
        t += stages[f"pca/image/{zi}"]["seconds"] if "image_pca" in spec.inputs else 0
    if zs is not None:
        t += stages[f"read/spectrum/{zs}"]["seconds"]
        t += stages[f"pca/spectrum/{zs}"]["seconds"] if "spectrum_pca" in spec.inputs else 0
    return t


def finished(work: Path) -> dict[tuple, dict]:
    """The trainings recorded in work/done.jsonl, by (model, image zoom, spectrum zoom, seed)."""
    done_file = work / "done.jsonl"
    done = {}
    if done_file.exists():
        for line in done_file.read_text().splitlines():
            r = json.loads(line)
            done[(r["model"], r["image_zoom"], r["spectrum_zoom"], r.get("seed", 0))] = r
    return done


def run_grid(
    store: Path, work: Path, models: list[str], pairs: dict, stages: dict, args: argparse.Namespace
) -> list:
    """Train every model at its level pairs (resuming from work/done.jsonl); one record per training."""
    done_file = work / "done.jsonl"
    done = finished(work)
    selected = len(selected_objects(store))
    seeds = [int(x) for x in str(args.train_seeds).split(",")]
    # seed by seed: a study stopped early still covers every model and level pair with its first seeds
    todo = [(m, zi, zs, seed) for seed in seeds for m in models for zi, zs in pairs[m]]
    rows = []
    for k, (m, zi, zs, seed) in enumerate(todo, 1):
        if (m, zi, zs, seed) in done:
            rows.append(done[(m, zi, zs, seed)])
            continue
        rec: dict = {}
        with measured(rec, "train"):
            r = train(store, m, zi, zs, ranks=args.ranks, out=work / "runs", epochs=args.epochs,
                      batch_size=args.batch_size, seed=seed, progress=False)  # fmt: skip
        row = {
            "model": m,
            "seed": seed,
            "image_zoom": zi,
            "spectrum_zoom": zs,
            "image_px": image_size(zi) if zi is not None else None,
            "spectrum_samples": spectrum_samples(zs) if zs is not None else None,
            **{k: float(r["metrics"][k]) for k in METRICS},
            "n_train": r["n_train"],
            "n_test": r["n_test"],
            "epochs": r.get("epochs"),
            "train_samples_per_s": float(r["train_samples_per_s"]),
            "inference_samples_per_s": float(r["inference_samples_per_s"]),
            "train_seconds": rec["train"]["seconds"],
            "train_peak_mb": rec["train"]["peak_mb"],
        }
        row["end_to_end_objects_per_s"] = selected / pipeline_seconds(m, zi, zs, stages, row["train_seconds"])
        rows.append(row)
        with done_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{k}/{len(todo)}] {m} image {zi} spectrum {zs} seed {seed}: R^2 {row['r2']:.3f}, "
              f"{row['train_samples_per_s']:.0f} train samples/s", flush=True)  # fmt: skip
    return rows


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both x and y (higher is better), by x."""
    keep = [i for i in range(len(x)) if not np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))]
    return np.array(sorted(keep, key=lambda i: x[i]), dtype=int)


def _label(r: pd.Series) -> str:
    lv = [
        f"{int(r.image_px)}px" if pd.notna(r.image_px) else "",
        f"{int(r.spectrum_samples)}" if pd.notna(r.spectrum_samples) else "",
    ]
    return f"{r.model} {'/'.join(v for v in lv if v)}"


def plot_heatmaps(df: pd.DataFrame, image_levels: list[int], spectrum_levels: list[int], out: Path) -> Path:
    """Mean R^2 over the seeds per model over image level (rows) x spectrum level (columns); one
    panel per model."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(df.model))
    ncol = min(3, len(models))
    nrow = -(-len(models) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.2 * ncol, 3.6 * nrow), squeeze=False, layout="constrained"
    )
    lo, hi = float(df.r2.min()), float(df.r2.max())
    for ax, m in zip(axes.flat, models, strict=False):
        sub = df[df.model == m]
        rows = image_levels if sub.image_zoom.notna().any() else [None]
        cols = spectrum_levels if sub.spectrum_zoom.notna().any() else [None]
        grid = np.full((len(rows), len(cols)), np.nan)
        sub = sub.groupby(["image_zoom", "spectrum_zoom"], dropna=False, as_index=False).r2.mean()
        for _, r in sub.iterrows():
            i = rows.index(None if pd.isna(r.image_zoom) else int(r.image_zoom))
            j = cols.index(None if pd.isna(r.spectrum_zoom) else int(r.spectrum_zoom))
            grid[i, j] = r.r2
        im = ax.imshow(grid, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < (lo + hi) / 2 else "k")
        ax.set_xticks(range(len(cols)), [str(spectrum_samples(z)) if z is not None else "-" for z in cols])
        ax.set_yticks(range(len(rows)), [f"{image_size(z)} px" if z is not None else "-" for z in rows])
        ax.set(xlabel="spectrum samples", ylabel="image size", title=m)
    for ax in axes.flat[len(models) :]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="R$^2$ (test split, mean over seeds)")
    return save_figure(fig, out)


def plot_pareto(df: pd.DataFrame, out: Path, ceilings: dict | None = None) -> Path:
    """Mean R^2 over seeds (``over_seeds``; error bars: their standard deviation) against end-to-end
    objects/s and against inference samples/s, Pareto fronts marked, the survey's ceilings (R^2 by
    name) as horizontal lines."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    for ax, col, name in ((axes[0], "end_to_end_objects_per_s", "end-to-end objects/s (read .. train)"),
                          (axes[1], "inference_samples_per_s", "inference samples/s")):  # fmt: skip
        for m in dict.fromkeys(df.model):
            sub = df[df.model == m]
            ax.errorbar(sub[col], sub.r2, yerr=sub.r2_std.fillna(0), fmt="o", ms=4, capsize=2, label=m)
        front = df.iloc[pareto_front(df[col].to_numpy(float), df.r2.to_numpy(float))]
        ax.plot(front[col], front.r2, "k--", lw=1, label="Pareto front")
        for (ceiling, r2), ls in zip((ceilings or {}).items(), (":", "-."), strict=False):
            ax.axhline(r2, color="0.4", ls=ls, lw=1, label=f"{ceiling} (R$^2$ {r2:.3f})")
        for _, r in front.iterrows():
            ax.annotate(_label(r), (r[col], r.r2), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set(xscale="log", xlabel=name, ylabel="R$^2$ (test split; mean and std over seeds)")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Throughput against accuracy at every resolution level")
    return save_figure(fig, out)


def over_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model and levels: mean R^2 (and its standard deviation over the seeds), mean
    MSE, epochs and speeds."""
    keys = ["model", "image_px", "spectrum_samples"]
    g = df.groupby(keys, dropna=False, sort=False)
    out = g.agg(seeds=("r2", "size"), r2=("r2", "mean"), r2_std=("r2", "std"), mse=("mse", "mean"),
                epochs=("epochs", "mean"), end_to_end_objects_per_s=("end_to_end_objects_per_s", "mean"),
                inference_samples_per_s=("inference_samples_per_s", "mean"))  # fmt: skip
    return out.reset_index()


def mean_std(mean: float, std: float, seeds: int) -> str:
    """``0.732 +- 0.004``; the mean alone for a single seed (no spread to give)."""
    return f"{mean:.3f} +- {std:.3f}" if seeds > 1 else f"{mean:.3f}"


def by_level(df: pd.DataFrame) -> list[dict]:
    """One row per model, one column per level (64 px / 4620 samples, ...): mean R^2 +- standard
    deviation over the seeds (and how many seeds), at matched levels or the one modality it reads."""
    zoom = df.image_zoom.where(df.image_zoom.notna(), df.spectrum_zoom)
    matched = df.image_zoom.isna() | df.spectrum_zoom.isna() | (df.image_zoom == df.spectrum_zoom)
    sub = df[matched].assign(level=zoom[matched].astype(int))
    levels = sorted(sub.level.unique())
    names = {z: f"{image_size(z)} px / {spectrum_samples(z)}" for z in levels}
    rows = []
    for m, g in sub.groupby("model", sort=False):
        cells = g.groupby("level").r2.agg(["mean", "std", "size"])
        row = {"model": m}
        for z in levels:
            if z in cells.index:
                c = cells.loc[z]
                row[names[z]] = f"{mean_std(c['mean'], c['std'], int(c['size']))} ({int(c['size'])})"
            else:
                row[names[z]] = "-"
        rows.append(row)
    return rows


def write_report(df: pd.DataFrame, stages: dict, out: Path, head: dict) -> None:
    """study.md: the data, the per-stage table, the R^2 grids and the Pareto front."""
    st = [{"stage": k, **v} for k, v in stages.items()]
    parts = [f"# Resolution study\n\n{json.dumps(head)}\n\n## Stages\n\n" + markdown(st)]
    for m in dict.fromkeys(df.model):
        sub = df[df.model == m]
        if sub.image_zoom.notna().any() and sub.spectrum_zoom.notna().any():
            g = sub.pivot_table(index="image_px", columns="spectrum_samples", values="r2").sort_index(
                ascending=False
            )
            g = g[sorted(g.columns, reverse=True)]
            rows = [
                {"image px": int(i), **{str(int(c)): float(v) for c, v in r.items()}} for i, r in g.iterrows()
            ]
            parts.append(f"## {m}: R^2, image level (rows) x spectrum level (columns)\n\n" + markdown(rows))
    mean = over_seeds(df)
    parts.append(
        "## R^2 by level: mean +- standard deviation over the seeds (seeds)\n\n"
        "Matched levels for two-modality models; one modality's level for the others.\n\n"
        + markdown(by_level(df))
    )
    parts.append(
        "## Mean +- standard deviation over the seeds (test split)\n\n"
        + markdown([{**r, "r2": mean_std(r["r2"], r["r2_std"], r["seeds"])} for r in mean.to_dict("records")])
    )
    cols = ["model", "seed", "image_px", "spectrum_samples", *METRICS, "epochs", "train_samples_per_s",
            "inference_samples_per_s", "end_to_end_objects_per_s", "train_peak_mb"]  # fmt: skip
    parts.append("## Every training\n\n" + markdown(df.reindex(columns=cols).to_dict("records")))
    front = mean.iloc[pareto_front(mean.end_to_end_objects_per_s.to_numpy(float), mean.r2.to_numpy(float))]
    parts.append(
        "## Pareto front: end-to-end objects/s against mean R^2\n\n" + markdown(front.to_dict("records"))
    )
    write_text(out, "\n".join(parts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cube", type=Path, help="a HiSS-Cube file (default: make a synthetic survey)")
    p.add_argument("--catalog", type=Path, help="directory of the MPA-JHU catalogues (with --cube)")
    p.add_argument("--objects", type=int, default=8000, help="synthetic survey size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--flag0-fraction", type=float, default=0.55, help="synthetic: share with FLAG == 0")
    p.add_argument(
        "--models", default=DEFAULT_MODELS, help="comma-separated; tree/gbt = -image, -spectrum, -both"
    )
    p.add_argument("--image-levels", default="0,1,2,3")
    p.add_argument("--spectrum-levels", default="0,1,2,3")
    p.add_argument("--epochs", type=int, default=None, help="default: sfrdask.train.epochs")
    p.add_argument("--train-seeds", default="0,1,2", help="every model trains once per seed")
    p.add_argument(
        "--pairs",
        choices=("grid", "diagonal"),
        default="grid",
        help="two-modality models over the whole 4 x 4 grid, or at matched levels only (a quarter of it)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: sfrdask.train.batch-size")
    p.add_argument("--ranks", type=int, default=None, help="DDP ranks on the cluster (default: train here)")
    p.add_argument("--cluster", default=None, help="local, slurm or a scheduler address (default: config)")
    p.add_argument("--out", type=Path, default=Path("bench-output/resolution"))
    p.add_argument("--fresh", action="store_true", help="forget finished trainings and prepared data")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="tables and plots of the trainings finished so far (any levels and seeds), training nothing",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny survey, 2 x 2 levels, 2 models: checks the script"
    )
    args = p.parse_args()
    pca = {
        "image": config.get("preprocess.pca.image-components"),
        "spectrum": config.get("preprocess.pca.spectrum-components"),
    }
    if args.quick:
        args.objects, args.models, args.epochs, args.batch_size = 96, "tree,early-fusion", 2, 16
        args.train_seeds = "0,1"
        args.image_levels, args.spectrum_levels, args.cluster, pca = (
            "2,3",
            "2,3",
            "threads",
            {"image": 8, "spectrum": 8},
        )
    image_levels = [int(z) for z in args.image_levels.split(",")]
    spectrum_levels = [int(z) for z in args.spectrum_levels.split(",")]
    models = expand_models(args.models)
    pairs = {m: level_pairs(m, image_levels, spectrum_levels, args.pairs == "diagonal") for m in models}
    work = args.out / "work"
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    config.validate()
    with sfrdask.cluster(args.cluster or config.get("cluster.kind")):
        if args.cube is None:
            head = {
                "data": "synthetic",
                "objects": args.objects,
                "seed": args.seed,
                "flag0_fraction": args.flag0_fraction,
            }
            params = SynthParams(flag0_fraction=args.flag0_fraction)
            cube = work / "survey" / "survey.h5"
            if not cube.exists():
                cube = sfrdask.make_survey(
                    work / "survey", objects=args.objects, seed=args.seed, params=params,
                    progress=not args.quick, overwrite=True,
                )  # fmt: skip
            catalog = sfrdask.read_catalog_dir(cube.parent)
        else:
            if args.catalog is None:
                p.error("--cube needs --catalog (the MPA-JHU catalogue directory)")
            head = {"data": str(args.cube), "catalog": str(args.catalog)}
            cube, catalog = args.cube, sfrdask.read_catalog_dir(args.catalog)
        stage_file = work / "stages.json"
        if args.report_only and not stage_file.exists():
            p.error(f"--report-only: {stage_file} is missing; run the study first")
        if stage_file.exists() and (work / "store.zarr").exists():
            store, stages = work / "store.zarr", json.loads(stage_file.read_text())
        else:
            store, stages = prepare(cube, catalog, work, image_levels, spectrum_levels, pca)
            write_json(stage_file, stages)
        if args.report_only:
            rows = [r for k, r in finished(work).items() if k[0] in models]
        else:
            rows = run_grid(store, work, models, pairs, stages, args)
    limits = {c["model"]: round(c["metrics"]["r2"], 4) for c in ceilings(store, "AVG")}  # R^2 (synthetic)
    head.update(selected=len(selected_objects(store)), epochs=args.epochs or config.get("train.epochs"),
                machine=machine(), pca_components=pca, pairs=args.pairs,
                train_seeds=",".join(str(s) for s in sorted({r["seed"] for r in rows})),
                ceilings=limits)  # fmt: skip
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "study.csv", df.to_csv(index=False))
    write_text(
        args.out / "stages.csv",
        pd.DataFrame([{"stage": k, **v} for k, v in stages.items()]).to_csv(index=False),
    )
    write_json(args.out / "study.json", {**head, "stages": stages, "rows": rows})
    write_report(df, stages, args.out / "study.md", head)
    plot_heatmaps(df, image_levels, spectrum_levels, args.out / "r2_heatmap.png")
    plot_pareto(over_seeds(df), args.out / "pareto.png", limits)
    print((args.out / "study.md").read_text())
    if args.quick:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

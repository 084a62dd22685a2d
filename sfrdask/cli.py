"""The ``sfrdask`` command: one subcommand per stage.

Bad input ends with one line naming the file and what was expected, and exit status 2;
nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import dask

from sfrdask import config
from sfrdask.errors import SfrdaskError


def _levels(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated zoom levels like 0,1,2,3, got {text!r}"
        ) from None
    if any(not 0 <= z <= 3 for z in out):
        raise argparse.ArgumentTypeError(f"zoom levels are 0..3, got {text!r}")
    return out


def _add_catalog_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--catalog", type=Path, help="directory holding the MPA-JHU DR7 FITS tables (standard names)"
    )
    p.add_argument("--gal-info", type=Path, help="gal_info table (overrides --catalog)")
    p.add_argument("--totsfr", type=Path, help="gal_totsfr table (overrides --catalog)")
    p.add_argument("--totlgm", type=Path, help="totlgm (stellar mass) table, optional")


def _catalog(args: argparse.Namespace):
    from sfrdask.io.catalog import find_catalogs, read_mpajhu

    paths = {"gal_info": None, "totsfr": None, "totlgm": None}
    if args.catalog:
        paths.update(find_catalogs(args.catalog))
    for k in paths:
        if getattr(args, k, None):
            paths[k] = getattr(args, k)
    if paths["gal_info"] is None and paths["totsfr"] is None:
        return None
    if paths["gal_info"] is None or paths["totsfr"] is None:
        raise SfrdaskError(
            "both a gal_info and a gal_totsfr table are needed (--catalog DIR or --gal-info/--totsfr)"
        )
    return read_mpajhu(paths["gal_info"], paths["totsfr"], paths["totlgm"])


def cmd_synth(args: argparse.Namespace) -> int:
    import dataclasses

    from sfrdask.synth import make_survey
    from sfrdask.synth.survey import params_from_config

    params = params_from_config()
    if args.flag0_fraction is not None:
        params = dataclasses.replace(params, flag0_fraction=args.flag0_fraction)
    t0 = time.perf_counter()
    with _stage_cluster(args):
        cube = make_survey(
            args.out,
            objects=args.objects,
            seed=args.seed,
            params=params,
            overwrite=args.overwrite,
            compression=args.compression,
        )
    dt = time.perf_counter() - t0
    meta = json.loads((cube.parent / "survey.json").read_text())
    print(
        f"wrote {cube} ({meta['objects']} objects, {meta['spectra']} spectra, {meta['flag0_objects']} with "
        f"FLAG == 0) in {dt:.1f} s: {meta['objects'] / dt:.1f} objects/s"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from sfrdask.io.catalog import join_labels, label_coverage
    from sfrdask.io.hisscube import describe, open_hisscube, read_target_metadata

    cat = _catalog(args)  # validate the small inputs before reading the cube
    meta = read_target_metadata(args.cube)  # every target's headers, read once for all that follows
    info = describe(args.cube, metadata=meta)
    if cat is not None:
        ds = join_labels(open_hisscube(args.cube, metadata=meta), cat)
        info["labels"] = label_coverage(ds, cat)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['file']}  ({info['size_mb']} MB)")
    print(
        f"  targets {info['targets']}, spectra {info['spectrum_count']}, frames {info['image_count']}, "
        f"up to {info.get('spectra_per_target_max', '?')} spectra per target"
    )
    print(
        f"  zoom levels {info['zoom_levels']}; stored band order {info.get('stored_band_order', '?')} "
        "(mapped to u,g,r,i,z through the frame FILTER headers)"
    )
    for z, lv in info["levels"].items():
        print(
            f"  zoom {z}: image {lv['image']} (NaN {lv['image_nan_fraction']:.2%}), "
            f"spectrum {lv['spectrum']} (NaN {lv['spectrum_nan_fraction']:.2%})"
        )
    if "labels" in info:
        lb = info["labels"]
        print(
            f"  labels: {lb['matched']} of {lb['objects']} objects matched the catalogue, "
            f"{lb['flag0_objects']} with FLAG == 0; catalogue: {lb['catalog_rows']} rows, "
            f"{lb['catalog_flag0_rows']} with FLAG == 0"
        )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from sfrdask.io.store import write_store

    cat = _catalog(args)
    t0 = time.perf_counter()
    with _stage_cluster(args):
        out = write_store(
            args.cube,
            args.out,
            catalog=cat,
            image_zooms=args.image_zooms,
            spectrum_zooms=args.spectrum_zooms,
            overwrite=args.overwrite,
        )
    dt = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MB on disk) in {dt:.1f} s")
    return 0


def cmd_build_cube(args: argparse.Namespace) -> int:
    from sfrdask.io.fits import build_cube

    t0 = time.perf_counter()
    with _stage_cluster(args):
        r = build_cube(args.frames, args.spectra, args.out, match_arcsec=args.match_arcsec, batch=args.batch,
                       overwrite=args.overwrite)  # fmt: skip
    f, s, t = r["frames"], r["spectra"], r["targets"]
    print(f"frames: {f['usable']} of {f['found']} usable; spectra: {s['usable']} of {s['found']} usable")
    for path, why in {**f["rejected"], **s["rejected"]}.items():
        print(f"  rejected {path}: {why}")
    for path, why in {**f["skipped"], **s["skipped"]}.items():
        print(f"  skipped {path}: {why}")
    print(
        f"targets: {t['found']} found, {t['written']} written, "
        f"{t['outside_every_frame']} outside every frame, {t['missing_bands']} without all five bands"
    )
    print(f"wrote {args.out} and {args.out}.build.json in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_scene(args: argparse.Namespace) -> int:
    from sfrdask.scene import run_scene

    models = [m.strip() for m in args.models.split(",")] if args.models else None
    with _stage_cluster(args):
        r = run_scene(args.data, out=args.out, models=models, size=args.size, epochs=args.epochs,
                      seed=args.seed, image_column=args.image_column)  # fmt: skip
    print(f"split (fixed, by file name): {r['split']}")
    print((Path(args.out) / "results.md").read_text(), end="")
    print(f"wrote {args.out}/results.{{csv,json,md}} and confusion_CLASS1.png, confusion_CLASS2.png")
    return 0


def cmd_scene_synth(args: argparse.Namespace) -> int:
    from sfrdask.scene import make_scene

    out = make_scene(args.out, objects=args.objects, seed=args.seed, size=args.size, overwrite=args.overwrite)
    print(f"wrote {out}/dataset.csv and {args.objects} frames in {out}/<environment>/")
    return 0


def cmd_plot_labels(args: argparse.Namespace) -> int:
    from sfrdask.io.catalog import resolve_label
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_label_distribution

    ds = open_store(args.store, image_zoom=None, spectrum_zoom=None)
    label = resolve_label(args.label)
    if label not in ds:
        raise SfrdaskError(f"{args.store}: no label column {label} (was the store ingested with --catalog?)")
    out = plot_label_distribution(ds, args.out, label)
    print(f"wrote {out}")
    return 0


def _stage_cluster(args: argparse.Namespace):
    """The cluster for a stage: the one already running (inside ``preprocess``), or a new one."""
    import contextlib

    from sfrdask.cluster import active_client, cluster

    if active_client() is not None:
        return contextlib.nullcontext(active_client())
    return cluster(getattr(args, "cluster", None))


def cmd_filter(args: argparse.Namespace) -> int:
    from sfrdask.preprocess import select_objects

    with _stage_cluster(args):
        sel = select_objects(
            args.store,
            flag=args.flag,
            max_bad_fraction=args.max_bad_fraction,
            classes=args.classes.split(",") if args.classes else None,
        )
    print(f"selection written to {args.store}/selection: {sel.attrs['counts']}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from sfrdask.io.catalog import resolve_label
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_label_distribution
    from sfrdask.preprocess import label_statistics
    from sfrdask.preprocess.quality import selected_objects

    label = resolve_label(args.label)
    table = label_statistics(args.store, label)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "label_stats.csv")
    (args.out / "label_stats.md").write_text(
        table.round(3).to_markdown() if _has_tabulate() else table.to_string()
    )
    root = open_store(args.store, image_zoom=None, spectrum_zoom=None).isel(
        object=selected_objects(args.store)
    )
    png = plot_label_distribution(root, args.out / "label_distribution.png", label)
    print(table.round(3).to_string())
    print(f"wrote {args.out / 'label_stats.csv'} and {png}")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_deblend(args: argparse.Namespace) -> int:
    from sfrdask.io.store import store_levels

    zooms = args.zooms or store_levels(args.store)["image"]
    with _stage_cluster(args):
        for z in zooms:
            g = run_deblend(args.store, z, args)
            print(
                f"clean/{z}: {g.attrs['central_found']} of {g.attrs['objects']} central objects found "
                f"(strategy {g.attrs['strategy']})"
            )
    return 0


def run_deblend(store: Path, zoom: int, args: argparse.Namespace):
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_deblend_montage
    from sfrdask.preprocess import deblend_store

    g = deblend_store(store, zoom, strategy=args.strategy)
    if args.plots:
        found = g.central_found.values
        busy = found & (g.n_sources.values > 1)
        pick = list(map(int, g.object.values[busy][:8])) or list(map(int, g.object.values[found][:8]))
        raw = open_store(store, image_zoom=zoom, spectrum_zoom=None).image.sel(object=pick).values
        sub = g.sel(object=pick)
        plot_deblend_montage(
            raw,
            sub.image.values,
            sub.mask.values,
            args.plots / f"deblend_zoom{zoom}.png",
            [f"obj {o}" for o in pick],
        )
    return g


def cmd_pca(args: argparse.Namespace) -> int:
    from sfrdask.io.store import store_levels
    from sfrdask.preprocess.pca import explained_variance_plot, fit_pca_store

    levels = store_levels(args.store)
    fitted = {}
    with _stage_cluster(args):
        for modality in args.modalities.split(","):
            for z in args.zooms or levels[modality]:
                g = fit_pca_store(args.store, modality, z, n_components=args.components, source=args.source)
                fitted[f"{modality} zoom {z}"] = g
                r = g["explained_variance_ratio"].values
                print(
                    f"pca/{modality}/{z}: {r.size} components explain {r.sum():.1%} of the training variance "
                    f"({g.attrs['n_train']} training objects, input {g.attrs['source']})"
                )
    if args.plots and fitted:
        print(f"wrote {explained_variance_plot(fitted, args.plots / 'pca_explained_variance.png')}")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """filter -> stats -> deblend (every image level) -> PCA (every level, both modalities)."""
    args.plots = args.out
    args.out.mkdir(parents=True, exist_ok=True)
    with _stage_cluster(args):
        for fn in (cmd_filter, cmd_stats, cmd_deblend, cmd_pca):
            fn(args)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from sfrdask.models import list_models

    print(f"{'model':<26} {'family':<7} {'task':<14} {'inputs':<26} {'min px':>6}  description")
    for m in list_models(task=None):
        print(
            f"{m.name:<26} {m.family:<7} {m.task:<14} {','.join(m.inputs):<26} {m.min_image_px:>6}  "
            f"{m.description}"
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import contextlib

    from sfrdask.cluster import active_client, cluster
    from sfrdask.models import get_model
    from sfrdask.train import train

    names = [m.strip() for m in args.model.split(",") if m.strip()]
    for name in names:
        get_model(name)  # refuse an unknown name before any work
    overrides = {
        "target": args.target,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "resume": args.resume,
        "device": args.device,
    }
    ctx = contextlib.nullcontext()
    if args.ranks and active_client() is not None:
        ctx = contextlib.nullcontext(active_client())
    elif args.ranks:  # one single-thread worker per rank at least
        kind = args.cluster or config.get("cluster.kind")
        sizes = {
            "local": {"n_workers": max(args.ranks, int(config.get("cluster.local.n-workers")))},
            "slurm": {"jobs": max(args.ranks, int(config.get("cluster.slurm.jobs")))},
        }
        ctx = cluster(kind, **sizes.get(kind, {}))
    with ctx:
        for name in names:
            r = train(
                args.store,
                name,
                args.image_zoom,
                args.spectrum_zoom,
                ranks=args.ranks,
                out=args.out,
                **overrides,
            )
            m = r["metrics"]
            print(
                f"{name}: test R^2 {m['r2']:.3f}, RMSE {m['rmse']:.3f}, MAE {m['mae']:.3f} "
                f"(n = {m['n']}; {r['seconds']:.1f} s)",
                flush=True,
            )
    print((args.out / "results.md").read_text())
    print(f"results: {args.out / 'results.csv'} (and .json, .md); per-model outputs under {args.out}/MODEL/")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sfrdask.train import evaluate

    r = evaluate(args.run, args.store, split=args.split)
    m = r["metrics"]
    print(
        f"{r['model']} (image zoom {r['image_zoom']}, spectrum zoom {r['spectrum_zoom']}, "
        f"target {r['target']}) "
        f"on the {args.split} split of {args.store}: MSE {m['mse']:.4f}, RMSE {m['rmse']:.4f}, "
        f"MAE {m['mae']:.4f}, R^2 {m['r2']:.4f} (n = {m['n']})"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sfrdask.stages.predict import PredictParams, run

    params = PredictParams(
        runs=tuple(str(r) for r in args.runs),
        out=str(args.out),
        cube=None if args.cube is None else str(args.cube),
        catalog=None if args.catalog is None else str(args.catalog),
        store=None if args.store is None else str(args.store),
        overwrite=args.overwrite,
    )
    with _stage_cluster(args) as client:
        r = run(client, params)
    test = r.calibration[(r.calibration["group"] == "all")]
    print(test.round(3).to_string(index=False))
    print(f"wrote {r.catalogue} ({r.rows} objects, {r.objects_per_s:.0f} objects/s)")
    for path in (*r.reports, *([r.main_sequence] if r.main_sequence else [])):
        print(f"wrote {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sfrdask.pipeline import run_pipeline

    run = run_pipeline(args.config, run_dir=args.run_dir, force=args.force)
    results = run / "runs" / "results.md"
    if results.exists():
        print(results.read_text())
    print(f"run directory: {run} (config.yaml, run.log, stages/, reports/, plots/, runs/)")
    if (run / "runs" / "calibration.md").exists():
        print(f"interval calibration per model: {run / 'runs' / 'calibration.md'}")
    return 0


def _zoom(text: str) -> int:
    z = _levels(text)
    if len(z) != 1:
        raise argparse.ArgumentTypeError(f"expected one zoom level 0..3, got {text!r}")
    return z[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfrdask", description="Star formation rates from SDSS images and spectra"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    clusters = ["local", "slurm", "threads", "synchronous"]

    s = sub.add_parser("synth", help="write a synthetic SDSS survey (HiSS-Cube file + MPA-JHU catalogues)")
    s.add_argument("--objects", type=int, default=config.get("synth.objects"))
    s.add_argument("--seed", type=int, default=config.get("synth.seed"))
    s.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    s.add_argument(
        "--flag0-fraction",
        type=float,
        default=None,
        help="share of objects with FLAG == 0 labels (default 0.07 as in the real data; "
        "up to 0.55 keeps 10 galaxies per quasar)",
    )
    s.add_argument("--compression", choices=["gzip", "lzf"], default=None, help="HDF5 filter (default: none)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--cluster", choices=clusters, default=None)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("info", help="describe a HiSS-Cube file: levels, counts, band order, NaN, labels")
    s.add_argument("cube", type=Path)
    _add_catalog_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("ingest", help="convert a HiSS-Cube file (+ labels) to a zarr v3 store")
    s.add_argument("cube", type=Path)
    s.add_argument("--out", type=Path, required=True)
    _add_catalog_args(s)
    s.add_argument("--image-zooms", type=_levels, default=[0, 1, 2, 3])
    s.add_argument("--spectrum-zooms", type=_levels, default=[0, 1, 2, 3])
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--cluster", choices=clusters, default=None)
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("build-cube", help="build a HiSS-Cube file from SDSS frame and spectrum FITS files")
    s.add_argument("--frames", type=Path, required=True, help="directory of frame-*.fits[.bz2]")
    s.add_argument("--spectra", type=Path, required=True, help="directory of spec-PLATE-MJD-FIBER.fits")
    s.add_argument("--out", type=Path, required=True, help="the HiSS-Cube file to write")
    s.add_argument("--match-arcsec", type=float, default=3.0, help="spectra this close are one target")
    s.add_argument("--batch", type=int, default=256, help="targets extracted per batch (bounds memory)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--cluster", choices=clusters, default=None)
    s.set_defaults(func=cmd_build_cube)

    s = sub.add_parser("scene", help="the Scene experiment: audio (MFCC) + frame classification, fused")
    s.add_argument(
        "--data", type=Path, required=True, help="directory with dataset.csv and the image folders"
    )
    s.add_argument("--out", type=Path, default=Path("scene-output"))
    s.add_argument("--models", default=None, help="comma-separated (default: every scene-* model)")
    s.add_argument("--size", type=int, default=32, help="frames resized to SIZE x SIZE px")
    s.add_argument("--epochs", type=int, default=40)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-column", default=None, help="the dataset.csv column naming each frame's file")
    s.add_argument("--cluster", choices=clusters, default=None)
    s.set_defaults(func=cmd_scene)

    s = sub.add_parser("scene-synth", help="write the synthetic stand-in for the Scene data set")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--objects", type=int, default=800)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_scene_synth)

    s = sub.add_parser("plot-labels", help="plot the label distribution of a store (PNG)")
    s.add_argument("store", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--label", default="AVG", help="AVG (alias AVR), or another catalogue column")
    s.set_defaults(func=cmd_plot_labels)

    def stage(name: str, helptext: str, func) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=helptext)
        s.add_argument("store", type=Path)
        s.add_argument("--cluster", choices=clusters, default=None)
        s.set_defaults(func=func)
        return s

    def filter_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--flag", type=int, default=None, help="keep rows with this FLAG (default 0)")
        s.add_argument("--max-bad-fraction", type=float, default=None)
        s.add_argument("--classes", default=None, help="comma-separated, default GALAXY,QSO")

    def deblend_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--strategy", choices=["none", "crop", "mask", "noise"], default=None)

    def pca_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--modalities", default="image,spectrum")
        s.add_argument("--components", type=int, default=None, help="default 100 (image) / 50 (spectrum)")
        s.add_argument(
            "--source",
            choices=["auto", "clean", "raw"],
            default="auto",
            help="images: deblended cutouts when present (auto), or raw",
        )

    s = stage(
        "filter", "select objects (FLAG, class, bad pixels) and assign train/validation/test", cmd_filter
    )
    filter_args(s)
    s = stage("stats", "statistics and plots of the label over the selection", cmd_stats)
    s.add_argument("--out", type=Path, required=True, help="directory for tables and PNGs")
    s.add_argument("--label", default="AVG")
    s = stage("deblend", "isolate the central object of every selected cutout (sep)", cmd_deblend)
    s.add_argument("--zooms", type=_levels, default=None, help="image levels (default: all in the store)")
    s.add_argument("--plots", type=Path, default=None, help="directory for before/after montages")
    deblend_args(s)
    s = stage("pca", "standardise + incremental PCA fitted on the training split", cmd_pca)
    s.add_argument("--zooms", type=_levels, default=None, help="levels (default: all in the store)")
    s.add_argument("--plots", type=Path, default=None)
    pca_args(s)
    s = stage("preprocess", "filter, stats, deblend and PCA in one go", cmd_preprocess)
    s.add_argument("--out", type=Path, required=True, help="directory for tables and PNGs")
    s.add_argument("--label", default="AVG")
    s.set_defaults(zooms=None)
    filter_args(s)
    deblend_args(s)
    pca_args(s)

    s = sub.add_parser("run", help="run every stage described by a YAML run file (resumes; see configs/)")
    s.add_argument("config", type=Path)
    s.add_argument("--run-dir", type=Path, default=None, help="overrides the file's run-dir")
    s.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("models", help="list the models the registry knows")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("train", help="train models on a preprocessed store; results table in --out")
    s.add_argument("--store", type=Path, required=True)
    s.add_argument(
        "--model", required=True, help="a model name, or several separated by commas (sfrdask models)"
    )
    s.add_argument("--image-zoom", type=_zoom, default=None, help="0..3 = 64, 32, 16, 8 px")
    s.add_argument("--spectrum-zoom", type=_zoom, default=None, help="0..3 = 4620, 2310, 1155, 577 samples")
    s.add_argument(
        "--ranks", type=int, default=None, help="DDP ranks, one per Dask worker (default: this process)"
    )
    s.add_argument("--target", default=None, help="AVG (alias AVR, SFR), LGM_AVG (MASS) or SSFR")
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--batch-size", type=int, default=None, help="global batch, split over the ranks")
    s.add_argument("--learning-rate", type=float, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    s.add_argument("--resume", action="store_true", help="continue from OUT/MODEL/.../last.pt")
    s.add_argument("--out", type=Path, default=Path("runs"), help="results directory (default: runs)")
    s.add_argument(
        "--cluster", choices=clusters, default=None, help="with --ranks (default: from the config)"
    )
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "predict", help="SFR catalogue with calibrated intervals for every object of a cube (or store)"
    )
    s.add_argument("runs", type=Path, nargs="+", help="run directories (several: an ensemble)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--cube", type=Path, help="HiSS-Cube file whose objects to predict")
    src.add_argument("--store", type=Path, help="or a zarr store written by sfrdask ingest")
    s.add_argument(
        "--catalog", type=Path, default=None, help="MPA-JHU tables for the cube (labels, Z, CLASS, mass)"
    )
    s.add_argument("--out", type=Path, required=True, help="CATALOGUE.fits, .csv or .parquet")
    s.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    s.add_argument("--cluster", choices=clusters, default=None)
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser(
        "evaluate", help="score a trained model (run directory, best.pt or model.npz) on a store"
    )
    s.add_argument("run", type=Path)
    s.add_argument("--store", type=Path, required=True)
    s.add_argument("--split", choices=["train", "validation", "test"], default="test")
    s.set_defaults(func=cmd_evaluate)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (scancel, kill, a batch system's limit) turned into an exception, so that cleanup
    (temporary outputs, the cluster) runs as it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        config.validate()
        return args.func(args)
    except (SfrdaskError, OSError, ValueError) as e:  # OSError: missing file, full disk, no permission
        print(f"sfrdask {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from distributed import KilledWorker

        if not isinstance(e, KilledWorker):
            raise
        print(
            f"sfrdask {args.command}: error: the workers running task {e.task!r} died "
            f"{dask.config.get('distributed.scheduler.allowed-failures') + 1} times (killed, out of "
            "memory, or a SLURM walltime shorter than the work: raise memory/walltime, or give workers "
            "--lifetime)",
            file=sys.stderr,
        )
        return 2
    except Terminated:
        print(f"sfrdask {args.command}: terminated (SIGTERM); unfinished outputs removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"sfrdask {args.command}: interrupted; unfinished outputs removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

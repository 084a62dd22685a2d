"""The predict stage: an SFR catalogue with calibrated intervals for every object of a cube.

``run(rt, params)`` (``sfrdask predict``, ``sfrdask.predict``, the ``predict`` stage of a run
file) does, for trained runs of any model family:

1. **calibrate** on the runs' training store: predictions for its validation and test splits
   through the same raw-data path as below; normalised split conformal (MAPIE) fitted on the
   validation split, checked on the test split (against the true SFR too, for a synthetic
   survey); a report beside the catalogue (``CATALOGUE.calibration.{csv,md}``) and a reliability /
   PIT plot per model (``CATALOGUE.calibration-MODEL.png``); the run directories are only read;
2. **predict** every object of the input (a HiSS-Cube file with its catalogue, or a store),
   chunk by chunk on the cluster: deblending with the training store's parameters, the stored
   PCA transforms, the checkpoint's normalisation, batched inference; memory bounded by a chunk;
3. **write** the catalogue (:mod:`sfrdask.io.sfr_catalogue`) atomically, and a PNG of predicted
   SFR against stellar mass (the star-forming main sequence) when the catalogue has masses.

Several runs are combined as an ensemble (mean of their predictions, calibrated as one).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.bpt import AGN_CLASSES
from sfrdask.calibration import (
    Calibration,
    coverage_table,
    cross_fitted_intervals,
    difficulty_features,
    fit_calibration,
    reliability_plot,
)
from sfrdask.errors import SfrdaskError
from sfrdask.inference import (
    Preparation,
    TrainedRun,
    check_compatible,
    levels,
    load_run,
    predict_block,
    preparation,
)
from sfrdask.io.sfr_catalogue import BIT, KEYS, ROW_FORMS, check_output, per_spectrum, write_catalogue
from sfrdask.plots import main_sequence_plot
from sfrdask.progress import compute_tasks
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required, setting
from sfrdask.tables import markdown


@dataclass(frozen=True)
class Params:
    """What ``predict`` needs. Defaults of the tunables come from ``sfrdask.predict`` in dask.config."""

    runs: tuple[Path, ...] = required("run directories (several: an ensemble)", positional=True, input=True)
    out: Path = required("CATALOGUE.fits, .csv or .parquet")
    cube: Path | None = option(None, "HiSS-Cube file whose objects to predict", input=True)
    catalog: Path | None = option(None, "MPA-JHU tables for the cube (labels, Z, CLASS, mass)", input=True)
    store: Path | None = option(
        None, "or a zarr store written by sfrdask ingest (instead of --cube)", input=True
    )
    train_store: Path | None = option(
        None, "the runs' training store, when it moved since training (default: where the run recorded it)",
        input=True,
    )
    overwrite: bool = option(False, "replace an existing catalogue")
    chunk_mb: float = setting("predict.chunk-mb", "raw inputs per inference task")
    seed: int = setting("predict.seed", "splits the validation set for the calibration")
    plots: bool = option(True, "reliability, PIT and main-sequence plots")
    rows: str = setting("predict.rows", "spectrum: a row per spectrum (joins MPA-JHU row for row); "
                        "target: a row per cube target", choices=ROW_FORMS)  # fmt: skip

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(Path(r) for r in self.runs))
        if self.rows not in ROW_FORMS:
            raise SfrdaskError(f"predict rows must be one of {', '.join(ROW_FORMS)}, got {self.rows!r}")
        if not self.runs:
            raise SfrdaskError("predict needs at least one run directory")
        if (self.cube is None) == (self.store is None):
            raise SfrdaskError(
                "predict reads either a cube (--cube CUBE.h5 [--catalog DIR]) or a store (--store)"
            )


@dataclass(frozen=True)
class Result:
    """What the stage wrote, and the figures it measured."""

    catalogue: Path
    rows: int
    calibration: pd.DataFrame  # coverage rows of every model (test split, plus the FLAG != 0 check)
    reports: tuple[Path, ...]
    main_sequence: Path | None
    objects_per_s: float
    flags_unavailable: tuple[str, ...] = ()


def _source(params: Params, zi: int | None, zs: int | None) -> xr.Dataset:
    """The input as one lazy Dataset shaped like ``open_store``'s (labels when there are any)."""
    from sfrdask.io.store import open_store

    if params.store is not None:
        return open_store(params.store, image_zoom=zi, spectrum_zoom=zs)
    from sfrdask.io.catalog import join_labels, read_catalog_dir
    from sfrdask.io.hisscube import open_hisscube
    from sfrdask.io.hisscube_meta import read_target_metadata

    meta = read_target_metadata(params.cube, zi or 0, zs or 0)
    ds = open_hisscube(params.cube, zi or 0, zs or 0, metadata=meta)
    if params.catalog is not None:
        ds = join_labels(ds, read_catalog_dir(params.catalog))
    return ds


def _check_levels(ds: xr.Dataset, runs: list[TrainedRun], where: str) -> None:
    present = ds.attrs.get("zoom_levels_present")
    for z, kind in zip(levels(runs), ("image", "spectrum"), strict=True):
        if z is not None and present is not None and z not in list(present):
            raise SfrdaskError(f"{where}: holds no {kind} zoom level {z}, which the runs were trained at")


def _task_bounds(source_chunks: tuple[int, ...], per_object: int, chunk_mb: float) -> list[tuple[int, int]]:
    """Object ranges of the inference tasks: the source's own chunks (each read once, by one
    task), cut further only where a chunk holds more than ``chunk_mb`` of inputs."""
    k = int(max(1, chunk_mb * 2**20 // per_object))
    bounds, a = [], 0
    for size in source_chunks:
        bounds += [(s, min(s + k, a + size)) for s in range(a, a + size, k)]
        a += size
    return bounds


def predictions(
    ds: xr.Dataset, runs: list[TrainedRun], preps: list[Preparation], client: Any, chunk_mb: float, desc: str
) -> pd.DataFrame:
    """Every run's prediction for every object of ``ds``, computed chunk by chunk on the cluster.

    Columns: ``object``, ``pred_{i}`` per run, ``central_found``, ``snr`` (and ``class_{i}``,
    ``upper_{i}`` for physics runs).
    """
    zi, zs = levels(runs)
    arrays = {}
    per_object = 8
    if zi is not None:
        arrays["image"] = ds.image.data
        per_object += ds.image.data[0].nbytes
    if zs is not None:
        arrays["spectrum"], arrays["spectrum_error"] = ds.spectrum.data, ds.spectrum_error.data
        per_object += 2 * ds.spectrum.data[0].nbytes
    n = ds.sizes["object"]
    objects = ds.object.values.astype(np.int64)
    z = ds["Z"].values.astype(np.float64) if "Z" in ds else np.full(n, np.nan)
    classes = _classes(ds)
    models = dask.delayed(runs, traverse=False)
    recipes = dask.delayed(preps, traverse=False)
    tasks = []
    for a, b in _task_bounds(next(iter(arrays.values())).chunks[0], per_object, chunk_mb):
        raw = {name: arr[a:b] for name, arr in arrays.items()}
        raw |= {"object": objects[a:b], "Z": z[a:b], "CLASS": classes[a:b]}
        tasks.append(dask.delayed(predict_block)(dask.delayed(raw), models, recipes))
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "256MB"}):
        parts = compute_tasks(tasks, client, desc) if tasks else []
    cols = ["central_found", "snr", *[f"pred_{i}" for i in range(len(runs))]]
    cols += [c for c in (parts[0] if parts else {}) if c not in cols]  # physics classes
    table = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0) for c in cols}
    return pd.DataFrame({"object": objects, **table})


def _ensemble(table: pd.DataFrame, n_runs: int) -> np.ndarray:
    return table[[f"pred_{i}" for i in range(n_runs)]].to_numpy().mean(axis=1)


def _classes(ds: xr.Dataset) -> np.ndarray:
    """Upper-case class of every object ('' where unknown): the calibration groups."""
    if "CLASS" not in ds:
        return np.full(ds.sizes["object"], "")
    return np.char.upper(np.char.strip(ds["CLASS"].values.astype(str)))


def _features(pred: np.ndarray, ds: xr.Dataset, table: pd.DataFrame, members: int = 1) -> np.ndarray:
    """Difficulty features of each object; with several models, their spread is one of them."""
    z = ds["Z"].values.astype(np.float64) if "Z" in ds else np.full(pred.size, np.nan)
    spread = None
    if members > 1:
        spread = table[[f"pred_{i}" for i in range(members)]].to_numpy().std(axis=1)
    return difficulty_features(pred, z, table["snr"].to_numpy(), _classes(ds) == "QSO", spread)


def _truth(store: Path) -> pd.Series | None:
    """True log SFR per store object, for a store ingested from a synthetic survey."""
    from sfrdask.synthetic.truth import store_truth

    t = store_truth(store, ["object", "logsfr_true"])
    return None if t is None else t["logsfr_true"]


def calibrate(
    runs: list[TrainedRun],
    preps: list[Preparation],
    client: Any,
    chunk_mb: float,
    seed: int,
    plots: Path | None = None,
) -> tuple[Calibration, pd.DataFrame, list[Path]]:
    """Calibrate the (ensemble of) runs on their store's validation split and report the test split.

    Returns the ensemble's calibration, the coverage rows of every run (and of the ensemble) and
    the plots written: ``{plots}.calibration-{model}.png`` per run (nothing goes into a run
    directory, which may be shared or read-only)."""
    from sfrdask.io.store import open_store
    from sfrdask.preprocessing.split import SPLITS
    from sfrdask.training.data import target_values

    store = runs[0].store
    sel = xr.open_zarr(store, group="selection", zarr_format=3, consolidated=False)
    split = sel["split"].values
    y_all = target_values(store, runs[0].target)
    want = np.flatnonzero(
        np.isin(split, [SPLITS.index("validation"), SPLITS.index("test")]) & np.isfinite(y_all)
    )
    ds = open_store(store, *levels(runs)).isel(object=want)
    table = predictions(ds, runs, preps, client, chunk_mb, desc=f"calibration ({store.name})")
    y = y_all[want]
    is_val = split[want] == SPLITS.index("validation")
    truth = _truth(store)
    true = truth.reindex(want).to_numpy() if truth is not None else None
    classes = _classes(ds)
    candidates = [(r.model, table[f"pred_{i}"].to_numpy(), [r]) for i, r in enumerate(runs)]
    if len(runs) > 1:
        candidates.append(
            ("ensemble(" + "+".join(r.model for r in runs) + ")", _ensemble(table, len(runs)), runs)
        )
    pooled = _pooled(int(np.sum(is_val & np.isfinite(y))))
    fit = np.ones(len(y), bool) if pooled else is_val  # the rows the catalogue's intervals rest on
    check = fit if pooled else ~is_val  # the rows their coverage is measured on
    split_name = POOLED_CHECK if pooled else "test"
    rows, reports, final = [], [], None
    for name, pred, members in candidates:
        x = _features(pred, ds, table, len(members))
        cal = fit_calibration(x[fit], y[fit], classes[fit], seed=seed)
        if pooled:  # each row's interval from a calibration without it: an honest coverage check
            bounds = cross_fitted_intervals(x, y, classes, seed=seed)
        else:
            bounds = cal.intervals(x[check], classes[check])
        cov = coverage_table(
            y[check], pred[check], bounds, classes[check], None if true is None else true[check]
        )
        cov.insert(0, "model", name)
        cov.insert(1, "split", split_name)
        rows.append(cov)
        if plots is not None and len(members) == 1:
            panels = {"MPA-JHU log SFR (AVG)": (y[check], bounds)}
            if true is not None:
                panels["true log SFR (synthetic survey)"] = (true[check], bounds)
            r = members[0]
            png = plots.with_name(f"{plots.name}.calibration-{r.model}.png")
            reports.append(reliability_plot(panels, png, f"{r.model}: calibration, {split_name}"))
        final = cal
    return final, pd.concat(rows, ignore_index=True), reports


POOLED_CHECK = "validation + test, 5-fold out of fold"


def _pooled(labelled_validation: int) -> bool:
    """Whether the intervals rest on the validation and test splits together (then checked out of
    fold), not on the validation split alone: ``sfrdask.predict.calibrate-on``."""
    mode = config.get("predict.calibrate-on")
    if mode not in ("auto", "validation", "pooled"):
        raise SfrdaskError(f"sfrdask.predict.calibrate-on must be auto, validation or pooled, got {mode!r}")
    below = int(config.get("predict.pool-below"))
    return mode == "pooled" or (mode == "auto" and labelled_validation < below)


def _write_report(stem: Path, table: pd.DataFrame, notes: list[str] = ()) -> list[Path]:
    """``{stem}.calibration.{csv,md}``: beside the catalogue, never in a run directory; the
    markdown ends with what the reader should know about the intervals."""
    from sfrdask.io.atomic import write_text

    text = markdown(table)
    if notes:
        text += "\n\n## Read before using the intervals\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return [
        write_text(stem.with_name(f"{stem.name}.calibration.csv"), table.to_csv(index=False)),
        write_text(stem.with_name(f"{stem.name}.calibration.md"), text),
    ]


def _width_notes(
    bounds: dict[float, tuple[np.ndarray, np.ndarray]], classes: np.ndarray, kinds: list[str], wide: float
) -> list[tuple[str, float]]:
    """Per class predicted for: a line on the 95% intervals' median width and the share flagged
    WIDE_INTERVAL, and that share."""
    width = bounds[0.95][1] - bounds[0.95][0]
    out = []
    for c in kinds:
        m = classes == c
        if m.any():
            share = float(np.mean(width[m] > wide))
            text = (f"class {c}: median 95% interval width {np.median(width[m]):.2f} dex over {int(m.sum())} "
                    f"objects; {share:.0%} wider than {wide:g} dex (FLAGS bit WIDE_INTERVAL)")  # fmt: skip
            out.append((text, share))
    return out


def _match_training(ds: xr.Dataset, store: Path, same: bool) -> np.ndarray:
    """Split code (-1 unselected, 0 train, 1 validation, 2 test) of every object of ``ds`` in the
    training store: by position when ``ds`` is that store, else by (PLATEID, MJD, FIBERID)."""
    from sfrdask.io.store import open_store

    split = xr.open_zarr(store, group="selection", zarr_format=3, consolidated=False)["split"].values
    if same:
        return split
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    left = pd.DataFrame({k: ds[k].values for k in KEYS})
    right = pd.DataFrame({k: root[k].values for k in KEYS}).assign(split=split).drop_duplicates(list(KEYS))
    return left.merge(right, on=list(KEYS), how="left")["split"].fillna(-1).to_numpy(np.int8)


def _keys(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """The spectrum the MPA-JHU row matched (so the catalogue joins back), else the first one."""
    out = {k: ds[k].values.astype(np.int64) for k in KEYS}
    if "label_spectrum" in ds and "spec_plateid" in ds:
        slot = ds["label_spectrum"].values
        hit = slot >= 0
        rows = np.flatnonzero(hit)
        for k in KEYS:
            out[k][hit] = ds[f"spec_{k.lower()}"].values[rows, slot[hit]]
    return out


def _flags(
    ds: xr.Dataset, table: pd.DataFrame, split: np.ndarray, prep: Preparation, runs: list[TrainedRun]
) -> tuple[np.ndarray, list[str]]:
    """The FLAGS bitmask, and the flags that could not be computed (with why)."""
    n = ds.sizes["object"]
    flags = np.zeros(n, np.int32)
    missing = []
    attrs = prep.selection_attrs
    flags[split < 0] |= BIT["NOT_SELECTED"]
    flags[np.isin(split, [0, 1])] |= BIT["USED_IN_FIT"]
    zi, zs = levels(runs)
    if zi is not None:
        flags[~table["central_found"].to_numpy(bool)] |= BIT["NO_CENTRAL"]
    max_bad = float(attrs.get("max_bad_fraction", config.get("preprocess.max-bad-fraction")))
    bad = np.zeros(n, bool)
    for var, used in (("image_bad_fraction", zi), ("spectrum_bad_fraction", zs)):
        if used is not None and var in ds:
            bad |= ds[var].values > max_bad
    flags[bad] |= BIT["BAD_PIXELS"]
    cls = _classes(ds)
    if not np.any(cls != ""):
        missing.append("NO_SFR_CLASS (no CLASS in the cube or the catalogue)")
    else:
        classes = [c.upper() for c in attrs.get("classes", config.get("preprocess.classes"))]
        flags[~np.isin(cls, classes)] |= BIT["NO_SFR_CLASS"]
    z = ds["Z"].values.astype(np.float64) if "Z" in ds else np.full(n, np.nan)
    if not np.isfinite(z).any():
        missing.append("Z_OUTSIDE (no Z in the cube or the catalogue)")
    else:
        lo, hi = prep.z_range
        flags[~(np.isfinite(z) & (z >= lo) & (z <= hi))] |= BIT["Z_OUTSIDE"]
    label = runs[0].target
    if label in ds:
        flags[np.isfinite(ds[label].values.astype(np.float64))] |= BIT["HAS_LABEL"]
    else:
        missing.append(f"HAS_LABEL (no {label} column: pass --catalog)")
    return flags, missing


def _physics_flags(table: pd.DataFrame, runs: list[TrainedRun], flags: np.ndarray) -> np.ndarray | None:
    """The first physics run's class per object (None without one); sets its FLAGS bits."""
    i = next((i for i in range(len(runs)) if f"class_{i}" in table), None)
    if i is None:
        return None
    cls = table[f"class_{i}"].to_numpy(str)
    flags[np.isin(cls, AGN_CLASSES)] |= BIT["AGN_LINES"]
    flags[cls == "BROAD_LINE"] |= BIT["BROAD_LINE"]
    flags[table[f"upper_{i}"].to_numpy(bool)] |= BIT["SFR_UPPER_LIMIT"]
    return cls


def run(rt: Runtime, params: Params) -> Result:
    """Calibrate, predict every object, write the catalogue (see the module docstring)."""
    with rt.active():
        return _run(rt.client, params)


def _run(client: Any, params: Params) -> Result:
    import time

    out = check_output(params.out, params.overwrite)
    runs = [load_run(r, store=params.train_store) for r in params.runs]
    check_compatible(runs)
    preps = [preparation(r) for r in runs]
    zi, zs = levels(runs)
    where = params.store or params.cube
    ds = _source(params, zi, zs)
    _check_levels(ds, runs, str(where))

    stem = out.with_suffix("")  # the catalogue's reports are named after it, beside it
    plots = stem if params.plots else None
    cal, report, files = calibrate(runs, preps, client, params.chunk_mb, params.seed, plots)
    t0 = time.perf_counter()
    table = predictions(ds, runs, preps, client, params.chunk_mb, desc=f"predict ({Path(where).name})")
    rate = len(table) / max(time.perf_counter() - t0, 1e-9)
    pred = _ensemble(table, len(runs))
    bounds = cal.intervals(_features(pred, ds, table, len(runs)), _classes(ds))
    kinds = [str(c).upper() for c in preps[0].selection_attrs.get("classes", ["GALAXY", "QSO"])]
    notes = cal.warnings(kinds, int(config.get("predict.warn-below")))
    same = params.store is not None and Path(params.store).resolve() == runs[0].store.resolve()
    split = _match_training(ds, runs[0].store, same)
    flags, missing = _flags(ds, table, split, preps[0], runs)
    phys_class = _physics_flags(table, runs, flags)
    wide_dex = float(config.get("predict.wide-interval-dex"))
    wide = (bounds[0.95][1] - bounds[0.95][0]) > wide_dex
    flags[wide] |= BIT["WIDE_INTERVAL"]
    widths = _width_notes(bounds, _classes(ds), kinds, wide_dex)
    for m in missing:
        print(f"sfrdask predict: warning: flag {m} is unavailable; the bit stays 0", file=sys.stderr)
    for note in notes + [text for text, share in widths if share > 0.1]:  # a tenth: say it now
        print(f"sfrdask predict: warning: {note}", file=sys.stderr)
    notes += [text for text, _ in widths]

    keys = _keys(ds)
    cat = pd.DataFrame(
        {
            **keys,
            "RA": ds["RA"].values.astype(np.float64),
            "DEC": ds["DEC"].values.astype(np.float64),
            "Z": ds["Z"].values.astype(np.float64) if "Z" in ds else np.nan,
            "CLASS": ds["CLASS"].values.astype(str) if "CLASS" in ds else "",
            "MEDIAN": pred.astype(np.float32),
            "P2P5": bounds[0.95][0].astype(np.float32),
            "P16": bounds[0.68][0].astype(np.float32),
            "P84": bounds[0.68][1].astype(np.float32),
            "P97P5": bounds[0.95][1].astype(np.float32),
            "FLAGS": flags,
            "SPLIT": np.array(["none", "train", "validation", "test"])[split.astype(int) + 1],
            "TARGET": table["object"].to_numpy(np.int64),
        }
    )
    visits = {k: ds[f"spec_{k.lower()}"].values for k in KEYS} if "spec_plateid" in ds else None
    cat["N_VISITS"] = (visits["PLATEID"] >= 0).sum(axis=1).astype(np.int64) if visits else 1
    if phys_class is not None:
        cat["PHYS_CLASS"] = phys_class
    if len(runs) > 1:
        for i, r in enumerate(runs):
            cat[f"MEDIAN_{r.model.upper().replace('-', '_')}"] = table[f"pred_{i}"].to_numpy(np.float32)

    # out-of-sample check on the catalogue's own values: FLAG != 0 galaxies and quasars whose row
    # still carries an estimate were never used in training or calibration
    if runs[0].target in ds and "FLAG" in ds:
        y = ds[runs[0].target].values.astype(np.float64)
        kinds = [str(c).upper() for c in preps[0].selection_attrs.get("classes", ["GALAXY", "QSO"])]
        cls = _classes(ds)
        held = (ds["FLAG"].values != 0) & np.isfinite(y) & np.isin(cls, kinds)
        if held.any():
            b = {lv: (lo[held], hi[held]) for lv, (lo, hi) in bounds.items()}
            extra = coverage_table(y[held], pred[held], b, cls[held])
            extra = extra[~extra["group"].str.startswith("decile")]
            extra.insert(0, "model", report["model"].iloc[-1])
            extra.insert(1, "split", "FLAG != 0 (catalogue values, never fitted)")
            report = pd.concat([report, extra], ignore_index=True)
    header = {
        "MODEL": ",".join(r.model for r in runs),
        "RUNS": ",".join(str(r.path.resolve()) for r in runs),
        "TRAINST": str(runs[0].store.resolve()),
        "INPUT": str(Path(where).resolve()),
        "CATALOG": str(params.catalog or ""),
        "TARGET": runs[0].target,
        "IMGZOOM": -1 if zi is None else zi,
        "SPECZOOM": -1 if zs is None else zs,
        "CALIB": "normalised split conformal (MAPIE), "
        + ("validation + test splits" if (report["split"] == POOLED_CHECK).any() else "validation split"),
        "WIDEDEX": wide_dex,
        "SFRDASK": __version__,
        "FLAGNA": "; ".join(missing),
    }
    header["ROWS"] = params.rows
    targets = cat
    if params.rows == "spectrum" and visits is not None:
        cat = per_spectrum(targets, visits)
    write_catalogue(cat, out, header, overwrite=params.overwrite)
    files += _write_report(stem, report, notes)
    ms = None
    if params.plots and "LGM_AVG" in ds:
        flag_col = ds["FLAG"].values if "FLAG" in ds else np.full(len(targets), -1)
        ms = main_sequence_plot(
            targets, ds["LGM_AVG"].values.astype(np.float64), flag_col, out.with_suffix(".main_sequence.png")
        )  # one point per target
    return Result(out, len(cat), report, tuple(files), ms, rate, tuple(missing))


def report(r: Result) -> list[str]:
    test = r.calibration[(r.calibration["group"] == "all")]
    lines = [
        test.round(3).to_string(index=False),
        f"wrote {r.catalogue} ({r.rows} rows; predicted at {r.objects_per_s:.0f} objects/s)",
    ]
    return lines + [f"wrote {p}" for p in (*r.reports, *([r.main_sequence] if r.main_sequence else []))]


STAGE = Stage(Params, run, report)

__all__ = ["Params", "Result", "calibrate", "predictions", "run"]

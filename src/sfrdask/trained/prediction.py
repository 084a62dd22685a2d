"""An SFR catalogue with calibrated intervals for every object of a cube, from trained runs of any
model family: **calibrate** on the runs' training store, **predict** every object chunk by chunk on
the cluster, **write** the catalogue, its calibration report and plots. The predict stage
(:mod:`sfrdask.stages.predict`) says what each step does; this module does it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text
from sfrdask.io.catalog import join_labels, read_catalog_dir
from sfrdask.io.formats import format_of
from sfrdask.io.sfr_catalogue import (
    KEYS,
    assemble,
    catalogue_flags,
    check_output,
    flag_wide,
    header,
    match_training,
    object_classes,
    per_spectrum,
    physics_flags,
    write_catalogue,
)
from sfrdask.io.store import open_store
from sfrdask.tables import markdown
from sfrdask.trained.calibration import POOLED_CHECK, catalogue_notes, difficulty, held_out_check

if TYPE_CHECKING:
    from sfrdask.trained.calibration import Calibration
    from sfrdask.trained.families import TrainedRun


@dataclass(frozen=True)
class Catalogue:
    """What was written, and the figures measured on the way."""

    catalogue: Path
    rows: int
    calibration: pd.DataFrame  # coverage rows of every model (test split, plus the FLAG != 0 check)
    reports: tuple[Path, ...]
    main_sequence: Path | None
    objects_per_s: float
    flags_unavailable: tuple[str, ...] = ()


def _source(params: Any, zi: int | None, zs: int | None) -> xr.Dataset:
    """The input as one lazy Dataset shaped like ``open_store``'s (labels when there are any)."""
    if params.store is not None:
        return open_store(params.store, image_zoom=zi, spectrum_zoom=zs)

    ds = format_of(params.cube).open_dataset(params.cube, zi or 0, zs or 0)  # reads its own metadata
    if params.catalog is not None:
        ds = join_labels(ds, read_catalog_dir(params.catalog))
    return ds


def _check_levels(ds: xr.Dataset, runs: list[TrainedRun], where: str) -> None:
    from sfrdask.trained.inference import levels  # torch and sep: only when predicting

    present = ds.attrs.get("zoom_levels_present")
    for z, kind in zip(levels(runs), ("image", "spectrum"), strict=True):
        if z is not None and present is not None and z not in list(present):
            raise SfrdaskError(f"{where}: holds no {kind} zoom level {z}, which the runs were trained at")


def _write_report(stem: Path, table: pd.DataFrame, notes: list[str] = ()) -> list[Path]:
    """``{stem}.calibration.{csv,md}``: beside the catalogue, never in a run directory; the
    markdown ends with what the reader should know about the intervals."""

    text = markdown(table)
    if notes:
        text += "\n\n## Read before using the intervals\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return [
        write_text(stem.with_name(f"{stem.name}.calibration.csv"), table.to_csv(index=False)),
        write_text(stem.with_name(f"{stem.name}.calibration.md"), text),
    ]


def make_catalogue(client: Any, params: Any) -> Catalogue:
    """Calibrate, predict every object, write the catalogue; ``params``: the predict stage's Params."""
    from sfrdask.trained.inference import (  # torch, sep: here only
        check_compatible,
        levels,
        load_run,
        preparation,
    )

    out = check_output(params.out, params.overwrite)
    runs = [load_run(r, store=params.train_store) for r in params.runs]
    check_compatible(runs)
    preps = [preparation(r) for r in runs]
    ds = _source(params, *levels(runs))
    _check_levels(ds, runs, str(params.store or params.cube))  # before any work
    stem = out.with_suffix("")  # the catalogue's reports are named after it, beside it
    calibrated = _calibrate(client, params, runs, preps, stem)
    predicted = _predict(client, params, runs, preps, ds)
    return _write(params, out, stem, runs, preps, calibrated, predicted)


@dataclass
class _Calibrated:
    """The ensemble's calibration on the training store, its coverage rows, its plots."""

    cal: Calibration
    report: pd.DataFrame
    files: list[Path]


@dataclass
class _Predicted:
    """Every object of the input: its Dataset, the per-model table, the ensemble's prediction,
    its classes, the levels read and the objects/s of the pass."""

    ds: xr.Dataset
    table: pd.DataFrame
    pred: np.ndarray
    classes: np.ndarray
    levels: tuple[int | None, int | None]
    rate: float


def _calibrate(client: Any, params: Any, runs: list[TrainedRun], preps: list, stem: Path) -> _Calibrated:
    """Step 1: calibrate on the runs' training store (validation split), checked on its test split."""
    from sfrdask.trained.modelling import calibrate  # torch, MAPIE: when calibrating

    plots = stem if params.plots else None
    cal, report, files = calibrate(runs, preps, client, params.chunk_mb, params.seed, plots)
    return _Calibrated(cal, report, files)


def _predict(client: Any, params: Any, runs: list[TrainedRun], preps: list, ds: xr.Dataset) -> _Predicted:
    """Step 2: predict every object of the input (``ds``), chunk by chunk on the cluster."""
    from sfrdask.trained.inference import ensemble, levels, predictions  # torch, sep: when predicting

    where = params.store or params.cube
    t0 = time.perf_counter()
    table = predictions(ds, runs, preps, client, params.chunk_mb, desc=f"predict ({Path(where).name})")
    rate = len(table) / max(time.perf_counter() - t0, 1e-9)
    pred = ensemble(table, len(runs))
    return _Predicted(ds, table, pred, object_classes(ds), levels(runs), rate)


def _write(
    params: Any,
    out: Path,
    stem: Path,
    runs: list[TrainedRun],
    preps: list,
    calibrated: _Calibrated,
    p: _Predicted,
) -> Catalogue:
    """Step 3: the intervals, the flags and the catalogue, its calibration report and plots."""
    from sfrdask.plots import main_sequence_plot  # matplotlib: when writing its plots

    ds, table, pred = p.ds, p.table, p.pred
    bounds = calibrated.cal.intervals(difficulty(pred, ds, table, len(runs)), p.classes)
    kinds = [str(c).upper() for c in preps[0].selection_attrs.get("classes", ["GALAXY", "QSO"])]
    same = params.store is not None and Path(params.store).resolve() == runs[0].store.resolve()
    split = match_training(ds, runs[0].store, same)
    training = {**preps[0].selection_attrs, "z_range": preps[0].z_range}
    flags, missing = catalogue_flags(ds, table, split, training, p.levels, runs[0].target)
    phys_classes = physics_flags(table, len(runs), flags)
    flag_wide(flags, bounds)
    now, notes = catalogue_notes(calibrated.cal, bounds, p.classes, kinds)
    for m in missing:
        print(f"sfrdask predict: warning: flag {m} is unavailable; the bit stays 0", file=sys.stderr)
    for note in now:
        print(f"sfrdask predict: warning: {note}", file=sys.stderr)

    models = [r.model for r in runs]
    targets = assemble(ds, table, pred, bounds, flags, split, models if len(runs) > 1 else [], phys_classes)
    report = held_out_check(ds, runs[0].target, pred, bounds, kinds, calibrated.report)
    pooled_check = bool((report["split"] == POOLED_CHECK).any())
    where = params.store or params.cube
    head = header(runs, where, params.catalog, p.levels, pooled_check, missing, params.rows)
    visits = {k: ds[f"spec_{k.lower()}"].values for k in KEYS} if "spec_plateid" in ds else None
    cat = per_spectrum(targets, visits) if params.rows == "spectrum" and visits is not None else targets
    write_catalogue(cat, out, head, overwrite=params.overwrite)
    files = [*calibrated.files, *_write_report(stem, report, notes)]
    ms = None
    if params.plots and "LGM_AVG" in ds:
        flag_col = ds["FLAG"].values if "FLAG" in ds else np.full(len(targets), -1)
        ms = main_sequence_plot(
            targets, ds["LGM_AVG"].values.astype(np.float64), flag_col, out.with_suffix(".main_sequence.png")
        )  # one point per target
    return Catalogue(out, len(cat), report, tuple(files), ms, p.rate, tuple(missing))

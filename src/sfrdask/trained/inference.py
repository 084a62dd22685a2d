"""Apply trained models to any object: a run directory loaded once, raw data prepared the way the
model was trained, predictions made block by block.

:func:`load_run` reads what a run directory holds (``metrics.json``, the manifest, and the model
file its family writes: :mod:`sfrdask.trained.families`) into a :class:`TrainedRun`, checking the sfrdask
version and the registry.
:func:`preparation` reads from the run's training store how its inputs were made: the deblending
parameters of ``clean/{zoom}`` and the scaler + PCA components of ``pca/{modality}/{zoom}``.
:func:`predict_block` then turns raw cutouts and spectra (one chunk of objects, as stored in a
cube or a store) into predictions with exactly that preprocessing: deblending, PCA transform and
the training-split normalisation saved with the model. ``sfrdask evaluate`` and
``sfrdask predict`` both go through here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from sfrdask._version import __version__
from sfrdask.errors import SfrdaskError, StoreError
from sfrdask.io.levels import wavelength_grid
from sfrdask.io.sfr_catalogue import object_classes
from sfrdask.io.store import open_group, open_store
from sfrdask.models import ModelError, get_model
from sfrdask.preprocessing.context import context_features, rest_frame
from sfrdask.preprocessing.deblend import deblend_cutouts
from sfrdask.preprocessing.pca import transform
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.progress import compute_tasks
from sfrdask.trained.families import FAMILIES, TrainedRun, family_of
from sfrdask.training.checkpoint import CheckpointError


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def training_store(run_dir: Path, metrics: dict[str, Any], given: str | Path | None = None) -> list[Path]:
    """Where a run's training store may be, in order: ``given`` alone when the user names it;
    else the absolute path recorded at training, the path recorded relative to the run directory
    (a run directory moved together with its store), and the path as training was given it
    (runs written before sfrdask recorded both; relative to the working directory)."""
    if given is not None:
        return [Path(given)]
    where = metrics.get("inputs", {})
    out = [Path(where["store"])] if where.get("store") else []
    if where.get("store_from_run"):
        out.append(Path(os.path.normpath(run_dir / where["store_from_run"])))
    recorded = metrics.get("spec", {}).get("store")
    if recorded:
        out.append(Path(recorded))
    return list(dict.fromkeys(out))


def load_run(run: str | Path, check_version: bool = True, store: str | Path | None = None) -> TrainedRun:
    """Read a run directory (or the model file in it) safely: torch checkpoints with
    ``weights_only``, trees as plain arrays, physics as JSON, through the family that the run's
    ``metrics.json`` (its manifest) names.

    ``check_version`` refuses a run written by another sfrdask version (major.minor), whose files
    may mean something else; ``metrics.json`` records the version. ``store``: the training store,
    when it moved since training (else :func:`training_store` finds it).
    """
    run = Path(run)
    if not run.exists():
        raise CheckpointError(f"{run}: no such run directory")
    run_dir = run.parent if run.is_file() else run
    metrics_path = run_dir / "metrics.json"
    try:
        metrics, why = json.loads(metrics_path.read_text()), None
    except (OSError, ValueError) as e:
        metrics, why = {}, e
    if run.is_file():  # a model file named directly: its name says the family
        family = next((f.name for f in FAMILIES.values() if run.suffix == Path(f.model_file).suffix), None)
    else:  # the manifest says; for runs written before it had one, the model file present tells
        family = metrics.get("family") or next(
            (f.name for f in FAMILIES.values() if (run_dir / f.model_file).exists()), None
        )
    if family not in FAMILIES:
        files = ", ".join(f.model_file for f in FAMILIES.values())
        raise CheckpointError(f"{run}: no trained model found ({files})")
    model_file = run if run.is_file() else run_dir / metrics.get("model_file", FAMILIES[family].model_file)
    if not model_file.exists():
        raise CheckpointError(
            f"{run_dir}: no trained model found ({model_file.name}, the {family} model, is missing)"
        )
    try:  # the model file first: a damaged one is named even where metrics.json is missing too
        parts = FAMILIES[family].load(model_file)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{model_file}: not an sfrdask {family} model ({type(e).__name__}: {e})") from e
    if why is not None:
        raise CheckpointError(f"{metrics_path}: missing or unreadable ({why}); is {run_dir} an sfrdask run?")
    version = str(metrics.get("sfrdask_version", "unknown (before 0.2)"))
    if check_version and _major_minor(version) != _major_minor(__version__):
        raise CheckpointError(
            f"{run_dir}: written by sfrdask {version}, this is sfrdask {__version__}; retrain the model "
            "with this version (sfrdask train)"
        )
    out = TrainedRun(run_dir, family, parts.identity, parts.options, parts.normaliser, parts.weights)
    out.version, out.store_tried = version, tuple(training_store(run_dir, metrics, store))
    found = [p for p in out.store_tried if (p / "zarr.json").exists()]
    out.store = (*found, *out.store_tried, Path())[0]
    try:
        spec = get_model(out.model)
    except ModelError as e:
        raise CheckpointError(f"{model_file}: {e}") from None
    if spec.family != out.family:
        raise CheckpointError(f"{model_file}: holds a {out.family} model, but {out.model} is a {spec.family}")
    return out


@dataclass(frozen=True)
class Preparation:
    """How the training store made a run's inputs from raw data (read once, sent to the workers)."""

    deblend: dict[str, Any] | None  # deblend_cutouts parameters (with zoom), None: raw images
    pca: dict[str, dict[str, np.ndarray]]  # input name (image_pca, spectrum_pca) -> transform arrays
    z_range: tuple[float, float]  # redshifts of the training split
    selection_attrs: dict[str, Any]


def preparation(run: TrainedRun) -> Preparation:
    """Read the deblending parameters and PCA transforms a run's inputs were made with."""
    store = run.store
    if not (store / "zarr.json").exists():
        tried = ", ".join(str(p) for p in run.store_tried) or str(store)
        raise StoreError(
            f"{run.path}: its training store is not at {tried}; predict needs it for the PCA "
            "components, the deblending parameters and the splits: name it with --train-store"
        )
    deblend = None
    pca: dict[str, dict[str, np.ndarray]] = {}
    uses_clean = False
    for name in run.inputs:
        if name.endswith("_pca"):
            modality = name.split("_")[0]
            z = run.image_zoom if modality == "image" else run.spectrum_zoom
            g = open_group(store, f"pca/{modality}/{z}", needed_by=f"model {run.model}")
            pca[name] = {k: g[k].values for k in ("scaler_mean", "scaler_scale", "pca_mean", "components")}
            uses_clean |= str(g.attrs.get("source", "")).startswith("clean/")
        elif name == "image":
            uses_clean |= (store / f"clean/{run.image_zoom}" / "zarr.json").exists()
    if uses_clean:
        attrs = dict(zarr.open_group(store / f"clean/{run.image_zoom}", mode="r").attrs)
        keys = ("strategy", "thresh", "minarea", "deblend_nthresh", "deblend_cont", "grow", "centre_radius")
        deblend = {k: attrs[k] for k in keys} | {"zoom": int(attrs["zoom"])}
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    train = selected_objects(store, "train")
    z = root["Z"].values.astype(np.float64)[train] if "Z" in root else np.array([np.nan])
    z = z[np.isfinite(z)]
    z_range = (float(z.min()), float(z.max())) if z.size else (np.nan, np.nan)
    sel = open_group(store, "selection")
    return Preparation(deblend, pca, z_range, dict(sel.attrs))


def model_inputs(
    run: TrainedRun, prep: Preparation, raw: dict[str, np.ndarray], clean: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The normalised inputs of one run for a block of objects (the training path's transforms)."""
    norm = run.normaliser
    image = clean if prep.deblend is not None else raw.get("image")
    out = {}
    for name in run.inputs:
        if name == "image":
            x = image
        elif name == "spectrum":
            x = raw["spectrum"]
            if run.rest_frame:
                x = rest_frame(x, raw["Z"], wavelength_grid(run.spectrum_zoom))
        elif name == "context":
            x = context_features(raw["Z"], raw.get("CLASS"), run.context)
        else:
            src = image if name == "image_pca" else raw["spectrum"]
            x = transform(src.reshape(src.shape[0], -1), prep.pca[name])
        out[name] = norm.apply(name, x)
    return out


def predict_block(
    raw: dict[str, np.ndarray], runs: list[TrainedRun], preps: list[Preparation]
) -> dict[str, np.ndarray]:
    """Predictions of every run for one block of objects, plus what the catalogue flags need.

    ``raw`` holds the block's arrays as stored: ``image`` (k, 5, s, s) at the runs' image zoom,
    ``spectrum`` and ``spectrum_error`` (k, L) at their spectrum zoom, ``Z`` and ``CLASS`` (k,). Returns
    ``pred_{i}`` per run (target units), ``central_found`` (k,) (True where nothing was deblended),
    ``snr`` (median spectral S/N, NaN without spectra), and for physics runs ``class_{i}`` (the
    spectrum's class, e.g. SF or AGN) and ``upper_{i}`` (the SFR is an upper limit).
    """
    k = next(iter(raw.values())).shape[0]
    out: dict[str, np.ndarray] = {"central_found": np.ones(k, bool)}
    clean = None
    deblend = next((p.deblend for p in preps if p.deblend is not None), None)
    if deblend is not None and k:
        r = deblend_cutouts(raw["image"], raw["object"], **deblend)
        clean, out["central_found"] = r["image"], r["found"]
    if "spectrum" in raw and k:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(raw["spectrum"]) / raw["spectrum_error"]
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)
        out["snr"] = np.nanmedian(np.where(np.isnan(ratio).all(1, keepdims=True), 0.0, ratio), axis=1)
    else:
        out["snr"] = np.full(k, np.nan)
    for i, (run, prep) in enumerate(zip(runs, preps, strict=True)):
        family = family_of(run.family)
        if k == 0:  # the same columns as a block with objects
            out[f"pred_{i}"] = np.zeros(0)
            out |= {f"{column}_{i}": np.zeros(0, dtype) for column, _, dtype in family.columns}
            continue
        x = model_inputs(run, prep, raw, clean) if family.reads_inputs else {}
        own_clean = clean if prep.deblend is not None else None
        model = run.build()
        out[f"pred_{i}"] = family.predict(run, model, x, raw, own_clean)
        details = getattr(model, "details", None) or {}  # e.g. what kind of object a physics estimate saw
        out |= {f"{column}_{i}": np.asarray(details[key], dtype) for column, key, dtype in family.columns}
    return out


def levels(runs: list[TrainedRun]) -> tuple[int | None, int | None]:
    """The image and spectrum zoom levels runs predicted together read (None: no run reads it)."""
    zi = next((r.image_zoom for r in runs if r.image_zoom is not None), None)
    zs = next((r.spectrum_zoom for r in runs if r.spectrum_zoom is not None), None)
    return zi, zs


def check_compatible(runs: list[TrainedRun]) -> None:
    """Runs predicted together share their store, target and the zoom levels they read."""
    first = runs[0]
    for r in runs[1:]:
        for what in ("target", "store"):
            if getattr(r, what) != getattr(first, what):
                raise SfrdaskError(
                    f"{r.path} and {first.path} differ in {what} ({getattr(r, what)} vs "
                    f"{getattr(first, what)}); predict them separately"
                )
    for attr in ("image_zoom", "spectrum_zoom"):
        zooms = {getattr(r, attr) for r in runs} - {None}
        if len(zooms) > 1:
            raise SfrdaskError(
                f"the runs were trained at different {attr.replace('_', ' ')}s {sorted(zooms)}; "
                "runs predicted together must read the same levels"
            )


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
    classes = object_classes(ds)
    if client is not None:  # the weights and PCA components go to the workers once, not in the graph
        models, recipes = client.scatter([runs, preps], broadcast=True, hash=False)
    else:
        models, recipes = dask.delayed(runs, traverse=False), dask.delayed(preps, traverse=False)
    tasks = []
    for a, b in _task_bounds(next(iter(arrays.values())).chunks[0], per_object, chunk_mb):
        raw = {name: arr[a:b] for name, arr in arrays.items()}
        raw |= {"object": objects[a:b], "Z": z[a:b], "CLASS": classes[a:b]}
        tasks.append(dask.delayed(predict_block)(dask.delayed(raw), models, recipes))
    parts = compute_tasks(tasks, client, desc) if tasks else []
    cols = ["central_found", "snr", *[f"pred_{i}" for i in range(len(runs))]]
    cols += [c for c in (parts[0] if parts else {}) if c not in cols]  # physics classes
    table = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0) for c in cols}
    return pd.DataFrame({"object": objects, **table})


def ensemble(table: pd.DataFrame, n_runs: int) -> np.ndarray:
    """The mean of the runs' predictions: several runs predict as one ensemble."""
    return table[[f"pred_{i}" for i in range(n_runs)]].to_numpy().mean(axis=1)

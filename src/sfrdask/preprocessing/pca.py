"""Standardisation and incremental PCA, fitted on the training split only and applied to all.

Images (5 x s x s flattened, from the deblended cutouts when present) and spectra are reduced
separately. Per-feature mean and scale come from the training objects (NaN-aware dask reductions);
scikit-learn's IncrementalPCA is fed training blocks of about ``preprocess.pca.batch-mb`` (each at
least as many rows as components), computed on the cluster one after the other, so memory stays
bounded at any survey size. Features of every selected object are computed lazily on the cluster.
The scaler and components are stored with the features (group ``pca/{modality}/{zoom}``) so that
inference reuses exactly the same transform.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from sklearn.decomposition import IncrementalPCA

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.io.store import missing_level, open_group, open_store, store_levels, write_group
from sfrdask.preprocessing.compact import compact_group
from sfrdask.preprocessing.quality import fill_nan, selected_objects, selection_digest
from sfrdask.preprocessing.split import SPLITS
from sfrdask.progress import track

MODALITIES = ("image", "spectrum")


def selection_rows(
    store: Path, modality: str, zoom: int, source: str = "auto"
) -> tuple[da.Array, np.ndarray, str]:
    """The (objects, features) dask array of the selection that the PCA stage reads (deblended
    images where they exist, the compact copy of the selection otherwise), its object ids, and
    where it came from."""
    idx = selected_objects(store)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    clean = store / "clean" / str(zoom) / "zarr.json"
    if modality == "image" and source in ("auto", "clean") and clean.exists():
        g = xr.open_zarr(store, group=f"clean/{zoom}", zarr_format=3, consolidated=False)
        if g.attrs.get("selection") != selection_digest(idx):
            raise SfrdaskError(f"{store}: clean/{zoom} was made from another selection; rerun deblend")
        arr, src = _selected_rows(g.image, idx), f"clean/{zoom}"
    elif modality == "image" and source == "clean":
        raise SfrdaskError(f"{store}: no clean/{zoom} group; run `sfrdask deblend` first or use --source raw")
    else:
        compact = compact_group(store, modality, zoom, idx)
        if compact:
            arr, src = open_group(store, compact)[modality].data, f"{modality}/{zoom}"  # the raw data
        else:
            kw = {"image_zoom": None, "spectrum_zoom": None, f"{modality}_zoom": zoom}
            arr, src = open_store(store, **kw)[modality].data[idx], f"{modality}/{zoom}"
    if modality == "image":
        arr = arr.rechunk({1: -1, 2: -1, 3: -1})
        arr = arr.reshape(arr.shape[0], -1)
    return arr.astype(np.float64), idx, src


def _selected_rows(var: xr.DataArray, idx: np.ndarray) -> da.Array:
    """The rows of ``idx`` from a group over all objects, or the whole of a group over just them."""
    if var.sizes["object"] == idx.size and np.array_equal(var["object"].values, idx):
        return var.data
    return var.data[idx]


def _batches(n: int, rows: int, minimum: int) -> list[tuple[int, int]]:
    """Row ranges of about ``rows``, each at least ``minimum`` long (the last one absorbs the rest)."""
    rows = max(rows, minimum)
    edges = [*range(0, n, rows), n]
    if len(edges) > 2 and edges[-1] - edges[-2] < minimum:
        edges.pop(-2)
    return list(itertools.pairwise(edges))


def fit_incremental(
    xt: da.Array, n_components: int, batch_mb: float = 64.0, progress: bool = False, desc: str = "PCA"
) -> tuple[np.ndarray, np.ndarray, IncrementalPCA, int]:
    """Scaler (NaN-aware mean and std) and IncrementalPCA fitted on the rows of ``xt``, out of core.

    Training blocks of about ``batch_mb`` (at least ``n_components`` rows) are computed on the
    cluster one after another and fed to ``partial_fit``. A feature that is NaN everywhere gets
    mean 0 and scale 0 (the caller decides what to do with it).
    """
    n, n_feat = xt.shape
    mean, scale = dask.compute(da.nanmean(xt, axis=0), da.nanstd(xt, axis=0))
    dead = ~np.isfinite(mean)
    mean = np.where(dead, 0.0, mean)
    scale = np.where(dead, 0.0, np.where(~np.isfinite(scale) | (scale == 0), 1.0, scale))
    safe = np.where(scale == 0, 1.0, scale)
    rows = max(1, int(batch_mb * 2**20 // (8 * n_feat)))
    ipca = IncrementalPCA(n_components=n_components)
    batches = _batches(n, rows, n_components)
    for a, b in track(batches, len(batches), desc, enabled=progress, unit="batches"):
        block = np.asarray(xt[a:b].compute(), dtype=np.float64)
        ipca.partial_fit(fill_nan((block - mean) / safe)[0])
    return mean, scale, ipca, max(rows, n_components)


def fit_pca_store(
    store: str | Path,
    modality: str = "image",
    zoom: int = 0,
    n_components: int | None = None,
    source: str = "auto",
    progress: bool = True,
) -> xr.Dataset:
    """Fit scaler + IncrementalPCA on the training split; write features of all selected objects."""
    store = Path(store)
    cf = config.get("preprocess.pca")
    want = n_components or cf[f"{modality}-components"]
    levels = store_levels(store)[modality]
    if zoom not in levels:
        raise SfrdaskError(missing_level(store, modality, zoom, levels))
    x, idx, src = selection_rows(store, modality, zoom, source)
    train = selected_objects(store, "train")
    if train.size < 2:
        raise SfrdaskError(f"{store}: {train.size} training objects; PCA needs at least 2")
    pos = np.searchsorted(idx, train)
    n_feat = x.shape[1]
    k = int(min(want, train.size, n_feat))

    mean, scale, ipca, rows = fit_incremental(
        x[pos], k, float(cf["batch-mb"]), progress, desc=f"PCA {modality} zoom {zoom}"
    )
    all_nan = scale == 0
    scale = np.where(all_nan, 1.0, scale)

    feats = project_rows(x, mean, scale, ipca.mean_, ipca.components_)
    split = np.full(idx.size, -1, np.int8)
    split[pos] = 0
    out = xr.Dataset(
        {
            "features": (("object", "component"), feats),
            "scaler_mean": ("feature", mean),
            "scaler_scale": ("feature", scale),
            "components": (("component", "feature"), ipca.components_),
            "pca_mean": ("feature", ipca.mean_),
            "explained_variance": ("component", ipca.explained_variance_),
            "explained_variance_ratio": ("component", ipca.explained_variance_ratio_),
        },
        coords={"object": idx, "component": np.arange(k)},
        attrs={
            "modality": modality,
            "zoom": zoom,
            "source": src,
            "n_train": int(train.size),
            "n_components_requested": int(want),
            "batch_rows": int(max(rows, k)),
            "fitted_on": SPLITS[0],
            "all_nan_features": int(all_nan.sum()),
        },
    )
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "64MB"}):
        write_group(store, f"pca/{modality}/{zoom}", out)
    return out


def project_rows(
    x: da.Array, mean: np.ndarray, scale: np.ndarray, pca_mean: np.ndarray, components: np.ndarray
) -> da.Array:
    """The PCA stage's transform of the rows ``x`` on the workers: standardise (non-finite values
    become 0), then project. Float64 products, rounded to float32 at the end: the same features
    whatever BLAS threading a process has (Dask workers run one thread, a client many), so inference
    (sfrdask predict) reproduces them; the components travel once with the graph (16 MB at 64 px,
    100 components)."""
    xs = (x - mean) / scale
    return project(da.where(da.isfinite(xs), xs, 0.0), pca_mean, components)


def project(xs: Any, pca_mean: np.ndarray, components: np.ndarray) -> Any:
    """PCA features of standardised rows ``xs`` (numpy or dask): float64 products, float32 result."""
    return ((xs - pca_mean) @ np.asarray(components, np.float64).T).astype(np.float32)


def transform(x: np.ndarray, group: xr.Dataset | dict[str, np.ndarray]) -> np.ndarray:
    """Apply a stored scaler + PCA to new rows ``(n, features)``: the inference path, with the
    same arithmetic as :func:`fit_pca_store` (non-finite standardised values become 0)."""
    g = {k: np.asarray(group[k]) for k in ("scaler_mean", "scaler_scale", "pca_mean", "components")}
    xs = fill_nan((np.asarray(x, np.float64) - g["scaler_mean"]) / g["scaler_scale"])[0]
    return project(xs, g["pca_mean"], g["components"])


def explained_variance_plot(groups: dict[tuple[str, int], xr.Dataset], out: str | Path) -> Path:
    """Cumulative explained variance per fitted group (one curve each), keyed (modality, zoom)."""
    from sfrdask.plots import plt, save_figure  # matplotlib: only when plotting

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for (modality, zoom), g in groups.items():
        r = g["explained_variance_ratio"].values
        name = (
            f"image {image_size(zoom)} px"
            if modality == "image"
            else f"spectrum {spectrum_samples(zoom)} samples"
        )
        ax.plot(np.arange(1, r.size + 1), np.cumsum(r), ls="-" if modality == "image" else "--", label=name)
    ax.set_xlabel("principal components kept")
    ax.set_ylabel("cumulative explained variance\n(training split)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)
    return save_figure(fig, out)

"""Quality selection, the bad-pixel policy, and label statistics.

Bad-pixel policy (one rule, used by every later stage):
1. an object is dropped when its image or spectrum bad-pixel fraction (NaN in flux or error)
   exceeds ``sfrdask.preprocess.max-bad-fraction`` at *any* level in the store, so every resolution
   level trains on the same objects;
2. the NaN that remain are filled: with the background in deblended images (their positions kept in
   the ``clean`` mask), and by :func:`fill_nan` with the training mean (0 after standardisation)
   in the PCA inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.io.store import open_group, open_store, store_levels, write_group
from sfrdask.preprocessing.split import SPLITS, assign_splits


def fill_nan(x: np.ndarray, value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(filled, mask)``: NaN (and inf) replaced by ``value``; mask is True where they were."""
    mask = ~np.isfinite(x)
    return np.where(mask, value, x), mask


def select_objects(
    store: str | Path,
    flag: int | None = None,
    max_bad_fraction: float | None = None,
    classes: list[str] | None = None,
    fractions: dict[str, float] | None = None,
) -> xr.Dataset:
    """Choose the objects later stages use, assign their split, write group ``selection``."""
    cf = config.get("preprocess")
    flag = cf["flag"] if flag is None else flag
    max_bad = cf["max-bad-fraction"] if max_bad_fraction is None else max_bad_fraction
    classes = [c.upper() for c in (classes or cf["classes"])]
    fractions = fractions or cf["split"]
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    if "FLAG" not in root:
        raise SfrdaskError(f"{store}: no labels (FLAG); ingest the cube with --catalog first")
    levels = store_levels(store)
    bads = []
    for z in levels["image"]:
        bads.append(open_store(store, image_zoom=z, spectrum_zoom=None).image_bad_fraction.data)
    for z in levels["spectrum"]:
        bads.append(open_store(store, image_zoom=None, spectrum_zoom=z).spectrum_bad_fraction.data)
    worst = dask.compute(da.stack(bads).max(axis=0))[0] if bads else np.zeros(root.sizes["object"])

    cls = root["CLASS"].values.astype(str)
    flag_ok = root["FLAG"].values == flag
    class_ok = np.isin(cls, classes)
    pixels_ok = worst <= max_bad
    label_ok = np.isfinite(root["AVG"].values)
    selected = flag_ok & class_ok & pixels_ok & label_ok
    counts = {
        "objects": int(selected.size),
        "flag_ok": int(flag_ok.sum()),
        "dropped_bad_pixels": int((flag_ok & class_ok & ~pixels_ok).sum()),
        "dropped_class": int((flag_ok & ~class_ok).sum()),
        "selected": int(selected.sum()),
        "selected_by_class": {c: int((selected & (cls == c)).sum()) for c in sorted(set(cls[flag_ok]))},
    }
    if not selected.any():
        raise SfrdaskError(
            f"{store}: no object passes the selection (FLAG == {flag}, classes {classes}, "
            f"bad-pixel fraction <= {max_bad}): {counts}"
        )
    split = assign_splits(root["PLATEID"].values, root["MJD"].values, root["FIBERID"].values, fractions)
    split = np.where(selected, split, -1).astype(np.int8)
    counts["split"] = {s: int((split == i).sum()) for i, s in enumerate(SPLITS)}
    out = xr.Dataset(
        {
            "selected": ("object", selected),
            "split": (
                "object",
                split,
                {"flag_values": [-1, 0, 1, 2], "flag_meanings": "unselected train validation test"},
            ),
            "bad_fraction": ("object", worst.astype(np.float32)),
        },
        coords={"object": root["object"].values},
        attrs={
            "flag": flag,
            "classes": classes,
            "max_bad_fraction": max_bad,
            "fractions": json.dumps(fractions),
            "counts": json.dumps(counts),
        },
    )
    write_group(store, "selection", out)
    return out


def selection_digest(idx: np.ndarray) -> str:
    """A short fingerprint of a selection, to tell later stages which one a group was made from."""
    return hashlib.blake2b(np.asarray(idx, np.int64).tobytes(), digest_size=8).hexdigest()


def selected_objects(store: str | Path, split: str | None = None) -> np.ndarray:
    """Object indices of the selection (optionally of one split), in store order."""
    sel = open_group(store, "selection", needed_by="this stage")
    codes = sel["split"].values
    keep = codes >= 0 if split is None else codes == SPLITS.index(split)
    return np.flatnonzero(keep)


def label_statistics(store: str | Path, label: str = "AVG") -> pd.DataFrame:
    """Count, mean, std, quantiles and skewness of a label over the selection, per class and overall."""
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    idx = selected_objects(store)
    y = root[label].values[idx]
    cls = root["CLASS"].values.astype(str)[idx]
    rows: list[dict[str, Any]] = []
    for name, sel in [("all", np.ones(idx.size, bool))] + [(c, cls == c) for c in sorted(set(cls))]:
        v = y[sel & np.isfinite(y)]
        q = np.quantile(v, [0.05, 0.16, 0.5, 0.84, 0.95]) if v.size else [np.nan] * 5
        rows.append(
            {
                "class": name,
                "count": int(v.size),
                "mean": float(np.mean(v)) if v.size else np.nan,
                "std": float(np.std(v, ddof=1)) if v.size > 1 else np.nan,
                "q05": q[0],
                "q16": q[1],
                "median": q[2],
                "q84": q[3],
                "q95": q[4],
                "skewness": float(stats.skew(v)) if v.size > 2 else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("class")

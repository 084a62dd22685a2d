"""The SFR catalogue that ``sfrdask predict`` writes, MPA-JHU's naming.

One row per spectrum by default (``rows="spectrum"``): MPA-JHU has a row per spectrum, so every
visit of a repeat target joins; or one row per cube target (``rows="target"``). Columns: PLATEID,
MJD, FIBERID (the row's spectrum; in the target form the one the MPA-JHU row matched, else the
target's first), RA, DEC, Z, CLASS, then the predicted log SFR as MEDIAN, P2P5, P16, P84, P97P5
[log(solMass/yr)], FLAGS (a bitmask, :data:`FLAG_BITS`), SPLIT (train / validation / test / none:
how the training store used the target), TARGET (its index in the cube), N_VISITS (its spectra),
PHYS_CLASS and SDSS_SUBCLASS (with a physics run: the BPT class of its spectrum, e.g. SF or AGN,
and the SDSS pipeline's SUBCLASS rule on the same fits, e.g. STARFORMING) and, when several models
were combined, one MEDIAN_<MODEL> per model. ``.fits`` (an astropy binary table with TUNIT and the
provenance and flag meanings in the header), ``.csv`` or ``.parquet``; always written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.bpt import AGN_CLASSES
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import atomic_output, refuse_existing
from sfrdask.io.store import open_store

FORMATS = (".fits", ".csv", ".parquet")
ROW_FORMS = ("spectrum", "target")
KEYS = ("PLATEID", "MJD", "FIBERID")
# FITS 4.0 unit string: log() of solar masses per year (astropy reads it with a warning: no functions)
SFR_UNIT = "log(solMass/yr)"
SFR_COLUMNS = ("MEDIAN", "P2P5", "P16", "P84", "P97P5")
# bit -> (name, meaning); the same text goes into the FITS header and docs/catalogue.md
FLAG_BITS: dict[int, tuple[str, str]] = {
    1: ("NOT_SELECTED", "not in the training selection (FLAG != 0, class, bad pixels or no label)"),
    2: ("NO_CENTRAL", "deblending found no central object: the image inputs are unreliable"),
    4: ("BAD_PIXELS", "bad-pixel fraction above the selection's cut at the levels the model reads"),
    8: ("NO_SFR_CLASS", "class without SFR labels in training (e.g. STAR) or unknown class"),
    16: ("Z_OUTSIDE", "redshift unknown or outside the training split's range"),
    32: ("HAS_LABEL", "the MPA-JHU catalogue holds an estimate for this object"),
    64: ("USED_IN_FIT", "in the training or validation split: not an out-of-sample prediction"),
    128: ("AGN_LINES", "physics run: BPT composite or AGN, H-alpha lit by the nucleus, no line SFR"),
    256: ("BROAD_LINE", "physics run: broad H-alpha (a type-1 AGN), no line SFR"),
    512: ("SFR_UPPER_LIMIT", "physics run: H-alpha below S/N 3, the SFR of its 3-sigma upper limit"),
    1024: ("WIDE_INTERVAL", "95% interval wider than sfrdask.predict.wide-interval-dex: says little"),
}
BIT = {name: bit for bit, (name, _) in FLAG_BITS.items()}
UNITS = {"RA": "deg", "DEC": "deg", **dict.fromkeys(SFR_COLUMNS, SFR_UNIT)}


def per_spectrum(cat: pd.DataFrame, visits: dict[str, np.ndarray]) -> pd.DataFrame:
    """The target rows of ``cat`` repeated once per spectrum, with that spectrum's keys.

    ``visits``: PLATEID, MJD, FIBERID ``(targets, slots)`` of each target's spectra (-1: unused
    slot), in the target order of ``cat``. A target's rows keep its spectra's order; a target
    without any keeps its single row."""
    plate = np.asarray(visits["PLATEID"])
    used = plate >= 0
    n = used.sum(axis=1)
    reps = np.maximum(n, 1)
    rows = np.repeat(np.arange(len(cat)), reps)
    out = cat.iloc[rows].reset_index(drop=True)
    t, slot = np.nonzero(used)  # row-major: targets in order, each one's slots in order
    has = np.repeat(n > 0, reps)
    for k in KEYS:
        col = out[k].to_numpy().copy()
        col[has] = np.asarray(visits[k])[t, slot]
        out[k] = col
    out["N_VISITS"] = np.repeat(n, reps).astype(np.int64)
    return out


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse an unknown extension or an existing output before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SfrdaskError(
            f"{path}: unknown catalogue format {path.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    return refuse_existing(path, overwrite)


def _fits_format(col: pd.Series) -> str:
    kind = col.dtype.kind
    if kind in "OUST":
        width = max(1, int(col.astype(str).str.len().max() or 1))
        return f"{width}A"
    if kind == "b":
        return "L"
    if kind in "iu":
        return "K"
    return "E" if col.dtype == np.float32 else "D"


def write_catalogue(
    table: pd.DataFrame, path: str | Path, header: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write ``table`` to ``path`` (format from the extension), atomically. ``header``: provenance
    (key -> value, keys of at most 8 characters for FITS; long values are continued)."""
    path = check_output(path, overwrite)
    ext = path.suffix.lower()
    with atomic_output(path) as tmp:
        if ext == ".csv":
            table.to_csv(tmp, index=False)
        elif ext == ".parquet":
            meta = {str(k): str(v) for k, v in header.items()}
            out = table.copy()
            out.attrs = meta
            out.to_parquet(tmp, index=False)
        else:
            from astropy.io import fits  # astropy: only when a FITS catalogue is written

            cols = []
            for c in table.columns:
                text = table[c].dtype.kind in "OUST"
                unit = UNITS.get(c, SFR_UNIT if c.startswith("MEDIAN_") else None)
                arr = table[c].astype(str).to_numpy() if text else table[c].to_numpy()
                cols.append(fits.Column(name=c, format=_fits_format(table[c]), unit=unit, array=arr))
            hdu = fits.BinTableHDU.from_columns(cols, name="SFR")
            h = hdu.header
            for key, value in header.items():
                h[key[:8].upper()] = value
            for bit, (name, meaning) in FLAG_BITS.items():
                h[f"FLAG{bit}"] = (name, meaning[:47])  # keyed by the value FLAGS uses: FLAG1 .. FLAG512
                h.add_comment(f"FLAGS bit {bit} {name}: {meaning}")
            h.add_comment("MEDIAN, P2P5, P16, P84, P97P5: predicted log10 total SFR [Msun/yr] and the")
            h.add_comment("bounds of its calibrated 95% and 68% intervals (normalised split conformal).")
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp)
    return path


def read_catalogue(path: str | Path) -> pd.DataFrame:
    """Read a catalogue written by :func:`write_catalogue` (any of its formats)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".csv":
        return pd.read_csv(path)
    if ext == ".parquet":
        return pd.read_parquet(path)
    from astropy.table import Table  # astropy tables: only for a FITS catalogue

    t = Table.read(path, hdu=1, unit_parse_strict="silent")
    df = t.to_pandas()
    for c in df.columns:  # FITS strings come back as bytes
        if df[c].dtype.kind in "OS":
            df[c] = [v.decode("ascii").strip() if isinstance(v, bytes) else v for v in df[c]]
    return df


def object_classes(ds: xr.Dataset) -> np.ndarray:
    """Upper-case class of every object ('' where unknown): the calibration groups."""
    if "CLASS" not in ds:
        return np.full(ds.sizes["object"], "")
    return np.char.upper(np.char.strip(ds["CLASS"].values.astype(str)))


def match_training(ds: xr.Dataset, store: Path, same: bool) -> np.ndarray:
    """Split code (-1 unselected, 0 train, 1 validation, 2 test) of every object of ``ds`` in the
    training store: by position when ``ds`` is that store, else by (PLATEID, MJD, FIBERID)."""
    split = xr.open_zarr(store, group="selection", zarr_format=3, consolidated=False)["split"].values
    if same:
        return split
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    left = pd.DataFrame({k: ds[k].values for k in KEYS})
    right = pd.DataFrame({k: root[k].values for k in KEYS}).assign(split=split).drop_duplicates(list(KEYS))
    return left.merge(right, on=list(KEYS), how="left")["split"].fillna(-1).to_numpy(np.int8)


def spectrum_keys(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """The spectrum the MPA-JHU row matched (so the catalogue joins back), else the first one."""
    out = {k: ds[k].values.astype(np.int64) for k in KEYS}
    if "label_spectrum" in ds and "spec_plateid" in ds:
        slot = ds["label_spectrum"].values
        hit = slot >= 0
        rows = np.flatnonzero(hit)
        for k in KEYS:
            out[k][hit] = ds[f"spec_{k.lower()}"].values[rows, slot[hit]]
    return out


def catalogue_flags(
    ds: xr.Dataset,
    table: pd.DataFrame,
    split: np.ndarray,
    training: dict[str, Any],
    levels: tuple[int | None, int | None],
    label: str,
) -> tuple[np.ndarray, list[str]]:
    """The FLAGS bitmask, and the flags that could not be computed (with why).

    ``table``: the predictions (``central_found``, ``class_{i}``...); ``split``: each object's split
    in the training store (:func:`match_training`); ``training``: the training store's selection
    attributes and its training split's ``z_range``; ``levels``: the image and spectrum zooms the
    runs read; ``label``: the target column (the MPA-JHU estimate)."""
    n = ds.sizes["object"]
    flags = np.zeros(n, np.int32)
    missing = []
    attrs = training
    flags[split < 0] |= BIT["NOT_SELECTED"]
    flags[np.isin(split, [0, 1])] |= BIT["USED_IN_FIT"]
    zi, zs = levels
    if zi is not None:
        flags[~table["central_found"].to_numpy(bool)] |= BIT["NO_CENTRAL"]
    max_bad = float(attrs.get("max_bad_fraction", config.get("preprocess.max-bad-fraction")))
    bad = np.zeros(n, bool)
    for var, used in (("image_bad_fraction", zi), ("spectrum_bad_fraction", zs)):
        if used is not None and var in ds:
            bad |= ds[var].values > max_bad
    flags[bad] |= BIT["BAD_PIXELS"]
    cls = object_classes(ds)
    if not np.any(cls != ""):
        missing.append("NO_SFR_CLASS (no CLASS in the cube or the catalogue)")
    else:
        classes = [c.upper() for c in attrs.get("classes", config.get("preprocess.classes"))]
        flags[~np.isin(cls, classes)] |= BIT["NO_SFR_CLASS"]
    z = ds["Z"].values.astype(np.float64) if "Z" in ds else np.full(n, np.nan)
    if not np.isfinite(z).any():
        missing.append("Z_OUTSIDE (no Z in the cube or the catalogue)")
    else:
        lo, hi = training["z_range"]
        flags[~(np.isfinite(z) & (z >= lo) & (z <= hi))] |= BIT["Z_OUTSIDE"]
    if label in ds:
        flags[np.isfinite(ds[label].values.astype(np.float64))] |= BIT["HAS_LABEL"]
    else:
        missing.append(f"HAS_LABEL (no {label} column: pass --catalog)")
    return flags, missing


def physics_flags(table: pd.DataFrame, n_runs: int, flags: np.ndarray) -> dict[str, np.ndarray] | None:
    """The first physics run's classes per object (None without one): PHYS_CLASS (its BPT class)
    and SDSS_SUBCLASS (the SDSS pipeline's rule on its fits); sets its FLAGS bits."""
    i = next((i for i in range(n_runs) if f"class_{i}" in table), None)
    if i is None:
        return None
    cls = table[f"class_{i}"].to_numpy(str)
    flags[np.isin(cls, AGN_CLASSES)] |= BIT["AGN_LINES"]
    flags[cls == "BROAD_LINE"] |= BIT["BROAD_LINE"]
    flags[table[f"upper_{i}"].to_numpy(bool)] |= BIT["SFR_UPPER_LIMIT"]
    return {"PHYS_CLASS": cls, "SDSS_SUBCLASS": table[f"subclass_{i}"].to_numpy(str)}


def assemble(
    ds: xr.Dataset,
    table: pd.DataFrame,
    pred: np.ndarray,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    flags: np.ndarray,
    split: np.ndarray,
    models: list[str],
    phys_classes: dict[str, np.ndarray] | None,
) -> pd.DataFrame:
    """The catalogue's rows, one per target of ``ds``: the keys of the spectrum MPA-JHU matched,
    position, redshift and class, the ensemble's median and interval bounds (``bounds``: level ->
    (low, high)), FLAGS, SPLIT, TARGET, N_VISITS, PHYS_CLASS and SDSS_SUBCLASS (with a physics run,
    :func:`physics_flags`) and a
    MEDIAN_<MODEL> per model when ``models`` names several."""
    cat = pd.DataFrame(
        {
            **spectrum_keys(ds),
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
    plate = ds["spec_plateid"].values if "spec_plateid" in ds else None
    cat["N_VISITS"] = (plate >= 0).sum(axis=1).astype(np.int64) if plate is not None else 1
    for name, values in (phys_classes or {}).items():
        cat[name] = values
    for i, m in enumerate(models):
        cat[f"MEDIAN_{m.upper().replace('-', '_')}"] = table[f"pred_{i}"].to_numpy(np.float32)
    return cat


def flag_wide(flags: np.ndarray, bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> None:
    """Set WIDE_INTERVAL where the 95% interval is wider than ``sfrdask.predict.wide-interval-dex``."""
    wide = float(config.get("predict.wide-interval-dex"))
    flags[(bounds[0.95][1] - bounds[0.95][0]) > wide] |= BIT["WIDE_INTERVAL"]


def header(
    runs: list[Any],
    where: str | Path,
    catalog: str | Path | None,
    levels: tuple[int | None, int | None],
    pooled_check: bool,
    missing: list[str],
    rows: str,
) -> dict[str, Any]:
    """The catalogue's FITS header: what made it (runs, their models and training store, the
    input and its catalogue, the target and levels), how its intervals were calibrated, the
    wide-interval width, the sfrdask version, the flags left unset and the row form."""
    zi, zs = levels
    return {
        "MODEL": ",".join(r.model for r in runs),
        "RUNS": ",".join(str(r.path.resolve()) for r in runs),
        "TRAINST": str(runs[0].store.resolve()),
        "INPUT": str(Path(where).resolve()),
        "CATALOG": str(catalog or ""),
        "TARGET": runs[0].target,
        "IMGZOOM": -1 if zi is None else zi,
        "SPECZOOM": -1 if zs is None else zs,
        "CALIB": "normalised split conformal (MAPIE), "
        + ("validation + test splits" if pooled_check else "validation split"),
        "WIDEDEX": float(config.get("predict.wide-interval-dex")),
        "SFRDASK": __version__,
        "FLAGNA": "; ".join(missing),
        "ROWS": rows,
    }

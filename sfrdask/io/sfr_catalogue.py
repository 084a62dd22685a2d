"""The SFR catalogue that ``sfrdask predict`` writes, MPA-JHU's naming.

One row per spectrum by default (``rows="spectrum"``): MPA-JHU has a row per spectrum, so every
visit of a repeat target joins; or one row per cube target (``rows="target"``). Columns: PLATEID,
MJD, FIBERID (the row's spectrum; in the target form the one the MPA-JHU row matched, else the
target's first), RA, DEC, Z, CLASS, then the predicted log SFR as MEDIAN, P2P5, P16, P84, P97P5
[log(solMass/yr)], FLAGS (a bitmask, :data:`FLAG_BITS`), SPLIT (train / validation / test / none:
how the training store used the target), TARGET (its index in the cube), N_VISITS (its spectra),
PHYS_CLASS (with a physics run: the class of its spectrum, e.g. SF or AGN) and, when several models
were combined, one MEDIAN_<MODEL> per model. ``.fits`` (an astropy binary table with TUNIT and the
provenance and flag meanings in the header), ``.csv`` or ``.parquet``; always written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import atomic_output

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
    if path.exists() and not overwrite:
        raise SfrdaskError(f"{path} exists; pass --overwrite to replace it")
    return path


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
            from astropy.io import fits

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
    from astropy.table import Table

    t = Table.read(path, hdu=1, unit_parse_strict="silent")
    df = t.to_pandas()
    for c in df.columns:  # FITS strings come back as bytes
        if df[c].dtype.kind in "OS":
            df[c] = [v.decode("ascii").strip() if isinstance(v, bytes) else v for v in df[c]]
    return df

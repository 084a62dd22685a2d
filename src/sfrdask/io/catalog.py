"""MPA-JHU DR7 catalogues: read, join by row position, and join to a cube on (PLATEID, MJD, FIBERID).

``gal_info`` carries the keys; ``gal_totsfr`` (log SFR: AVG, MEDIAN, P16, P84, FLAG, ...) and the
optional ``totlgm`` (log stellar mass) carry no keys and are joined to gal_info by row position.
The thesis this project comes from calls AVG "AVR"; both names are accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from astropy.io import fits

from sfrdask.errors import CatalogError
from sfrdask.io.atomic import atomic_output

GAL_INFO_NAME = "gal_info_dr7_v5_2.fit"
TOTSFR_NAME = "gal_totsfr_dr7_v5_2.fits"
TOTLGM_NAME = "totlgm_dr7_v5_2.fit"
KEYS = ("PLATEID", "MJD", "FIBERID")
PDF_COLUMNS = ("AVG", "MEDIAN", "MODE", "P2P5", "P16", "P84", "P97P5", "ENTROPY", "FLAG")
LABEL_ALIASES = {"AVR": "AVG", "SFR": "AVG", "LOGSFR": "AVG", "MASS": "LGM_AVG", "LGM": "LGM_AVG"}
MISSING = -99.0


def resolve_label(name: str) -> str:
    """The catalogue column behind a user's label name (``"AVR"`` -> ``"AVG"``)."""
    return LABEL_ALIASES.get(name.upper(), name.upper())


def find_catalogs(directory: str | Path) -> dict[str, Path | None]:
    """The standard MPA-JHU file names in a directory (totlgm optional)."""
    d = Path(directory)
    if not d.is_dir():
        raise CatalogError(f"{d}: not a directory of MPA-JHU catalogues")
    found: dict[str, Path | None] = {}
    for key, name in (("gal_info", GAL_INFO_NAME), ("totsfr", TOTSFR_NAME), ("totlgm", TOTLGM_NAME)):
        p = d / name
        found[key] = p if p.exists() else None
    for key in ("gal_info", "totsfr"):
        if found[key] is None:
            raise CatalogError(f"{d}: no {GAL_INFO_NAME if key == 'gal_info' else TOTSFR_NAME} found")
    return found


def _read_table(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: no such catalogue file")
    try:
        with fits.open(path, memmap=False) as hdul:
            tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
            if not tables:
                raise CatalogError(f"{path}: no binary table HDU (expected an MPA-JHU FITS table)")
            data = tables[0].data
            names = [n.upper() for n in data.columns.names]
            missing = [c for c in required if c not in names]
            if missing:
                raise CatalogError(
                    f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(names)})"
                )
            cols: dict[str, Any] = {}
            for n in data.columns.names:
                a = np.asarray(data[n])
                if a.ndim != 1:
                    continue
                if a.dtype.kind == "S":
                    a = np.char.strip(a.astype(str))
                elif a.dtype.byteorder not in ("=", "|"):
                    a = a.astype(a.dtype.newbyteorder("="))
                cols[n.upper()] = a
            return pd.DataFrame(cols)
    except CatalogError:
        raise
    except (OSError, ValueError, TypeError) as e:
        raise CatalogError(f"{path}: not a readable FITS table ({e})") from e


def read_mpajhu(gal_info: str | Path, totsfr: str | Path, totlgm: str | Path | None = None) -> pd.DataFrame:
    """One DataFrame per spectrum: keys and positions from gal_info, SFR columns (AVG, FLAG, ...),
    and the mass columns prefixed ``LGM_`` when totlgm is given. Tables must have equal row counts."""
    info = _read_table(gal_info, KEYS)
    sfr = _read_table(totsfr, ("AVG", "FLAG"))
    if len(sfr) != len(info):
        raise CatalogError(
            f"{totsfr}: {len(sfr)} rows but {gal_info} has {len(info)}; MPA-JHU tables are joined "
            "by row position and must have the same number of rows"
        )
    out = info[[c for c in info.columns if c in (*KEYS, "RA", "DEC", "Z", "SPECTROTYPE", "SUBCLASS")]].copy()
    if "SPECTROTYPE" in out:
        out = out.rename(columns={"SPECTROTYPE": "CLASS"})
    for c in PDF_COLUMNS:
        if c in sfr:
            out[c] = sfr[c].to_numpy()
    if totlgm is not None:
        lgm = _read_table(totlgm, ("AVG", "FLAG"))
        if len(lgm) != len(info):
            raise CatalogError(f"{totlgm}: {len(lgm)} rows but {gal_info} has {len(info)}; they must agree")
        for c in PDF_COLUMNS:
            if c in lgm:
                out[f"LGM_{c}"] = lgm[c].to_numpy()
    for k in KEYS:
        out[k] = out[k].astype(np.int64)
    out["FLAG"] = out["FLAG"].astype(np.int64)
    out.attrs.update(gal_info=str(gal_info), totsfr=str(totsfr), totlgm=str(totlgm) if totlgm else "")
    return out


def read_catalog_dir(directory: str | Path) -> pd.DataFrame:
    """``read_mpajhu`` on the standard file names found in ``directory``."""
    p = find_catalogs(directory)
    return read_mpajhu(p["gal_info"], p["totsfr"], p["totlgm"])


def join_labels(ds: xr.Dataset, catalog: pd.DataFrame) -> xr.Dataset:
    """Attach catalogue columns to every cube object, matched on (PLATEID, MJD, FIBERID).

    Every spectrum of a target is tried (the first may be a BOSS re-observation absent from DR7);
    a row with FLAG == 0 is preferred, then the earliest spectrum. Unmatched objects get NaN labels
    and FLAG = -1. Z and CLASS coordinates are filled from gal_info where the cube lacks them.
    """
    cat = catalog.drop_duplicates(list(KEYS), keep="first").reset_index(drop=True)
    n, w = ds.sizes["object"], ds.sizes["visit"]
    keys = pd.DataFrame(
        {
            "object": np.repeat(np.arange(n), w),
            "slot": np.tile(np.arange(w), n),
            **{k: ds[f"spec_{k.lower()}"].values.ravel() for k in KEYS},
        }
    )
    cand = keys.merge(cat[list(KEYS)].reset_index(names="row"), on=list(KEYS), how="inner")
    cand["bad"] = cat["FLAG"].to_numpy()[cand["row"].to_numpy()] != 0
    best = cand.sort_values(["object", "bad", "slot"]).groupby("object", sort=True).first()
    row = np.full(n, -1, dtype=np.int64)
    slot = np.full(n, -1, dtype=np.int64)
    row[best.index.to_numpy()] = best["row"].to_numpy()
    slot[best.index.to_numpy()] = best["slot"].to_numpy()
    if not (row >= 0).any():
        raise CatalogError(
            f"no cube object matched a catalogue row on (PLATEID, MJD, FIBERID) "
            f"(cube: {ds.attrs.get('source', '?')}, catalogue: {catalog.attrs.get('gal_info', '?')})"
        )
    hit = row >= 0
    out = ds.copy()
    for c in [c for c in cat.columns if c not in (*KEYS, "RA", "DEC", "Z", "CLASS", "SUBCLASS")]:
        src = cat[c].to_numpy()
        if c.endswith("FLAG"):
            vals = np.full(n, -1, dtype=np.int64)
        else:
            vals = np.full(n, np.nan, dtype=np.float64)
        vals[hit] = src[row[hit]]
        if not c.endswith("FLAG"):
            vals[vals <= MISSING] = np.nan  # MPA-JHU marks missing estimates with -99 (or -9999)
        out[c] = ("object", vals)
    for c, fill in (("Z", np.nan), ("CLASS", "")):
        if c in cat:
            cur = out[c].values.astype(float if c == "Z" else object)
            empty = np.isnan(cur) if c == "Z" else (cur == fill)
            take = empty & hit
            cur[take] = cat[c].to_numpy()[row[take]]
            out = out.assign_coords({c: ("object", cur if c == "Z" else cur.astype(str))})
    out["label_row"] = ("object", row, {"long_name": "row of the matched MPA-JHU catalogue entry (-1: none)"})
    out["label_spectrum"] = ("object", slot, {"long_name": "which spectrum of the target matched"})
    if "AVG" in out:
        out["AVG"].attrs.update(
            long_name="log10 total SFR, mean of the MPA-JHU PDF (AVG, 'AVR')", units="log10(Msun/yr)"
        )
    cov = label_coverage(out, catalog)
    out.attrs.update({f"labels_{k}": v for k, v in cov.items()})
    out.attrs["catalog"] = catalog.attrs.get("gal_info", "")
    return out


def label_coverage(ds: xr.Dataset, catalog: pd.DataFrame | None = None) -> dict[str, int]:
    """How many objects found a label, and how many rows/objects have FLAG == 0."""
    flag = ds["FLAG"].values
    cov = {
        "objects": int(ds.sizes["object"]),
        "matched": int((flag >= 0).sum()),
        "flag0_objects": int((flag == 0).sum()),
    }
    if catalog is not None:
        cov["catalog_rows"] = len(catalog)
        cov["catalog_flag0_rows"] = int((catalog["FLAG"] == 0).sum())
    return cov


def write_fits_table(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """Write a FITS binary table through a temporary file, renamed when complete."""
    with atomic_output(path) as tmp:
        cols = []
        for name, a in columns.items():
            a = np.asarray(a)
            if a.dtype.kind in "US":
                width = max(1, int(max((len(str(x)) for x in a), default=1)))
                cols.append(fits.Column(name=name, format=f"{width}A", array=a.astype(f"S{width}")))
            else:
                fmt = {"i": "K", "f": "E" if a.dtype.itemsize == 4 else "D"}[a.dtype.kind]
                cols.append(fits.Column(name=name, format=fmt, array=a))
        fits.BinTableHDU.from_columns(cols).writeto(tmp)

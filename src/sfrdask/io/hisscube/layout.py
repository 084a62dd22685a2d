"""Names, dtypes and paths of the HiSS-Cube DATASET layout (see docs/formats.md).

One place for these facts, so the reader and the writer cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DENSE = "dense_cube"
SPARSE = "semi_sparse_cube"
MAX_REFS = 200
IMAGE_HEADER_BYTES = 4096
SPECTRUM_HEADER_BYTES = 8192
PATH_BYTES = 256

REF_DTYPE = np.dtype(
    [
        ("ds_path", "S64"),
        ("ds_slice_idx", "<i8"),
        ("x_min", "<i4"),
        ("x_max", "<i4"),
        ("y_min", "<i4"),
        ("y_max", "<i4"),
    ]
)
IMAGE_INDEX_DTYPE = np.dtype([("spatial", "<i8"), ("time", "<f4"), ("wl", "<i4"), ("ds_slice_idx", "<i8")])
SPECTRUM_INDEX_DTYPE = np.dtype([("spatial", "<i8"), ("time", "<f4"), ("ds_slice_idx", "<i8")])
WCS_DTYPE = np.dtype(
    [
        ("NAXIS1", "<i2"),
        ("NAXIS2", "<i2"),
        ("CRPIX1", "<f4"),
        ("CRPIX2", "<f4"),
        ("CD1_1", "<f4"),
        ("CD1_2", "<f4"),
        ("CD2_1", "<f4"),
        ("CD2_2", "<f4"),
        ("CRVAL1", "<f4"),
        ("CRVAL2", "<f4"),
        ("CTYPE1", "S8"),
        ("CTYPE2", "S8"),
    ]
)


def header_dtype(header_bytes: int) -> np.dtype:
    return np.dtype([("path", f"S{PATH_BYTES}"), ("header", f"S{header_bytes}")])


def image_group(zoom: int) -> str:
    return f"{DENSE}/{zoom}/ml_image"


def spectrum_group(zoom: int) -> str:
    return f"{DENSE}/{zoom}/ml_spectrum"


def image_dataset(zoom: int) -> str:
    return f"{image_group(zoom)}/cutout_3d_cube_zoom_{zoom}"


def spectrum_dataset(zoom: int) -> str:
    return f"{spectrum_group(zoom)}/spectral_1d_cube_zoom_{zoom}"


def sparse_metadata(zoom: int, kind: str) -> str:
    """``kind`` is "images" or "spectra"."""
    return f"/{SPARSE}/{zoom}/{kind}/metadata"


def observation_time(header: dict[str, Any]) -> float:
    """A FITS header's observation time as HiSS-Cube orders by it (get_spectrum_time): TAI, else
    MJD; inf when it has neither. It orders a TREE cell's frame references, and a target's spectra
    (the first one's position is where the cutouts are cut)."""
    for key in ("TAI", "MJD"):
        if key in header:
            try:
                return float(header[key])
            except (TypeError, ValueError):
                pass
    return float("inf")

"""Deterministic train / validation / test assignment from a stable object key.

The key is the (PLATEID, MJD, FIBERID) of a target's first spectrum, hashed with BLAKE2b: the same
object lands in the same split at every resolution level, in every store made from the same cube,
whatever the order of objects or the number of workers.
"""

from __future__ import annotations

import hashlib

import numpy as np

from sfrdask.choices import SPLITS

TRAIN, VALIDATION, TEST = 0, 1, 2


def unit_hash(plate: np.ndarray, mjd: np.ndarray, fiber: np.ndarray, salt: str = "sfrdask") -> np.ndarray:
    """A uniform number in [0, 1) per key, stable across runs and machines."""
    out = np.empty(len(plate))
    for i, key in enumerate(zip(plate, mjd, fiber, strict=True)):
        h = hashlib.blake2b(f"{salt}:{key[0]}-{key[1]}-{key[2]}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "little") / 2**64
    return out


def assign_splits(
    plate: np.ndarray, mjd: np.ndarray, fiber: np.ndarray, fractions: dict[str, float] | None = None
) -> np.ndarray:
    """Split code per object: 0 train, 1 validation, 2 test."""
    fractions = fractions or {"train": 0.7, "validation": 0.15, "test": 0.15}
    f = np.array([fractions[s] for s in SPLITS], dtype=float)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    u = unit_hash(np.asarray(plate), np.asarray(mjd), np.asarray(fiber))
    return np.searchsorted(np.cumsum(f)[:-1], u, side="right").astype(np.int8)

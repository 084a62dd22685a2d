"""Read the Scene data set as downloaded: ``dataset.csv`` plus one image folder per class.

``dataset.csv`` holds MFCC_1 .. MFCC_104 (audio), CLASS1, CLASS2 and a column naming each frame's
image file (found by its values ending in .png/.jpg/.jpeg, or given with ``image_column``). A
reference is resolved relative to the data directory, then inside the folder of its CLASS2 value.
Images are loaded and resized on the Dask cluster, in batches.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.errors import SfrdaskError
from sfrdask.progress import map_ordered

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SceneError(SfrdaskError, ValueError):
    """The Scene data directory lacks a file, column or image, or holds something unexpected."""


@dataclass
class SceneData:
    audio: np.ndarray  # (n, n_mfcc) float32
    images: np.ndarray  # (n, 3, size, size) float32 in 0..1
    labels: dict[str, np.ndarray]  # task -> (n,) int codes
    classes: dict[str, list[str]]  # task -> class names (code order)
    files: list[str]

    def __len__(self) -> int:
        return self.audio.shape[0]


def _image_column(df: pd.DataFrame, csv: Path, name: str | None) -> str:
    if name:
        if name not in df.columns:
            raise SceneError(f"{csv}: no column {name!r} (columns: {list(df.columns)[:8]} ...)")
        return name
    for c in df.columns:
        v = df[c].astype(str).str.lower()
        if v.str.endswith(IMAGE_SUFFIXES).all():
            return c
    raise SceneError(f"{csv}: no column of image file names (.png/.jpg); name it with --image-column")


def _resolve(d: Path, ref: str, cls: str) -> Path:
    for p in (d / ref, d / cls / ref, d / cls / Path(ref).name):
        if p.is_file():
            return p
    raise SceneError(f"{d}: image {ref!r} (class {cls!r}) not found under {d} or {d / cls}")


def _load_batch(task: tuple[list[str], int]) -> np.ndarray:
    """Open, convert to RGB and resize a batch of images: (k, 3, size, size) float32 in 0..1."""
    from PIL import Image  # Pillow: only when Scene images are read

    paths, size = task
    out = np.empty((len(paths), 3, size, size), np.float32)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                img = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except OSError as e:
            raise SceneError(f"{p}: not a readable image ({e})") from e
        out[i] = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
    return out


def read_scene(
    data: str | Path,
    size: int = 32,
    image_column: str | None = None,
    batch: int = 128,
    progress: bool = True,
    client: Any = None,
) -> SceneData:
    """Load the audio features, labels and images (resized to ``size`` px on ``client``; ``None``:
    Dask's in-process scheduler)."""
    d = Path(data)
    csv = d / "dataset.csv"
    if not csv.is_file():
        raise SceneError(f"{d}: no dataset.csv (download the Kaggle data set and unzip it there)")
    try:
        df = pd.read_csv(csv)
    except (ValueError, pd.errors.ParserError) as e:
        raise SceneError(f"{csv}: not a readable CSV ({e})") from e
    mfcc = sorted((c for c in df.columns if re.fullmatch(r"MFCC_\d+", str(c))), key=lambda c: int(c[5:]))
    missing = [c for c in ("CLASS1", "CLASS2") if c not in df.columns]
    if not mfcc or missing:
        raise SceneError(
            f"{csv}: expected columns MFCC_1..MFCC_n, CLASS1 and CLASS2; missing {missing or 'MFCC_*'}"
        )
    audio = df[mfcc].to_numpy(np.float64)
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).any(axis=1).sum())
        raise SceneError(f"{csv}: {bad} row(s) with non-finite MFCC values")
    col = _image_column(df, csv, image_column)
    files = [str(_resolve(d, str(r), str(c))) for r, c in zip(df[col], df["CLASS2"], strict=True)]
    chunks = [(files[a : a + batch], size) for a in range(0, len(files), batch)]
    images = np.concatenate(
        list(map_ordered(_load_batch, chunks, client, len(chunks), desc="load images", progress=progress))
    )
    labels, classes = {}, {}
    for task in ("CLASS1", "CLASS2"):
        names = sorted(df[task].astype(str).unique())
        classes[task] = names
        labels[task] = df[task].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    return SceneData(audio.astype(np.float32), images, labels, classes, files)


def fixed_split(files: list[str], fractions: tuple[float, float] = (0.7, 0.15)) -> np.ndarray:
    """'train' / 'validation' / 'test' per row from a hash of its file name: the same split on
    every run and machine, independent of row order."""
    u = np.array([int(hashlib.sha256(Path(f).name.encode()).hexdigest()[:12], 16) / 16**12 for f in files])
    return np.where(u < fractions[0], "train", np.where(u < sum(fractions), "validation", "test"))

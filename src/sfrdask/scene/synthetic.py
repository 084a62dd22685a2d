"""A synthetic stand-in for the Scene data set, in exactly its file layout (the real one cannot be
downloaded here): ``dataset.csv`` (MFCC_1..MFCC_104, CLASS1, CLASS2, IMAGE) and one PNG folder per
environment. Each environment has its own palette, horizon and texture in the frames and its own
mean MFCC vector. Frames suffer lighting changes, camera motion, occlusion and noise; audio carries
another place's background sound and noise. So single features are weak and the classes overlap in
any one feature, while the full vectors (and both modalities together) separate them best, and no
model saturates. Same seed, same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sfrdask.io.atomic import atomic_output, refuse_existing

ENVIRONMENTS = {  # name: (indoors, sky/upper RGB, ground/lower RGB, stripe period px)
    "beach": (False, (0.55, 0.75, 0.95), (0.90, 0.80, 0.55), 0),
    "city": (False, (0.60, 0.65, 0.75), (0.35, 0.35, 0.38), 6),
    "classroom": (True, (0.85, 0.82, 0.70), (0.45, 0.30, 0.20), 10),
    "football-match": (False, (0.50, 0.60, 0.80), (0.20, 0.60, 0.25), 12),
    "forest": (False, (0.30, 0.45, 0.30), (0.25, 0.35, 0.15), 4),
    "jungle": (False, (0.20, 0.50, 0.25), (0.15, 0.30, 0.10), 3),
    "restaurant": (True, (0.70, 0.55, 0.40), (0.50, 0.25, 0.20), 8),
    "river": (False, (0.60, 0.75, 0.85), (0.25, 0.45, 0.60), 5),
}
N_MFCC = 104


def _frame(rng: np.random.Generator, env: str, size: int) -> np.ndarray:
    """One frame: the environment's palette, horizon and texture, seen through what real footage
    does to them: lighting (brightness and colour cast), camera motion (shift and horizontal
    blur), occlusion (1-3 foreground blocks of random colour) and sensor noise."""
    indoors, upper, lower, period = ENVIRONMENTS[env]
    y = np.arange(size)[:, None] / size
    horizon = rng.uniform(0.25, 0.75)
    img = np.where((y < horizon)[..., None], upper, lower) * np.ones((size, size, 1))
    if period:
        x = np.arange(size)[None, :]
        phase = rng.uniform(0, period)
        stripes = 0.08 * np.sign(np.sin(2 * np.pi * (x + phase) / period))
        img = img + (stripes if indoors else stripes * (y >= horizon))[..., None]
    img = img * rng.uniform(0.5, 1.4) * rng.normal(1.0, 0.12, 3)  # lighting: brightness, colour cast
    blur = int(rng.integers(1, max(2, size // 8)))  # camera motion: a horizontal smear
    img = np.mean([np.roll(img, int(rng.integers(-2, 3)) + k, axis=1) for k in range(blur)], axis=0)
    for _ in range(int(rng.integers(1, 4))):  # occlusion: foreground objects
        h, w = (rng.uniform(0.2, 0.5, 2) * size).astype(int)
        r0, c0 = rng.integers(0, size - h), rng.integers(0, size - w)
        img[r0 : r0 + h, c0 : c0 + w] = rng.uniform(0.1, 0.9, 3)
    img = img + rng.normal(0, 0.1, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_scene(
    out: str | Path, objects: int = 800, seed: int = 0, size: int = 64, overwrite: bool = False
) -> Path:
    """Write the stand-in data set into directory ``out`` (complete or absent); return ``out``."""
    from PIL import Image  # Pillow: only when Scene images are written

    out = Path(out)
    refuse_existing(out, overwrite)
    rng = np.random.default_rng(seed)
    names = list(ENVIRONMENTS)
    means = np.random.default_rng(1234).normal(0.0, 1.0, (len(names), N_MFCC))  # fixed per environment
    with atomic_output(out) as tmp:  # complete or absent
        tmp.mkdir()
        rows = []
        for i in range(objects):
            k = int(rng.integers(len(names)))
            env = names[k]
            (tmp / env).mkdir(parents=True, exist_ok=True)
            fname = f"frame_{i:05d}.png"
            Image.fromarray(_frame(rng, env, size)).save(tmp / env / fname)
            # noisy audio: the environment's sound, another place's background sound at a random
            # level (traffic in a restaurant, voices on a beach), and noise
            other = means[int(rng.integers(len(names)))]
            mfcc = 0.3 * means[k] + rng.uniform(0, 0.25) * other + rng.normal(0.0, 1.0, N_MFCC)
            row = {f"MFCC_{j + 1}": mfcc[j] for j in range(N_MFCC)}
            row.update(CLASS1="indoors" if ENVIRONMENTS[env][0] else "outdoors", CLASS2=env, IMAGE=fname)
            rows.append(row)
        pd.DataFrame(rows).to_csv(tmp / "dataset.csv", index=False, float_format="%.6g")
    return out

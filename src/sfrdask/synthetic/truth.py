"""Use the synthetic survey's ground truth: noise-free models of targets and neighbours, and
scores for deblending masks (fraction of neighbour flux removed, of central flux kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from sfrdask.io.levels import BANDS, nmgy_to_stored
from sfrdask.synthetic.images import cutout_levels, model_stamp

MORPH = ("point", "re_arcsec", "sersic", "ba", "pa")


def read_truth(survey_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = Path(survey_dir)
    for name in ("truth_objects.csv", "truth_neighbours.csv"):
        if not (d / name).exists():
            raise FileNotFoundError(
                f"{d / name}: no ground truth (is {d} a directory written by sfrdask synth?)"
            )
    return pd.read_csv(d / "truth_objects.csv"), pd.read_csv(d / "truth_neighbours.csv")


def store_truth(store: str | Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    """The ground truth of a store ingested from a synthetic survey, indexed by store object (the
    survey's ``truth_objects.csv`` beside the cube the store was made from); None for real data."""
    source = zarr.open_group(store, mode="r").attrs.get("source", "")
    path = Path(source).parent / "truth_objects.csv"
    if not source or not path.exists():
        return None
    return pd.read_csv(path, usecols=columns).set_index("object")


def _component(row: pd.Series) -> dict:
    c = {k: row[k] for k in MORPH}
    c["point"] = bool(c["point"])
    c["x"], c["y"] = row["x"] - 31.5, row["y"] - 31.5
    c["flux"] = 10 ** (-0.4 * (row[[f"mag_{b}" for b in BANDS]].to_numpy(float) - 22.5))
    return c


def truth_models(survey_dir: str | Path, objects: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free target and neighbour images ``(k, 5, s, s)`` at ``zoom``, in the stored unit."""
    truth, nbs = read_truth(survey_dir)
    truth = truth.set_index("object")
    scale = np.array([nmgy_to_stored(b) for b in BANDS])[:, None, None]
    tgt, nb = [], []
    for o in objects:
        row = truth.loc[int(o)]
        seeing = float(row["seeing_r"])
        mine = nbs[nbs["object"] == o]
        models = [model_stamp([_component(row)], seeing) * scale]
        models.append(model_stamp([_component(r) for _, r in mine.iterrows()], seeing) * scale
                      if len(mine) else np.zeros_like(models[0]))  # fmt: skip
        stamps = np.stack(models)  # the survey's own levels: halved stamps cut around the fibre
        fibre = float(row["fibre_x"]), float(row["fibre_y"])
        d, _ = cutout_levels(stamps, np.zeros_like(stamps), *fibre)[zoom]
        tgt.append(d[0])
        nb.append(d[1])
    return np.asarray(tgt, dtype=np.float64), np.asarray(nb, dtype=np.float64)


def score_masks(
    mask: np.ndarray, target: np.ndarray, neighbours: np.ndarray, min_neighbour_share: float = 0.05
) -> pd.DataFrame:
    """Per object: share of the target's flux kept and of the neighbours' flux removed.

    ``mask`` bit 1 marks replaced pixels. Only neighbours carrying at least ``min_neighbour_share``
    of the target's in-cutout flux are scored for removal (fainter ones barely matter).
    """
    kept = ((mask & 1) == 0)[:, None].astype(float)
    t_tot = target.sum(axis=(1, 2, 3))
    n_tot = neighbours.sum(axis=(1, 2, 3))
    central_kept = (target * kept).sum(axis=(1, 2, 3)) / t_tot
    removed = 1.0 - (neighbours * kept).sum(axis=(1, 2, 3)) / np.where(n_tot > 0, n_tot, 1)
    has_nb = n_tot >= min_neighbour_share * t_tot
    return pd.DataFrame(
        {
            "central_kept": central_kept,
            "neighbour_removed": np.where(has_nb, removed, np.nan),
            "has_neighbour": has_nb,
        }
    )

"""The model families, one protocol: how a tree, a network or a physics estimate is trained
(``fit``, which saves it in its run directory), read back (``load``) and applied, to a block of
raw objects (``predict``, for ``sfrdask predict``) or to a split of the store (``predict_split``,
for ``sfrdask evaluate``). A run's ``metrics.json`` records its family and model file (the run's
manifest), so :func:`sfrdask.inference.load_run` needs no guessing from file names.

>>> sorted(FAMILIES), FAMILIES["tree"].model_file
(['net', 'physics', 'tree'], 'model.npz')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfrdask.models.registry import MODEL_FILES


@dataclass(frozen=True)
class Family:
    """One model family's four operations."""

    name: str
    model_file: str  # what ``fit`` writes in the run directory
    fit: Callable[..., dict[str, Any]]  # (spec, ranks, client) -> result; saves model_file
    load: Callable[[Path], dict[str, Any]]  # model file -> identity, options, normaliser, weights
    predict: Callable[..., np.ndarray]  # (run, model, inputs, raw, clean) -> predictions in target units
    predict_split: Callable[..., np.ndarray]  # (spec, run, model, StoreDataset) -> the same, from a store


# -- trees: scikit-learn estimators on PCA features, saved as plain arrays (no pickle) -------------
def _fit_tree(spec: Any, ranks: int | None = None, client: Any = None) -> dict[str, Any]:
    from sfrdask.training.fit import fit_trees

    return fit_trees(spec)


def _load_tree(path: Path) -> dict[str, Any]:
    import json

    from sfrdask.models.trees import TreeArrays
    from sfrdask.training.data import Normaliser

    trees, meta = TreeArrays.load(path)
    norm = Normaliser({k[5:]: np.asarray(v) for k, v in meta.items() if k.startswith("norm_")})
    return {
        "identity": json.loads(str(meta["identity"])),
        "options": {},
        "normaliser": norm,
        "weights": trees,
    }


def _predict_tree(run: Any, model: Any, inputs: dict[str, np.ndarray], raw: dict, clean: Any) -> np.ndarray:
    from sfrdask.training.spec import as_matrix

    return model.predict(as_matrix(inputs, run.inputs))


def _split_tree(spec: Any, run: Any, model: Any, ds: Any) -> np.ndarray:
    from sfrdask.training.spec import as_matrix

    return model.predict(as_matrix(ds.arrays(), spec.inputs))


# -- networks: torch modules, checkpoints read with weights_only ------------------------------------
def _fit_net(spec: Any, ranks: int | None = None, client: Any = None) -> dict[str, Any]:
    from sfrdask.errors import SfrdaskError
    from sfrdask.training.loop import fit_net

    if not ranks:
        return fit_net(spec)
    if client is None:
        raise SfrdaskError(
            f"--ranks {ranks} needs a Dask cluster (--cluster local or slurm; a Client from Python)"
        )
    from sfrdask.training.ddp import train_ddp

    return train_ddp(spec, ranks, client)


def _load_net(path: Path) -> dict[str, Any]:
    from sfrdask.training.checkpoint import IDENTITY, load_checkpoint
    from sfrdask.training.data import Normaliser

    ck = load_checkpoint(path)
    identity = {k: ck[k] for k in IDENTITY if k in ck}
    return {
        "identity": identity,
        "options": ck.get("options", {}),
        "normaliser": Normaliser.from_state(ck["normaliser"]),
        "weights": ck["model_state"],
    }


def _predict_net(run: Any, model: Any, inputs: dict[str, np.ndarray], raw: dict, clean: Any) -> np.ndarray:
    from sfrdask.training.loop import forward, set_worker_threads

    set_worker_threads()
    return run.normaliser.untarget(forward(model, inputs))


def _split_net(spec: Any, run: Any, model: Any, ds: Any) -> np.ndarray:
    from sfrdask.training.loop import pick_device, predict

    return predict(model, ds, pick_device(spec.device))[0]


# -- physics: estimates from first principles, no training; a JSON record --------------------------
def _fit_physics(spec: Any, ranks: int | None = None, client: Any = None) -> dict[str, Any]:
    from sfrdask.training.fit import fit_physics

    return fit_physics(spec)


def _load_physics(path: Path) -> dict[str, Any]:
    import json

    saved = json.loads(path.read_text())
    return {
        "identity": saved["identity"],
        "options": saved["options"],
        "normaliser": None,
        "weights": float(saved["fallback"]),
    }


def _predict_physics(
    run: Any, model: Any, inputs: dict[str, np.ndarray], raw: dict, clean: Any
) -> np.ndarray:
    from sfrdask.io.levels import wavelength_grid

    r_img = None
    if "image" in run.inputs:
        r_img = (clean if clean is not None else raw["image"])[:, 2]
    p = model.predict(
        wavelength_grid(run.spectrum_zoom),
        raw["spectrum"].astype(np.float64),
        raw["spectrum_error"].astype(np.float64),
        raw["Z"].astype(np.float64),
        r_img,
        run.image_zoom or 0,
    )
    return np.where(np.isfinite(p), p, run.weights)  # the training median where H-alpha is unmeasured


def _split_physics(spec: Any, run: Any, model: Any, ds: Any) -> np.ndarray:
    from sfrdask.training.fit import physics_predict

    pred = physics_predict(spec, ds, model)
    return np.where(np.isfinite(pred), pred, run.weights)


FAMILIES: dict[str, Family] = {
    "tree": Family("tree", MODEL_FILES["tree"], _fit_tree, _load_tree, _predict_tree, _split_tree),
    "net": Family("net", MODEL_FILES["net"], _fit_net, _load_net, _predict_net, _split_net),
    "physics": Family(
        "physics", MODEL_FILES["physics"], _fit_physics, _load_physics, _predict_physics, _split_physics
    ),
}


def family_of(name: str) -> Family:
    """The family called ``name`` (``tree``, ``net``, ``physics``)."""
    from sfrdask.errors import SfrdaskError

    if name not in FAMILIES:
        raise SfrdaskError(f"unknown model family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]

"""The model families, one typed protocol: how a tree, a network or a physics estimate is trained
(``fit``, which saves it in its run directory), read back (``load``), made into the object that
predicts (``build``) and applied, to a block of raw objects (``predict``, for ``sfrdask predict``)
or to a split of the store (``predict_split``, for ``sfrdask evaluate``). A run's
``metrics.json`` records its family and model file (the run's manifest), so
:func:`sfrdask.trained.inference.load_run` needs no guessing from file names; what it reads back is a
:class:`TrainedRun`, defined here, where the operations that take one are.

A new family is a :class:`Family` of functions with these signatures, added to :data:`FAMILIES`,
and its :class:`~sfrdask.models.registry.Traits` (model file, context, epochs, study cost,
explainable) to :data:`sfrdask.models.registry.FAMILY_TRAITS`: reading a run back, building its
model, predicting with it, training, tuning and studying it go through these, not through tests
of the name (tests/test_families.py adds a ridge regression this way).

>>> sorted(FAMILIES), FAMILIES["tree"].model_file
(['net', 'physics', 'tree'], 'model.npz')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sfrdask._version import __version__
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import wavelength_grid
from sfrdask.models import get_model
from sfrdask.models.registry import FAMILY_TRAITS
from sfrdask.models.trees import TreeArrays
from sfrdask.training.checkpoint import IDENTITY, load_checkpoint
from sfrdask.training.data import Normaliser, StoreDataset
from sfrdask.training.ddp import train_ddp
from sfrdask.training.fit import fit_physics, fit_trees, physics_predict
from sfrdask.training.loop import fit_net, forward, pick_device, predict, set_worker_threads
from sfrdask.training.result import FitResult
from sfrdask.training.spec import TrainSpec, as_matrix, inputs_of


@dataclass(frozen=True)
class Loaded:
    """What ``load`` reads from a model file: the run's identity (model, levels, target, input
    shapes), the model's build options, the training-split normaliser and the weights (a torch
    state dict, tree arrays, or the physics fallback value)."""

    identity: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    normaliser: Normaliser | None = None
    weights: Any = None


@dataclass
class TrainedRun:
    """One trained model as saved in its run directory: identity, weights (or tree arrays, or the
    physics record), the training-split normaliser and the store it was trained on."""

    path: Path
    family: str
    identity: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    normaliser: Any = None
    weights: Any = None  # net: state dict; tree: TreeArrays; physics: the fallback value
    store: Path = Path()  # the training store (metrics.json): the first of store_tried that exists
    store_tried: tuple[Path, ...] = ()  # where it was looked for, for the error when it is gone
    version: str = __version__  # the sfrdask version that wrote the run (metrics.json)

    @property
    def model(self) -> str:
        return self.identity["model"]

    @property
    def image_zoom(self) -> int | None:
        return self.identity["image_zoom"]

    @property
    def spectrum_zoom(self) -> int | None:
        return self.identity["spectrum_zoom"]

    @property
    def target(self) -> str:
        return self.identity["target"]

    @property
    def inputs(self) -> tuple[str, ...]:
        return inputs_of(self.model, self.context)

    @property
    def context(self) -> tuple[str, ...]:
        """What the model sees beside the pixels (``sfrdask.train.context`` when it was trained)."""
        return tuple(self.identity.get("context", ()))

    @property
    def rest_frame(self) -> bool:
        return bool(self.identity.get("rest_frame", False))

    def build(self) -> Any:
        """The model object that predicts: a torch module with its weights, tree arrays, or the
        physics estimator (its family's ``build``)."""
        return family_of(self.family).build(self)


class Fit(Protocol):
    def __call__(self, spec: TrainSpec, ranks: int | None, client: Any) -> FitResult:
        """Train (or score) ``spec``'s model; save its model file in ``spec.run_dir``."""


class Load(Protocol):
    def __call__(self, path: Path) -> Loaded:
        """Read a model file safely (no pickle)."""


class Build(Protocol):
    def __call__(self, run: TrainedRun) -> Any:
        """The object that predicts, from a loaded run: a torch module with its weights, tree
        arrays, or the physics estimator."""


Arrays = dict[str, np.ndarray]


class Predict(Protocol):
    def __call__(self, run: TrainedRun, model: Any, inputs: Arrays, raw: Arrays, clean: Any) -> np.ndarray:
        """Predictions in target units for a block of objects: ``inputs`` as the model reads them
        (normalised), ``raw`` the block as read from the cube, ``clean`` its deblended cutouts."""


class PredictSplit(Protocol):
    def __call__(self, spec: TrainSpec, run: TrainedRun, model: Any, ds: StoreDataset) -> np.ndarray:
        """The same for a split of the store (``sfrdask evaluate``)."""


@dataclass(frozen=True)
class Family:
    """One model family's five operations."""

    name: str
    fit: Fit
    load: Load
    build: Build
    predict: Predict
    predict_split: PredictSplit
    reads_inputs: bool = True  # predict takes the normalised inputs (physics reads the raw block)
    # columns of its own in a prediction block, ``{column}_{i}``: (column, key of the built model's
    # ``details`` after a predict, dtype), e.g. physics' BPT class
    columns: tuple[tuple[str, str, type], ...] = ()

    @property
    def model_file(self) -> str:
        """What ``fit`` writes in the run directory (its traits')."""
        return FAMILY_TRAITS[self.name].model_file


def _shapes(run: TrainedRun) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in run.identity["shapes"].items()}


# -- trees: scikit-learn estimators on PCA features, saved as plain arrays (no pickle) -------------
def _fit_tree(spec: TrainSpec, ranks: int | None, client: Any) -> FitResult:
    return fit_trees(spec)


def _load_tree(path: Path) -> Loaded:
    trees, meta = TreeArrays.load(path)
    norm = Normaliser({k[5:]: np.asarray(v) for k, v in meta.items() if k.startswith("norm_")})
    return Loaded(json.loads(str(meta["identity"])), {}, norm, trees)


def _build_tree(run: TrainedRun) -> TreeArrays:
    return run.weights


def _predict_tree(run: TrainedRun, model: Any, inputs: Arrays, raw: Arrays, clean: Any) -> np.ndarray:
    return model.predict(as_matrix(inputs, run.inputs))


def _split_tree(spec: TrainSpec, run: TrainedRun, model: Any, ds: StoreDataset) -> np.ndarray:
    return model.predict(as_matrix(ds.arrays(), spec.inputs))


# -- networks: torch modules, checkpoints read with weights_only ------------------------------------
def _fit_net(spec: TrainSpec, ranks: int | None, client: Any) -> FitResult:
    if not ranks:
        return fit_net(spec)  # type: ignore[return-value]  # world 1: rank 0's result
    if client is None:
        raise SfrdaskError(
            f"--ranks {ranks} needs a Dask cluster (--cluster local or slurm; a Client from Python)"
        )
    return train_ddp(spec, ranks, client)


def _load_net(path: Path) -> Loaded:
    ck = load_checkpoint(path)
    identity = {k: ck[k] for k in IDENTITY if k in ck}
    options = dict(ck.get("options", {}))
    if "stem" not in options and get_model(identity["model"]).takes_stem:
        options["stem"] = "none"  # trained before the working-resolution stems: the input as it is
    return Loaded(identity, options, Normaliser.from_state(ck["normaliser"]), ck["model_state"])


def _build_net(run: TrainedRun) -> Any:
    net = get_model(run.model).build(_shapes(run), **run.options)
    net.load_state_dict(run.weights)
    net.eval()
    return net


def _predict_net(run: TrainedRun, model: Any, inputs: Arrays, raw: Arrays, clean: Any) -> np.ndarray:
    set_worker_threads()
    return run.normaliser.untarget(forward(model, inputs))


def _split_net(spec: TrainSpec, run: TrainedRun, model: Any, ds: StoreDataset) -> np.ndarray:
    return predict(model, ds, pick_device(spec.device))[0]


# -- physics: estimates from first principles, no training; a JSON record --------------------------
def _fit_physics(spec: TrainSpec, ranks: int | None, client: Any) -> FitResult:
    return fit_physics(spec)


def _load_physics(path: Path) -> Loaded:
    saved = json.loads(path.read_text())
    return Loaded(saved["identity"], saved["options"], None, float(saved["fallback"]))


def _build_physics(run: TrainedRun) -> Any:
    return get_model(run.model).build(_shapes(run), **run.options)


def _predict_physics(run: TrainedRun, model: Any, inputs: Arrays, raw: Arrays, clean: Any) -> np.ndarray:
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


def _split_physics(spec: TrainSpec, run: TrainedRun, model: Any, ds: StoreDataset) -> np.ndarray:
    pred = physics_predict(spec, ds, model)
    return np.where(np.isfinite(pred), pred, run.weights)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("tree", _fit_tree, _load_tree, _build_tree, _predict_tree, _split_tree),
        Family("net", _fit_net, _load_net, _build_net, _predict_net, _split_net),
        Family("physics", _fit_physics, _load_physics, _build_physics,
               _predict_physics, _split_physics, reads_inputs=False,
               columns=(("class", "bpt_class", str), ("upper", "upper_limit", bool),
                        ("subclass", "sdss_subclass", str))),
    )
}  # fmt: skip


def family_of(name: str) -> Family:
    """The family called ``name`` (``tree``, ``net``, ``physics``)."""
    if name not in FAMILIES:
        raise SfrdaskError(f"unknown model family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]

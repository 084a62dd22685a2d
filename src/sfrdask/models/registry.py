"""Registries of the models sfrdask trains, with the inputs each one needs: :data:`MODELS`, the
SFR regressions (``sfrdask models``, ``sfrdask train``), and a :class:`Registry` of the same kind for
the Scene experiment's classifiers (``sfrdask.scene.models.SCENE_MODELS``).

A model is registered with a builder ``build(shapes, **options)`` where ``shapes`` maps each input
it declares to that input's per-object shape::

    image          (5, s, s)     deblended cutouts at the chosen image zoom
    spectrum       (L,)          the spectrum at the chosen spectrum zoom
    image_pca      (k,)          PCA features of the images  (group pca/image/{zoom})
    spectrum_pca   (k,)          PCA features of the spectra (group pca/spectrum/{zoom})
    audio          (k,)          audio features (MFCC) of the Scene experiment (classification)

``family`` is ``"tree"`` (scikit-learn estimators on PCA features), ``"net"`` (torch modules
following :class:`sfrdask.models.base.SfrNet`) or ``"physics"`` (estimates from first principles,
no training: :mod:`sfrdask.models.physics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfrdask.errors import SfrdaskError

INPUTS = ("image", "spectrum", "image_pca", "spectrum_pca", "audio")
# what each family's fit writes in its run directory; the run's manifest (metrics.json) names it
MODEL_FILES = {"tree": "model.npz", "net": "best.pt", "physics": "model.json"}


class ModelError(SfrdaskError, ValueError):
    """An unknown model, or a model asked for data or a resolution it cannot take."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    inputs: tuple[str, ...]
    build: Callable[..., Any]
    description: str
    min_image_px: int = 8
    task: str = "regression"

    @property
    def uses_images(self) -> bool:
        return any(i.startswith("image") for i in self.inputs)

    @property
    def uses_spectra(self) -> bool:
        return any(i.startswith("spectrum") for i in self.inputs)

    def check_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Refuse a resolution this model cannot take, naming it."""
        missing = [i for i in self.inputs if i not in shapes]
        if missing:
            raise ModelError(f"model {self.name!r} needs inputs {missing}, which were not provided")
        if "image" in self.inputs and shapes["image"][-1] < self.min_image_px:
            raise ModelError(
                f"model {self.name!r} needs images of at least {self.min_image_px} px, "
                f"got {shapes['image'][-1]} px; choose a lower image zoom (0 = 64 px)"
            )


class Registry:
    """Models by name, for one task: the SFR regressions here (:data:`MODELS`); the Scene
    experiment's classifiers have their own (``sfrdask.scene.models.SCENE_MODELS``)."""

    def __init__(self, what: str, task: str, hint: str = ""):
        self.what, self.task, self.hint = what, task, hint
        self._models: dict[str, ModelSpec] = {}

    def register(
        self, name: str, family: str, inputs: tuple[str, ...], description: str, min_image_px: int = 8
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: add a builder under ``name``."""
        bad = [i for i in inputs if i not in INPUTS]
        if bad or family not in ("tree", "net", "physics"):
            raise ValueError(f"model {name!r}: unknown inputs {bad} or family {family!r}")

        def deco(build: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._models:
                raise ValueError(f"model {name!r} is registered twice")
            self._models[name] = ModelSpec(
                name, family, tuple(inputs), build, description, min_image_px, self.task
            )
            return build

        return deco

    def get(self, name: str) -> ModelSpec:
        """The model called ``name``; an unknown name lists the known ones."""
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models))
            raise ModelError(f"unknown model {name!r}; known {self.what}s: {known}{self.hint}") from None

    def list(self) -> list[ModelSpec]:
        """Every model, sorted by family then name."""
        return sorted(self._models.values(), key=lambda s: (s.family, s.name))

    def __contains__(self, name: str) -> bool:
        return name in self._models


MODELS = Registry("SFR model", "regression", " (the Scene experiment's classifiers: `sfrdask scene`)")


def register(
    name: str, family: str, inputs: tuple[str, ...], description: str, min_image_px: int = 8
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add an SFR model's builder to :data:`MODELS` under ``name``."""
    return MODELS.register(name, family, inputs, description, min_image_px)


def get_model(name: str) -> ModelSpec:
    """The SFR model called ``name``; an unknown name lists the known ones."""
    return MODELS.get(name)


def list_models() -> list[ModelSpec]:
    """The SFR models (regressions of log SFR, mass or sSFR), sorted by family then name."""
    return MODELS.list()

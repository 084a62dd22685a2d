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
no training: :mod:`sfrdask.models.physics`). What sets a family apart is declared once, as its
:class:`Traits` in :data:`FAMILY_TRAITS`; code that treats families differently reads the traits,
never the name (its operations, fit, load and predict, are :data:`sfrdask.trained.families.FAMILIES`).

>>> MODELS.get("intermediate-fusion").traits.epochs, MODELS.get("physics-halpha").traits.context
(True, False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfrdask.errors import SfrdaskError

INPUTS = ("image", "spectrum", "image_pca", "spectrum_pca", "audio")


@dataclass(frozen=True)
class Traits:
    """What a model family is, as the rest of sfrdask needs to know it."""

    model_file: str  # what its fit writes in the run directory (named by the run's metrics.json)
    context: bool = True  # learns from the context (redshift, class) beside its inputs (physics: reads Z)
    epochs: bool = False  # trains by epochs on a validation split: learning-rate schedules, augmentation,
    # rest-frame spectra, tuning, DDP, the study's stems, continuation and learning curves
    study_cost: float = 1.0  # weight of one training in the study's longest-first order
    explainable: bool = False  # integrated gradients on its cutouts or spectra (``sfrdask explain``)


FAMILY_TRAITS: dict[str, Traits] = {
    "tree": Traits("model.npz"),
    "net": Traits("best.pt", epochs=True, study_cost=100.0, explainable=True),
    "physics": Traits("model.json", context=False),
}


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
    def traits(self) -> Traits:
        """Its family's :class:`Traits`."""
        return FAMILY_TRAITS[self.family]

    @property
    def takes_stem(self) -> bool:
        """Whether it is a network on cutouts or spectra, which reaches the working resolution
        through a stem (its builder takes ``stem``: :data:`sfrdask.choices.STEMS`)."""
        return "stem" in inspect.signature(self.build).parameters

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
        if bad or family not in FAMILY_TRAITS:
            known = ", ".join(FAMILY_TRAITS)
            raise ValueError(f"model {name!r}: unknown inputs {bad} or family {family!r} (families: {known})")

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

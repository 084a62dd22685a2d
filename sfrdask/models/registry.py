"""One registry of every model sfrdask can train, with the inputs each one needs.

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
TASKS = ("regression", "classification")


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


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str,
    family: str,
    inputs: tuple[str, ...],
    description: str,
    min_image_px: int = 8,
    task: str = "regression",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add a builder to the registry under ``name``."""
    bad = [i for i in inputs if i not in INPUTS]
    if bad or family not in ("tree", "net", "physics") or task not in TASKS:
        raise ValueError(f"model {name!r}: unknown inputs {bad}, family {family!r} or task {task!r}")

    def deco(build: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name, family, tuple(inputs), build, description, min_image_px, task)
        return build

    return deco


def get_model(name: str) -> ModelSpec:
    """The registered model called ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def list_models(task: str | None = "regression") -> list[ModelSpec]:
    """The registered models of ``task`` (None: all), sorted by family then name. The SFR models
    are regressions; the Scene experiment's (:mod:`sfrdask.scene`) are classifications."""
    return sorted((s for s in _REGISTRY.values() if task in (None, s.task)), key=lambda s: (s.family, s.name))

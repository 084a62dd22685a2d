"""What one training run is: the model, the data it reads, and the optimisation settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfrdask import config
from sfrdask.choices import LR_SCHEDULES, STEMS
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import ModelSpec, get_model
from sfrdask.preprocessing.context import check_parts
from sfrdask.preprocessing.split import SPLITS
from sfrdask.training.data import (
    Normaliser,
    StoreDataset,
    input_sources,
    resolve_target,
    split_objects,
    target_values,
)
from sfrdask.training.settings import TrainSettings


def inputs_of(model: str, context: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A model's declared inputs, plus ``context`` for a learned model given one (physics models
    read the redshift themselves)."""
    mspec = get_model(model)
    return (*mspec.inputs, "context") if context and mspec.traits.context else mspec.inputs


@dataclass
class TrainSpec(TrainSettings):
    """Everything a rank needs to train one model; plain data, so it travels to Dask workers. Its
    settings (:class:`~sfrdask.training.settings.TrainSettings`: target, epochs, ..., device) default
    to ``sfrdask.train`` in dask.config: one home for each default."""

    store: str
    model: str
    image_zoom: int | None = None
    spectrum_zoom: int | None = None
    train_fraction: float = 1.0  # a nested subset of the training split (the study's learning curves)
    validation_only: bool = False  # tuning: score on the validation split, never read the test split
    out: str = "runs"
    options: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    threads: int | None = None
    progress: bool = True

    @classmethod
    def from_config(cls, store: str | Path, model: str, **overrides: Any) -> TrainSpec:
        """The settings from ``sfrdask.train`` in dask.config but those ``overrides`` give
        (``None`` overrides are ignored), checked and fitted to the model."""
        spec = cls(store=str(store), model=model, **{k: v for k, v in overrides.items() if v is not None})
        spec.target = resolve_target(spec.target)
        mspec = get_model(model)  # unknown names fail here, listing the known ones (and where Scene's are)
        spec.context = check_parts(spec.context) if mspec.traits.context else ()
        if spec.lr_schedule not in LR_SCHEDULES:
            raise SfrdaskError(
                f"unknown lr-schedule {spec.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        spec.rest_frame = bool(spec.rest_frame) and mspec.traits.epochs and "spectrum" in mspec.inputs
        if spec.stem not in STEMS:
            raise SfrdaskError(f"unknown stem {spec.stem!r}; choose one of {', '.join(STEMS)}")
        if not 0 < spec.train_fraction <= 1:
            raise SfrdaskError(f"train fraction must be in (0, 1], got {spec.train_fraction}")
        if mspec.takes_stem:
            spec.options = {"stem": spec.stem, **spec.options}  # travels with the checkpoint
        # a zoom the model does not read is not part of its identity (nor of its results row)
        if not mspec.uses_images:
            spec.image_zoom = None
        if not mspec.uses_spectra:
            spec.spectrum_zoom = None
        return spec

    @property
    def model_spec(self) -> ModelSpec:
        return get_model(self.model)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The model's declared inputs, plus ``context`` when the run gives it one."""
        return inputs_of(self.model, self.context)

    @property
    def setup(self) -> str:
        """How this run differs from sfrdask's default setup (``sfrdask.yaml``): no context
        (``noctx``) or part of it (``ctx-redshift``), rest-frame spectra (``rest``), another
        learning-rate schedule (``lr-none``), augmentation off (``noaug``), another stem
        (``stem-average``), part of the training split (``frac0.25``); '' for the default."""
        default = config.defaults()["train"]
        traits, inputs = self.model_spec.traits, self.model_spec.inputs
        parts = []
        if traits.context and self.context != check_parts(default["context"]):
            parts.append("ctx-" + "-".join(self.context) if self.context else "noctx")
        if self.rest_frame:
            parts.append("rest")
        if traits.epochs and self.lr_schedule != default["lr-schedule"]:
            parts.append(f"lr-{self.lr_schedule}")
        if traits.epochs and "image" in inputs and self.augment != default["augment"]:
            parts.append("aug" if self.augment else "noaug")
        if self.options.get("stem", default["stem"]) != default["stem"]:
            parts.append(f"stem-{self.options['stem']}")
        if self.train_fraction < 1:
            parts.append(f"frac{self.train_fraction:g}")
        return "-".join(parts)

    @property
    def variant(self) -> str:
        """What sets this run's directory apart from the default one of its model and levels: the
        seed (other than 0) and the :attr:`setup`."""
        return "-".join(filter(None, [f"seed{self.seed}" if self.seed else "", self.setup]))

    @property
    def run_dir(self) -> Path:
        """``OUT/MODEL/image{z}-spectrum{z}-{target}[-{variant}]`` (unused levels left out): one per
        trained model."""
        parts = [
            f"{m}{z}"
            for m, z in (("image", self.image_zoom), ("spectrum", self.spectrum_zoom))
            if z is not None
        ]
        return Path(self.out) / self.model / "-".join([*parts, self.target, *filter(None, [self.variant])])

    def identity(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        """What a checkpoint must match to be resumed or evaluated with this spec."""
        return {
            "model": self.model,
            "image_zoom": self.image_zoom,
            "spectrum_zoom": self.spectrum_zoom,
            "target": self.target,
            "shapes": {k: list(v) for k, v in sorted(shapes.items())},
            "context": list(self.context),
            "rest_frame": self.rest_frame,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SplitData:
    """The three splits of the selection as datasets sharing one training-split normaliser."""

    train: StoreDataset
    validation: StoreDataset
    test: StoreDataset  # not opened for a validation-only training (tuning): None there
    normaliser: Normaliser

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.train.shapes

    def __getitem__(self, split: str) -> StoreDataset:
        return getattr(self, split)


def load_splits(spec: TrainSpec, normaliser: Normaliser | None = None) -> SplitData:
    """Open the train/validation/test datasets a model needs; fit the normaliser on train."""
    mspec = spec.model_spec
    sources = input_sources(
        spec.store,
        spec.inputs,
        spec.image_zoom,
        spec.spectrum_zoom,
        who=f"model {mspec.name}",
        context=spec.context,
        rest_frame=spec.rest_frame,
    )
    y = target_values(spec.store, spec.target)
    sets: dict[str, StoreDataset | None] = {"test": None}  # None: validation-only, the test split unread
    for s in SPLITS if not spec.validation_only else ("train", "validation"):
        objs = split_objects(spec.store, s, y)
        if s == "train" and spec.train_fraction < 1:
            objs = nested_subset(objs, spec.train_fraction)
        if objs.size < (2 if s == "train" else 1):
            raise SfrdaskError(
                f"{spec.store}: the {s} split holds {objs.size} objects with a known {spec.target}"
            )
        sets[s] = StoreDataset(spec.store, objs, sources, y[objs])
    train = sets["train"]
    assert train is not None
    mspec.check_shapes(train.shapes)
    if normaliser is None:
        normaliser = Normaliser.fit(train.sample(), train.y)
    for d in sets.values():
        if d is not None:
            d.normaliser = normaliser
    return SplitData(**sets, normaliser=normaliser)  # type: ignore[arg-type]


def nested_subset(objects: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``fraction`` of ``objects`` in one fixed random order (sorted again): the 25%
    subset lies inside the 50% one, so a learning curve adds objects rather than swapping them."""
    order = np.random.default_rng(0).permutation(objects.size)
    return np.sort(objects[order[: max(1, round(fraction * objects.size))]])


def resolution(spec: TrainSpec) -> dict[str, int | None]:
    """Image side in pixels and spectrum samples of the levels a model reads (None if unused)."""
    return {
        "image_px": None if spec.image_zoom is None else image_size(spec.image_zoom),
        "spectrum_samples": None if spec.spectrum_zoom is None else spectrum_samples(spec.spectrum_zoom),
    }


def as_matrix(arrays: dict[str, np.ndarray], inputs: tuple[str, ...]) -> np.ndarray:
    """Inputs side by side as one (objects, features) matrix, in the model's declared order."""
    return np.concatenate([arrays[i].reshape(arrays[i].shape[0], -1) for i in inputs], axis=1)

"""The grid of a resolution study: which model trains at which levels with which seed, in what order."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sfrdask.choices import PAIRS
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model

CONTROL = "control"  # the setup of the control cell's trainings
OTHER_STEM = "average"  # the stem a network also trains with (the study keeps the one better on validation)


@dataclass(frozen=True, order=True)
class Training:
    """One training of the study: a model at its levels (None: a modality it does not read), a
    seed, and its setup: '' for the study's cells, ``control`` (the level's data averaged inside the
    model down to the lowest level's shape), ``frac0.25`` (a quarter of the training split: a
    learning curve's point); and its ``stem``: '' for the configured one (``train.stem``), or
    :data:`OTHER_STEM` for the same training with the input averaged down to the working resolution
    alone (:func:`with_other_stem`)."""

    model: str
    image_zoom: int | None
    spectrum_zoom: int | None
    seed: int
    setup: str = ""
    stem: str = ""

    @property
    def cell(self) -> str:
        """The model at its levels (and setup): what the seeds of one cell share, and what tuning tunes."""
        lv = [f"image{self.image_zoom}" if self.image_zoom is not None else "",
              f"spectrum{self.spectrum_zoom}" if self.spectrum_zoom is not None else ""]  # fmt: skip
        return "-".join(v for v in [self.model, *lv, self.setup, self.stem and f"stem-{self.stem}"] if v)

    @property
    def key(self) -> str:
        """A name unique in the study, also a directory name."""
        return f"{self.cell}-seed{self.seed}"

    @property
    def tuning_cell(self) -> str:
        """The cell whose tuned settings this training uses: a learning-curve point those of its
        model at its levels; a control its own key, which the study maps to the settings of the
        lowest levels' cell it must reproduce (:func:`control_settings`)."""
        return Training(
            self.model, self.image_zoom, self.spectrum_zoom, 0, self.setup if self.setup == CONTROL else ""
        ).cell

    @property
    def choice(self) -> Training:
        """The training whatever its stem: what a training and its other-stem twin share, one of
        which the study keeps (:func:`sfrdask.resolution.stems.choose`)."""
        return dataclasses.replace(self, stem="")

    @property
    def train_fraction(self) -> float:
        return float(self.setup[4:]) if self.setup.startswith("frac") else 1.0

    @property
    def cost(self) -> float:
        """Relative cost, for the order only: a network over raw pixels and samples costs with what
        it reads (a 64 px / 4620 network first, so the longest trainings do not make the tail); on
        PCA features (trees, early fusion) a training is short at any level."""
        spec = get_model(self.model)
        px = image_size(self.image_zoom) ** 2 * 5 if "image" in spec.inputs else 0
        samples = spectrum_samples(self.spectrum_zoom) if "spectrum" in spec.inputs else 0
        return spec.traits.study_cost * (1 + (px + samples) / 1000)


def expand_models(names: tuple[str, ...] | list[str]) -> list[str]:
    """``tree`` / ``gbt`` stand for the family on images alone, spectra alone and both; an unknown
    name fails here, listing the known ones."""
    out = []
    for name in (n.strip() for n in names if n.strip()):
        out += [f"{name}-{m}" for m in ("image", "spectrum", "both")] if name in ("tree", "gbt") else [name]
    for name in out:
        get_model(name)
    return out


def level_pairs(
    model: str, image_zooms: list[int], spectrum_zooms: list[int], diagonal: bool = False
) -> list[tuple[int | None, int | None]]:
    """The (image zoom, spectrum zoom) pairs a model is trained at (None for a modality it ignores):
    the whole grid, or with ``diagonal`` only the matched levels (64 px with 4620 samples, ...)."""
    spec = get_model(model)
    img = [z for z in image_zooms if image_size(z) >= spec.min_image_px] if spec.uses_images else [None]
    spe = list(spectrum_zooms) if spec.uses_spectra else [None]
    pairs = [(i, s) for i in img for s in spe]
    if diagonal and spec.uses_images and spec.uses_spectra:
        pairs = [(i, s) for i, s in pairs if i == s]
    return pairs


def plan(
    models: list[str], image_zooms: list[int], spectrum_zooms: list[int], seeds: list[int],
    pairs: str = "grid", control: str = "",
) -> list[Training]:  # fmt: skip
    """Every training of the study, longest first (ties: model, levels, seed); with ``control`` a
    model name, that model at the highest levels with its input averaged down to the lowest
    levels' shapes inside the network (:data:`CONTROL`), once per seed."""
    if pairs not in PAIRS:
        raise ValueError(f"pairs must be one of {PAIRS}, got {pairs!r}")
    todo = [
        Training(m, zi, zs, seed)
        for m in expand_models(models)
        for zi, zs in level_pairs(m, image_zooms, spectrum_zooms, pairs == "diagonal")
        for seed in seeds
    ]
    if control:
        spec = get_model(control)
        zi = min(image_zooms) if spec.uses_images else None
        zs = min(spectrum_zooms) if spec.uses_spectra else None
        todo += [Training(control, zi, zs, seed, CONTROL) for seed in seeds]
    return sorted(todo, key=lambda t: (-t.cost, t))


def curve_plan(
    models: list[str], levels: list[int], fractions: list[float], seeds: list[int]
) -> list[Training]:
    """The learning curves' trainings: each model at each matched level on each fraction (< 1) of
    the training split, once per seed (the whole split is the study's own cell)."""
    todo = []
    for m in models:
        spec = get_model(m)
        for z in levels:
            zi, zs = (z if spec.uses_images else None), (z if spec.uses_spectra else None)
            todo += [Training(m, zi, zs, seed, f"frac{f:g}") for f in fractions if f < 1 for seed in seeds]
    return sorted(todo, key=lambda t: (-t.cost, t))


def with_other_stem(todo: list[Training]) -> list[Training]:
    """``todo`` and, for every network with a stem (not the control, whose stem is fixed), the same
    training with :data:`OTHER_STEM`, longest first. The study keeps, per training, the stem with
    the lower validation loss: a model at a higher level then includes the lower level's (its input
    averaged down) as a candidate, so extra detail it cannot use costs it nothing but the choice."""
    twins = [dataclasses.replace(t, stem=OTHER_STEM) for t in todo
             if not t.stem and t.setup != CONTROL and get_model(t.model).takes_stem]  # fmt: skip
    return sorted(dict.fromkeys([*todo, *twins]), key=lambda t: (-t.cost, t))


def control_settings(
    chosen: dict[str, dict], plan: list[Training], image_zooms: list[int], spectrum_zooms: list[int]
) -> dict[str, dict]:
    """``chosen`` (tuned settings per cell) with every control cell given the settings of its
    model at the lowest levels: the control then differs from the cell it must reproduce in its
    input alone (the highest level averaged inside the network), not in its recipe."""
    out = dict(chosen)
    for t in plan:
        if t.setup == CONTROL:
            low = Training(t.model, max(image_zooms) if t.image_zoom is not None else None,
                           max(spectrum_zooms) if t.spectrum_zoom is not None else None, 0)  # fmt: skip
            out[t.tuning_cell] = chosen.get(low.cell, {})
    return out

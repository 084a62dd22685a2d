"""The grid of a resolution study: which model trains at which levels with which seed, in what order."""

from __future__ import annotations

from dataclasses import dataclass

from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model

DEFAULT_MODELS = (
    "gbt", "image-cnn", "spectrum-hybrid", "early-fusion", "intermediate-fusion", "hybrid-fusion",
)  # fmt: skip
PAIRS = ("grid", "diagonal")


@dataclass(frozen=True, order=True)
class Training:
    """One training of the study: a model at its levels (None: a modality it does not read), a seed."""

    model: str
    image_zoom: int | None
    spectrum_zoom: int | None
    seed: int

    @property
    def key(self) -> str:
        """A name unique in the study, also a directory name."""
        lv = [f"image{self.image_zoom}" if self.image_zoom is not None else "",
              f"spectrum{self.spectrum_zoom}" if self.spectrum_zoom is not None else ""]  # fmt: skip
        return f"{self.model}-{'-'.join(v for v in lv if v)}-seed{self.seed}"

    @property
    def cost(self) -> float:
        """Relative cost, for the order only: a network over raw pixels and samples costs with what
        it reads (a 64 px / 4620 network first, so the longest trainings do not make the tail); on
        PCA features (trees, early fusion) a training is short at any level."""
        spec = get_model(self.model)
        px = image_size(self.image_zoom) ** 2 * 5 if "image" in spec.inputs else 0
        samples = spectrum_samples(self.spectrum_zoom) if "spectrum" in spec.inputs else 0
        return (100.0 if spec.family == "net" else 1.0) * (1 + (px + samples) / 1000)


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
    model: str, image_levels: list[int], spectrum_levels: list[int], diagonal: bool = False
) -> list[tuple[int | None, int | None]]:
    """The (image zoom, spectrum zoom) pairs a model is trained at (None for a modality it ignores):
    the whole grid, or with ``diagonal`` only the matched levels (64 px with 4620 samples, ...)."""
    spec = get_model(model)
    img = [z for z in image_levels if image_size(z) >= spec.min_image_px] if spec.uses_images else [None]
    spe = list(spectrum_levels) if spec.uses_spectra else [None]
    pairs = [(i, s) for i in img for s in spe]
    if diagonal and spec.uses_images and spec.uses_spectra:
        pairs = [(i, s) for i, s in pairs if i == s]
    return pairs


def plan(
    models: list[str], image_levels: list[int], spectrum_levels: list[int], seeds: list[int],
    pairs: str = "grid",
) -> list[Training]:  # fmt: skip
    """Every training of the study, longest first (ties: model, levels, seed)."""
    if pairs not in PAIRS:
        raise ValueError(f"pairs must be one of {PAIRS}, got {pairs!r}")
    todo = [
        Training(m, zi, zs, seed)
        for m in expand_models(models)
        for zi, zs in level_pairs(m, image_levels, spectrum_levels, pairs == "diagonal")
        for seed in seeds
    ]
    return sorted(todo, key=lambda t: (-t.cost, t))

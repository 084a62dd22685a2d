"""The preprocess stage: filter, stats, deblend (every image level) and PCA (every level) in one go."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from sfrdask.runtime import Runtime
from sfrdask.stages import deblend, filter, pca, stats
from sfrdask.stages.base import Stage, option, required, setting


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store written by ingest", positional=True, input=True)
    out: Path | None = option(None, "directory for tables and PNGs (default: none written)")
    label: str = option("AVG", "AVG (alias AVR), or another catalogue column")
    flag: int = setting("preprocess.flag", "keep catalogue rows with this FLAG")
    max_bad_fraction: float = setting("preprocess.max-bad-fraction", "drop objects with more NaN than this")
    classes: tuple[str, ...] = setting("preprocess.classes", "comma-separated classes kept, e.g. GALAXY,QSO")
    compact: bool = setting(
        "preprocess.compact", "copy the selected objects contiguously, so later stages read only them"
    )
    strategy: str = setting(
        "preprocess.deblend.strategy", "what replaces neighbours", choices=["none", "crop", "mask", "noise"]
    )
    modalities: tuple[str, ...] = option(("image", "spectrum"), "PCA of image, spectrum or both")
    image_components: int = setting("preprocess.pca.image-components", "components kept for images")
    spectrum_components: int = setting("preprocess.pca.spectrum-components", "components kept for spectra")
    source: str = option(
        "auto",
        "PCA input for images: deblended when present (auto), or raw",
        choices=["auto", "clean", "raw"],
    )


@dataclass(frozen=True)
class Result:
    filter: filter.Result
    stats: stats.Result
    deblend: deblend.Result
    pca: pca.Result


def _sub(params: type, p: Params, **given: object) -> object:
    """A sub-stage's Params from this stage's fields of the same name (by name, never by position,
    so reordering a field cannot move a value), plus ``given``; its other fields keep their defaults."""
    names = {f.name for f in fields(params)}
    return params(**{f.name: getattr(p, f.name) for f in fields(Params) if f.name in names} | given)


def run(rt: Runtime, p: Params) -> Result:
    f = filter.run(rt, _sub(filter.Params, p))
    s = stats.run(rt, _sub(stats.Params, p))
    d = deblend.run(rt, _sub(deblend.Params, p, plots=p.out))  # every image level
    c = pca.run(rt, _sub(pca.Params, p, plots=p.out))  # every level
    return Result(f, s, d, c)


def report(r: Result) -> list[str]:
    return [*filter.report(r.filter), *stats.report(r.stats), *deblend.report(r.deblend), *pca.report(r.pca)]


STAGE = Stage(Params, run, report)

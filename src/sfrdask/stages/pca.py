"""The pca stage: standardisation and incremental PCA fitted on the training split, per level."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.choices import PCA_SOURCES
from sfrdask.io.levels import parse_levels
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required, setting


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store with a selection (sfrdask filter)", positional=True, input=True)
    zooms: tuple[int, ...] | None = option(None, "levels (default: all in the store)", parse=parse_levels)
    modalities: tuple[str, ...] = option(("image", "spectrum"), "image, spectrum or both (comma-separated)")
    image_components: int = setting("preprocess.pca.image-components", "components kept for images")
    spectrum_components: int = setting("preprocess.pca.spectrum-components", "components kept for spectra")
    source: str = option("auto", "images: deblended cutouts when present (auto), or raw", choices=PCA_SOURCES)
    plots: Path | None = option(None, "directory for the explained-variance plot")


@dataclass(frozen=True)
class Result:
    groups: dict[str, dict[str, Any]]  # "image/0" -> explained variance, training objects, input
    plot: Path | None


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.io.store import store_levels
    from sfrdask.preprocessing.pca import explained_variance_plot, fit_pca_store

    levels = store_levels(p.store)
    fitted, groups = {}, {}
    with rt.active():
        for modality in p.modalities:
            if modality not in levels:
                raise ValueError(f"unknown modality {modality!r}: expected image or spectrum")
            n = p.image_components if modality == "image" else p.spectrum_components
            for z in p.zooms or levels[modality]:
                g = fit_pca_store(p.store, modality, z, n_components=n, source=p.source)
                fitted[(modality, z)] = g
                groups[f"{modality}/{z}"] = {
                    "components": int(g.sizes["component"]),
                    "explained": float(g["explained_variance_ratio"].values.sum()),
                    "n_train": int(g.attrs["n_train"]),
                    "source": g.attrs["source"],
                }
    plot = None
    if p.plots is not None and fitted:
        plot = explained_variance_plot(fitted, p.plots / "pca_explained_variance.png")
    return Result(groups, plot)


def report(r: Result) -> list[str]:
    lines = [
        f"pca/{name}: {g['components']} components explain {g['explained']:.1%} of the training variance "
        f"({g['n_train']} training objects, input {g['source']})"
        for name, g in r.groups.items()
    ]
    return lines + ([f"wrote {r.plot}"] if r.plot else [])


STAGE = Stage(Params, run, report)

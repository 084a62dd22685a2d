"""The deblend stage: the central object of every selected cutout isolated (sep), per image level."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.choices import DEBLEND_STRATEGIES
from sfrdask.io.levels import parse_levels
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required, setting


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store with a selection (sfrdask filter)", positional=True, input=True)
    zooms: tuple[int, ...] | None = option(
        None, "image levels (default: all in the store)", parse=parse_levels
    )
    strategy: str = setting(
        "preprocess.deblend.strategy", "what replaces neighbours", choices=DEBLEND_STRATEGIES
    )
    plots: Path | None = option(None, "directory for before/after montages")


@dataclass(frozen=True)
class Result:
    groups: dict[int, dict[str, Any]]  # zoom -> attrs of clean/{zoom}
    plots: tuple[Path, ...]


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.io.store import store_levels
    from sfrdask.preprocessing import deblend_store

    groups, plots = {}, []
    with rt.active():
        for z in p.zooms or store_levels(p.store)["image"]:
            g = deblend_store(p.store, z, strategy=p.strategy)
            groups[z] = dict(g.attrs)
            if p.plots is not None:
                plots.append(_montage(p.store, z, g, p.plots))
    return Result(groups, tuple(plots))


def _montage(store: Path, zoom: int, g: Any, out: Path) -> Path:
    """Before/after of up to 8 selected cutouts, those with neighbours first."""
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_deblend_montage

    found = g.central_found.values
    busy = found & (g.n_sources.values > 1)
    pick = list(map(int, g.object.values[busy][:8])) or list(map(int, g.object.values[found][:8]))
    raw = open_store(store, image_zoom=zoom, spectrum_zoom=None).image.sel(object=pick).values
    sub = g.sel(object=pick)
    return plot_deblend_montage(
        raw,
        sub.image.values,
        sub.mask.values,
        out / f"deblend_zoom{zoom}.png",
        [f"object {o}" for o in pick],
        zoom=zoom,
    )


def report(r: Result) -> list[str]:
    lines = [
        f"clean/{z}: {a['central_found']} of {a['objects']} central objects found (strategy {a['strategy']})"
        for z, a in r.groups.items()
    ]
    return lines + [f"wrote {p}" for p in r.plots]


STAGE = Stage(Params, run, report)

"""The ingest stage: a HiSS-Cube file (and its MPA-JHU labels) into a zarr v3 store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfrdask.choices import LEVELS
from sfrdask.config import ConfigError
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import parse_levels
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, from_mapping, option, required


def read_catalogs(p: Any) -> pd.DataFrame | None:
    """The joined gal_info/gal_totsfr(/totlgm) table that ``p``'s ``catalog`` directory and
    ``gal_info``/``totsfr``/``totlgm`` files (which override it) name, or None."""
    from sfrdask.io.catalog import find_catalogs, read_mpajhu

    paths: dict[str, Path | None] = {"gal_info": None, "totsfr": None, "totlgm": None}
    if p.catalog:
        paths.update(find_catalogs(p.catalog))
    for k in paths:
        if getattr(p, k, None):
            paths[k] = getattr(p, k)
    if paths["gal_info"] is None and paths["totsfr"] is None:
        return None
    if paths["gal_info"] is None or paths["totsfr"] is None:
        raise SfrdaskError(
            "both a gal_info and a gal_totsfr table are needed (--catalog DIR or --gal-info/--totsfr)"
        )
    return read_mpajhu(paths["gal_info"], paths["totsfr"], paths["totlgm"])


@dataclass(frozen=True)
class Params:
    cube: Path = required("HiSS-Cube file", positional=True, input=True)
    out: Path = required("the zarr store to write")
    catalog: Path | None = option(
        None, "directory holding the MPA-JHU DR7 FITS tables (standard names)", input=True
    )
    gal_info: Path | None = option(None, "gal_info table (overrides --catalog)", input=True)
    totsfr: Path | None = option(None, "gal_totsfr table (overrides --catalog)", input=True)
    totlgm: Path | None = option(None, "totlgm (stellar mass) table, optional", input=True)
    image_zooms: tuple[int, ...] = option(
        LEVELS, "image zoom levels, e.g. 0,2 (0..3 = 64, 32, 16, 8 px)", parse=parse_levels
    )
    spectrum_zooms: tuple[int, ...] = option(
        LEVELS, "spectrum zoom levels (0..3 = 4620, 2310, 1155, 577 samples)", parse=parse_levels
    )
    overwrite: bool = option(False, "replace an existing store")


@dataclass(frozen=True)
class Result:
    store: Path
    megabytes: float
    seconds: float


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.io.store import write_store

    cat = read_catalogs(p)  # the small inputs are checked before the cube is read
    t0 = time.perf_counter()
    with rt.active():
        out = write_store(
            p.cube,
            p.out,
            catalog=cat,
            image_zooms=p.image_zooms,
            spectrum_zooms=p.spectrum_zooms,
            overwrite=p.overwrite,
            client=rt.client,
        )
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return Result(Path(out), size / 2**20, time.perf_counter() - t0)


def report(r: Result) -> list[str]:
    return [f"wrote {r.store} ({r.megabytes:.1f} MB on disk) in {r.seconds:.1f} s"]


def wire(zooms: dict | None, w: Wiring) -> Params:
    """A run file's ``zooms: {image: [...], spectrum: [...]}``: the run's cube (and its
    catalogues) into the run's store, which the stages after it read."""
    bad = sorted(set(zooms or {}) - {"image", "spectrum"})
    if bad:
        raise ConfigError(
            f"zooms: unknown key(s) {bad}; 'zooms' takes 'image' and 'spectrum' (lists of zoom levels 0..3)"
        )
    w.places["store"] = w.run / "store.zarr"
    return from_mapping(
        Params,
        {f"{k}-zooms": v for k, v in (zooms or {}).items()},
        "zooms",
        cube=w.take("cube", "ingest"),
        out=w.places["store"],
        catalog=w.take("catalog", "ingest"),
        gal_info=None,
        totsfr=None,
        totlgm=None,
        overwrite=True,
    )


STAGE = Stage(Params, run, report, section="zooms", wire=wire)

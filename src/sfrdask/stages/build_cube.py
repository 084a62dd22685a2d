"""The build-cube stage: a HiSS-Cube file from directories of SDSS frame and spectrum FITS files."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.choices import GROUPINGS, PLACEMENTS
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required, setting


@dataclass(frozen=True)
class Params:
    frames: Path = required("directory of frame-*.fits[.bz2]", input=True)
    spectra: Path = required(
        "directory of SDSS spectra (*.fits, *.fit, *.fits.gz; read by their headers)", input=True
    )
    out: Path = required("the HiSS-Cube file to write")
    grouping: str = setting(
        "io.target-grouping",
        "spectra in one HEALPix cell are one target (healpix, as "
        "HiSS-Cube), or spectra within --match-arcsec (fof)",
        choices=GROUPINGS,
    )
    healpix_order: int = setting("io.healpix-order", "HEALPix order of the cells (nested)")
    match_arcsec: float = option(3.0, "with --grouping fof: spectra this close are one target")
    batch: int = option(256, "targets extracted per batch (bounds memory)")
    placement: str = setting(
        "io.cutout-placement",
        "where a 64 px cutout starts: as HiSS-Cube (hisscube) or rounded to the nearest pixel (centred)",
        choices=PLACEMENTS,
    )
    overwrite: bool = option(False, "replace an existing file")


@dataclass(frozen=True)
class Result:
    cube: Path
    report: dict[str, Any]  # also in CUBE.build.json
    seconds: float


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.fits_to_cube import build_cube

    t0 = time.perf_counter()
    with rt.active():
        r = build_cube(
            p.frames,
            p.spectra,
            p.out,
            match_arcsec=p.match_arcsec,
            grouping=p.grouping,
            healpix_order=p.healpix_order,
            batch=p.batch,
            overwrite=p.overwrite,
            client=rt.client,
            placement=p.placement,
        )
    return Result(p.out, r, time.perf_counter() - t0)


def report(r: Result) -> list[str]:
    f, s, t = r.report["frames"], r.report["spectra"], r.report["targets"]
    lines = [f"frames: {f['usable']} of {f['found']} usable; spectra: {s['usable']} of {s['found']} usable"]
    lines += [f"  rejected {path}: {why}" for path, why in {**f["rejected"], **s["rejected"]}.items()]
    lines += [f"  skipped {path}: {why}" for path, why in {**f["skipped"], **s["skipped"]}.items()]
    lines.append(
        f"targets: {t['found']} found, {t['written']} written, "
        f"{t['outside_every_frame']} outside every frame, {t['missing_bands']} without all five bands"
    )
    lines.append(f"wrote {r.cube} and {r.cube}.build.json in {r.seconds:.1f} s")
    return lines


STAGE = Stage(Params, run, report)

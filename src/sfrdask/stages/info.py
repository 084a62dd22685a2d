"""The info tool: what a HiSS-Cube file holds (levels, counts, band order, NaN) and its labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required
from sfrdask.stages.ingest import read_catalogs


@dataclass(frozen=True)
class Params:
    cube: Path = required("HiSS-Cube file", positional=True, input=True)
    catalog: Path | None = option(
        None, "directory holding the MPA-JHU DR7 FITS tables (standard names)", input=True
    )
    gal_info: Path | None = option(None, "gal_info table (overrides --catalog)", input=True)
    totsfr: Path | None = option(None, "gal_totsfr table (overrides --catalog)", input=True)
    totlgm: Path | None = option(None, "totlgm (stellar mass) table, optional", input=True)
    json: bool = option(False, "print JSON")


@dataclass(frozen=True)
class Result:
    info: dict[str, Any]
    as_json: bool


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.io.catalog import join_labels, label_coverage
    from sfrdask.io.hisscube import describe, open_hisscube
    from sfrdask.io.hisscube.meta import read_target_metadata

    cat = read_catalogs(p)  # the small inputs are checked before the cube is read
    with rt.active():
        meta = read_target_metadata(p.cube)  # every target's headers, read once for all that follows
        info = describe(p.cube, metadata=meta)
        if cat is not None:
            info["labels"] = label_coverage(join_labels(open_hisscube(p.cube, metadata=meta), cat), cat)
    return Result(info, p.json)


def _count(n: int) -> str:
    return str(n) if n >= 0 else "? (not recorded in this layout)"


def report(r: Result) -> list[str]:
    info = r.info
    if r.as_json:
        return [json.dumps(info, indent=2)]
    lines = [
        f"{info['file']}  ({info['size_mb']} MB, HiSS-Cube {info.get('layout', '?')} layout)",
        f"  targets {info['targets']}, spectra {_count(info['spectrum_count'])}, "
        f"frames {_count(info['image_count'])}, "
        f"up to {info.get('spectra_per_target_max', '?')} spectra per target",
        f"  zoom levels {info['zoom_levels']}; stored band order {info.get('stored_band_order', '?')} "
        "(mapped to u,g,r,i,z through the frame FILTER headers)",
    ]
    bc = info.get("band_colours")
    if bc and bc["colours"]:
        colours = ", ".join(f"{k} {v:+.2f}" for k, v in bc["colours"].items())
        lines.append(f'  band colours (3" aperture, zoom {bc["zoom"]}, {bc["objects"]} objects): {colours}')
        lines.append(
            "  WARNING: " + bc["message"].split(": ", 1)[1]
            if bc["permuted"]
            else "  these colours look like SDSS galaxies, quasars and stars in u, g, r, i, z"
        )
    for z, lv in info["levels"].items():
        lines.append(
            f"  zoom {z}: image {lv['image']} (NaN {lv['image_nan_fraction']:.2%}), "
            f"spectrum {lv['spectrum']} (NaN {lv['spectrum_nan_fraction']:.2%})"
        )
    if "labels" in info:
        lb = info["labels"]
        lines.append(
            f"  labels: {lb['matched']} of {lb['objects']} objects matched the catalogue, "
            f"{lb['flag0_objects']} with FLAG == 0; catalogue: {lb['catalog_rows']} rows, "
            f"{lb['catalog_flag0_rows']} with FLAG == 0"
        )
    return lines


STAGE = Stage(Params, run, report, uses_cluster=False)

"""The synth stage: a synthetic survey in HiSS-Cube's layout, with its MPA-JHU tables and truth."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from sfrdask.choices import COMPRESSIONS
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, from_mapping, option, required, setting


@dataclass(frozen=True)
class Params:
    out: Path = required("output directory (must not exist unless --overwrite)")
    objects: int = setting("synth.objects", "objects (targets) in the cube")
    seed: int = setting("synth.seed", "the same seed gives the same files")
    flag0_fraction: float = setting(
        "synth.flag0-fraction", "share of objects with FLAG == 0 labels (real data: 0.07; up to 0.55)"
    )
    compression: str | None = option(None, "HDF5 filter (default: none)", choices=COMPRESSIONS)
    overwrite: bool = option(False, "replace an existing directory")


@dataclass(frozen=True)
class Result:
    cube: Path
    objects: int
    spectra: int
    flag0_objects: int
    seconds: float


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.synthetic import SynthParams, make_survey

    params = SynthParams(flag0_fraction=p.flag0_fraction)  # the rest from sfrdask.synth.*
    t0 = time.perf_counter()
    with rt.active():
        cube = make_survey(
            p.out,
            objects=p.objects,
            seed=p.seed,
            params=params,
            overwrite=p.overwrite,
            compression=p.compression,
            client=rt.client,
        )
    meta = json.loads((cube.parent / "survey.json").read_text())
    return Result(cube, meta["objects"], meta["spectra"], meta["flag0_objects"], time.perf_counter() - t0)


def report(r: Result) -> list[str]:
    return [
        f"wrote {r.cube} ({r.objects} objects, {r.spectra} spectra, {r.flag0_objects} with FLAG == 0) "
        f"in {r.seconds:.1f} s: {r.objects / r.seconds:.1f} objects/s"
    ]


def wire(section: dict | None, w: Wiring) -> Params | None:
    """A run file's ``input: synthetic: {objects, seed, ...}``: the survey in the run directory,
    whose cube and catalogues the stages after it read."""
    if "synthetic" not in (section or {}):
        return None
    survey = w.run / "survey"
    w.places.update(cube=survey / "survey.h5", catalog=survey)
    return from_mapping(Params, section["synthetic"], "input.synthetic", out=survey, overwrite=True)


STAGE = Stage(Params, run, report, section="input", wire=wire)

"""``sfrdask scene-synth``: the synthetic stand-in for the Scene experiment's data set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class Params:
    out: Path = required("output directory")
    objects: int = option(800, "frames (rows of dataset.csv)")
    seed: int = option(0, "the same seed gives the same files")
    size: int = option(64, "frame side in px")
    overwrite: bool = option(False, "replace an existing directory")


def run(rt: Runtime, p: Params) -> tuple[Path, int]:
    from sfrdask.scene import make_scene

    return make_scene(p.out, objects=p.objects, seed=p.seed, size=p.size, overwrite=p.overwrite), p.objects


STAGE = Stage(
    Params,
    run,
    lambda r: [f"wrote {r[0]}/dataset.csv and {r[1]} frames in {r[0]}/<environment>/"],
    uses_cluster=False,
)

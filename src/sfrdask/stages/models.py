"""``sfrdask models``: the models the registries know (the SFR models and the Scene classifiers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage


@dataclass(frozen=True)
class Params:
    pass


def run(rt: Runtime, p: Params) -> dict[str, list[Any]]:
    from sfrdask.models import list_models
    from sfrdask.scene.models import SCENE_MODELS

    return {
        "SFR models (sfrdask train)": list_models(),
        "Scene experiment (sfrdask scene)": SCENE_MODELS.list(),
    }


def report(registries: dict[str, list[Any]]) -> list[str]:
    lines = []
    for title, models in registries.items():
        lines += [title, f"  {'model':<26} {'family':<7} {'inputs':<26} {'min px':>6}  description"]
        lines += [
            f"  {m.name:<26} {m.family:<7} {','.join(m.inputs):<26} {m.min_image_px:>6}  {m.description}"
            for m in models
        ]
    return lines


STAGE = Stage(Params, run, report, uses_cluster=False)

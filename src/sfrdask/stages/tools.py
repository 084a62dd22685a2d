"""Small commands that are not pipeline stages: the model list, a label plot, the Scene stand-in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.errors import SfrdaskError
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class ModelsParams:
    pass


def _models(rt: Runtime, p: ModelsParams) -> dict[str, list[Any]]:
    from sfrdask.models import list_models
    from sfrdask.scene.models import SCENE_MODELS

    return {
        "SFR models (sfrdask train)": list_models(),
        "Scene experiment (sfrdask scene)": SCENE_MODELS.list(),
    }


def _models_report(registries: dict[str, list[Any]]) -> list[str]:
    lines = []
    for title, models in registries.items():
        lines += [title, f"  {'model':<26} {'family':<7} {'inputs':<26} {'min px':>6}  description"]
        lines += [
            f"  {m.name:<26} {m.family:<7} {','.join(m.inputs):<26} {m.min_image_px:>6}  {m.description}"
            for m in models
        ]
    return lines


MODELS = Stage(ModelsParams, _models, _models_report, uses_cluster=False)


@dataclass(frozen=True)
class PlotLabelsParams:
    store: Path = required("zarr store with labels", positional=True, input=True)
    out: Path = required("the PNG to write")
    label: str = option("AVG", "AVG (alias AVR), or another catalogue column")


def _plot_labels(rt: Runtime, p: PlotLabelsParams) -> Path:
    from sfrdask.io.catalog import resolve_label
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_label_distribution

    ds = open_store(p.store, image_zoom=None, spectrum_zoom=None)
    label = resolve_label(p.label)
    if label not in ds:
        raise SfrdaskError(f"{p.store}: no label column {label} (was the store ingested with --catalog?)")
    return plot_label_distribution(ds, p.out, label)


PLOT_LABELS = Stage(PlotLabelsParams, _plot_labels, lambda out: [f"wrote {out}"], uses_cluster=False)


@dataclass(frozen=True)
class SceneSynthParams:
    out: Path = required("output directory")
    objects: int = option(800, "frames (rows of dataset.csv)")
    seed: int = option(0, "the same seed gives the same files")
    size: int = option(64, "frame side in px")
    overwrite: bool = option(False, "replace an existing directory")


def _scene_synth(rt: Runtime, p: SceneSynthParams) -> tuple[Path, int]:
    from sfrdask.scene import make_scene

    return make_scene(p.out, objects=p.objects, seed=p.seed, size=p.size, overwrite=p.overwrite), p.objects


SCENE_SYNTH = Stage(
    SceneSynthParams,
    _scene_synth,
    lambda r: [f"wrote {r[0]}/dataset.csv and {r[1]} frames in {r[0]}/<environment>/"],
    uses_cluster=False,
)

"""The scene stage: the Scene experiment (audio MFCC + frames, indoors/outdoors and environment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class Params:
    data: Path = required("directory with dataset.csv and the image folders", input=True)
    out: Path = option(Path("scene-output"), "results directory")
    models: tuple[str, ...] | None = option(None, "comma-separated (default: every Scene model)")
    size: int = option(32, "frames resized to SIZE x SIZE px")
    epochs: int = option(40, "training epochs of the networks")
    seed: int = option(0, "initialisation and shuffling")
    image_column: str | None = option(None, "the dataset.csv column naming each frame's file")


@dataclass(frozen=True)
class Result:
    out: Path
    split: dict[str, int]
    table: Any  # DataFrame: model, task, accuracy


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.scene import run_scene

    with rt.active():
        r = run_scene(
            p.data,
            out=p.out,
            models=list(p.models) if p.models else None,
            size=p.size,
            epochs=p.epochs,
            seed=p.seed,
            image_column=p.image_column,
            client=rt.client,
        )
    return Result(p.out, r["split"], r["table"])


def report(r: Result) -> list[str]:
    return [
        f"split (fixed, by file name): {r.split}",
        (r.out / "results.md").read_text().rstrip("\n"),
        f"wrote {r.out}/results.{{csv,json,md}} and confusion_CLASS1.png, confusion_CLASS2.png",
    ]


STAGE = Stage(Params, run, report)

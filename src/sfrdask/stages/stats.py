"""The stats stage: the label's statistics and distribution over the selection (tables, PNG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store with a selection (sfrdask filter)", positional=True, input=True)
    out: Path | None = option(None, "directory for tables and PNGs (default: none written)")
    label: str = option("AVG", "AVG (alias AVR), or another catalogue column")


@dataclass(frozen=True)
class Result:
    table: pd.DataFrame
    files: tuple[Path, ...]  # label_stats.csv, label_stats.md, label_distribution.png (with an out)


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.io.atomic import write_text
    from sfrdask.io.catalog import resolve_label
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_label_distribution
    from sfrdask.preprocessing import label_statistics
    from sfrdask.preprocessing.quality import selected_objects
    from sfrdask.tables import markdown

    label = resolve_label(p.label)
    with rt.active():
        table = label_statistics(p.store, label)
        if p.out is None:
            return Result(table, ())
        root = open_store(p.store, image_zoom=None, spectrum_zoom=None).isel(object=selected_objects(p.store))
        files = (
            write_text(p.out / "label_stats.csv", table.to_csv()),
            write_text(p.out / "label_stats.md", markdown(table, index=True)),
            plot_label_distribution(root, p.out / "label_distribution.png", label),
        )
    return Result(table, files)


def report(r: Result) -> list[str]:
    return [r.table.round(3).to_string(), *(f"wrote {f}" for f in r.files)]


STAGE = Stage(Params, run, report)

"""``sfrdask plot-labels``: the label distribution of a store, as a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfrdask.errors import SfrdaskError
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, option, required


@dataclass(frozen=True)
class Params:
    store: Path = required("zarr store with labels", positional=True, input=True)
    out: Path = required("the PNG to write")
    label: str = option("AVG", "AVG (alias AVR), or another catalogue column")


def run(rt: Runtime, p: Params) -> Path:
    from sfrdask.io.catalog import resolve_label
    from sfrdask.io.store import open_store
    from sfrdask.plots import plot_label_distribution

    ds = open_store(p.store, image_zoom=None, spectrum_zoom=None)
    label = resolve_label(p.label)
    if label not in ds:
        raise SfrdaskError(f"{p.store}: no label column {label} (was the store ingested with --catalog?)")
    return plot_label_distribution(ds, p.out, label)


STAGE = Stage(Params, run, lambda out: [f"wrote {out}"], uses_cluster=False)

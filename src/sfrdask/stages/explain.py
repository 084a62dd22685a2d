"""The explain stage: what a trained network looks at (captum attributions,
:mod:`sfrdask.trained.attributions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfrdask.choices import SPLITS
from sfrdask.config import ConfigError
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, from_mapping, option, required


@dataclass(frozen=True)
class Params:
    run: Path = required("run directory of a trained network (or its best.pt)", positional=True, input=True)
    store: Path = required("the store holding the run's inputs (its training store, or another)", input=True)
    split: str = option("test", "whose objects to explain", choices=SPLITS)
    objects: int = option(256, "objects explained (drawn at random from the split)")
    steps: int = option(32, "integration steps of integrated gradients")
    seed: int = option(0, "which objects are drawn")
    out: Path | None = option(None, "output directory (default: RUN/explain)")


@dataclass(frozen=True)
class Result:
    model: str
    out: Path
    files: tuple[Path, ...]
    tables: dict[str, Any] = field(default_factory=dict)


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.trained.attributions import explain_run, write_explanation

    e = explain_run(p.run, p.store, p.split, p.objects, p.steps, p.seed)
    out = p.out or (e.run_dir / "explain")
    w = write_explanation(e, out)
    return Result(e.model, Path(out), tuple(w.pop("files")), w)


def report(r: Result) -> list[str]:
    lines = [f"{r.model}: attributions written to {r.out}"]
    if "windows" in r.tables:
        row = r.tables["windows"].iloc[0]  # all objects
        parts = [
            f"{k.removesuffix(' share')} {row[k]:.1%} ({row[k.replace('share', 'enrichment')]:.1f}x)"
            for k in row.index
            if k.endswith(" share")
        ]
        lines.append(
            "spectrum attribution in line windows (enrichment over their wavelength share): "
            + ", ".join(parts)
        )
    if "fibre" in r.tables:
        row = r.tables["fibre"].iloc[0]
        lines.append(
            f'image attribution inside the 3" fibre: {row["inside fibre"]:.1%} (the fibre covers '
            f"{row['fibre area']:.1%} of the cutout)"
        )
    if "context" in r.tables:
        lines.append(
            "context share of the attribution: "
            + ", ".join(f"{k} {v:.1%}" for k, v in r.tables["context"].items())
        )
    lines += [f"  {f}" for f in r.files]
    return lines


def wire(section: dict | None, w: Wiring) -> Params | None:
    """A run file's ``explain: {model: NAME, ...}``: a network of this run's train section, on the
    run's store, into ``explain/``."""
    if not section:
        return None
    from sfrdask.stages.train import run_dirs

    ex = dict(section)
    name, train = ex.pop("model", None), w.params.get("train")
    if train is None or name not in train.models:
        raise ConfigError(f"explain.model {name!r} must be a network trained in this run (train.models)")
    fixed = dict(run=run_dirs(train, name)[0], store=w.take("store", "explain"), out=w.run / "explain")
    return from_mapping(Params, ex, "explain", **fixed)


STAGE = Stage(Params, run, report, uses_cluster=False, section="explain", wire=wire)

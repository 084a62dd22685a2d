"""The train stage: registered models trained on a preprocessed store, one results table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask import config
from sfrdask.config import ConfigError
from sfrdask.io.levels import parse_zoom
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, copied, fields_of, from_mapping, option, params_class, required
from sfrdask.training.settings import TrainSettings


def _check(self: Any) -> None:
    """Refusals that need no data: nothing to train, or a network that would not train."""
    from sfrdask.errors import SfrdaskError
    from sfrdask.models import get_model  # torch: not when the command line only parses

    if not self.models:
        raise SfrdaskError("--model names no model")
    for name in self.models:
        get_model(name)  # an unknown name lists the known ones
    if self.epochs < 1:
        raise SfrdaskError(f"--epochs must be at least 1 ({self.epochs} given)")
    if self.seeds is not None and not self.seeds:
        raise SfrdaskError("--seeds names no seed")


# The training settings are TrainSettings' fields (declared once, with TrainSpec); this stage adds
# what it alone decides: the store, the models, the levels, the ranks, several seeds, resume, out.
Params = params_class(
    __name__,
    [
        ("store", Path, required("preprocessed zarr store", input=True)),
        (
            "models",
            tuple[str, ...],
            required("model name(s), comma-separated (sfrdask models)", flag="--model"),
        ),
        ("image_zoom", int | None, option(None, "0..3 = 64, 32, 16, 8 px", parse=parse_zoom)),
        ("spectrum_zoom", int | None, option(None, "0..3 = 4620, 2310, 1155, 577 samples", parse=parse_zoom)),
        ("ranks", int | None, option(None, "DDP ranks, one per Dask worker (default: this process)")),
        *copied(TrainSettings),
        (
            "seeds",
            tuple[int, ...] | None,
            option(
                None,
                "train every model once per seed, e.g. 0,1,2 (overrides --seed): mean +- std in results.md",
            ),
        ),
        ("resume", bool, option(False, "continue from OUT/MODEL/.../last.pt")),
        ("out", Path, option(Path("runs"), "results directory")),
    ],
    check=_check,
)


@dataclass(frozen=True)
class Result:
    runs: tuple[dict[str, Any], ...]  # per model: model, run_dir, metrics, seconds
    results: Path  # OUT/results.csv (and .json, .md)


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.models import get_model
    from sfrdask.trained.modelling import train

    for name in p.models:
        get_model(name)  # an unknown name is refused before any work
    out = []
    settings = {f.name: getattr(p, f.name) for f, _ in fields_of(Params) if "setting" in f.metadata}
    with rt.active():
        for name in p.models:
            for seed in p.seeds or (p.seed,):
                r = train(
                    p.store,
                    name,
                    p.image_zoom,
                    p.spectrum_zoom,
                    ranks=p.ranks,
                    out=p.out,
                    client=rt.client,
                    resume=p.resume,
                    **(settings | {"seed": seed}),
                )
                out.append(
                    {
                        "model": name if len(p.seeds or ()) < 2 else f"{name} (seed {seed})",
                        "run_dir": r.run_dir,
                        "metrics": r.metrics,
                        "seconds": r.seconds,
                    }
                )
                print(_line(out[-1]), flush=True)
    return Result(tuple(out), p.out / "results.csv")


def _line(r: dict[str, Any]) -> str:
    m = r["metrics"]
    return (
        f"{r['model']}: test R^2 {m['r2']:.3f}, RMSE {m['rmse']:.3f}, MAE {m['mae']:.3f} "
        f"(n = {m['n']}; {r['seconds']:.1f} s)"
    )


def cluster_overrides(p: Params, kind: str) -> dict[str, Any] | None:
    """DDP needs one single-thread worker per rank at least; without ranks no cluster is needed
    (trees, physics and single-process networks run in this process)."""
    if not p.ranks:
        return None
    if kind == "local":
        return {"n_workers": max(p.ranks, int(config.get("cluster.local.n-workers")))}
    if kind == "slurm":
        return {"jobs": max(p.ranks, int(config.get("cluster.slurm.jobs")))}
    return {}


def report(r: Result) -> list[str]:
    return [
        r.results.with_suffix(".md").read_text(),
        f"results: {r.results} (and .json, .md); per-model outputs under {r.results.parent}/MODEL/",
    ]


def run_dirs(p: Params, model: str) -> list[Path]:
    """Where these Params put ``model``'s runs (one per seed: with several, a deep ensemble)."""
    from sfrdask.training.spec import TrainSpec

    return [
        TrainSpec.from_config(
            p.store,
            model,
            image_zoom=p.image_zoom,
            spectrum_zoom=p.spectrum_zoom,
            target=p.target,
            seed=seed,
            context=p.context,
            rest_frame=p.rest_frame,
            out=str(p.out),
        ).run_dir
        for seed in (p.seeds or (p.seed,))
    ]


def wire(section: dict | None, w: Wiring) -> Params | None:
    """A run file's ``train:`` section (none without models), on the run's store, into ``runs/``;
    a level must be one the run ingests."""
    if not (section or {}).get("models"):
        return None
    p = from_mapping(Params, section, "train", store=w.take("store", "train"), out=w.run / "runs")
    ingest = w.params.get("ingest")
    for kind in ("image", "spectrum"):
        zoom = getattr(p, f"{kind}_zoom")
        stored = getattr(ingest, f"{kind}_zooms", ())
        if zoom is not None and zoom not in stored:
            raise ConfigError(
                f"train.{kind}-zoom {zoom} is not among the zoom levels this run ingests (zooms.{kind}: "
                f"{list(stored)}); add it to zooms.{kind} or train at one of those"
            )
    return p


STAGE = Stage(Params, run, report, cluster_overrides=cluster_overrides, section="train", wire=wire)

"""The study stage: the resolution study (which levels give the best accuracy for their cost) with
its trainings fanned out over the cluster, resumable, reported as tables and plots.

Preparation reuses the stages: ingest of every studied level, filter, deblend and PCA per level,
each timed (objects/s per stage and level) and skipped on a rerun with the same inputs. Then every
(model, levels, seed) of the plan trains as one Dask task, longest first (:mod:`sfrdask.resolution`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import parse_levels
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, check_inputs, digest, option, required, setting

LEVELS = (0, 1, 2, 3)


@dataclass(frozen=True)
class Params:
    cube: Path = required("HiSS-Cube file to study", input=True)
    catalog: Path = required("directory of its MPA-JHU DR7 tables", input=True)
    out: Path = option(Path("study"), "study directory: tables, plots, work/ (store, runs, record)")
    models: tuple[str, ...] = setting("study.models", "comma-separated; gbt, tree: -image, -spectrum, -both")
    image_levels: tuple[int, ...] = option(LEVELS, "image levels (0..3 = 64..8 px)", parse=parse_levels)
    spectrum_levels: tuple[int, ...] = option(LEVELS, "spectrum levels (0..3)", parse=parse_levels)
    pairs: str = setting("study.pairs", "two-modality models: the 4 x 4 grid or matched levels",
                         choices=["grid", "diagonal"])  # fmt: skip
    seeds: tuple[int, ...] = setting("study.seeds", "every model trains once per seed")
    epochs: int = setting("train.epochs", "upper limit; early stopping usually ends sooner")
    batch_size: int = setting("train.batch-size", "batch of one training")
    gpus: int = setting("study.gpus", "GPUs one training holds: worker resource GPU (0: none asked)")
    retries: int = setting("study.retries", "tries more for a training that failed or whose worker died")
    report_only: bool = option(False, "tables and plots of what is recorded, training nothing")


@dataclass(frozen=True)
class Result:
    table: Path  # study.md (and study.csv, study.json, r2_heatmap.png, pareto.png beside it)
    trainings: int  # recorded trainings of this study's plan
    trained_now: int
    planned: int


def _steps(p: Params, store: Path) -> list[tuple[str, Any, Any]]:
    """(name, stage module, its Params) of the preparation, in order."""
    from sfrdask.stages import deblend, filter, ingest, pca

    ing = ingest.Params(p.cube, store, catalog=p.catalog, image_zooms=p.image_levels,
                        spectrum_zooms=p.spectrum_levels, overwrite=True)  # fmt: skip
    steps = [("ingest/all", ingest, ing), ("filter", filter, filter.Params(store))]
    steps += [(f"deblend/image/{z}", deblend, deblend.Params(store, zooms=(z,))) for z in p.image_levels]
    for m, levels in (("image", p.image_levels), ("spectrum", p.spectrum_levels)):
        steps += [(f"pca/{m}/{z}", pca, pca.Params(store, zooms=(z,), modalities=(m,))) for z in levels]
    return steps


def _fingerprint(path: Path) -> list[Any]:
    """Size and a hash of the first and last MiB: the same cube, also one rebuilt byte for byte
    from its seed on another machine (its time stamp would differ), without reading all of it."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        h.update(f.read(2**20))
        f.seek(max(0, size - 2**20))
        h.update(f.read(2**20))
    return [size, h.hexdigest()]


def prepare(rt: Runtime, p: Params, work: Path) -> tuple[Path, dict[str, Any], str]:
    """The study's store, ingested and preprocessed at every level through the stages, the seconds
    and objects/s of each step, reading every level of the cube included, and the digest of it all
    (recorded in work/prepared.json; reused while the cube and every step's parameters are the same,
    and every recorded training carries it, so a training on another preparation never counts)."""
    import dask

    from sfrdask.io.atomic import write_text
    from sfrdask.io.hisscube import open_hisscube
    from sfrdask.preprocessing.quality import selected_objects

    store, marker = work / "store.zarr", work / "prepared.json"
    steps = _steps(p, store)
    key = digest("study-prepare", _fingerprint(Path(p.cube)), *(repr(params) for *_, params in steps))
    if marker.exists() and store.exists() and json.loads(marker.read_text())["digest"] == key:
        return store, json.loads(marker.read_text())["stages"], key
    stages: dict[str, Any] = {}

    def timed(name: str, objects: int, fn: Any) -> None:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        stages[name] = {"seconds": round(dt, 3), "objects": objects, "objects_per_s": round(objects / dt, 1)}

    with rt.active():
        for mod, levels in (("image", p.image_levels), ("spectrum", p.spectrum_levels)):
            for z in levels:  # reading one level of the cube, data and errors of every object
                zi, zs = (z, p.spectrum_levels[0]) if mod == "image" else (p.image_levels[0], z)
                ds = open_hisscube(p.cube, zi, zs)
                timed(
                    f"read/{mod}/{z}",
                    ds.sizes["object"],
                    lambda ds=ds, mod=mod: dask.compute(ds[mod].data.sum(), ds[f"{mod}_error"].data.sum()),
                )
        n = ds.sizes["object"]
        for name, module, params in steps:
            objects = n if name in ("ingest/all", "filter") else len(selected_objects(store))
            timed(name, objects, lambda module=module, params=params: module.run(rt, params))
    write_text(marker, json.dumps({"digest": key, "stages": stages}, indent=1))
    return store, stages, key


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.preprocessing.quality import selected_objects
    from sfrdask.resolution import fanout, grid
    from sfrdask.resolution.record import Record
    from sfrdask.resolution.report import end_to_end, write_all

    check_inputs(p)  # also when called from a run file or the API with a runtime of its own
    plan = grid.plan(list(p.models), list(p.image_levels), list(p.spectrum_levels), list(p.seeds), p.pairs)
    work = Path(p.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    record = Record(work / "done.jsonl")
    if p.report_only:
        store, (stages, key) = work / "store.zarr", _recorded(work)
    else:
        store, stages, key = prepare(rt, p, work)
    done = {t for t, row in record.rows.items() if row.get("prepared") == key}
    todo = [] if p.report_only else [t for t in plan if t not in done]
    selected = len(selected_objects(store))

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "end_to_end_objects_per_s": end_to_end(row, stages, selected), "prepared": key}

    report = contextlib.ExitStack()
    if rt.client is not None and todo:  # the Dask performance report of the trainings, of this client
        from distributed import performance_report

        report.enter_context(rt.client.as_current())
        report.enter_context(performance_report(filename=str(Path(p.out) / "performance.html")))
    with report:
        failed = fanout.train_all(
            rt.client, store, todo, record, work / "runs", {"epochs": p.epochs, "batch_size": p.batch_size},
            finish=finish, retries=p.retries, resources={"GPU": p.gpus} if p.gpus else None,
        )  # fmt: skip
    rows = [record.rows[t] for t in plan if t in record and record.rows[t].get("prepared") == key]
    table = write_all(rows, stages, store, Path(p.out), p)
    fanout.check_failed(failed)
    return Result(table, len(rows), len(todo) - len(failed), len(plan))


def _recorded(work: Path) -> tuple[dict[str, Any], str]:
    marker = work / "prepared.json"
    if not marker.exists():
        raise SfrdaskError(f"{marker}: no prepared study here to report on; run the study first")
    prepared = json.loads(marker.read_text())
    return prepared["stages"], prepared["digest"]


def report(r: Result) -> list[str]:
    done = f"{r.trainings} of {r.planned} trainings recorded ({r.trained_now} now)"
    return [r.table.read_text(), f"{done}; tables and plots in {r.table.parent}"]


STAGE = Stage(Params, run, report)

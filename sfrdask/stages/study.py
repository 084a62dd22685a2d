"""The study stage: the resolution study (which levels give the best accuracy for their cost) with
its trainings fanned out over the cluster, resumable, reported as tables and plots.

The preparation (:mod:`sfrdask.stages.study_prepare`) reuses the stages: ingest of every studied
level, filter, deblend and PCA per level, each timed (objects/s per stage and level) and skipped on
a rerun with the same inputs. Then every (model, levels, seed) of the plan trains as one Dask task,
longest first (:mod:`sfrdask.resolution`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.io.levels import parse_levels
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, check_inputs, option, required, setting
from sfrdask.stages.study_prepare import prepare, recorded

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
        store, (stages, key) = work / "store.zarr", recorded(work)
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


def report(r: Result) -> list[str]:
    done = f"{r.trainings} of {r.planned} trainings recorded ({r.trained_now} now)"
    return [r.table.read_text(), f"{done}; tables and plots in {r.table.parent}"]


STAGE = Stage(Params, run, report)

"""The study stage: the resolution study (which levels give the best accuracy for their cost) with
its trainings fanned out over the cluster, resumable, reported as tables and plots.

The preparation (:mod:`sfrdask.stages.study_prepare`) reuses the stages: ingest of every studied
level, filter, deblend and PCA per level, each timed (objects/s per stage and level) and skipped on
a rerun with the same inputs. Then every (model, levels, seed) of the plan trains as one Dask task,
longest first (:mod:`sfrdask.resolution`), with the settings tuned for its cell, continued
past the epoch cap until early stopping ends it; then the learning curves of the best networks.
The report gives every cell's R² with its paired bootstrap interval, the cells tied with the best,
a recommendation, the control cell and the curves' projection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfrdask.choices import LEVELS, PAIRS
from sfrdask.errors import SfrdaskError
from sfrdask.io.levels import parse_levels
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, check_inputs, from_mapping, option, required, same_as, setting
from sfrdask.stages.study_prepare import prepare, recorded
from sfrdask.training.settings import TrainSettings

RECIPE = 2  # rows of an older recipe (no stems, no tuning, no stop reasons) are trained again


@dataclass(frozen=True)
class Params:
    cube: Path = required("HiSS-Cube file to study", input=True)
    catalog: Path = required("directory of its MPA-JHU DR7 tables", input=True)
    out: Path = option(Path("study"), "study directory: tables, plots, work/ (store, runs, record, tuning)")
    models: tuple[str, ...] = setting("study.models", "comma-separated; gbt, tree: -image, -spectrum, -both")
    image_zooms: tuple[int, ...] = option(
        LEVELS, "image zoom levels (0..3 = 64, 32, 16, 8 px)", parse=parse_levels, renamed_from="image_levels"
    )
    spectrum_zooms: tuple[int, ...] = option(
        LEVELS,
        "spectrum zoom levels (0..3 = 4620, 2310, 1155, 577 samples)",
        parse=parse_levels,
        renamed_from="spectrum_levels",
    )
    pairs: str = setting(
        "study.pairs", "two-modality models: the 4 x 4 grid or matched levels", choices=PAIRS
    )
    seeds: tuple[int, ...] = setting("study.seeds", "every model trains once per seed")
    epochs: int = same_as(
        TrainSettings, "epochs", "epoch cap of one leg; a training at the cap goes on (--epoch-limit)"
    )
    epoch_limit: int = setting("study.epoch-limit", "hard limit of a continued training's epochs")
    batch_size: int = same_as(TrainSettings, "batch_size", "batch of one training")
    tune_trials: int = setting("study.tune-trials", "Optuna trials per network and level (0: the defaults)")
    tune_epochs: int = setting("study.tune-epochs", "epoch cap of one tuning trial")
    control: str = setting("study.control", "model of the control cell ('' for none)")
    stem_choice: bool = setting(
        "study.stem-choice", "networks also train on the averaged input; the lower validation loss is kept"
    )
    bootstrap: bool = setting("study.bootstrap", "paired bootstrap intervals, tied set, recommendation")
    bootstrap_draws: int = setting("study.bootstrap-draws", "bootstrap draws")
    curves: bool = setting("study.curves", "learning curves of the best networks")
    curve_models: int = setting("study.curve-models", "how many of the best networks get learning curves")
    curve_zooms: tuple[int, ...] = setting(
        "study.curve-zooms",
        "matched zoom levels of the curves",
        parse=parse_levels,
        renamed_from="curve_levels",
    )
    curve_fractions: tuple[float, ...] = setting("study.curve-fractions", "fractions of the training split")
    project_train_objects: int = setting("study.project-train-objects", "training size R^2 is projected to")
    gpus: int = setting("study.gpus", "GPUs one training holds: worker resource GPU (0: none asked)")
    retries: int = setting("study.retries", "tries more for a training that failed or whose worker died")
    report_only: bool = option(False, "tables and plots of what is recorded, training nothing")

    def check(self) -> None:
        """Refusals that need no data, before any cluster starts: a study that would train nothing,
        or untrained networks recorded as done."""
        for name, value, least in (
            ("seeds", len(self.seeds), 1),
            ("models", len(self.models), 1),
            ("epochs", self.epochs, 1),
            ("tune-trials", self.tune_trials, 0),
            ("epoch-limit", self.epoch_limit, self.epochs),
        ):
            if value < least:
                what = f"{value} given" if name not in ("seeds", "models") else "none given"
                raise SfrdaskError(f"--{name} must be at least {least} ({what})")
        for name, levels in (
            ("image-zooms", self.image_zooms),
            ("spectrum-zooms", self.spectrum_zooms),
            ("curve-zooms", self.curve_zooms),
        ):
            bad = [z for z in levels if not (isinstance(z, int) and 0 <= z <= 3)]
            if bad or (not levels and name != "curve-zooms"):
                raise SfrdaskError(
                    f"--{name} must be zoom levels 0..3 (0 = 64 px / 4620 samples), got {list(levels)}"
                )
        if any(not 0 < f < 1 for f in self.curve_fractions):
            raise SfrdaskError(
                f"--curve-fractions must lie between 0 and 1, got {list(self.curve_fractions)}"
            )
        from sfrdask.io.catalog import find_catalogs
        from sfrdask.io.formats import format_of
        from sfrdask.resolution.grid import expand_models  # torch: not when the command line only parses

        expand_models([*self.models, *([self.control] if self.control else [])])  # unknown: the known ones
        if Path(self.catalog).is_dir():
            find_catalogs(self.catalog)  # gal_info and gal_totsfr, named when missing
        if Path(self.cube).exists():
            format_of(self.cube).check_levels(self.cube, self.image_zooms, self.spectrum_zooms)


@dataclass(frozen=True)
class Result:
    table: Path  # study.md (and study.csv, study.json, r2_heatmap.png, pareto.png beside it)
    trainings: int  # recorded trainings of this study's plan
    trained_now: int
    planned: int


def run(rt: Runtime, p: Params) -> Result:
    from sfrdask.resolution import fanout, grid, stems
    from sfrdask.resolution.record import Record
    from sfrdask.resolution.report import best_networks, end_to_end, write_all

    check_inputs(p)  # also when called from a run file or the API with a runtime of its own (and p.check)
    work = Path(p.out) / "work"
    record = Record(work / "done.jsonl")
    p, store, stages, key = _prepared(rt, p, work, record)
    plan = grid.plan(
        list(p.models),
        list(p.image_zooms),
        list(p.spectrum_zooms),
        list(p.seeds),
        p.pairs,
        control=p.control,
    )
    if p.stem_choice:
        plan = grid.with_other_stem(plan)
    selected = len(selected_objects(store))
    chosen = _tuned(rt, p, store, plan, work)
    chosen = grid.control_settings(chosen, plan, list(p.image_zooms), list(p.spectrum_zooms))

    def current(t: grid.Training, row: dict[str, Any]) -> bool:
        return (
            row.get("prepared") == key
            and row.get("recipe") == RECIPE
            and row.get("tuned") == chosen.get(t.tuning_cell, {})
        )

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        return {
            **row,
            "end_to_end_objects_per_s": end_to_end(row, stages, selected),
            "prepared": key,
            "recipe": RECIPE,
        }

    settings = {"epochs": p.epochs, "epoch_limit": p.epoch_limit, "batch_size": p.batch_size}
    failed, trained = [], 0

    def train(todo: list[grid.Training]) -> None:
        nonlocal failed, trained
        if p.report_only or not todo:
            return
        failed += fanout.train_all(rt.client, store, todo, record, work / "runs", settings, finish=finish,
                                   retries=p.retries, resources=_resources(p), tuned=chosen)  # fmt: skip
        trained += len(todo)

    def kept() -> list[dict[str, Any]]:
        """The recorded trainings of the plan, one per training whatever its stem (the lower
        validation loss, :mod:`sfrdask.resolution.stems`)."""
        rows = [record.rows[t] for t in plan if t in record and current(t, record.rows[t])]
        return stems.choose(rows) if p.stem_choice else rows

    report = contextlib.ExitStack()
    if rt.client is not None and not p.report_only:  # one Dask performance report of all trainings
        from distributed import performance_report

        report.enter_context(rt.client.as_current())
        report.enter_context(performance_report(filename=str(Path(p.out) / "performance.html")))
    with report:
        train([t for t in plan if not (t in record and current(t, record.rows[t]))])
        if p.curves:  # the best networks, once their cells are recorded, on fractions of the training split
            best = best_networks(kept(), p.curve_models)
            levels = [z for z in p.curve_zooms if z in p.image_zooms and z in p.spectrum_zooms]
            curve = grid.curve_plan(best, levels, list(p.curve_fractions), list(p.seeds))
            curve = grid.with_other_stem(curve) if p.stem_choice else curve
            train([t for t in curve if not (t in record and current(t, record.rows[t]))])
            plan += curve
    trainings = [record.rows[t] for t in plan if t in record and current(t, record.rows[t])]
    table = write_all(kept(), stages, store, Path(p.out), p, tuning=work / "tuning", trainings=trainings)
    fanout.check_failed(failed)
    return Result(table, len(trainings), trained - len(failed), len(plan))


def _prepared(rt: Runtime, p: Params, work: Path, record: Any) -> tuple[Params, Path, dict[str, Any], str]:
    """The study's store prepared at every level (or, ``--report-only``, as recorded, with the
    study's parameters as its record holds them), its stage figures and its digest; too few test
    objects for one seed's bootstrap are refused now, not after every training."""
    if p.report_only:
        store, (stages, key) = work / "store.zarr", recorded(work)
        p = as_recorded(p, [row for row in record.rows.values() if row.get("prepared") == key], work)
        return p, store, stages, key
    store, stages, key = prepare(rt, p, work)
    if (p.bootstrap or p.curves) and len(p.seeds) < 2:
        from sfrdask.resolution.compare import check_enough
        from sfrdask.training.data import split_objects, target_values

        check_enough(len(p.seeds), split_objects(store, "test", target_values(store, "AVG")).size)
    return p, store, stages, key


def _tuned(rt: Runtime, p: Params, store: Path, plan: list, work: Path) -> dict[str, dict]:
    """Each network's settings per level, tuned on the validation split (read back with
    ``--report-only``)."""
    from sfrdask.resolution import tune

    if p.report_only:
        return tune.read_chosen(work / "tuning")
    settings = {"epochs": p.tune_epochs, "batch_size": p.batch_size}
    with rt.active():
        return tune.tune_all(rt.client, store, plan, p.tune_trials, work / "tuning", settings,
                             retries=p.retries, resources=_resources(p))  # fmt: skip


def as_recorded(p: Params, rows: list[dict[str, Any]], work: Path) -> Params:
    """``--report-only``: the study as its record holds it (models, levels, seeds, epochs, pairs,
    control, tuning budget, learning curves), never the command line's defaults."""
    from sfrdask.resolution.tune import CHOSEN

    main = [r for r in rows if r.get("recipe") == RECIPE and not r.get("setup")]
    if not main:
        raise SfrdaskError(
            f"{work / 'done.jsonl'}: no training of this study recorded yet; run the study first"
        )
    levels = {
        m: tuple(sorted({r[f"{m}_zoom"] for r in main if r[f"{m}_zoom"] is not None}))
        for m in ("image", "spectrum")
    }
    both = [r for r in main if r["image_zoom"] is not None and r["spectrum_zoom"] is not None]
    curve = [r for r in rows if r.get("recipe") == RECIPE and str(r.get("setup", "")).startswith("frac")]
    chosen = work / "tuning" / CHOSEN
    tuning = json.loads(chosen.read_text()) if chosen.exists() else {"budget": 0}
    return dataclasses.replace(
        p,
        models=tuple(dict.fromkeys(r["model"] for r in main)),
        image_zooms=levels["image"] or p.image_zooms,
        spectrum_zooms=levels["spectrum"] or p.spectrum_zooms,
        seeds=tuple(sorted({int(r["seed"]) for r in main})),
        pairs="grid" if any(r["image_zoom"] != r["spectrum_zoom"] for r in both) else "diagonal",
        epochs=int(main[0]["epoch_cap"]),
        epoch_limit=int(main[0]["epoch_limit"]),
        control=next((r["model"] for r in rows if r.get("setup") == "control"), ""),
        stem_choice=any(r.get("stem") for r in rows),
        curves=bool(curve),
        curve_models=len({r["model"] for r in curve}) or p.curve_models,
        curve_zooms=tuple(
            sorted({r["spectrum_zoom"] if r["spectrum_zoom"] is not None else r["image_zoom"] for r in curve})
        )
        or p.curve_zooms,
        curve_fractions=tuple(sorted({float(r["setup"][4:]) for r in curve})) or p.curve_fractions,
        tune_trials=int(tuning["budget"]),
        tune_epochs=int(tuning.get("epochs", p.tune_epochs)),
    )


def _resources(p: Params) -> dict[str, float] | None:
    return {"GPU": p.gpus} if p.gpus else None


def report(r: Result) -> list[str]:
    done = f"{r.trainings} of {r.planned} trainings recorded ({r.trained_now} now)"
    return [r.table.read_text(), f"{done}; tables and plots in {r.table.parent}"]


def wire(section: dict | None, w: Wiring) -> Params | None:
    """A run file's ``study:`` section (present, even empty): the run's cube, with a store of its
    own holding every level it studies, into ``study/``."""
    if section is None:
        return None
    fixed = dict(cube=w.take("cube", "study"), catalog=w.take("catalog", "study"), out=w.run / "study")
    return from_mapping(Params, section, "study", **fixed)


STAGE = Stage(Params, run, report, section="study", wire=wire)

"""The resolution study on the user's cube, projected onto GPU and CPU workers from measured costs.

    python benchmarks/study_projection.py --out bench-output           # seconds; reads only JSON

The study: the models of ``sfrdask.study.models`` at all 16 level pairs (single-modality models at
their 4 levels), 3 seeds, on 11,000 selected objects (70 / 15 / 15% split: 7,700 training, 1,650
validation, 1,650 test); with ``sfrdask.study.stem-choice`` every network with a stem trains a
second time on the averaged input (stem ``average``), its epochs from the record's trainings of
that stem and its seconds per epoch those of the configured stem (an upper bound: it reads the
same input and skips the detail convolution).

What is measured, and where:

- *Epochs* each training runs before early stopping, and the *rest* of a training's seconds
  (reading its split from the store, the test pass, writing its outputs): the record of the full
  diagonal study on 8,000 objects (benchmarks/results/resolution/done.jsonl; 1-thread workers on
  the 2-core CI-class machine). The rest is the task's seconds less its epochs (epochs x samples
  per epoch / training samples/s) and its validation passes (epochs x validation objects /
  inference samples/s); it is scaled by objects (11,000 / the study's selection).
- *Seconds per epoch* at 7,700 training and 1,650 validation objects of every network at every
  level pair: benchmarks/epoch_cost.py, on one H200 (``--gpu``) and on one core of this machine
  (``--cpu``, measured on 1,024 / 256 objects and scaled by objects; its diagonal cells are set
  against the record's own epochs as a check, printed).
- *Trees* (gbt-*): the record's task seconds, scaled by objects (the histogram GBT's cost is
  linear in them). On a GPU worker they run on its CPU.
- *Scheduling overhead*: 0.09 s per task (benchmarks/study_concurrency.py, docs/benchmarks.md).

The model: a training off the diagonal (e.g. 64 px with 577 samples) runs the epochs of the
mean of the two diagonal cells it mixes. Workers take trainings longest first, as the study
stage orders them, each the next one when it finishes (list scheduling); one training per
worker (one GPU, or one core). The preparation (ingest of 150,000 objects, filter, deblending and
PCA of the 11,000 selected at every level) is projected from the study's measured objects/s per
worker, with perfect scaling over the workers, which the scaling benchmark (docs/benchmarks.md)
supports up to its measured sizes only.
"""

from __future__ import annotations

import argparse
import heapq
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import markdown, write_json
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sfrdask import config
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model
from sfrdask.resolution.grid import plan, with_other_stem

RESULTS = Path(__file__).parent / "results"
SELECTED, OBJECTS = 11_000, 150_000
TRAIN, VALIDATION, TEST = 7_700, 1_650, 1_650
BATCH = 64
WORKERS = {"GPU": (1, 4, 16), "CPU": (16, 64)}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measured(record: list[dict]) -> dict[tuple[str, int | None, int | None, str], dict[str, float]]:
    """Per (model, image zoom, spectrum zoom, stem): mean epochs, rest seconds per object, task seconds
    per object, and the CPU seconds per training epoch per training object, over the seeds."""
    acc: dict = defaultdict(list)
    for r in record:
        n_val = r.get("n_val", r["n_test"])  # the record has the test count; the splits are equal shares
        objects = r["n_train"] + n_val + r["n_test"]
        epochs = r["epochs"] or 0  # trees: none
        per_epoch = (r["n_train"] // BATCH) * BATCH / r["train_samples_per_s"] if epochs else 0.0
        validation = epochs * n_val / r["inference_samples_per_s"]
        rest = max(r["train_seconds"] - epochs * per_epoch - validation, 0.0)
        acc[(r["model"], r["image_zoom"], r["spectrum_zoom"], r.get("stem") or "")].append(
            {
                "epochs": epochs,
                "rest_per_object": rest / objects,
                "task_per_object": r["train_seconds"] / objects,
                "cpu_epoch_per_train_object": per_epoch / r["n_train"],
            }
        )
    return {
        k: {f: float(np.mean([v[f] for v in vs])) for f in vs[0]} | {"seeds": len(vs)}
        for k, vs in acc.items()
    }


def cell(m: dict, model: str, zi: int | None, zs: int | None, stem: str = "") -> dict[str, float]:
    """The measured cell, or for a pair off the diagonal the mean of the two diagonal cells; a stem
    the record has not trained there: the configured stem's."""
    if (model, zi, zs, stem) in m:
        return m[(model, zi, zs, stem)]
    if stem and (model, zi, zi, stem) not in m:
        return cell(m, model, zi, zs)
    a, b = m[(model, zi, zi, stem)], m[(model, zs, zs, stem)]
    return {k: (a[k] + b[k]) / 2 for k in a}


def epoch_seconds(cost: list[dict], scale: float = 1.0) -> dict[tuple[str, int | None, int | None], float]:
    """Seconds of one epoch (training pass + validation pass) per (model, px, samples)."""
    return {
        (r["model"], r["image_px"], r["spectrum_samples"]): scale
        * (r["train_s_per_epoch"] + r["validation_s"])
        for r in cost
    }


def _key(model: str, zi: int | None, zs: int | None) -> tuple[str, int | None, int | None]:
    spec = get_model(model)
    if set(spec.inputs) <= {"image_pca", "spectrum_pca"} | {
        "context"
    }:  # PCA features: one size at every level
        return (model, None, None)
    return (
        model,
        image_size(zi) if "image" in spec.inputs else None,
        spectrum_samples(zs) if "spectrum" in spec.inputs else None,
    )


def durations(trainings: list, m: dict, epochs_at: dict | None) -> list[float]:
    """Seconds of each training on one worker: epochs x seconds per epoch (``epochs_at``) plus the
    rest, for networks; the scaled task seconds for trees."""
    out = []
    for t in trainings:
        c = cell(m, t.model, t.image_zoom, t.spectrum_zoom, t.stem)
        if get_model(t.model).family != "net":
            out.append(c["task_per_object"] * SELECTED)
        else:
            out.append(
                c["epochs"] * epochs_at[_key(t.model, t.image_zoom, t.spectrum_zoom)]
                + c["rest_per_object"] * SELECTED
            )
    return out


def trial_epochs(journal: Path, tune_epochs: int) -> dict[str, float]:
    """Mean epochs one tuning trial ran per network (pruned trials stop early), from the study's
    Optuna journal; ``tune_epochs`` (the cap: an upper bound) for a network it has not tuned yet."""
    per: dict[str, list[int]] = defaultdict(list)
    if journal.exists():
        storage = JournalStorage(JournalFileBackend(str(journal)))
        for study in storage.get_all_studies():
            model = re.sub(r"(-image\d)?(-spectrum\d)?$", "", study.study_name)
            for t in storage.get_all_trials(study._study_id, deepcopy=False):
                if t.state.is_finished() and t.intermediate_values:
                    per[model].append(len(t.intermediate_values))
    return defaultdict(lambda: float(tune_epochs), {k: float(np.mean(v)) for k, v in per.items()})


def tuning(
    trainings: list, m: dict, epochs_at: dict, per_trial: dict[str, float], trials: int
) -> list[float]:
    """Seconds of every tuning trial of the networks' cells (one cell per model and level pair):
    its epochs x seconds per epoch plus the rest of a training (reading its splits)."""
    cells = {
        (t.model, t.image_zoom, t.spectrum_zoom) for t in trainings if get_model(t.model).family == "net"
    }
    out = []
    for model, zi, zs in sorted(cells, key=str):
        c = cell(m, model, zi, zs) if (model, zi, zi, "") in m or (model, zi, zs, "") in m else None
        rest = c["rest_per_object"] * SELECTED if c else 0.0
        out += [per_trial[model] * epochs_at[_key(model, zi, zs)] + rest] * trials
    return sorted(out, reverse=True)


def makespan(seconds: list[float], workers: int, overhead: float) -> float:
    """List scheduling in the given order (longest first): each task to the first free worker."""
    free = [0.0] * workers
    heapq.heapify(free)
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s + overhead)
    return max(free)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", type=Path, default=RESULTS / "resolution" / "done.jsonl")
    p.add_argument("--gpu", type=Path, default=RESULTS / "epoch_cost" / "epoch_cost_cuda.json")
    p.add_argument("--cpu", type=Path, default=RESULTS / "epoch_cost" / "epoch_cost_cpu.json")
    p.add_argument(
        "--prepared",
        type=Path,
        default=RESULTS / "resolution" / "prepared.json",
        help="the study's preparation figures (objects/s per step on 2 workers)",
    )
    p.add_argument("--overhead", type=float, default=0.09, help="seconds of scheduling per task")
    p.add_argument("--journal", type=Path, default=RESULTS / "resolution" / "tuning" / "journal.log",
                   help="the study's Optuna journal: epochs per tuning trial")  # fmt: skip
    p.add_argument("--tune-trials", type=int, default=None, help="default: sfrdask.study.tune-trials")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    args = p.parse_args()

    gpu = json.loads(args.gpu.read_text())
    cpu = json.loads(args.cpu.read_text())
    costed = {r["model"] for r in gpu["rows"]} & {r["model"] for r in cpu["rows"]}
    rows_all = [r for r in _rows(args.record) if not r.get("setup")]  # the study's cells
    record = []  # per model, the newest recipe that has trained it at every level of the older one
    for model in sorted({r["model"] for r in rows_all}):
        mine = [r for r in rows_all if r["model"] == model]
        cells = {(r["image_zoom"], r["spectrum_zoom"]) for r in mine}
        for recipe in sorted({int(r.get("recipe", 1)) for r in mine}, reverse=True):
            rows = [r for r in mine if int(r.get("recipe", 1)) == recipe]
            if {(r["image_zoom"], r["spectrum_zoom"]) for r in rows} == cells:
                record += rows
                break
    # networks need seconds per epoch from benchmarks/epoch_cost.py: those it has not measured are left out
    models = sorted(
        {r["model"] for r in record if get_model(r["model"]).family != "net" or r["model"] in costed}
    )
    record = [r for r in record if r["model"] in models]
    m = measured(record)
    todo = plan(models, [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2], "grid")
    todo = with_other_stem(todo) if config.get("study.stem-choice") else todo
    cpu_args = cpu["args"]
    cpu_scale = TRAIN / int(cpu_args["train"])  # measured on fewer objects: per-object cost
    per_epoch = {"GPU": epoch_seconds(gpu["rows"]), "CPU": epoch_seconds(cpu["rows"], cpu_scale)}
    raw_train = {
        (r["model"], r["image_px"], r["spectrum_samples"]): r["train_s_per_epoch"] for r in cpu["rows"]
    }

    # the check: the CPU micro-benchmark against the record's own seconds per epoch (diagonal cells)
    check = []
    for (model, zi, zs, stem), c in sorted(m.items(), key=str):
        if get_model(model).family == "net" and not stem:
            k = _key(model, zi, zs)
            predicted = raw_train[k] / int(cpu_args["train"])
            recorded = c["cpu_epoch_per_train_object"]
            check.append(
                {
                    "model": model,
                    "image_px": k[1],
                    "spectrum_samples": k[2],
                    "recorded_ms_per_object": 1e3 * recorded,
                    "benchmark_ms_per_object": 1e3 * predicted,
                    "ratio": predicted / recorded,
                }
            )

    # the micro-benchmark leaves out the batch gathering and the flips of the real loop: its epochs
    # are scaled by the median recorded / benchmark ratio of the networks (the same factor on a GPU,
    # where that host-side work is the same)
    nets = [c["ratio"] for c in check if c["image_px"] or c["spectrum_samples"]]
    factor = 1 / float(np.median(nets))
    per_epoch = {kind: {k: v * factor for k, v in d.items()} for kind, d in per_epoch.items()}

    stages = json.loads(args.prepared.read_text())["stages"]
    prep_work = 0.0  # worker-seconds of the preparation on the user's cube (2 workers measured)
    for name, s in stages.items():
        if name.startswith("read/"):
            continue
        objects = OBJECTS if name in ("ingest/all", "filter") else SELECTED
        prep_work += 2 * objects / s["objects_per_s"]

    trials = config.get("study.tune-trials") if args.tune_trials is None else args.tune_trials
    per_trial = trial_epochs(args.journal, int(config.get("study.tune-epochs")))
    nets = [t for t in todo if get_model(t.model).family == "net"]
    rows, per_model = [], defaultdict(dict)
    for kind, counts in WORKERS.items():
        secs = durations(todo, m, per_epoch[kind])
        tune_secs = tuning(nets, m, per_epoch[kind], per_trial, trials)  # all tuning before the trainings
        for t, sec in zip(todo, secs, strict=True):
            per_model[t.model].setdefault(kind, []).append(sec)
        work = sum(secs) + sum(tune_secs)
        for w in counts:
            span = makespan(secs, w, args.overhead)
            tune_span = makespan(tune_secs, w, args.overhead) if tune_secs else 0.0
            rows.append(
                {
                    "workers": f"{w} {kind}",
                    "trainings": len(secs),
                    "tuning_trials": len(tune_secs),
                    "work_h": work / 3600,
                    "longest_min": max(secs) / 60,
                    "preparation_min": prep_work / w / 60,
                    "tuning_h": tune_span / 3600,
                    "trainings_h": span / 3600,
                    "total_h": (tune_span + span + prep_work / w) / 3600,
                    "use": work / ((span + tune_span) * w),
                }
            )
    models = [
        {"model": k, "trainings": len(v["GPU"]), "GPU_s_mean": np.mean(v["GPU"]), "GPU_s_max": max(v["GPU"]),
         "CPU_s_mean": np.mean(v["CPU"]), "CPU_s_max": max(v["CPU"])}
        for k, v in per_model.items()
    ]  # fmt: skip
    res = {
        "correction": factor,
        "per_model": models,
        "projection": rows,
        "cpu_check": check,
        "trainings": len(todo),
        "tuning": {"trials_per_cell": trials, "epochs_per_trial": dict(per_trial)},
        "seeds_per_cell": {"/".join(str(x) for x in k if x != ""): v["seeds"] for k, v in m.items()},
    }
    path = write_json(args.out / "study_projection.json", res)
    print(markdown(rows))
    print(markdown(models))
    print(markdown(check))
    print(f"benchmark epochs scaled by {factor:.3f} (median recorded / benchmark of the networks)")
    print(f"written {path}")


if __name__ == "__main__":
    main()

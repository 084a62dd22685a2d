"""Resolution study on a synthetic survey (or your cube): a thin caller of the ``study`` stage.

    python benchmarks/resolution_study.py --objects 8000 --out bench-output/resolution   # 3 seeds each
    python benchmarks/resolution_study.py --cube CUBE.h5 --catalog MPAJHU_DIR --out study   # your data
    python benchmarks/resolution_study.py --quick --out /tmp/b                # seconds; the test suite

The survey is made from its seed (``--objects``, ``--seed``, ``--flag0-fraction``) unless it is
there already, then ``sfrdask.study`` prepares every level and trains every (model, levels, seed)
of the plan as a Dask task on the cluster (sfrdask's config, or ``--cluster``), resuming from
``OUT/work/done.jsonl`` and its tuning journal (``--record``: a committed record beside its
``prepared.json``, ``tuning/journal.log`` and ``tuning/chosen.json``, with which a fresh machine
resumes: it prepares the store again from the seed and trains only what the record lacks).
What the study writes: docs/benchmarks.md and :mod:`sfrdask.stages.study`; every other option is
the stage's (``sfrdask study --help``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import dask

import sfrdask
from sfrdask import config
from sfrdask.choices import PAIRS
from sfrdask.io.atomic import write_text
from sfrdask.synthetic import SynthParams


def _split(text: str | None, kind: type = int) -> list | None:
    return None if text is None else [kind(x.strip()) for x in text.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cube", type=Path, help="a HiSS-Cube file (default: make a synthetic survey)")
    p.add_argument("--catalog", type=Path, help="directory of the MPA-JHU catalogues (with --cube)")
    p.add_argument("--objects", type=int, default=8000, help="synthetic survey size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--flag0-fraction", type=float, default=0.55, help="synthetic: share with FLAG == 0")
    p.add_argument("--models", default=None, help="comma-separated (default: sfrdask.study.models)")
    p.add_argument("--image-zooms", default="0,1,2,3")
    p.add_argument("--spectrum-zooms", default="0,1,2,3")
    p.add_argument("--pairs", choices=PAIRS, default=None)
    p.add_argument("--train-seeds", default=None, help="default: sfrdask.study.seeds")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--cluster", default=None, help="local, slurm or a scheduler address (default: config)")
    p.add_argument("--out", type=Path, default=Path("bench-output/resolution"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--record", type=Path, default=None,
                   help="a committed record of finished trainings (benchmarks/results/.../done.jsonl): "
                   "copied into OUT/work when that has none, and the study's record copied back to it at "
                   "the end, also after Ctrl-C")  # fmt: skip
    p.add_argument("--tune-trials", type=int, default=None, help="default: sfrdask.study.tune-trials")
    p.add_argument("--quick", action="store_true", help="tiny survey, 2 x 2 levels, 2 models: checks the run")
    args = p.parse_args()
    settings = {}
    if args.quick:
        args.objects, args.models, args.train_seeds = 96, "tree,early-fusion", "0,1"
        args.epochs, args.batch_size, args.pairs, args.cluster = 2, 16, "grid", "threads"
        args.image_zooms = args.spectrum_zooms = "2,3"
        args.tune_trials = 1
        settings = {f"sfrdask.preprocess.pca.{m}-components": 8 for m in ("image", "spectrum")}
        settings |= {"sfrdask.study.tune-epochs": 2, "sfrdask.study.epoch-limit": 4,
                     "sfrdask.study.control": "",
                     "sfrdask.study.curve-zooms": [3], "sfrdask.study.curve-models": 1,
                     "sfrdask.study.curve-fractions": [0.5]}  # fmt: skip
    # the committed record: the finished trainings, the preparation's digest and figures, the tuning
    # journal and the chosen settings
    work = args.out / "work"
    files = ("done.jsonl", "prepared.json", "tuning/journal.log", "tuning/chosen.json")
    carried = {name: name for name in files}
    if args.record is not None:
        for src, dst in carried.items():
            if (args.record.parent / src).exists() and not (work / dst).exists():
                (work / dst).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(
                    args.record.parent / src, work / dst
                )  # resume where the committed record stops
    try:
        run(args, p, settings)
    finally:
        if args.record is not None:
            for src, dst in carried.items():
                if (work / dst).exists():
                    (args.record.parent / src).parent.mkdir(parents=True, exist_ok=True)
                    write_text(args.record.parent / src, (work / dst).read_text())


def run(args: argparse.Namespace, p: argparse.ArgumentParser, settings: dict) -> None:
    with dask.config.set(settings), sfrdask.cluster(args.cluster or config.get("cluster.kind")) as client:
        if args.cube is None:
            survey = args.out / "work" / "survey"
            cube = survey / "survey.h5"
            if not cube.exists():
                sfrdask.make_survey(survey, objects=args.objects, seed=args.seed, overwrite=True,
                                    params=SynthParams(flag0_fraction=args.flag0_fraction),
                                    progress=not args.quick)  # fmt: skip
            catalog = survey
        elif args.catalog is None:
            p.error("--cube needs --catalog (the MPA-JHU catalogue directory)")
        else:
            cube, catalog = args.cube, args.catalog
        r = sfrdask.study(
            cube,
            catalog,
            args.out,
            models=_split(args.models, str),
            image_zooms=_split(args.image_zooms),
            spectrum_zooms=_split(args.spectrum_zooms),
            pairs=args.pairs,
            seeds=_split(args.train_seeds),
            epochs=args.epochs,
            batch_size=args.batch_size,
            tune_trials=args.tune_trials,
            report_only=args.report_only,
            client=client or "threads",
        )
    print(r.table.read_text())
    if args.quick:
        shutil.rmtree(args.out / "work")


if __name__ == "__main__":
    main()

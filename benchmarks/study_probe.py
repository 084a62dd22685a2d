"""One training of the resolution study again, with another patience: was it stopped too early?

    python benchmarks/study_probe.py intermediate-fusion --image-level 0 --spectrum-level 0 --seed 1 \\
        --patience 20 --out bench-output/probe
    python benchmarks/study_probe.py spectrum-hybrid --spectrum-level 0 --seed 2 --patience 20 \\
        --out bench-output/probe

Reads the study's store (``bench-output/resolution/work/store.zarr``, made by
``benchmarks/resolution_study.py``) and the committed record (its tuned settings, cap, limit and batch
size), trains the same cell and seed as the study's task does (:func:`sfrdask.resolution.task.
run_training`: the tuned settings, a 60-epoch cap continued up to the limit) with ``train.patience``
set, and prints the recorded training beside the new one: R^2, epochs, best epoch and why it stopped.
The same patience as the record reproduces its R^2 to every digit (training is deterministic for a
seed on one thread, which this script sets, as the study's workers have). ``--stem average``
retrains the other stem's twin of a training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dask
import torch
from common import markdown

from sfrdask import config
from sfrdask.resolution.grid import Training
from sfrdask.resolution.record import training_of
from sfrdask.resolution.task import run_training

RECORD = Path(__file__).resolve().parent / "results" / "resolution"
SHOWN = ("r2", "epochs", "best_epoch", "stop", "continued")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--image-level", type=int, default=None)
    p.add_argument("--spectrum-level", type=int, default=None)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--patience", type=int, required=True)
    p.add_argument("--stem", default="", help="'' (the configured stem) or average (the other stem's twin)")
    p.add_argument("--store", type=Path, default=Path("bench-output/resolution/work/store.zarr"))
    p.add_argument("--out", type=Path, default=Path("bench-output/probe"))
    args = p.parse_args()
    t = Training(args.model, args.image_level, args.spectrum_level, args.seed, "", args.stem)
    rows = [json.loads(line) for line in (RECORD / "done.jsonl").read_text().splitlines()]
    recorded = next(r for r in rows if training_of(r) == t)
    tuned = json.loads((RECORD / "tuning" / "chosen.json").read_text())["cells"][t.tuning_cell]["params"]
    settings = {"epochs": recorded["epoch_cap"], "epoch_limit": recorded["epoch_limit"],
                "batch_size": config.get("train.batch-size")}  # fmt: skip
    torch.set_num_threads(1)  # as the study's single-thread workers: the same sums, the same training
    with dask.config.set({"sfrdask.train.patience": args.patience}):
        row = run_training(str(args.store), t, str(args.out / f"patience{args.patience}"), settings, tuned)
    table = [{"run": "recorded", **{k: recorded[k] for k in SHOWN}},
             {"run": f"again, patience {args.patience}", **{k: row[k] for k in SHOWN}}]  # fmt: skip
    for r in table:
        r["r2"] = f"{r['r2']:.4f}"  # four digits: a rerun with the recorded patience gives them all
    print(f"{t.key}\n\n{markdown(table)}")


if __name__ == "__main__":
    main()

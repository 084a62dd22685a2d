"""Benchmark training: accuracy of every model, throughput per resolution, DDP scaling.

    python benchmarks/train.py --store STORE.zarr --out bench-output   # figures in docs/benchmarks.md
    python benchmarks/train.py --quick --out /tmp/b                   # seconds; run by the test suite

STORE must be preprocessed (``sfrdask preprocess``) with images and spectra at zoom 0 and 2; the
figures in docs/benchmarks.md come from the survey made by::

    sfrdask synth --objects 20000 --seed 42 --flag0-fraction 0.55 --out survey     # ~11,000 FLAG == 0
    sfrdask ingest survey/survey.h5 --catalog survey --out store.zarr --image-zooms 0,2 --spectrum-zooms 0,2
    sfrdask preprocess store.zarr --out preprocess

1. accuracy: every model (or --models) trained to early stopping at image zoom 2 / spectrum zoom 2
   (16 px / 1155 samples) on the same split; the results table, and whether the best fusion model
   beats the best single-modality model.
2. throughput: training and inference samples/s per network at 64 px / 4620 and 16 px / 1155
   (training: epoch 2, after the store's chunks are cached; inference: forward passes, batch 256).
3. ddp: samples/s of 2 DDP ranks (2 single-thread Dask worker processes, half the global batch
   each) against 1 rank (the whole --batch-size) for the same model and data, at --ddp-zoom
   (default 0: 64 px / 4620 samples). Target: >= 1.6x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from common import machine

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.models import get_model, list_models
from sfrdask.trained.modelling import train
from sfrdask.training import TrainSpec
from sfrdask.training.ddp import train_ddp
from sfrdask.training.loop import fit_net

SINGLE = {"image": ("image-cnn", "image-perband", "image-resnet", "tree-image", "gbt-image"),
          "spectrum": ("spectrum-mlp", "spectrum-hybrid", "tree-spectrum", "gbt-spectrum")}  # fmt: skip


def steady_rate(history: list[dict], skip: int = 1) -> float:
    """Training samples/s over the epochs after the first ``skip`` (which read the store)."""
    rows = [h for h in history if h["phase"] == "regress"][skip:] or history
    return sum(h["train_samples"] for h in rows) / sum(h["train_seconds"] for h in rows)


def bench_accuracy(store: Path, out: Path, models: list[str], zoom: int, epochs: int, batch: int) -> dict:
    rows = []
    for m in models:
        t0 = time.perf_counter()
        r = train(store, m, zoom, zoom, out=out / "accuracy", epochs=epochs, batch_size=batch)
        rows.append({"model": m, **r.metrics, "seconds": time.perf_counter() - t0})
        rows += [{"model": e.model, **e.metrics} for e in r.extra_rows]
        print(json.dumps(rows[-1]), flush=True)
    best = {}
    for kind, names in (("image", SINGLE["image"]), ("spectrum", SINGLE["spectrum"])):
        cand = [r for r in rows if r["model"] in names]
        if cand:
            best[kind] = min(cand, key=lambda r: r["mse"])
    fused = [r for r in rows if r["model"] not in SINGLE["image"] + SINGLE["spectrum"]
             and not r["model"].startswith("physics-")]  # fmt: skip
    if fused:
        best["fusion"] = min(fused, key=lambda r: r["mse"])
    return {"zoom": zoom, "rows": rows, "best": best}


def bench_throughput(store: Path, out: Path, models: list[str], zooms: list[int], batch: int) -> list[dict]:
    rows = []
    for z in zooms:
        for m in models:
            spec = TrainSpec.from_config(
                store, m, image_zoom=z, spectrum_zoom=z, out=str(out / "throughput"), epochs=2, patience=99,
                pretrain_epochs=1, progress=False, batch_size=batch,
            )  # fmt: skip
            r = fit_net(spec)
            rows.append(
                {
                    "model": m,
                    "zoom": z,
                    "train_samples_per_s": steady_rate(r.history),
                    "inference_samples_per_s": r.inference_samples_per_s,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_ddp(store: Path, out: Path, model: str, zoom: int, epochs: int, batch: int) -> dict:
    res = {"model": model, "zoom": zoom, "global_batch": batch}
    with sfrdask.cluster("local", n_workers=2, threads_per_worker=1) as client:
        for ranks in (1, 2):
            spec = TrainSpec.from_config(
                store, model, image_zoom=zoom, spectrum_zoom=zoom, out=str(out / f"ddp{ranks}"),
                epochs=epochs, patience=99, batch_size=batch, progress=False,
            )  # fmt: skip
            r = train_ddp(spec, ranks, client)
            res[f"ranks{ranks}_samples_per_s"] = steady_rate(r.history)
            res[f"ranks{ranks}_test_mse"] = r.metrics["mse"]
            print(json.dumps(res), flush=True)
    res["speedup"] = res["ranks2_samples_per_s"] / res["ranks1_samples_per_s"]
    return res


def quick_store(work: Path) -> Path:
    from sfrdask.preprocessing import deblend_store, fit_pca_store, select_objects
    from sfrdask.synthetic import SynthParams

    d = work / "survey"
    cube = sfrdask.make_survey(d, objects=96, seed=5, params=SynthParams(flag0_fraction=0.55), progress=False)
    store = sfrdask.write_store(cube, work / "s.zarr", catalog=sfrdask.read_catalog_dir(d), image_zooms=(2,),
                                spectrum_zooms=(2,))  # fmt: skip
    select_objects(store)
    deblend_store(store, 2)
    for modality in ("image", "spectrum"):
        fit_pca_store(store, modality, 2, n_components=8, progress=False)
    return store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, help="a preprocessed store (zooms 0 and 2)")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--parts", default="accuracy,throughput,ddp")
    p.add_argument("--models", default=None, help="comma-separated (default: every registered model)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over DDP ranks)")
    p.add_argument("--ddp-model", default="intermediate-fusion")
    p.add_argument("--ddp-zoom", type=int, default=0, help="image and spectrum zoom of the DDP measurement")
    p.add_argument("--ddp-epochs", type=int, default=2, help="epochs per DDP run (samples/s from epoch 2 on)")
    p.add_argument(
        "--unset-malloc-trim",
        action="store_true",
        help="leave MALLOC_TRIM_THRESHOLD_ unset in the workers (glibc's dynamic thresholds)",
    )
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    work = args.out / "train-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = args.models.split(",") if args.models else [m.name for m in list_models()]
    nets = [m for m in models if get_model(m).family == "net"]
    zooms = [0, 2]
    if args.quick:
        import dask

        dask.config.set(scheduler="threads")
        args.store = quick_store(work)
        models, nets, zooms, args.epochs = ["tree-both", "early-fusion"], ["early-fusion"], [2], 2
        args.batch_size = 16
        args.ddp_model, args.ddp_zoom = "early-fusion", 2
    if args.store is None:
        p.error("--store is required (or --quick)")
    parts = args.parts.split(",")
    if args.unset_malloc_trim:
        import dask

        dask.config.set({"sfrdask.cluster.worker-env.MALLOC_TRIM_THRESHOLD_": None})
    res: dict = {"store": str(args.store)}
    if "accuracy" in parts:
        res["accuracy"] = bench_accuracy(args.store, work, models, 2, args.epochs, args.batch_size)
    if "throughput" in parts:
        res["throughput"] = bench_throughput(args.store, work, nets, zooms, args.batch_size)
    if "ddp" in parts:
        res["ddp"] = bench_ddp(
            args.store, work, args.ddp_model, args.ddp_zoom, args.ddp_epochs, args.batch_size
        )
    res["machine"] = machine()
    res["torch_threads"] = torch.get_num_threads()
    write_text(args.out / "train.json", json.dumps(res, indent=2, default=float))
    if (work / "accuracy" / "results.md").exists():
        shutil.copy(work / "accuracy" / "results.md", args.out / "train_results.md")
        shutil.copy(work / "accuracy" / "results.csv", args.out / "train_results.csv")
    print(
        json.dumps(
            {k: v for k, v in res.items() if k not in ("accuracy", "throughput")}, indent=2, default=float
        )
    )
    if args.quick:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

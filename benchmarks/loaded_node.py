"""DDP training on a loaded node: do Dask's heartbeats and connections survive?

    python benchmarks/loaded_node.py --out bench-output                 # 2 burners beside DDP
    python benchmarks/loaded_node.py --out bench-output --dask-defaults # Dask's own timeouts
    python benchmarks/loaded_node.py --quick --out /tmp/b               # seconds; the test suite

A DDP training (2 ranks on a LocalCluster of 2 single-thread workers, 64 px / 4620 samples by
default) runs while ``--burners`` processes keep the cores busy with numpy matrix products (2 BLAS
threads each), as other jobs would on a shared node. Recorded: whether the training finished, the
workers the scheduler removed (its "Remove worker" log lines), the longest silence of a worker
seen by the scheduler (now - last heartbeat, sampled every 0.25 s) against the timeouts in force
(``sfrdask.cluster.timeouts``, or Dask's defaults with ``--dask-defaults``), and the samples/s.
Whatever else runs on the machine adds to the load: say so beside the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import dask
from common import machine, write_json
from train import steady_rate

import sfrdask
from sfrdask import config
from sfrdask.clusters import distributed_timeouts
from sfrdask.preprocessing import deblend_store, select_objects
from sfrdask.synthetic import SynthParams
from sfrdask.training import TrainSpec
from sfrdask.training.ddp import train_ddp


def burn(stop: mp.Event) -> None:  # type: ignore[valid-type]
    """Keep two cores busy with float64 matrix products until ``stop`` is set."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((700, 700))
    with threadpool_limits(2):
        while not stop.is_set():
            a = (a @ a) / 700.0


class Removals(logging.Handler):
    """Collects the scheduler's "Remove worker" lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "Remove worker" in msg or "failed to heartbeat" in msg:
            self.lines.append(msg)


def watch_silence(scheduler, stop: threading.Event, out: dict) -> None:
    """Longest time any worker went without a heartbeat, as the scheduler saw it."""
    while not stop.wait(0.25):
        now = time.time()
        for ws in list(scheduler.workers.values()):
            out["max_silence_s"] = max(out["max_silence_s"], now - ws.last_seen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=1200)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--zoom", type=int, default=0, help="image and spectrum zoom of the training")
    p.add_argument("--model", default="intermediate-fusion")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the training")
    p.add_argument("--dask-defaults", action="store_true", help="Dask's own timeouts")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.objects, args.zoom, args.epochs, args.burners = 64, 2, 2, 1
    if args.dask_defaults:
        dask.config.set({f"sfrdask.cluster.timeouts.{k}": None for k in config.get("cluster.timeouts")})
    work = args.out / "loaded-node-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cube = sfrdask.make_survey(work / "survey", objects=args.objects, seed=args.seed,
                               params=SynthParams(flag0_fraction=0.55), progress=False)  # fmt: skip
    store = sfrdask.write_store(cube, work / "store.zarr", catalog=sfrdask.read_catalog_dir(cube.parent),
                                image_zooms=(args.zoom,), spectrum_zooms=(args.zoom,))  # fmt: skip
    select_objects(store)
    deblend_store(store, args.zoom)
    res: dict = {"model": args.model, "zoom": args.zoom, "burners": args.burners, "epochs": args.epochs,
                 "timeouts": distributed_timeouts() or "dask defaults", "max_silence_s": 0.0}  # fmt: skip
    removals = Removals()
    logging.getLogger("distributed.scheduler").addHandler(removals)
    stop_burn = mp.get_context("spawn").Event()
    burners = [mp.get_context("spawn").Process(target=burn, args=(stop_burn,)) for _ in range(args.burners)]
    for b in burners:
        b.start()
    stop_watch = threading.Event()
    t0 = time.perf_counter()
    try:
        with sfrdask.cluster("local", n_workers=2, threads_per_worker=1) as client:
            keys = ("distributed.comm.timeouts.tcp", "distributed.scheduler.worker-ttl")
            res["timeouts_in_force"] = client.run_on_scheduler(lambda: {k: dask.config.get(k) for k in keys})
            watcher = threading.Thread(
                target=watch_silence, args=(client.cluster.scheduler, stop_watch, res), daemon=True
            )
            watcher.start()
            spec = TrainSpec.from_config(store, args.model, image_zoom=args.zoom, spectrum_zoom=args.zoom,
                                         out=str(work / "runs"), epochs=args.epochs, patience=99,
                                         batch_size=16 if args.quick else 64, progress=False)  # fmt: skip
            try:
                r = train_ddp(spec, 2, client)
                res.update(finished=True, samples_per_s=steady_rate(r.history))
            except Exception as e:  # the figure to report: what a loaded node did to the run
                res.update(finished=False, error=f"{type(e).__name__}: {e}")
            res["removed"] = list(removals.lines)  # before closing the cluster removes every worker
    finally:
        stop_watch.set()
        stop_burn.set()
        for b in burners:
            b.join()
    res.update(seconds=round(time.perf_counter() - t0, 1),
               max_silence_s=round(res["max_silence_s"], 2), machine=machine())  # fmt: skip
    write_json(args.out / "loaded_node.json", res)
    print(json.dumps(res, indent=1))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

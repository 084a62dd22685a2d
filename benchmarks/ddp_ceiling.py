"""The machine's ceiling for DDP scaling: plain torch processes, no Dask, no data pipeline.

    python benchmarks/ddp_ceiling.py --zoom 0 --batch 64 --out bench-output
    python benchmarks/ddp_ceiling.py --quick --out /tmp/b              # seconds; run by the test suite

The same registered model is stepped on fixed random tensors by 1 process and by 2 gloo ranks
(spawned processes, 1 torch thread each, the global batch split in two), so the ratio shows what
DDP itself can gain on this CPU. ``benchmarks/train.py --parts ddp`` measures sfrdask's real path
(Dask workers, store reads, validation) against it.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from sfrdask.io.atomic import write_text
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model


def _steps(rank: int, world: int, port: int, cfg: dict, queue) -> None:
    torch.set_num_threads(1)
    px, n = image_size(cfg["zoom"]), spectrum_samples(cfg["zoom"])
    shapes = {"image": (5, px, px), "spectrum": (n,), "image_pca": (100,), "spectrum_pca": (50,)}
    torch.manual_seed(0)
    model = get_model(cfg["model"]).build(shapes)
    net = model
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        net = DistributedDataParallel(model)
    b = cfg["batch"] // world
    batch = {k: torch.randn(b, *v) for k, v in shapes.items()}
    y = torch.randn(b)
    opt = torch.optim.AdamW(model.parameters())
    for i in range(cfg["warmup"] + cfg["steps"]):
        if i == cfg["warmup"]:
            t0 = time.perf_counter()
        opt.zero_grad()
        model.loss(net(batch), y).backward()
        opt.step()
    queue.put(cfg["steps"] * cfg["batch"] / (time.perf_counter() - t0))
    if world > 1:
        dist.barrier()  # both ranks done before teardown (without it gloo sometimes aborted one at exit)
        dist.destroy_process_group()


def rate(world: int, cfg: dict) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [ctx.Process(target=_steps, args=(r, world, port, cfg, queue)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"rank process exited with {p.exitcode}")
    return min(queue.get() for _ in procs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="intermediate-fusion")
    p.add_argument("--zoom", type=int, default=0, help="image and spectrum zoom level")
    p.add_argument("--batch", type=int, default=64, help="global batch")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    cfg = {"model": args.model, "zoom": args.zoom, "batch": args.batch, "steps": args.steps, "warmup": 10}
    if args.quick:
        cfg.update(model="early-fusion", zoom=3, batch=16, steps=3, warmup=1)
    res = {**cfg, "one_process_samples_per_s": rate(1, cfg), "two_ranks_samples_per_s": rate(2, cfg)}
    res["speedup"] = res["two_ranks_samples_per_s"] / res["one_process_samples_per_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "ddp_ceiling.json", json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

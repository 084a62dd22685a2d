"""Seconds per training epoch of each study network at every level pair, on one device: the
measured cost behind the projection of a resolution study onto GPU and CPU workers.

    python benchmarks/epoch_cost.py --device cuda --out bench-output           # a GPU node, minutes
    python benchmarks/epoch_cost.py --device cpu --threads 1 --pairs diagonal --out bench-output

The networks are the registry's, built at each level's shapes as training builds them (context of
3 numbers; early fusion on 100 + 50 PCA features). The data are random tensors of those shapes:
the cost of a step does not depend on the values. An epoch is what ``training.loop.fit_net`` does
per epoch: ``train / batch`` steps of forward, loss, backward and AdamW step, each batch copied from
host memory to the device as the DataLoader hands it over, then a no-grad pass over the validation
split. Not included: the dihedral augmentation of image batches (a flip per batch), checkpoint
writes and the store reads. One warm-up epoch, then the median of ``--repeats`` epochs.

The default split sizes are the user's cube's: 11,000 selected objects, 70% / 15% for training /
validation (sfrdask.train.split). ``--budget`` stops before a configuration that would start past
it; every finished row is already in the output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import machine, markdown, write_json

from sfrdask.choices import PAIRS
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model
from sfrdask.resolution.grid import plan

PCA = {"image_pca": (100,), "spectrum_pca": (50,)}  # sfrdask.pca.components of the study's store


def shapes(model: str, image_zoom: int | None, spectrum_zoom: int | None) -> dict[str, tuple[int, ...]]:
    """The input shapes training hands ``model`` at these levels (as in its checkpoints)."""
    out: dict[str, tuple[int, ...]] = {"context": (3,)}
    for name in get_model(model).inputs:
        if name == "image":
            out["image"] = (5, image_size(image_zoom), image_size(image_zoom))
        elif name == "spectrum":
            out["spectrum"] = (spectrum_samples(spectrum_zoom),)
        else:
            out[name] = PCA[name]
    return out


def batches(shape: dict[str, tuple[int, ...]], n: int, size: int) -> list[dict[str, torch.Tensor]]:
    """Host-memory batches of random inputs (the DataLoader's output)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n // size):
        b = {k: torch.randn((size, *s), generator=g) for k, s in shape.items()}
        b["target"] = torch.randn(size, generator=g)
        out.append(b)
    return out


def epoch(net, opt, train, val, device) -> tuple[float, float]:
    """One training epoch and one validation pass, as fit_net runs them; seconds of each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    net.train()
    for b in train:
        b = {k: v.to(device, non_blocking=False) for k, v in b.items()}
        opt.zero_grad(set_to_none=True)
        loss = net.loss(net(b, phase="regress"), b["target"], "regress")
        loss.backward()
        opt.step()
        loss.item()  # fit_net reads the loss every step
    sync()
    t1 = time.perf_counter()
    net.eval()
    with torch.no_grad():
        for b in val:
            b = {k: v.to(device) for k, v in b.items()}
            net.loss(net(b, phase="regress"), b["target"], "regress").item()
    sync()
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    p.add_argument("--pairs", choices=PAIRS, default="grid")
    nets = "image-cnn,spectrum-hybrid,early-fusion,intermediate-fusion,hybrid-fusion"
    p.add_argument("--models", default=nets)
    p.add_argument("--train", type=int, default=7700, help="training objects (70%% of 11,000)")
    p.add_argument("--validation", type=int, default=1650, help="validation objects (15%% of 11,000)")
    p.add_argument("--batch-size", type=int, default=64, help="sfrdask.train.batch-size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=480.0, help="seconds; no configuration starts after it")
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cpu = f"cpu x {torch.get_num_threads()} threads"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    todo, seen = [], set()
    for t in plan(args.models.split(","), [0, 1, 2, 3], [0, 1, 2, 3], [0], args.pairs):
        key = (t.model, tuple(sorted(shapes(t.model, t.image_zoom, t.spectrum_zoom).items())))
        if key not in seen:  # early fusion reads the same PCA features at every level
            seen.add(key)
            todo.append(t)
    rows: list[dict] = []
    path = args.out / f"epoch_cost_{device.type}.json"
    t_start = time.perf_counter()
    for t in todo:
        if time.perf_counter() - t_start > args.budget:
            print(f"budget of {args.budget:.0f} s spent: {len(todo) - len(rows)} configurations not measured")
            break
        shape = shapes(t.model, t.image_zoom, t.spectrum_zoom)
        torch.manual_seed(0)
        net = get_model(t.model).build(shape).to(device)
        opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=1e-3)
        train = batches(shape, args.train, args.batch_size)
        val = batches(shape, args.validation, args.batch_size)
        epoch(net, opt, train, val, device)  # warm-up: cuDNN's algorithm search, allocator
        runs = [epoch(net, opt, train, val, device) for _ in range(args.repeats)]
        row = {
            "model": t.model,
            "image_px": image_size(t.image_zoom) if "image" in shape else None,
            "spectrum_samples": spectrum_samples(t.spectrum_zoom) if "spectrum" in shape else None,
            "parameters": sum(q.numel() for q in net.parameters()),
            "train_s_per_epoch": round(statistics.median(r[0] for r in runs), 4),
            "validation_s": round(statistics.median(r[1] for r in runs), 4),
            "device": name,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        given = {k: str(v) for k, v in vars(args).items()}
        write_json(path, {"rows": rows, "args": given, "machine": machine()})
        del net, opt, train, val
        if device.type == "cuda":
            torch.cuda.empty_cache()
    cols = ["model", "image_px", "spectrum_samples", "parameters", "train_s_per_epoch", "validation_s"]
    print(markdown(rows, cols))
    print(f"written {path}")


if __name__ == "__main__":
    main()

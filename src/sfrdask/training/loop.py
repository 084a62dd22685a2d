"""The training loop of one rank: AdamW, early stopping, checkpoints, resume, stop reasons, test metrics.

:func:`fit_net` runs in the calling process (``world == 1``) or as one rank of a
``torch.distributed`` group that :mod:`sfrdask.training.ddp` set up on a Dask worker. Every rank
computes the same validation loss on the whole validation split (identical weights, eval mode),
so early-stopping decisions agree without extra communication; rank 0 writes the checkpoints and
evaluates the test split.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from distributed import get_worker
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text
from sfrdask.models import SfrNet
from sfrdask.progress import Progress
from sfrdask.training.augment import dihedral
from sfrdask.training.checkpoint import load_checkpoint, save_checkpoint
from sfrdask.training.data import AXIS_LABELS, ChunkDistributedSampler, StoreDataset, collate
from sfrdask.training.metrics import plot_predictions, regression_metrics
from sfrdask.training.result import ExtraRow, FitResult, Predictions
from sfrdask.training.spec import SplitData, TrainSpec, load_splits, resolution

EVAL_BATCH = 256


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU this process was given (one per worker), else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SfrdaskError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device("cuda", torch.cuda.current_device())


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer: equal digests mean bitwise-identical models."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _batches(ds: StoreDataset, size: int) -> list[dict[str, torch.Tensor]]:
    return [ds.__getitems__(list(range(a, min(a + size, len(ds))))) for a in range(0, len(ds), size)]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def mean_loss(model: SfrNet, ds: StoreDataset, phase: str, device: torch.device, batch: int) -> float:
    """The phase's loss over a whole split (eval mode, fixed order)."""
    model.eval()
    total, n = 0.0, 0
    for b in _batches(ds, batch):
        b = _to(b, device)
        k = b["target"].shape[0]
        if phase == "pretrain" and k < 2:
            continue
        total += float(model.loss(model(b, phase=phase), b["target"], phase)) * k
        n += k
    return total / max(n, 1)


@torch.no_grad()
def predict(model: SfrNet, ds: StoreDataset, device: torch.device) -> tuple[np.ndarray, float]:
    """Predictions (in target units) for a whole split, and the forward-pass rate in samples/s
    (batches of 256 already in memory: the model's cost, not the store's)."""
    model.eval()
    batches = [_to(b, device) for b in _batches(ds, EVAL_BATCH)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = [model.prediction(model(b)) for b in batches]
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    z = torch.cat(out).cpu().numpy() if out else np.zeros(0)
    return ds.normaliser.untarget(z), len(ds) / max(dt, 1e-9)


def set_worker_threads() -> None:
    """One torch thread per Dask worker thread, so two workers do not fight over the cores."""
    try:
        torch.set_num_threads(max(1, get_worker().state.nthreads))
    except ValueError:  # not on a worker: leave torch's own setting
        pass


def forward(net: Any, inputs: dict[str, np.ndarray], batch: int = EVAL_BATCH) -> np.ndarray:
    """A network's standardised predictions for normalised inputs, in batches (no gradients)."""
    n = next(iter(inputs.values())).shape[0]
    out = []
    with torch.no_grad():
        for a in range(0, n, batch):
            b = {k: torch.from_numpy(np.ascontiguousarray(v[a : a + batch])) for k, v in inputs.items()}
            out.append(net.prediction(net(b)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@torch.no_grad()
def embeddings(model: SfrNet, ds: StoreDataset, device: torch.device) -> np.ndarray:
    model.eval()
    return torch.cat([model.embed(_to(b, device)) for b in _batches(ds, EVAL_BATCH)]).cpu().numpy()


def lr_schedule(opt: torch.optim.Optimizer, kind: str, epochs: int, patience: int) -> Any:
    """The learning-rate schedule of one phase (``sfrdask.train.lr-schedule``), stepped once per
    epoch: ``plateau`` halves the rate after ``patience // 2`` epochs without a better validation
    loss (so it drops before early stopping gives up), ``cosine`` anneals it to zero over the
    epoch limit, ``none`` keeps it."""
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, patience // 2))
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    return None


def fit_net(
    spec: TrainSpec,
    rank: int = 0,
    world: int = 1,
    report: Callable[[dict[str, Any]], None] | None = None,
    data: SplitData | None = None,
) -> FitResult | RankDone | ValidationDone:
    """Train ``spec.model`` as rank ``rank`` of ``world``; rank 0 returns the full result (a
    :class:`ValidationDone` for ``spec.validation_only``), the other ranks their weights' digest.

    Each phase stops by ``patience`` (that many epochs without a better validation loss), at its
    epoch ``cap``, or ``diverged`` (a loss that is not finite); the result records which, and the
    best epoch. A resumed training whose phase stopped at the cap goes on up to a higher cap.
    The steps: :func:`_restore` (a checkpoint to resume), then per phase and epoch
    :func:`_train_epoch`, the validation loss, the schedule, :func:`_checkpoint`; the phase's
    stop (:func:`_stop`); the test metrics (:func:`_evaluate`)."""
    if spec.batch_size % world:
        raise SfrdaskError(f"batch size {spec.batch_size} must be a multiple of the {world} ranks")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = pick_device(spec.device)
    t_start = time.perf_counter()
    data = data or load_splits(spec)
    identity = spec.identity(data.shapes)
    torch.manual_seed(spec.seed)
    model: SfrNet = spec.model_spec.build(data.shapes, **spec.options).to(device)
    state = _restore(spec, identity, model)

    per_rank = spec.batch_size // world
    sampler = ChunkDistributedSampler(data.train, per_rank, world, rank, seed=spec.seed)
    if sampler.steps == 0:
        raise SfrdaskError(f"{len(data.train)} training objects make no full batch of {spec.batch_size}")
    loader = DataLoader(data.train, batch_size=per_rank, sampler=sampler, collate_fn=collate)
    timing: dict[str, float] = {"seconds": 0.0, "samples": 0}
    progress = state.progress

    for p_idx, phase in enumerate(model.phases):
        if p_idx < progress["phase"]:
            continue
        model.begin_phase(phase)
        net, opt, sched, max_epochs = _phase_optimiser(spec, model, phase, state, world, device)
        augment = spec.augment and "image" in data.shapes
        bar = Progress(
            max_epochs, f"{spec.model} {phase}", enabled=spec.progress and rank == 0,
            initial=progress["epoch"], unit="epochs",
        )  # fmt: skip
        # a phase stopped at its cap goes on when the cap was raised (the study's continuation); one
        # stopped by patience or divergence stays stopped
        diverged = any(s["phase"] == phase and s["reason"] == "diverged" for s in progress["stops"])
        while progress["epoch"] < max_epochs and progress["bad"] < spec.patience and not diverged:
            row, diverged, improved = _epoch(
                spec, model, net, loader, sampler, opt, sched, data, phase, p_idx, state, augment,
                world, rank, device,
            )  # fmt: skip
            timing["seconds"] += row["train_seconds"]
            timing["samples"] += row["train_samples"]
            if rank == 0:
                _checkpoint(spec, identity, model, state, opt, sched, data, improved)
            if report is not None:
                report({"rank": rank, **row})
            bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}")
            bar.update()
        bar.close()
        _stop(spec, progress, phase, diverged)
        model.load_state_dict(state.best_state)
        if p_idx < len(model.phases) - 1:
            progress.update(phase=p_idx + 1, epoch=0, best=math.inf, bad=0, best_epoch=0)
    return _finish(spec, model, data, device, state, world, rank, timing, t_start)


def _phase_optimiser(
    spec: TrainSpec, model: SfrNet, phase: str, state: _State, world: int, device: torch.device
) -> tuple[Any, torch.optim.Optimizer, Any, int]:
    """A phase's network (wrapped by DDP over several ranks), its optimiser and schedule (restored
    from the checkpoint that stopped in this phase), and its epoch cap."""
    params = [p for p in model.parameters() if p.requires_grad]
    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    max_epochs = spec.pretrain_epochs if phase == "pretrain" else spec.epochs
    sched = lr_schedule(opt, spec.lr_schedule, max_epochs, spec.patience)
    if state.optimizer is not None:
        opt.load_state_dict(state.optimizer)
        state.optimizer = None
    if state.scheduler is not None and sched is not None:
        sched.load_state_dict(state.scheduler)
        state.scheduler = None
    return net, opt, sched, max_epochs


def _epoch(
    spec: TrainSpec,
    model: SfrNet,
    net: Any,
    loader: DataLoader,
    sampler: ChunkDistributedSampler,
    opt: torch.optim.Optimizer,
    sched: Any,
    data: SplitData,
    phase: str,
    p_idx: int,
    state: _State,
    augment: bool,
    world: int,
    rank: int,
    device: torch.device,
) -> tuple[dict[str, Any], bool, bool]:
    """One epoch: train (:func:`_train_epoch`), the validation loss, the schedule's step, the best
    weights kept; returns its history row, whether it diverged and whether it improved."""
    progress = state.progress
    epoch = progress["epoch"]
    lr = opt.param_groups[0]["lr"]
    seen, loss_sum, epoch_s = _train_epoch(
        spec, model, net, loader, sampler, opt, phase, p_idx, epoch, augment, world, rank, device
    )
    val = mean_loss(model, data.validation, phase, device, spec.batch_size)
    diverged = not (math.isfinite(val) and math.isfinite(loss_sum))
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(val)
    elif sched is not None:
        sched.step()
    improved = val < progress["best"]
    if improved:
        progress["best"], progress["bad"], progress["best_epoch"] = val, 0, epoch + 1
        state.best_state = copy.deepcopy(model.state_dict())
    else:
        progress["bad"] += 1
    progress["epoch"] = epoch + 1
    row = {
        "phase": phase,
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(seen, 1),
        "val_loss": val,
        "train_seconds": epoch_s,
        "train_samples": seen * world,
        "learning_rate": lr,
    }
    progress["history"].append(row)
    return row, diverged, improved


def _finish(
    spec: TrainSpec,
    model: SfrNet,
    data: SplitData,
    device: torch.device,
    state: _State,
    world: int,
    rank: int,
    timing: dict[str, float],
    t_start: float,
) -> FitResult | RankDone | ValidationDone:
    """Rank 0: the test metrics and outputs (the validation loss alone for a tuning trial); the other
    ranks: their weights' digest."""
    progress = state.progress
    digest = weights_digest(model)
    if rank != 0:
        return RankDone(rank, digest)
    stop = progress["stops"][-1]
    if spec.validation_only:  # tuning: the validation split decides; the test split stays unread
        return ValidationDone(stop["best_val_loss"], stop["reason"], stop["best_epoch"], progress["history"])
    result = _evaluate(spec, model, data, device)
    result.ranks, result.epochs, result.history = world, len(progress["history"]), progress["history"]
    result.stop, result.best_epoch = stop["reason"], stop["best_epoch"]
    result.train_samples_per_s = timing["samples"] / max(timing["seconds"], 1e-9)
    result.seconds = time.perf_counter() - t_start
    result.details.update(digest=digest, resumed=state.resumed)
    write_outputs(spec, result)
    return result


@dataclass
class _State:
    """What a training carries from epoch to epoch and across a resume: its progress (phase,
    epoch, best validation loss, epochs without a better one, history, stops), the best weights,
    and the optimiser and schedule of the phase a checkpoint stopped in (until they are loaded)."""

    progress: dict[str, Any]
    best_state: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    resumed: bool = False


def _restore(spec: TrainSpec, identity: dict[str, Any], model: SfrNet) -> _State:
    """A fresh state, or with ``spec.resume`` and a ``last.pt`` in the run directory, the
    checkpoint's (its weights loaded into ``model``)."""
    progress: dict[str, Any] = {"phase": 0, "epoch": 0, "best": math.inf, "bad": 0, "best_epoch": 0,
                                "history": [], "stops": []}  # fmt: skip
    state = _State(progress, copy.deepcopy(model.state_dict()))
    if spec.resume and (spec.run_dir / "last.pt").exists():
        ck = load_checkpoint(spec.run_dir / "last.pt", identity)
        model.load_state_dict(ck["model_state"])
        state = _State(ck["progress"], ck["best_state"], ck["optimizer"], ck.get("scheduler"), resumed=True)
        state.progress.setdefault("best_epoch", 0)  # checkpoints written before stops were recorded
        state.progress.setdefault("stops", [])
    return state


def _train_epoch(
    spec: TrainSpec, model: SfrNet, net: Any, loader: DataLoader, sampler: ChunkDistributedSampler,
    opt: torch.optim.Optimizer, phase: str, p_idx: int, epoch: int, augment: bool, world: int, rank: int,
    device: torch.device,
) -> tuple[int, float, float]:  # fmt: skip
    """One pass over this rank's share of the training split: (objects seen, summed loss,
    seconds). Shuffling, dropout and flips are seeded by the seed, phase and epoch (flips the
    same on every rank), so a resumed training continues exactly."""
    sampler.set_epoch(1000 * p_idx + epoch)
    torch.manual_seed(spec.seed * 1_000_003 + 10_000 * p_idx + epoch * world + rank)  # dropout stream
    net.train()
    flips = torch.Generator().manual_seed(spec.seed * 7919 + 10_000 * p_idx + epoch)  # same on every rank
    t0, seen, loss_sum = time.perf_counter(), 0, 0.0
    for batch in loader:
        if augment:
            batch["image"] = dihedral(batch["image"], flips, world, rank)
        batch = _to(batch, device)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(net(batch, phase=phase), batch["target"], phase)
        loss.backward()
        opt.step()
        k = batch["target"].shape[0]
        seen += k
        loss_sum += loss.item() * k
    return seen, loss_sum, time.perf_counter() - t0


def _checkpoint(
    spec: TrainSpec, identity: dict[str, Any], model: SfrNet, state: _State, opt: torch.optim.Optimizer,
    sched: Any, data: SplitData, improved: bool,
) -> None:  # fmt: skip
    """``last.pt`` after every epoch (what a resume continues from), ``best.pt`` when it improved."""
    ck = {
        **identity,
        "options": spec.options,
        "model_state": model.state_dict(),
        "best_state": state.best_state,
        "optimizer": opt.state_dict(),
        "scheduler": None if sched is None else sched.state_dict(),
        "progress": state.progress,
        "normaliser": data.normaliser.state(),
    }
    save_checkpoint(spec.run_dir / "last.pt", ck)
    if improved:
        save_checkpoint(spec.run_dir / "best.pt", {**ck, "model_state": state.best_state})


def _stop(spec: TrainSpec, progress: dict[str, Any], phase: str, diverged: bool) -> None:
    """Record why ``phase`` stopped (diverged, patience or its cap), at which epoch, its best epoch
    and best validation loss, replacing an earlier stop of the same phase (a continued training)."""
    reason = "diverged" if diverged else "patience" if progress["bad"] >= spec.patience else "cap"
    stop = {
        "phase": phase,
        "reason": reason,
        "epoch": progress["epoch"],
        "best_epoch": progress["best_epoch"],
        "best_val_loss": progress["best"],
    }
    progress["stops"] = [s for s in progress["stops"] if s["phase"] != phase] + [stop]


@dataclass(frozen=True)
class ValidationDone:
    """What a validation-only training returns (a tuning trial): its best validation loss, why it
    stopped, at which epoch it was best, and its epochs."""

    best_val_loss: float
    stop: str
    best_epoch: int
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class RankDone:
    """What a rank other than 0 returns: the digest of its final weights (DDP keeps them equal)."""

    rank: int
    digest: str


def split_result(
    spec: TrainSpec, data: SplitData, pred: np.ndarray, val_pred: np.ndarray, rate: float
) -> FitResult:
    """What every trained model reports: identity, test and validation metrics, split sizes and
    the test predictions (networks and trees alike)."""
    return FitResult(
        model=spec.model,
        image_zoom=spec.image_zoom,
        spectrum_zoom=spec.spectrum_zoom,
        target=spec.target,
        **resolution(spec),
        metrics=regression_metrics(data.test.y, pred),
        val_metrics=regression_metrics(data.validation.y, val_pred),
        inference_samples_per_s=rate,
        n_train=len(data.train),
        n_val=len(data.validation),
        n_test=len(data.test),
        test=Predictions(data.test.objects, data.test.y, pred),
    )


def _evaluate(spec: TrainSpec, model: SfrNet, data: SplitData, device: torch.device) -> FitResult:
    """Test-split metrics (and validation, and kNN on an embedding when the model has one)."""
    pred, rate = predict(model, data.test, device)
    val_pred, _ = predict(model, data.validation, device)
    out = split_result(spec, data, pred, val_pred, rate)
    if hasattr(model, "embed"):
        from sklearn.neighbors import KNeighborsRegressor  # scikit-learn: only for a model with an embedding

        k = int(config.get("train.knn-neighbours"))
        knn = KNeighborsRegressor(n_neighbors=min(k, len(data.train)))
        knn.fit(embeddings(model, data.train, device), data.train.y)
        t0 = time.perf_counter()
        kpred = knn.predict(embeddings(model, data.test, device))
        rate = len(data.test) / max(time.perf_counter() - t0, 1e-9)
        out.extra_rows.append(ExtraRow(f"{spec.model}-knn", regression_metrics(data.test.y, kpred), rate))
    return out


def write_outputs(spec: TrainSpec, result: FitResult) -> None:
    """metrics.json, predictions.csv, history.csv and the predicted-vs-true PNG in the run dir."""
    run = spec.run_dir
    run.mkdir(parents=True, exist_ok=True)
    test = result.test
    table = {"object": test.objects, "true": test.true, "predicted": test.predicted}
    write_text(run / "predictions.csv", pd.DataFrame(table).to_csv(index=False))
    write_text(run / "history.csv", pd.DataFrame(result.history).to_csv(index=False))
    mspec = spec.model_spec
    manifest = {"family": mspec.family, "model_file": mspec.traits.model_file}  # how load_run reads it back
    store = Path(spec.store).resolve()
    # the store twice, so that predict finds it from any directory, and after the run directory and
    # the store moved together: absolute, and relative to the run directory (inference.load_run)
    where = {"store": str(store), "store_from_run": os.path.relpath(store, run.resolve())}
    record = {**result.record(), **manifest, "spec": spec.as_dict(), "inputs": where}
    record["sfrdask_version"] = __version__
    write_text(run / "metrics.json", json.dumps(record, indent=1, default=str))
    res = resolution(spec)
    where = ", ".join(
        f"{v} {unit}"
        for v, unit in ((res["image_px"], "px images"), (res["spectrum_samples"], "spectrum samples"))
        if v
    )
    plot_predictions(
        test.true,
        test.predicted,
        run / "pred_vs_true.png",
        f"{spec.model} ({where})",
        AXIS_LABELS[spec.target],
        reference=f"MPA-JHU {spec.target}",
    )

"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` and checked.

A checkpoint holds plain data only (tensors, numbers, strings, lists, dicts): the weights, the
optimiser state, the training-split normalisation, the epoch and phase reached, and what it was
trained for (model, zoom levels, input shapes, target), so loading it for another model or
resolution is refused with a clear message rather than failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import atomic_output

FORMAT = "sfrdask-checkpoint-1"
IDENTITY = ("model", "image_zoom", "spectrum_zoom", "target", "shapes", "context", "rest_frame")


class CheckpointError(SfrdaskError, ValueError):
    """A checkpoint that is unreadable or was made for another model, resolution or target."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load safely; with ``expect``, refuse a checkpoint made for another model/zoom/target."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a loadable sfrdask checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an sfrdask checkpoint (format {FORMAT} expected)")
    for key in IDENTITY:
        if expect is not None and key in expect and _norm(ck.get(key)) != _norm(expect[key]):
            raise CheckpointError(
                f"{path}: made for {key} = {ck.get(key)!r}, but this run has {key} = {expect[key]!r} "
                f"(checkpoint: model {ck.get('model')}, image zoom {ck.get('image_zoom')}, "
                f"spectrum zoom {ck.get('spectrum_zoom')}, target {ck.get('target')})"
            )
    return ck


def _norm(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_norm(x) for x in v]
    return v

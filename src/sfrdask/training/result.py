"""What one training reports, whatever the model family: :class:`FitResult`.

A run's ``metrics.json`` holds :meth:`FitResult.record`; the test predictions go to
``predictions.csv`` and the epochs to ``history.csv`` beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np


@dataclass
class Predictions:
    """One split's objects (store indices), their labels and the model's predictions."""

    objects: np.ndarray
    true: np.ndarray
    predicted: np.ndarray


@dataclass
class ExtraRow:
    """A further result of the same training, a row of its own in the results table (the kNN
    regression on a contrastive model's embedding)."""

    model: str
    metrics: dict[str, float]
    inference_samples_per_s: float


@dataclass
class FitResult:
    """A trained model's identity, test and validation metrics, split sizes, timings and test
    predictions: what ``fit`` of every family returns (:mod:`sfrdask.trained.families`)."""

    model: str
    image_zoom: int | None
    spectrum_zoom: int | None
    target: str
    image_px: int | None
    spectrum_samples: int | None
    metrics: dict[str, float]  # test split
    val_metrics: dict[str, float]
    inference_samples_per_s: float
    n_train: int
    n_val: int
    n_test: int
    test: Predictions
    extra_rows: list[ExtraRow] = field(default_factory=list)
    train_samples_per_s: float | None = None  # None: nothing was trained (physics)
    epochs: int | None = None  # networks only
    stop: str | None = None  # networks: why the last phase stopped (patience, cap, diverged)
    best_epoch: int | None = None  # networks: the epoch whose weights were kept
    ranks: int = 1
    seconds: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch (networks)
    details: dict[str, Any] = field(default_factory=dict)  # family's own: estimator, fallback, digests
    # set by sfrdask.trained.modelling.train, after the run directory is written
    run_dir: str | None = None
    setup: str = ""
    seed: int | None = None

    def record(self) -> dict[str, Any]:
        """The plain-data summary that ``metrics.json`` holds (no predictions, no history)."""
        skip = {"test", "history", "details", "run_dir", "setup", "seed"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["extra_rows"] = [asdict(e) for e in self.extra_rows]
        return {**out, **self.details}

"""Regression metrics, the results table shared by all models, and prediction plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.io.atomic import write_text

KEY = ["model", "image_zoom", "spectrum_zoom", "target"]
COLUMNS = [
    *KEY,
    "image_px",
    "spectrum_samples",
    "mse",
    "rmse",
    "mae",
    "r2",
    "n_train",
    "n_test",
    "train_samples_per_s",
    "inference_samples_per_s",
    "epochs",
    "ranks",
    "seconds",
]


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R^2 (1 - SSE/SST, the scikit-learn definition)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    err = pred - y
    mse = float(np.mean(err**2))
    sst = float(np.sum((y - y.mean()) ** 2))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - np.sum(err**2) / sst) if sst > 0 else float("nan"),
        "n": int(y.size),
    }


def update_results(out_dir: str | Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Add or replace rows (keyed by model, zooms and target) in ``results.{csv,json,md}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "results.csv"
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=COLUMNS)
    new = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table = pd.concat([old, new], ignore_index=True) if len(old) else new
    table = table.drop_duplicates(KEY, keep="last").sort_values(
        ["target", "image_zoom", "spectrum_zoom", "mse"]
    )
    write_text(csv, table.to_csv(index=False))
    write_text(out_dir / "results.json", json.dumps(table.to_dict(orient="records"), indent=1, default=str))
    write_text(out_dir / "results.md", markdown_table(table))
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """The results as a markdown table, metrics to 3 decimals and rates to 3 significant figures."""
    cols = [
        "model",
        "image_px",
        "spectrum_samples",
        "target",
        "mse",
        "rmse",
        "mae",
        "r2",
        "n_test",
        "train_samples_per_s",
        "inference_samples_per_s",
        "epochs",
        "ranks",
    ]
    t = table.reindex(columns=cols)

    def fmt(v: Any, col: str) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if col in ("mse", "rmse", "mae", "r2"):
            return f"{v:.3f}"
        if col.endswith("per_s"):
            return f"{v:.3g}"
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c], c) for c in cols) + " |" for _, r in t.iterrows()]
    return "\n".join(lines) + "\n"


def plot_predictions(y: np.ndarray, pred: np.ndarray, out: str | Path, title: str, label: str) -> Path:
    """Predicted vs true (with the 1:1 line) and residuals vs true, for the test split."""
    from sfrdask.plots import plt, save_figure

    m = regression_metrics(y, pred)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    lo, hi = np.nanmin([y.min(), pred.min()]), np.nanmax([y.max(), pred.max()])
    a.scatter(y, pred, s=5, alpha=0.5)
    a.plot([lo, hi], [lo, hi], "k--", lw=1)
    a.set_xlabel(f"true {label}")
    a.set_ylabel(f"predicted {label}")
    a.set_title(
        f"{title}\nR$^2$ = {m['r2']:.3f}, RMSE = {m['rmse']:.3f} dex (n = {m['n']} test objects)", fontsize=9
    )
    b.scatter(y, pred - y, s=5, alpha=0.5)
    b.axhline(0, color="k", lw=1, ls="--")
    b.set_xlabel(f"true {label}")
    b.set_ylabel("predicted - true [dex]")
    b.set_title("residuals", fontsize=9)
    return save_figure(fig, out)

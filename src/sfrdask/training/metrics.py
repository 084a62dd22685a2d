"""Regression metrics, the results table shared by all models, and prediction plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.io.atomic import write_text
from sfrdask.tables import markdown

KEY = ["model", "image_zoom", "spectrum_zoom", "target", "setup", "seed"]
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
    """Add or replace rows (keyed by model, zooms, target, setup and seed) in ``results.{csv,json,md}``.

    ``results.md`` holds every run, then, where a model ran with several seeds, their mean and
    standard deviation (:func:`seed_summary`), next to the ceilings when the store has truth."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "results.csv"
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=COLUMNS)
    old = old.reindex(columns=COLUMNS)
    new = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table = pd.concat([old, new], ignore_index=True) if len(old) else new
    table["setup"] = table["setup"].fillna("").astype(str)  # '' (the default setup) reads back as NaN
    table["seed"] = table["seed"].fillna(0).astype(int)
    table = table.drop_duplicates(KEY, keep="last").sort_values(
        ["target", "image_zoom", "spectrum_zoom", "mse"]
    )
    write_text(csv, table.to_csv(index=False))
    write_text(out_dir / "results.json", json.dumps(table.to_dict(orient="records"), indent=1, default=str))
    md = markdown_table(table)
    summary = seed_summary(table)
    if len(summary):
        md += "\nOver seeds (mean +- standard deviation):\n\n" + markdown_seeds(summary)
    write_text(out_dir / "results.md", md)
    return table


GROUP = ["model", "image_zoom", "spectrum_zoom", "target", "setup"]


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1) of the test metrics over the seeds of each model,
    levels, target and setup that ran with more than one seed; ``of_ceiling`` is the mean R^2 as
    a fraction of the information ceiling's (NaN without truth)."""
    t = table[table["setup"] != "truth"]
    g = t.groupby(GROUP, dropna=False)
    out = g.agg(
        seeds=("seed", "nunique"),
        r2_mean=("r2", "mean"),
        r2_std=("r2", "std"),
        mse_mean=("mse", "mean"),
        mse_std=("mse", "std"),
        image_px=("image_px", "first"),
        spectrum_samples=("spectrum_samples", "first"),
    ).reset_index()
    out = out[out["seeds"] > 1]
    ceiling = dict(table.loc[table["model"] == "ceiling-information", ["target", "r2"]].to_numpy())
    out["of_ceiling"] = out["r2_mean"].to_numpy(float) / np.array(
        [float(ceiling.get(t, np.nan)) for t in out["target"]]
    )
    return out.sort_values(["target", "image_zoom", "spectrum_zoom", "mse_mean"]).reset_index(drop=True)


def markdown_seeds(summary: pd.DataFrame) -> str:
    """Mean +- std over seeds per model and setup, as a markdown table."""
    s = summary
    table = pd.DataFrame(
        {
            "model": s["model"],
            "setup": s["setup"],
            "image_px": s["image_px"],
            "spectrum_samples": s["spectrum_samples"],
            "target": s["target"],
            "seeds": s["seeds"],
            "R^2": [f"{m:.3f} +- {d:.3f}" for m, d in zip(s["r2_mean"], s["r2_std"], strict=True)],
            "MSE": [f"{m:.3f} +- {d:.3f}" for m, d in zip(s["mse_mean"], s["mse_std"], strict=True)],
            "of ceiling": s["of_ceiling"],
        }
    )
    whole = {c: _whole for c in ("image_px", "spectrum_samples")}
    return markdown(table, formats={**whole, "of ceiling": ".2f"})


def _whole(v: Any) -> str:
    return str(int(v)) if isinstance(v, float | np.floating) and float(v).is_integer() else str(v)


def markdown_table(table: pd.DataFrame) -> str:
    """The results as a markdown table, metrics to 3 decimals and rates to 3 significant figures."""
    cols = [
        "model",
        "setup",
        "seed",
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
    formats: dict[str, Any] = {c: _whole for c in cols}
    formats |= {c: ".3f" for c in ("mse", "rmse", "mae", "r2")}
    formats |= {c: ".3g" for c in cols if c.endswith("per_s")}
    return markdown(table.reindex(columns=cols), formats=formats)


def plot_predictions(
    y: np.ndarray, pred: np.ndarray, out: str | Path, title: str, label: str, reference: str = "MPA-JHU"
) -> Path:
    """Predicted against the catalogue value the model learned (``reference``, e.g. "MPA-JHU ...
    (AVG)": a label, not the truth), with the 1:1 line, and the residuals, for the test split."""
    from sfrdask.plots import plt, save_figure  # matplotlib: only when plotting

    m = regression_metrics(y, pred)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    lo, hi = np.nanmin([y.min(), pred.min()]), np.nanmax([y.max(), pred.max()])
    a.scatter(y, pred, s=5, alpha=0.5)
    a.plot([lo, hi], [lo, hi], "k--", lw=1)
    a.set_xlabel(f"{reference} {label}")
    a.set_ylabel(f"predicted {label}")
    a.set_title(
        f"{title}\nR$^2$ = {m['r2']:.3f}, RMSE = {m['rmse']:.3f} dex (n = {m['n']} test objects)", fontsize=9
    )
    b.scatter(y, pred - y, s=5, alpha=0.5)
    b.axhline(0, color="k", lw=1, ls="--")
    b.set_xlabel(f"{reference} {label}")
    b.set_ylabel(f"predicted - {reference.split()[0]} [dex]")
    b.set_title("residuals", fontsize=9)
    return save_figure(fig, out)

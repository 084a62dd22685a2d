"""Tables and plots of a resolution study: R^2 per cell (mean +- sd over seeds), the heat maps and
the Pareto front of end-to-end throughput against accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.io.atomic import write_text
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model
from sfrdask.plots import save_figure
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.resolution.task import METRICS
from sfrdask.tables import markdown as _markdown
from sfrdask.training.ceilings import ceilings


def markdown(rows: list[dict]) -> str:
    """A markdown table of ``rows``; whole-number columns (levels, sizes, counts) without decimals."""
    df = pd.DataFrame(rows)
    for c in df.columns:
        if df[c].dtype.kind != "f":
            continue
        v = df[c].to_numpy(dtype=float)
        if (np.isnan(v) | ((np.abs(v) < 1e15) & (v == np.round(v)))).all():
            df[c] = pd.array([None if np.isnan(x) else int(x) for x in v], dtype="Int64")
    return _markdown(df)


def end_to_end(row: dict[str, Any], stages: dict[str, Any], selected: int) -> float:
    """Selected objects per second of everything a training needs at its levels: reading them,
    filter, deblending (images), PCA (models on PCA features) and the training itself."""
    spec = get_model(row["model"])
    zi, zs = row["image_zoom"], row["spectrum_zoom"]
    t = stages["filter"]["seconds"] + row["train_seconds"]
    if zi is not None:
        t += stages[f"read/image/{zi}"]["seconds"] + stages[f"deblend/image/{zi}"]["seconds"]
        t += stages[f"pca/image/{zi}"]["seconds"] if "image_pca" in spec.inputs else 0
    if zs is not None:
        t += stages[f"read/spectrum/{zs}"]["seconds"]
        t += stages[f"pca/spectrum/{zs}"]["seconds"] if "spectrum_pca" in spec.inputs else 0
    return selected / t


def write_all(rows: list[dict[str, Any]], stages: dict[str, Any], store: Path, out: Path, p: Any) -> Path:
    """Every output of a study in ``out``: study.csv / .json / .md, stages.csv, r2_heatmap.png and
    pareto.png (the ceilings drawn where the survey has truth). Returns study.md."""
    limits = {c["model"]: round(c["metrics"]["r2"], 4) for c in ceilings(store, "AVG")}
    head = {"data": str(p.cube), "catalog": str(p.catalog), "selected": len(selected_objects(store)),
            "epochs": p.epochs, "pairs": p.pairs, "train_seeds": ",".join(str(s) for s in p.seeds),
            "ceilings": limits}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    stage_rows = pd.DataFrame([{"stage": k, **v} for k, v in stages.items()])
    write_text(out / "stages.csv", stage_rows.to_csv(index=False))
    everything = {**head, "stages": stages, "rows": rows}
    write_text(out / "study.json", json.dumps(everything, indent=1, default=str))
    if not rows:
        write_text(out / "study.md", "# Resolution study\n\nNo training recorded yet.\n")
        return out / "study.md"
    df = pd.DataFrame(rows)
    write_text(out / "study.csv", df.to_csv(index=False))
    write_report(df, stages, out / "study.md", head)
    plot_heatmaps(df, list(p.image_levels), list(p.spectrum_levels), out / "r2_heatmap.png")
    plot_pareto(over_seeds(df), out / "pareto.png", limits)
    return out / "study.md"


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both x and y (higher is better), by x."""
    keep = [i for i in range(len(x)) if not np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))]
    return np.array(sorted(keep, key=lambda i: x[i]), dtype=int)


def _label(r: pd.Series) -> str:
    lv = [
        f"{int(r.image_px)}px" if pd.notna(r.image_px) else "",
        f"{int(r.spectrum_samples)}" if pd.notna(r.spectrum_samples) else "",
    ]
    return f"{r.model} {'/'.join(v for v in lv if v)}"


def plot_heatmaps(df: pd.DataFrame, image_levels: list[int], spectrum_levels: list[int], out: Path) -> Path:
    """Mean R^2 over the seeds per model over image level (rows) x spectrum level (columns); one
    panel per model."""
    import matplotlib.pyplot as plt  # matplotlib: only when plotting

    models = list(dict.fromkeys(df.model))
    ncol = min(3, len(models))
    nrow = -(-len(models) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.2 * ncol, 3.6 * nrow), squeeze=False, layout="constrained"
    )
    lo, hi = float(df.r2.min()), float(df.r2.max())
    for ax, m in zip(axes.flat, models, strict=False):
        sub = df[df.model == m]
        rows = image_levels if sub.image_zoom.notna().any() else [None]
        cols = spectrum_levels if sub.spectrum_zoom.notna().any() else [None]
        grid = np.full((len(rows), len(cols)), np.nan)
        sub = sub.groupby(["image_zoom", "spectrum_zoom"], dropna=False, as_index=False).r2.mean()
        for _, r in sub.iterrows():
            i = rows.index(None if pd.isna(r.image_zoom) else int(r.image_zoom))
            j = cols.index(None if pd.isna(r.spectrum_zoom) else int(r.spectrum_zoom))
            grid[i, j] = r.r2
        im = ax.imshow(grid, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < (lo + hi) / 2 else "k")
        ax.set_xticks(range(len(cols)), [str(spectrum_samples(z)) if z is not None else "-" for z in cols])
        ax.set_yticks(range(len(rows)), [f"{image_size(z)} px" if z is not None else "-" for z in rows])
        ax.set(xlabel="spectrum samples", ylabel="image size", title=m)
    for ax in axes.flat[len(models) :]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="R$^2$ (test split, mean over seeds)")
    return save_figure(fig, out)


def plot_pareto(df: pd.DataFrame, out: Path, ceilings: dict | None = None) -> Path:
    """Mean R^2 over seeds (``over_seeds``; error bars: their standard deviation) against end-to-end
    objects/s and against inference samples/s, Pareto fronts marked, the survey's ceilings (R^2 by
    name) as horizontal lines."""
    import matplotlib.pyplot as plt  # matplotlib: only when plotting

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    for ax, col, name in ((axes[0], "end_to_end_objects_per_s", "end-to-end objects/s (read .. train)"),
                          (axes[1], "inference_samples_per_s", "inference samples/s")):  # fmt: skip
        for m in dict.fromkeys(df.model):
            sub = df[df.model == m]
            ax.errorbar(sub[col], sub.r2, yerr=sub.r2_std.fillna(0), fmt="o", ms=4, capsize=2, label=m)
        front = df.iloc[pareto_front(df[col].to_numpy(float), df.r2.to_numpy(float))]
        ax.plot(front[col], front.r2, "k--", lw=1, label="Pareto front")
        for (ceiling, r2), ls in zip((ceilings or {}).items(), (":", "-."), strict=False):
            ax.axhline(r2, color="0.4", ls=ls, lw=1, label=f"{ceiling} (R$^2$ {r2:.3f})")
        for _, r in front.iterrows():
            ax.annotate(_label(r), (r[col], r.r2), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set(xscale="log", xlabel=name, ylabel="R$^2$ (test split; mean and std over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()  # outside the axes: it hides no point
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=6)
    fig.suptitle("Throughput against accuracy at every resolution level")
    return save_figure(fig, out)


def over_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model and levels: mean R^2 (and its standard deviation over the seeds), mean
    MSE, epochs and speeds."""
    keys = ["model", "image_px", "spectrum_samples"]
    g = df.groupby(keys, dropna=False, sort=False)
    out = g.agg(seeds=("r2", "size"), r2=("r2", "mean"), r2_std=("r2", "std"), mse=("mse", "mean"),
                epochs=("epochs", "mean"), end_to_end_objects_per_s=("end_to_end_objects_per_s", "mean"),
                inference_samples_per_s=("inference_samples_per_s", "mean"))  # fmt: skip
    return out.reset_index()


def mean_std(mean: float, std: float, seeds: int) -> str:
    """``0.732 +- 0.004``; the mean alone for a single seed (no spread to give)."""
    return f"{mean:.3f} +- {std:.3f}" if seeds > 1 else f"{mean:.3f}"


def by_level(df: pd.DataFrame) -> list[dict]:
    """One row per model, one column per level (64 px / 4620 samples, ...): mean R^2 +- standard
    deviation over the seeds (and how many seeds), at matched levels or the one modality it reads."""
    zoom = df.image_zoom.where(df.image_zoom.notna(), df.spectrum_zoom)
    matched = df.image_zoom.isna() | df.spectrum_zoom.isna() | (df.image_zoom == df.spectrum_zoom)
    sub = df[matched].assign(level=zoom[matched].astype(int))
    levels = sorted(sub.level.unique())
    names = {z: f"{image_size(z)} px / {spectrum_samples(z)}" for z in levels}
    rows = []
    for m, g in sub.groupby("model", sort=False):
        cells = g.groupby("level").r2.agg(["mean", "std", "size"])
        row = {"model": m}
        for z in levels:
            if z in cells.index:
                c = cells.loc[z]
                row[names[z]] = f"{mean_std(c['mean'], c['std'], int(c['size']))} ({int(c['size'])})"
            else:
                row[names[z]] = "-"
        rows.append(row)
    return rows


def write_report(df: pd.DataFrame, stages: dict, out: Path, head: dict) -> None:
    """study.md: the data, the per-stage table, the R^2 grids and the Pareto front."""
    st = [{"stage": k, **v} for k, v in stages.items()]
    parts = [f"# Resolution study\n\n{json.dumps(head)}\n\n## Stages\n\n" + markdown(st)]
    for m in dict.fromkeys(df.model):
        sub = df[df.model == m]
        if sub.image_zoom.notna().any() and sub.spectrum_zoom.notna().any():
            g = sub.pivot_table(index="image_px", columns="spectrum_samples", values="r2").sort_index(
                ascending=False
            )
            g = g[sorted(g.columns, reverse=True)]
            rows = [
                {"image px": int(i), **{str(int(c)): float(v) for c, v in r.items()}} for i, r in g.iterrows()
            ]
            parts.append(f"## {m}: R^2, image level (rows) x spectrum level (columns)\n\n" + markdown(rows))
    mean = over_seeds(df)
    parts.append(
        "## R^2 by level: mean +- standard deviation over the seeds (seeds)\n\n"
        "Matched levels for two-modality models; one modality's level for the others.\n\n"
        + markdown(by_level(df))
    )
    parts.append(
        "## Mean +- standard deviation over the seeds (test split)\n\n"
        + markdown([{**r, "r2": mean_std(r["r2"], r["r2_std"], r["seeds"])} for r in mean.to_dict("records")])
    )
    cols = ["model", "seed", "image_px", "spectrum_samples", *METRICS, "epochs", "train_samples_per_s",
            "inference_samples_per_s", "end_to_end_objects_per_s", "train_peak_mb"]  # fmt: skip
    parts.append("## Every training\n\n" + markdown(df.reindex(columns=cols).to_dict("records")))
    front = mean.iloc[pareto_front(mean.end_to_end_objects_per_s.to_numpy(float), mean.r2.to_numpy(float))]
    parts.append(
        "## Pareto front: end-to-end objects/s against mean R^2\n\n" + markdown(front.to_dict("records"))
    )
    write_text(out, "\n".join(parts))

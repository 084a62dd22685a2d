"""Tables and plots of a resolution study: the recommendation, every cell's R^2 with its paired
bootstrap interval and its difference to the best, the control cell, why each training stopped,
the tuned settings, the learning curves, and the grids, heat maps and Pareto front of end-to-end
throughput against accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask import config
from sfrdask.io.atomic import write_text
from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import get_model
from sfrdask.plots import save_figure
from sfrdask.preprocessing.quality import selected_objects
from sfrdask.resolution.compare import Comparison, cell_name, compare, recommend
from sfrdask.resolution.curves import curves, verdict
from sfrdask.resolution.curves import power_law as curve_value
from sfrdask.resolution.grid import CONTROL
from sfrdask.resolution.task import METRICS
from sfrdask.resolution.tune import tuning_table
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


LIST_COLUMNS = (
    "val_curve", "test_objects", "test_true", "test_predicted", "tuned", "stem_val_loss", "stem_r2"
)  # fmt: skip


def best_networks(rows: list[dict[str, Any]], k: int) -> list[str]:
    """The ``k`` networks of highest R² (mean over seeds) in any of their cells."""
    df = pd.DataFrame(rows)
    if df.empty:
        return []
    df = df[(df.get("setup", pd.Series("", index=df.index)).fillna("") == "")]
    df = df[[get_model(m).traits.epochs for m in df.model]]
    cells = df.groupby(["model", "image_px", "spectrum_samples"], dropna=False).r2.mean().reset_index()
    return list(cells.groupby("model").r2.max().sort_values(ascending=False).index[:k])


def _head(p: Any, selected: int, rows: pd.DataFrame, limits: dict[str, float]) -> str:
    """The study in words: data, objects, seeds, the training recipe, and the ceilings."""
    n_train, n_test = int(rows.n_train.max()), int(rows.n_test.max())
    ceil = (
        "; ".join(f"{k} R^2 {v:.3f}" for k, v in limits.items()) + " on the same test split"
        if limits
        else "none: no truth (real data), so R^2 is judged against the cells alone"
    )
    tuning = (
        f"{p.tune_trials} Optuna trials per network and level ({p.tune_epochs} epochs each, median pruner), "
        "on the validation split only"
        if p.tune_trials
        else "none: every network trains with its defaults"
    )
    return "\n".join(
        [
            f"- **Data**: {p.cube}, MPA-JHU tables in {p.catalog}; {selected:,} "
            f"objects selected (FLAG == {config.get('preprocess.flag')}, classes "
            f"{', '.join(config.get('preprocess.classes'))}), "
            f"{n_train:,} in the training split, {n_test:,} in the test split.",
            f"- **Trainings**: seeds {', '.join(str(s) for s in p.seeds)}; levels paired as {p.pairs}; a "
            f"network stops by patience ({config.get('train.patience')} epochs), its cap of {p.epochs} "
            f"epochs raised a cap at a time up to {p.epoch_limit}. Trees are deterministic: their seeds "
            "repeat one fit.",
            f"- **Tuning**: {tuning}.",
            f"- **Information ceilings**: {ceil}.",
        ]
    )


def write_all(
    rows: list[dict[str, Any]],
    stages: dict[str, Any],
    store: Path,
    out: Path,
    p: Any,
    tuning: Path | None = None,
    trainings: list[dict[str, Any]] | None = None,
) -> Path:
    """Every output of a study in ``out``: study.csv / .json / .md, stages.csv, r2_heatmap.png,
    pareto.png, and with the bootstrap r2_intervals.png, with the curves learning_curves.png (the
    ceilings drawn where the survey has truth). ``rows``: one per training (its stem chosen);
    ``trainings``: every recorded training, both stems (default ``rows``), for the convergence
    table and the stems' table. Returns study.md."""
    trainings = rows if trainings is None else trainings
    limits = {c["model"]: round(c["metrics"]["r2"], 4) for c in ceilings(store, "AVG")}
    selected = len(selected_objects(store))
    out.mkdir(parents=True, exist_ok=True)
    stage_rows = pd.DataFrame([{"stage": k, **v} for k, v in stages.items()])
    write_text(out / "stages.csv", stage_rows.to_csv(index=False))
    head = {
        "data": str(p.cube),
        "catalog": str(p.catalog),
        "selected": selected,
        "epochs": p.epochs,
        "epoch_limit": p.epoch_limit,
        "pairs": p.pairs,
        "train_seeds": ",".join(str(s) for s in p.seeds),
        "ceilings": limits,
    }
    if not rows:
        write_text(out / "study.json", json.dumps({**head, "stages": stages, "rows": []}, indent=1))
        write_text(out / "study.md", "# Resolution study\n\nNo training recorded yet.\n")
        return out / "study.md"
    df = pd.DataFrame(rows)
    df["setup"] = df.get("setup", pd.Series("", index=df.index)).fillna("")
    flat = _flat(df)
    write_text(out / "study.csv", flat.to_csv(index=False))
    main = flat[flat.setup == ""]
    parts = [f"# Resolution study\n\n{_head(p, selected, flat, limits)}\n"]
    summary: dict[str, Any] = {}
    cmp = None
    if p.bootstrap:
        cmp = compare(
            [r for r in rows if not (r.get("setup") or "").startswith("frac")],
            _truth(rows),
            draws=p.bootstrap_draws,
        )
        cells = pd.Series([cell_name(r) for r in rows], index=df.index)
        throughput = df.end_to_end_objects_per_s.groupby(cells).mean().to_dict()  # mean over the seeds
        capped = (df.get("stop", pd.Series("fit", index=df.index)) == "cap").groupby(cells).sum().to_dict()
        rec = recommend(cmp, throughput)
        summary["recommendation"] = rec
        parts += _recommendation_section(cmp, rec, capped)
        parts += _control_section(cmp, p)
        plot_intervals(cmp, out / "r2_intervals.png", limits)
    parts += _stems_section(rows)
    parts += _convergence_section(_flat(pd.DataFrame(trainings)))
    if tuning is not None and tuning_table(tuning):
        parts.append(
            "## Tuned settings per network and level\n\nChosen on the validation split (the lowest "
            "validation loss, in standardised units, over the finished trials; the defaults were the "
            "first trial).\n\n" + markdown(tuning_table(tuning))
        )
    if p.curves:
        table = curves(rows, best_networks(rows, p.curve_models), p.project_train_objects)
        summary["curves"] = table.to_dict("records")
        parts += _curves_section(table, summary.get("recommendation"))
        if not table.empty:
            plot_curves(rows, table, out / "learning_curves.png")
    parts += _grid_sections(main, stages)
    write_text(
        out / "study.json",
        json.dumps({**head, **summary, "stages": stages, "rows": rows}, indent=1, default=str),
    )
    write_text(out / "study.md", "\n".join(parts))
    plot_heatmaps(main, list(p.image_zooms), list(p.spectrum_zooms), out / "r2_heatmap.png")
    plot_pareto(over_seeds(main), out / "pareto.png", limits)
    return out / "study.md"


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Record rows as a table: no per-object lists, the tuned settings as JSON, '' for no setup."""
    df = df.assign(setup=df.get("setup", pd.Series("", index=df.index)).fillna(""))
    flat = df.drop(columns=[c for c in LIST_COLUMNS if c in df.columns])
    return flat.assign(tuned=[json.dumps(t) for t in df.get("tuned", pd.Series([{}] * len(df)))])


def _stems_section(rows: list[dict[str, Any]]) -> list[str]:
    """Per cell: how often each stem was kept (by validation loss) and the mean test R² of each."""
    chosen = [r for r in rows if len(r.get("stem_r2") or {}) > 1]
    if not chosen:
        return []
    table = []
    for cell, group in pd.DataFrame(chosen).groupby([cell_name(r) for r in chosen], sort=False):
        kept = group.stem_kept.value_counts()
        r2 = pd.DataFrame(list(group.stem_r2)).mean()
        table.append(
            {
                "cell": cell,
                "kept (of seeds)": ", ".join(f"{k} {v}" for k, v in kept.items()),
                **{f"R^2 {k} stem": v for k, v in r2.items()},
                "R^2 kept": group.r2.mean(),
            }
        )
    return [
        "## Stem chosen by validation loss\n\nEvery network trained twice per seed: with the configured "
        "stem (input averaged to 8 px / 577 plus learned detail channels) and with the averaged input "
        "alone (average). The lower validation loss decided which one the cell keeps; the test R^2 "
        "of each (mean over the seeds) is shown for comparison only.\n\n" + markdown(table)
    ]


def _truth(rows: list[dict[str, Any]]) -> dict[int, float]:
    truth: dict[int, float] = {}
    for r in rows:
        truth.update(zip(r["test_objects"], r["test_true"], strict=True))
    return truth


def _recommendation_section(cmp: Comparison, rec: dict[str, Any], capped: dict[str, int]) -> list[str]:
    tied = cmp.cells[cmp.cells.tied].cell.tolist()
    text = (
        f"## Recommendation\n\n**{rec['cell']}**: R^2 {rec['r2']:.3f} "
        f"[{rec['r2_lo']:.3f}, {rec['r2_hi']:.3f}], "
        f"{rec['objects_per_s']:,.0f} objects/s end to end, {rec['speedup']:.1f}x the throughput of the best "
        f"cell, {rec['best']} (R^2 {rec['best_r2']:.3f}, {rec['best_objects_per_s']:,.0f} objects/s). "
        "It is the "
        f"cheapest of the {len(tied)} cells tied with the best (95% interval of the difference reaching 0): "
        f"{', '.join(tied)}.\n"
    )
    table = cmp.cells.assign(
        **{
            "R^2 [95%]": [f"{r.r2:.3f} [{r.r2_lo:.3f}, {r.r2_hi:.3f}]" for r in cmp.cells.itertuples()],
            "dR^2 to best [95%]": [
                f"{r.delta:+.3f} [{r.delta_lo:+.3f}, {r.delta_hi:+.3f}]" for r in cmp.cells.itertuples()
            ],
            "P(>= best)": cmp.cells.p_at_least_as_good.round(3),
            "tied": np.where(cmp.cells.tied, "tied", ""),
            # a training still at the epoch limit: the cell may not show what its network can do
            "stopped by the cap": [f"CAP ({capped[c]})" if capped.get(c) else "" for c in cmp.cells.cell],
        }
    )[["cell", "seeds", "R^2 [95%]", "dR^2 to best [95%]", "P(>= best)", "tied", "stopped by the cap"]]
    return [
        text,
        f"## R^2 with 95% intervals: paired bootstrap over the {cmp.n_test} test objects, pooled over the "
        f"seeds ({cmp.draws} draws)\n\nEvery cell against the best ({cmp.best}): the interval of the "
        "difference and the share of draws in which the cell is at least as good.\n\n"
        + markdown(table.to_dict("records")),
    ]


def _control_section(cmp: Comparison, p: Any) -> list[str]:
    control = cmp.cells[cmp.cells.setup == CONTROL]
    if control.empty:
        return []
    c = control.iloc[0]
    low = cmp.cells[(cmp.cells.model == c.model) & (cmp.cells.setup == "")]
    low = low.loc[[low.image_px.fillna(1e9).idxmin()]] if not low.empty else low
    if low.empty:
        return [f"## Control cell\n\n{c.cell}: R^2 {c.r2:.3f}; its lowest-level cell was not trained.\n"]
    ref = low.iloc[0]
    inside = ref.r2_lo <= c.r2 <= ref.r2_hi
    verdict = (
        "reproduces it: the model, not the recipe, decides what a level gives"
        if inside
        else "does NOT reproduce it: the study measures the training recipe at the higher level, not only "
        "the information in the data"
    )
    return [
        f"## Control cell\n\nThe highest level's data averaged inside the network down to the lowest level's "
        f"shape ({c.cell}) reaches R^2 {c.r2:.3f} [{c.r2_lo:.3f}, {c.r2_hi:.3f}]; the lowest-level cell "
        f"{ref.cell} has R^2 {ref.r2:.3f} [{ref.r2_lo:.3f}, {ref.r2_hi:.3f}]. The control {verdict}.\n"
    ]


def _convergence_section(df: pd.DataFrame) -> list[str]:
    nets = df[df.stop.fillna("fit") != "fit"] if "stop" in df else df.iloc[:0]
    if nets.empty:
        return []
    rows = []
    nets = nets.assign(stem=nets.get("stem", pd.Series("", index=nets.index)).fillna(""))
    for (_, _, _, _, stem), g in nets.groupby(
        ["model", "image_px", "spectrum_samples", "setup", "stem"], dropna=False, sort=False
    ):
        stops = g.stop.value_counts()
        rows.append(
            {
                "cell": cell_name(g.iloc[0]) + (f" [stem {stem}]" if stem else ""),
                "stopped by": ", ".join(f"{k} {v}" for k, v in stops.items()),
                "epochs": f"{g.epochs.min():.0f}-{g.epochs.max():.0f}",
                "best epoch": g.best_epoch.mean(),
                "continued legs": int(g.continued.sum()),
                "note": "CAP: still improving at the hard limit" if "cap" in stops else "",
            }
        )
    capped = sum(r["note"] != "" for r in rows)
    return [
        f"## Convergence: why each training stopped\n\n{len(nets)} network trainings; {capped} cell(s) "
        "with a training stopped by the cap (marked CAP). A training at its cap went on from its checkpoint "
        "a cap at "
        "a time (continued legs) until patience stopped it.\n\n" + markdown(rows)
    ]


def _curves_section(table: pd.DataFrame, rec: dict[str, Any] | None) -> list[str]:
    if table.empty:
        return ["## Learning curves\n\nNone trained yet.\n"]
    sizes = sorted({n for s in table.sizes for n in s})
    rows = [
        {
            "cell": r.cell,
            **{f"R^2 at {n:,}": r.sizes.get(n) for n in sizes},
            f"projected at {int(r.n_target):,} [95%]": (
                f"{r.projected:.3f} [{r.projected_lo:.3f}, {r.projected_hi:.3f}]"
            ),
            "a (asymptote)": r.a,
            "c": r.c,
        }
        for r in table.itertuples()
    ]
    verdict_text = verdict(table, rec["cell"]) if rec else ""
    return [
        "## Learning curves: what more data would change\n\nR^2 against training objects (mean over the "
        "seeds) "
        f"fitted with R^2(n) = a - b n^-c and projected.\n\n{markdown(rows)}\n\n{verdict_text}\n"
    ]


def _grid_sections(df: pd.DataFrame, stages: dict) -> list[str]:
    """The R^2 grids, mean +- std by level, every training, the Pareto front and the stages."""
    parts = []
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
        "Matched levels for two-modality models; one modality's level for the others; trees are "
        "deterministic "
        "(their seeds repeat one fit).\n\n" + markdown(by_level(df))
    )
    cols = [
        "model",
        "seed",
        "image_px",
        "spectrum_samples",
        *METRICS,
        "epochs",
        "stop",
        "best_epoch",
        "continued",
        "train_samples_per_s",
        "inference_samples_per_s",
        "end_to_end_objects_per_s",
    ]
    parts.append("## Every training\n\n" + markdown(df.reindex(columns=cols).to_dict("records")))
    best = mean.r2.max()
    front = mean.iloc[pareto_front(mean.end_to_end_objects_per_s.to_numpy(float), mean.r2.to_numpy(float))]
    front = front.assign(below_best=best - front.r2)
    parts.append(
        "## Pareto front: end-to-end objects/s against mean R^2\n\nbelow_best: how far each point's R^2 lies "
        "under the best cell's; read the recommendation above for which differences are real.\n\n"
        + markdown(front.to_dict("records"))
    )
    st = [{"stage": k, **v} for k, v in stages.items()]
    parts.append("## Stages of the preparation\n\n" + markdown(st))
    return parts


def plot_intervals(cmp: Comparison, out: Path, ceilings: dict | None = None) -> Path:
    """Every cell's R^2 with its 95% paired-bootstrap interval, best first; tied cells and the
    control marked, the ceilings as vertical lines."""
    import matplotlib.pyplot as plt  # matplotlib: only when plotting

    cells = cmp.cells.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(cells) + 1.6), layout="constrained")
    y = np.arange(len(cells))
    for mask, color, label in (
        (cells.tied, "C0", "tied with the best"),
        (~cells.tied & (cells.setup == ""), "0.5", "below the best"),
        (cells.setup == CONTROL, "C3", "control (averaged inside the network)"),
    ):
        m = mask.to_numpy()
        if m.any():
            ax.errorbar(
                cells.r2[m],
                y[m],
                xerr=[cells.r2[m] - cells.r2_lo[m], cells.r2_hi[m] - cells.r2[m]],
                fmt="o",
                ms=4,
                capsize=2,
                color=color,
                label=label,
            )
    for (ceiling, r2), ls in zip((ceilings or {}).items(), (":", "-."), strict=False):
        ax.axvline(r2, color="0.4", ls=ls, lw=1, label=f"{ceiling} (R$^2$ {r2:.3f})")
    ax.set_yticks(y, cells.cell, fontsize=7)
    ax.set(xlabel=f"R$^2$ of log SFR, test split ({cmp.n_test} objects; 95% paired-bootstrap interval)")
    fig.legend(fontsize=7, loc="outside lower center", ncol=2)
    return save_figure(fig, out)


def plot_curves(rows: list[dict[str, Any]], table: pd.DataFrame, out: Path) -> Path:
    """R^2 against training objects per network and level: the seeds' points, the fitted power
    law, and the projection with its interval."""
    import matplotlib.pyplot as plt  # matplotlib: only when plotting

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    df = pd.DataFrame(rows)
    df["cell"] = [cell_name({**r, "setup": ""}) for r in rows]
    for i, r in enumerate(table.itertuples()):
        pts = df[
            (df.cell == r.cell) & (df.setup.fillna("").str.startswith("frac") | (df.setup.fillna("") == ""))
        ]
        color = f"C{i % 10}"
        ax.plot(pts.n_train, pts.r2, "o", ms=3, color=color, alpha=0.6)
        n = np.geomspace(pts.n_train.min(), r.n_target, 50)
        ax.plot(n, curve_value(n, r.a, r.b, r.c), "-", color=color, lw=1, label=r.cell)
        ax.errorbar(
            [r.n_target],
            [r.projected],
            yerr=[[r.projected - r.projected_lo], [r.projected_hi - r.projected]],
            fmt="s",
            ms=4,
            color=color,
            capsize=2,
        )
    ax.axvline(
        table.n_target.iloc[0], color="0.5", ls=":", lw=1, label=f"{int(table.n_target.iloc[0]):,} objects"
    )
    ax.set(xscale="log", xlabel="training objects", ylabel="R$^2$ of log SFR, test split")
    ticks = sorted({*df.n_train.dropna().astype(int), int(table.n_target.iloc[0])})
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])  # the sizes trained and projected, not 10^k
    ax.xaxis.set_minor_locator(plt.NullLocator())
    fig.legend(fontsize=7, loc="outside right center")
    return save_figure(fig, out)


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


def plot_heatmaps(df: pd.DataFrame, image_zooms: list[int], spectrum_zooms: list[int], out: Path) -> Path:
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
        rows = image_zooms if sub.image_zoom.notna().any() else [None]
        cols = spectrum_zooms if sub.spectrum_zoom.notna().any() else [None]
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
    for ax, col, name in (
        (axes[0], "end_to_end_objects_per_s", "end-to-end objects/s (read .. train)"),
        (axes[1], "inference_samples_per_s", "inference samples/s"),
    ):
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
    out = g.agg(
        seeds=("r2", "size"),
        r2=("r2", "mean"),
        r2_std=("r2", "std"),
        mse=("mse", "mean"),
        epochs=("epochs", "mean"),
        end_to_end_objects_per_s=("end_to_end_objects_per_s", "mean"),
        inference_samples_per_s=("inference_samples_per_s", "mean"),
    )
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

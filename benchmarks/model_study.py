"""Models against the ceilings: several seeds per model, deep ensembles, and what fusion adds.

    python benchmarks/model_study.py --store STORE.zarr --out bench-output/study   # hours on 2 cores
    python benchmarks/model_study.py --quick --out /tmp/b                         # seconds; the test suite

STORE is a preprocessed store of a synthetic survey (so the ceilings exist); the figures in
docs/benchmarks.md come from the 20,000-object survey of the training section (seed 42, FLAG == 0
fraction 0.55) at 16 px / 1155 samples. Every model in --models trains once per seed (sfrdask's
defaults: the redshift and class as inputs, the plateau learning-rate schedule, flips and
rotations), and the thesis' three fusion models once per seed as the thesis ran them (--context
none --lr-schedule none --no-augment). A run that finished before (its metrics.json exists) is not
trained again, so an interrupted study resumes. Then, from the runs' test predictions:

- mean +- standard deviation of R^2 over the seeds, and the fraction of the information ceiling;
- deep ensembles: the seeds of one model averaged, and the best network's ensemble with gbt-both;
- the best fusion model against the best single-modality model, with the gain in units of the
  seeds' standard deviation (sqrt(std_fusion^2 + std_single^2));
- the thesis models' ranking.

Outputs: study.md, study.json, and the runs with results.{csv,json,md} under --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine, write_json

import sfrdask
from sfrdask.io.atomic import write_text
from sfrdask.tables import markdown
from sfrdask.training import TrainSpec
from sfrdask.training.metrics import regression_metrics

MODELS = (
    "gbt-both,spectrum-hybrid,hybrid-fusion,late-fusion-learned,image-perband,intermediate-fusion,"
    "early-fusion,gbt-spectrum,gbt-image"
)
THESIS = ("early-fusion", "intermediate-fusion", "late-fusion")
THESIS_SETUP = {"context": (), "lr_schedule": "none", "augment": False}
SINGLE = {
    "gbt-spectrum",
    "gbt-image",
    "tree-spectrum",
    "tree-image",
    "spectrum-hybrid",
    "spectrum-mlp",
    "image-cnn",
    "image-perband",
    "image-resnet",
}


def train_all(
    store: Path, out: Path, jobs: list[tuple[str, dict]], seeds: list[int], zoom: int, extra: dict
) -> None:
    """Train every (model, setup) once per seed, skipping runs that finished before."""
    for model, setup in jobs:
        for seed in seeds:
            spec = TrainSpec.from_config(
                store, model, image_zoom=zoom, spectrum_zoom=zoom, seed=seed, out=str(out), **setup
            )
            if (spec.run_dir / "metrics.json").exists():
                continue
            sfrdask.train(
                store,
                model,
                image_zoom=zoom,
                spectrum_zoom=zoom,
                seeds=(seed,),
                out=out,
                client="synchronous",
                **setup,
                **extra,
            )


def runs(store: Path, out: Path, jobs: list[tuple[str, dict]], seeds: list[int], zoom: int) -> pd.DataFrame:
    """One row per finished run: model, setup, seed, test metrics and run directory."""
    rows = []
    for model, setup in jobs:
        for seed in seeds:
            spec = TrainSpec.from_config(
                store, model, image_zoom=zoom, spectrum_zoom=zoom, seed=seed, out=str(out), **setup
            )
            path = spec.run_dir / "metrics.json"
            if path.exists():
                m = json.loads(path.read_text())["metrics"]
                rows.append(
                    {
                        "model": model,
                        "setup": spec.setup,
                        "seed": seed,
                        "r2": m["r2"],
                        "mse": m["mse"],
                        "epochs": json.loads(path.read_text()).get("epochs"),
                        "run_dir": spec.run_dir,
                    }
                )
    return pd.DataFrame(rows)


def ensemble(*members: list[Path]) -> dict:
    """Test metrics of an ensemble: each member's runs (its seeds) averaged, then the members
    averaged with equal weights (same split)."""
    means = []
    for run_dirs in members:
        p = [pd.read_csv(d / "predictions.csv").set_index("object") for d in run_dirs]
        means.append(sum(x["predicted"] for x in p) / len(p))
    return regression_metrics(p[0]["true"].to_numpy(), (sum(means) / len(means)).to_numpy())


def analyse(store: Path, table: pd.DataFrame) -> dict:
    from sfrdask.training.ceilings import ceilings as truth_ceilings

    ceilings = {c["model"]: c["metrics"]["r2"] for c in truth_ceilings(store, "AVG")}
    info = ceilings.get("ceiling-information", np.nan)
    g = table.groupby(["model", "setup"], sort=False)
    summary = g.agg(
        seeds=("seed", "size"),
        r2_mean=("r2", "mean"),
        r2_std=("r2", "std"),
        mse_mean=("mse", "mean"),
        mse_std=("mse", "std"),
        epochs=("epochs", "mean"),
    ).reset_index()
    summary["of_ceiling"] = summary["r2_mean"] / info
    mine = summary[summary.setup == ""]
    best = {}
    for kind, sel in (("single", mine.model.isin(SINGLE)), ("fusion", ~mine.model.isin(SINGLE))):
        if sel.any():
            best[kind] = mine[sel].sort_values("r2_mean").iloc[-1].to_dict()
    gain = {}
    if len(best) == 2:
        d = best["fusion"]["r2_mean"] - best["single"]["r2_mean"]
        sd = float(np.hypot(best["fusion"]["r2_std"], best["single"]["r2_std"]))
        gain = {"r2_gain": d, "in_sd": d / sd if np.isfinite(sd) and sd > 0 else float("nan")}
    dirs = {m: list(t.run_dir) for m, t in table[table.setup == ""].groupby("model", sort=False)}
    ensembles = [{"ensemble": f"{m} x {len(d)} seeds", **ensemble(d)} for m, d in dirs.items() if len(d) > 1]
    nets = mine[~mine.model.str.startswith(("gbt-", "tree-"))]
    if len(nets) and "gbt-both" in dirs:
        top = nets.sort_values("r2_mean").iloc[-1].model
        ensembles.append(
            {
                "ensemble": f"{top} x {len(dirs[top])} seeds + gbt-both (equal weights)",
                **ensemble(dirs[top], dirs["gbt-both"]),
            }
        )
    for e in ensembles:
        e["of_ceiling"] = e["r2"] / info
    thesis = summary[summary.model.isin(THESIS) & (summary.setup != "")].sort_values(
        "r2_mean", ascending=False
    )
    return {
        "ceilings": ceilings,
        "summary": summary.to_dict("records"),
        "best": best,
        "fusion_gain": gain,
        "ensembles": ensembles,
        "thesis_ranking": thesis.model.tolist(),
    }


def report(res: dict, head: dict) -> str:
    lines = [f"# Models against the ceilings\n\n{json.dumps(head)}\n", "## Ceilings (test split)\n"]
    lines += [f"- {k}: R^2 {v:.3f}" for k, v in res["ceilings"].items()]
    lines += [
        "",
        "## Mean +- standard deviation over seeds (test split)\n",
    ]
    summary = [
        {"model": r["model"], "setup": r["setup"] or "default", "seeds": r["seeds"],
         "R^2": f"{r['r2_mean']:.3f} +- {r['r2_std']:.3f}",
         "MSE": f"{r['mse_mean']:.3f} +- {r['mse_std']:.3f}",
         "of information ceiling": r["of_ceiling"], "epochs (mean; limit 60)": r["epochs"]}
        for r in sorted(res["summary"], key=lambda r: -r["r2_mean"])
    ]  # fmt: skip
    lines.append(markdown(pd.DataFrame(summary), formats={"epochs (mean; limit 60)": ".0f"}))
    lines += ["## Deep ensembles (test split)\n"]
    ensembles = [{"ensemble": e["ensemble"], "R^2": e["r2"], "MSE": e["mse"],
                  "of information ceiling": e["of_ceiling"]} for e in res["ensembles"]]  # fmt: skip
    lines.append(
        markdown(pd.DataFrame(ensembles, columns=["ensemble", "R^2", "MSE", "of information ceiling"]))
    )
    b, g = res["best"], res["fusion_gain"]
    if g:
        lines += [
            "",
            f"Best fusion: {b['fusion']['model']} {b['fusion']['r2_mean']:.3f}; best single modality: "
            f"{b['single']['model']} {b['single']['r2_mean']:.3f}; gain {g['r2_gain']:+.3f} R^2 = "
            f"{g['in_sd']:.1f} standard deviations over seeds.",
        ]
    if res["thesis_ranking"]:
        lines.append(
            f"Thesis models (as the thesis ran them), best first: {', '.join(res['thesis_ranking'])}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, help="a preprocessed store of a synthetic survey")
    p.add_argument("--out", type=Path, default=Path("bench-output/study"))
    p.add_argument("--models", default=MODELS)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--zoom", type=int, default=2, help="image and spectrum zoom (2: 16 px / 1155)")
    p.add_argument("--no-thesis", action="store_true", help="skip the thesis' three models in their setup")
    p.add_argument("--quick", action="store_true", help="tiny survey, 3 models, 2 seeds: checks the script")
    p.add_argument("--report-only", action="store_true", help="train nothing: report the runs that finished")
    args = p.parse_args()
    extra: dict = {}
    work = None
    if args.quick:
        from train import quick_store

        work = args.out / "study-work"
        args.store, args.models, args.seeds = (
            quick_store(work),
            "gbt-both,spectrum-mlp,intermediate-fusion",
            "0,1",
        )
        extra = {"epochs": 2, "batch_size": 16}
        out = work / "runs"
    else:
        out = args.out
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(m, {}) for m in args.models.split(",")]
    if not args.no_thesis and not args.quick:
        jobs += [(m, THESIS_SETUP) for m in THESIS]
    if not args.report_only:
        train_all(args.store, out, jobs, seeds, args.zoom, extra)
    res = analyse(args.store, runs(args.store, out, jobs, seeds, args.zoom))
    head = {"store": str(args.store), "zoom": args.zoom, "seeds": seeds, "machine": machine()}
    write_json(args.out / "model_study.json", {**head, **res})
    write_text(args.out / "model_study.md", report(res, head))
    print(report(res, head))
    if work is not None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

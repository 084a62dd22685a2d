"""Whole runs from one YAML file: ``sfrdask run CONFIG.yaml``.

A run file names the input (a HiSS-Cube file and its catalogues, or a synthetic survey), the
levels, the stages, the models and the cluster; see ``configs/demo.yaml``. Each stage is the
corresponding ``sfrdask`` subcommand, run in order on one cluster. A stage whose recorded digest
(its command line, the settings, the digest of the stage before it and, for a real cube, the
file's size and time) matches the previous run is skipped, so an interrupted run resumes where it
stopped. The run directory holds::

    config.yaml            the run file as read, with the resolved settings
    run.log                what was run, when, how long, the dashboard link
    stages/STAGE.json      digest and timing of every finished stage
    reports/STAGE.html     a Dask performance report per stage (when a cluster runs it)
    survey/ store.zarr     data (synthetic survey, zarr store)
    plots/ runs/           preprocessing plots and tables; trained models and results.{csv,json,md}
    catalogue.fits         the predict stage's SFR catalogue (and its main-sequence PNG)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import yaml

from sfrdask import __version__, config
from sfrdask.config import ConfigError

STAGES = ("synth", "ingest", "preprocess", "train", "predict")
TOP_KEYS = {"run-dir", "input", "levels", "stages", "train", "predict", "cluster", "settings"}
log = logging.getLogger("sfrdask.run")


def load_run_config(path: str | Path) -> dict[str, Any]:
    """Read a run file (``yaml.safe_load``) and check its keys, naming any that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such run file")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a run file is a mapping of {sorted(TOP_KEYS)}")
    unknown = set(cfg) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    inp = cfg.get("input") or {}
    if not isinstance(inp, dict) or ("synthetic" in inp) == ("cube" in inp):
        raise ConfigError(
            f"{path}: input needs exactly one of 'synthetic: {{objects, seed}}' or 'cube: FILE'"
        )
    if "cube" in inp and "catalog" not in inp:
        raise ConfigError(f"{path}: input.cube needs input.catalog (the directory of MPA-JHU tables)")
    bad = [s for s in cfg.get("stages", STAGES) if s not in STAGES]
    if bad:
        raise ConfigError(f"{path}: unknown stage(s) {bad}; stages are {list(STAGES)}")
    pred = cfg.get("predict") or {}
    if not isinstance(pred, dict) or set(pred) - {"models", "out"}:
        raise ConfigError(
            f"{path}: 'predict' takes 'models' (trained in this run) and 'out' (a catalogue file name)"
        )
    for key in ("settings", "cluster", "levels", "train"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping")
    return cfg


def _flatten(prefix: str, d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        out.update(
            _flatten(key, v)
            if isinstance(v, dict) and v and key != "sfrdask.cluster.worker-env"
            else {key: v}
        )
    return out


def settings_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's ``sfrdask.*`` overrides, flattened for ``dask.config.set``."""
    flat = _flatten("sfrdask", cfg.get("settings") or {})
    flat.update(_flatten("sfrdask.cluster", cfg.get("cluster") or {}))
    return flat


def stage_commands(cfg: dict[str, Any], run: Path) -> dict[str, list[str]]:
    """The ``sfrdask`` command line of every stage of this run."""
    inp, levels, tr = cfg["input"], cfg.get("levels") or {}, cfg.get("train") or {}
    zooms = {k: ",".join(map(str, levels.get(k, [0, 1, 2, 3]))) for k in ("image", "spectrum")}
    if "synthetic" in inp:
        syn = inp["synthetic"] or {}
        survey = run / "survey"
        cube, catalog = survey / "survey.h5", survey
        synth = ["synth", "--out", str(survey), "--overwrite", "--objects", str(syn.get("objects", 3000))]
        synth += ["--seed", str(syn.get("seed", 42))]
        if "flag0-fraction" in syn:
            synth += ["--flag0-fraction", str(syn["flag0-fraction"])]
    else:
        cube, catalog, synth = Path(inp["cube"]), Path(inp["catalog"]), []
    store = run / "store.zarr"
    cmds = {
        "synth": synth,
        "ingest": [
            "ingest",
            str(cube),
            "--catalog",
            str(catalog),
            "--out",
            str(store),
            "--overwrite",
            "--image-zooms",
            zooms["image"],
            "--spectrum-zooms",
            zooms["spectrum"],
        ],
        "preprocess": ["preprocess", str(store), "--out", str(run / "plots")],
        "train": [],
    }
    if tr.get("models"):
        train = [
            "train",
            "--store",
            str(store),
            "--out",
            str(run / "runs"),
            "--model",
            ",".join(tr["models"]),
        ]
        for key in ("image-zoom", "spectrum-zoom", "ranks", "epochs", "batch-size", "target", "seed"):
            if key in tr:
                train += [f"--{key}", str(tr[key])]
        cmds["train"] = train
    pred = cfg.get("predict") or {}
    if pred.get("models"):
        cmds["predict"] = [
            "predict",
            *[str(d) for d in _run_dirs(pred["models"], tr, store, run / "runs")],
            "--cube",
            str(cube),
            "--catalog",
            str(catalog),
            "--out",
            str(run / pred.get("out", "catalogue.fits")),
            "--overwrite",
        ]
    return {s: c for s, c in cmds.items() if c}


def _run_dirs(models: list[str], tr: dict[str, Any], store: Path, out: Path) -> list[Path]:
    """Where ``sfrdask train`` puts each model's run in this run directory."""
    from sfrdask.train.spec import TrainSpec

    return [
        TrainSpec.from_config(
            store,
            m,
            image_zoom=tr.get("image-zoom"),
            spectrum_zoom=tr.get("spectrum-zoom"),
            target=tr.get("target"),
            out=str(out),
        ).run_dir
        for m in models
    ]


def _digest(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _input_fingerprint(cfg: dict[str, Any]) -> Any:
    if "cube" not in cfg["input"]:
        return None
    out = []
    for p in (Path(cfg["input"]["cube"]), *sorted(Path(cfg["input"]["catalog"]).glob("*"))):
        st = p.stat() if p.exists() else None
        out.append([str(p), st.st_size if st else None, st.st_mtime if st else None])
    return out


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_pipeline(path: str | Path, run_dir: str | Path | None = None, force: bool = False) -> Path:
    """Run (or resume) the run described by the file at ``path``; returns the run directory."""
    from sfrdask.cli import build_parser
    from sfrdask.cluster import cluster

    cfg = load_run_config(path)
    run = Path(run_dir or cfg.get("run-dir") or Path(path).stem)
    wanted = list(cfg.get("stages", STAGES))
    cmds = stage_commands(cfg, run)
    overrides = settings_of(cfg)
    with dask.config.set(overrides):
        config.validate()
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(
            yaml.safe_dump({"run-file": str(Path(path).resolve()), **cfg}, sort_keys=False)
        )
        handler = logging.FileHandler(run / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)  # the run log only: the console shows the stages' own output
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            _run_stages(cfg, run, wanted, cmds, overrides, force, build_parser(), cluster)
        except BaseException as e:
            log.error("run stopped: %s: %s", type(e).__name__, e)
            raise
        finally:
            log.removeHandler(handler)
            handler.close()
    return run


def _run_stages(
    cfg: dict[str, Any],
    run: Path,
    wanted: list[str],
    cmds: dict[str, list[str]],
    overrides: dict[str, Any],
    force: bool,
    parser: argparse.ArgumentParser,
    cluster: Callable[..., Any],
) -> None:
    """Skip the stages whose digest matches their record; run the others on one cluster."""
    upstream = _digest([__version__, overrides, _input_fingerprint(cfg)])
    todo = []
    for stage in STAGES:
        if stage not in cmds:
            continue
        digest = _digest([upstream, stage, cmds[stage]])
        record = run / "stages" / f"{stage}.json"
        done = record.exists() and json.loads(record.read_text()).get("digest") == digest
        if stage in wanted:
            todo.append((stage, digest, record, done and not force))
        upstream = digest
    log.info("run %s: stages %s", run, [s for s, *_ in todo])
    if all(skip for *_, skip in todo):
        for stage, *_ in todo:
            print(f"[{stage}] up to date (same inputs and settings): skipped", flush=True)
        return
    with cluster() as client:
        if client is not None:
            log.info("Dask dashboard: %s", client.dashboard_link)
        for stage, digest, record, skip in todo:
            if skip:
                print(f"[{stage}] up to date (same inputs and settings): skipped", flush=True)
                log.info("%s skipped (digest %s)", stage, digest)
                continue
            argv = cmds[stage]
            print(f"[{stage}] sfrdask {' '.join(argv)}", flush=True)
            log.info("%s started: sfrdask %s", stage, " ".join(argv))
            t0 = time.perf_counter()
            report = contextlib.nullcontext()
            if client is not None:
                from distributed import performance_report

                (run / "reports").mkdir(exist_ok=True)
                report = performance_report(filename=str(run / "reports" / f"{stage}.html"))
            args = parser.parse_args(argv)
            with report:
                args.func(args)
            dt = time.perf_counter() - t0
            finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _atomic_json(
                record,
                {
                    "stage": stage,
                    "digest": digest,
                    "argv": argv,
                    "seconds": round(dt, 2),
                    "finished": finished,
                },
            )
            log.info("%s finished in %.1f s", stage, dt)
            print(f"[{stage}] done in {dt:.1f} s", flush=True)

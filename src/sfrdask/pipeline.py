"""Whole runs from one YAML file: ``sfrdask run CONFIG.yaml``.

A run file names the input (a HiSS-Cube file and its catalogues, or a synthetic survey), the
levels, the stages, the models and the cluster; see ``configs/demo.yaml``. Each section maps onto
the ``Params`` of its stage (:mod:`sfrdask.stages`; an unknown key is refused by name), and the
stages run in order on one cluster. A stage whose recorded digest (its resolved parameters, the
sfrdask version, the settings, the digest of the stage before it and, for a real cube, the file's
size and time) matches the previous run is skipped, so an interrupted run resumes where it
stopped. The run directory holds::

    config.yaml            the run file as read, with the resolved settings
    run.log                what was run, when, how long, the dashboard link
    stages/STAGE.json      digest and timing of every finished stage
    reports/STAGE.html     a Dask performance report per stage (when a cluster runs it)
    survey/ store.zarr     data (synthetic survey, zarr store)
    plots/ runs/           preprocessing plots and tables; trained models and results.{csv,json,md}
    catalogue.fits         the predict stage's SFR catalogue (and its main-sequence PNG)
    explain/               the explain stage's attributions of one trained network
    study/                 the resolution study (tables, plots; work/: its store, runs and record)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import dask
import yaml

from sfrdask import config
from sfrdask.config import ConfigError
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text

# the run file's own keys; every stage that declares a section (sfrdask.stages.base.Stage) adds its own
RUN_KEYS = ("run-dir", "input", "stages", "cluster", "settings")
RENAMED_KEYS = {"levels": "zooms"}  # old spelling -> key: read for one release more, with a FutureWarning
log = logging.getLogger("sfrdask.run")


def stages() -> tuple[str, ...]:
    """The stages a run file can run, in the order they run (:func:`sfrdask.stages.run_file_stages`)."""
    from sfrdask.stages import run_file_stages

    return run_file_stages()


def top_keys() -> set[str]:
    """What a run file may hold: its own keys and every stage's section."""
    from sfrdask.stages import get_stage

    return {*RUN_KEYS, *(get_stage(s).section for s in stages())}


def load_run_config(path: str | Path) -> dict[str, Any]:
    """Read a run file (``yaml.safe_load``) and check its shape, naming any key that is wrong
    (the sections' own keys are checked against the stages' parameters by :func:`stage_params`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such run file")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    keys = top_keys()
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a run file is a mapping of {sorted(keys)}")
    for old, new in RENAMED_KEYS.items():
        if old in cfg:
            if new in cfg:
                raise ConfigError(f"{path}: '{old}' is an old spelling of '{new}'; give '{new}' only")
            config.deprecated(f"'{old}:'", f"'{new}:'", f"{path}: ")
            cfg[new] = cfg.pop(old)
    unknown = set(cfg) - keys
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(keys)}")
    inp = cfg.get("input") or {}
    if not isinstance(inp, dict) or ("synthetic" in inp) == ("cube" in inp):
        raise ConfigError(
            f"{path}: input needs exactly one of 'synthetic: {{objects, seed}}' or 'cube: FILE'"
        )
    extra = set(inp) - ({"synthetic"} if "synthetic" in inp else {"cube", "catalog"})
    if extra:
        raise ConfigError(f"{path}: unknown key(s) under input: {sorted(extra)}")
    if "cube" in inp and "catalog" not in inp:
        raise ConfigError(f"{path}: input.cube needs input.catalog (the directory of MPA-JHU tables)")
    known = stages()
    bad = [s for s in cfg.get("stages", known) if s not in known]
    if bad:
        raise ConfigError(f"{path}: unknown stage(s) {bad}; stages are {list(known)}")
    for key in sorted(keys - {"run-dir", "stages"}):
        if not isinstance(cfg.get(key) or {}, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping")
    return cfg


def _flatten(prefix: str, d: dict[str, Any], default: Any) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"prefix.a.b": 1}``, down to the keys whose default is not itself
    a mapping (``adapt: null`` or ``worker-env`` take their mapping whole)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        sub = default.get(k) if isinstance(default, dict) else None
        nested = isinstance(v, dict) and v and isinstance(sub, dict) and key != "sfrdask.cluster.worker-env"
        out.update(_flatten(key, v, sub) if nested else {key: v})
    return out


def settings_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's ``sfrdask.*`` overrides, flattened for ``dask.config.set``."""
    defaults = config.defaults()
    flat = _flatten("sfrdask", cfg.get("settings") or {}, defaults)
    flat.update(_flatten("sfrdask.cluster", cfg.get("cluster") or {}, defaults["cluster"]))
    return flat


def stage_params(cfg: dict[str, Any], run: Path) -> dict[str, Any]:
    """Every stage's ``Params`` for this run, stage by stage in their order: each stage makes its
    own from its section of the run file (an unknown key is refused by name) and what the stages
    before it give (:class:`~sfrdask.stages.base.Wiring`: paths inside the run directory, their
    Params); defaults from the settings. Call it inside ``dask.config.set(settings_of(cfg))``."""
    from sfrdask.stages import get_stage
    from sfrdask.stages.base import Wiring

    inp = cfg["input"]
    w = Wiring(run, {"cube": Path(inp["cube"]), "catalog": Path(inp["catalog"])} if "cube" in inp else {})
    for name in stages():
        stage = get_stage(name)
        params = stage.wire(cfg.get(stage.section), w)
        if params is not None:
            w.params[name] = params
    return w.params


def _input_fingerprint(cfg: dict[str, Any]) -> Any:
    if "cube" not in cfg["input"]:
        return None
    out = []
    for p in (Path(cfg["input"]["cube"]), *sorted(Path(cfg["input"]["catalog"]).glob("*"))):
        st = p.stat() if p.exists() else None
        out.append([str(p), st.st_size if st else None, st.st_mtime if st else None])
    return out


def check_run(path: str | Path, run_dir: str | Path | None = None) -> list[str]:
    """Every check a run makes before it starts a cluster or queues a job (the run file, the
    settings, each wanted stage's inputs and outputs), nothing started, nothing written; returns
    the stages checked. ``sfrdask run RUN.yaml --check``."""
    cfg = load_run_config(path)
    run = Path(run_dir or cfg.get("run-dir") or Path(path).stem)
    with dask.config.set(settings_of(cfg)):
        config.validate()
        params = stage_params(cfg, run)
        return _check_stages(params, list(cfg.get("stages", stages())), run)


def _check_stages(params: dict[str, Any], wanted: list[str], run: Path) -> list[str]:
    """The wanted stages' input checks; what earlier stages write into the run directory is theirs."""
    from sfrdask.stages.base import check_inputs

    checked = [s for s in stages() if s in params and s in wanted]
    for stage in checked:
        try:
            check_inputs(params[stage], made_under=run)
        except SfrdaskError as e:
            raise ConfigError(f"{stage}: {e}") from None
    return checked


def run_pipeline(path: str | Path, run_dir: str | Path | None = None, force: bool = False) -> Path:
    """Run (or resume) the run described by the file at ``path``; returns the run directory.
    Every stage's inputs are checked (:func:`check_run`) before a cluster starts or a job is queued."""
    cfg = load_run_config(path)
    run = Path(run_dir or cfg.get("run-dir") or Path(path).stem)
    wanted = list(cfg.get("stages", stages()))
    overrides = settings_of(cfg)
    with dask.config.set(overrides):
        config.validate()
        params = stage_params(cfg, run)
        _check_stages(params, wanted, run)
        run.mkdir(parents=True, exist_ok=True)
        write_text(
            run / "config.yaml",
            yaml.safe_dump({"run-file": str(Path(path).resolve()), **cfg}, sort_keys=False),
        )
        handler = logging.FileHandler(run / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)  # the run log only: the console shows the stages' own output
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            _run_stages(cfg, run, wanted, params, overrides, force)
        except BaseException as e:
            log.error("run stopped: %s: %s", type(e).__name__, e)
            raise
        finally:
            log.removeHandler(handler)
            handler.close()
    return run


def _log_places(run: Path, kind: str, worker_logs: str | None) -> None:
    """Say in run.log where every log of this run goes."""
    here = run.resolve()
    log.info("run log: %s; stage records: %s; performance reports: %s",
             here / "run.log", here / "stages", here / "reports")  # fmt: skip
    job = os.environ.get("SLURM_JOB_ID")
    if job:  # a driver batch job: its own output file is SLURM's, as SLURM names it
        log.info("driver job %s: its output: %s", job, _job_output(job))
    if kind == "slurm":
        where = worker_logs or config.get("cluster.slurm.log-directory")
        log.info("worker jobs' stdout/stderr: %s (dask-worker-JOBID.out/.err)", Path(where).resolve())


def _job_output(job: str) -> str:
    """The file a SLURM job's stdout goes to, as SLURM itself has it (``scontrol show job``)."""
    try:
        shown = subprocess.run(
            ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        shown = None
    found = re.search(r"\bStdOut=(\S+)", shown.stdout) if shown else None
    return found.group(1) if found else "where the job's sbatch --output says (scontrol show job)"


def _run_stages(
    cfg: dict[str, Any],
    run: Path,
    wanted: list[str],
    params: dict[str, Any],
    overrides: dict[str, Any],
    force: bool,
) -> None:
    """Skip the stages whose digest matches their record; run the others on one cluster."""
    from sfrdask.runtime import open_runtime
    from sfrdask.stages import get_stage
    from sfrdask.stages.base import digest

    upstream = digest("run", None, overrides, _input_fingerprint(cfg))
    todo = []
    for stage in stages():
        if stage not in params:
            continue
        d = digest(stage, params[stage], upstream)
        record = run / "stages" / f"{stage}.json"
        done = record.exists() and json.loads(record.read_text()).get("digest") == d
        if stage in wanted:
            todo.append((stage, d, record, done and not force))
        upstream = d
    log.info("run %s: stages %s", run, [s for s, *_ in todo])
    if all(skip for *_, skip in todo):
        for stage, *_ in todo:
            print(f"[{stage}] up to date (same inputs and settings): skipped", flush=True)
        return
    kind = config.get("cluster.kind")
    sizes: dict[str, Any] = {}
    for stage, *_, skip in todo:  # the cluster sized for every stage that runs (e.g. DDP's workers)
        size_for = get_stage(stage).cluster_overrides
        if not skip and size_for is not None:
            sizes.update(size_for(params[stage], kind) or {})
    if kind == "slurm" and not config.get("cluster.slurm.log-directory"):
        sizes["log_directory"] = str((run / "logs").resolve())  # the run's logs in one place
    _log_places(run, kind, sizes.get("log_directory"))
    with open_runtime(kind, **sizes) as rt:
        if rt.client is not None:
            from sfrdask.clusters import tunnel_hint

            link = rt.client.dashboard_link
            log.info("Dask dashboard: %s (%s)", link, tunnel_hint(link))
        for stage, d, record, skip in todo:
            if skip:
                print(f"[{stage}] up to date (same inputs and settings): skipped", flush=True)
                log.info("%s skipped (digest %s)", stage, d)
                continue
            _run_one(stage, params[stage], d, record, rt, run)


def _run_one(stage: str, params: Any, d: str, record: Path, rt: Any, run: Path) -> None:
    """Run one stage on the run's Runtime (a performance report when a cluster runs it), print its
    report, and record its digest and timing: a rerun with the same digest skips it."""
    from sfrdask.stages import get_stage
    from sfrdask.stages.base import as_record, execute

    record_params = as_record(params)
    print(f"[{stage}] {json.dumps(record_params, default=str)}", flush=True)
    log.info("%s started: %s", stage, json.dumps(record_params, default=str))
    t0 = time.perf_counter()
    report = contextlib.nullcontext()
    if rt.client is not None:
        from distributed import performance_report

        (run / "reports").mkdir(exist_ok=True)
        report = performance_report(filename=str(run / "reports" / f"{stage}.html"))
    st = get_stage(stage)
    with report:
        result = execute(st, params, rt)  # the one path from Params to a run
    for line in st.report(result):
        print(line, flush=True)
    dt = time.perf_counter() - t0
    finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_text(
        record,
        json.dumps(
            {
                "stage": stage,
                "digest": d,
                "params": record_params,
                "seconds": round(dt, 2),
                "finished": finished,
            },
            indent=1,
        ),
    )
    log.info("%s finished in %.1f s", stage, dt)
    print(f"[{stage}] done in {dt:.1f} s", flush=True)

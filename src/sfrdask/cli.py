"""The ``sfrdask`` command: one subcommand per stage, built from the stage's ``Params``
(:mod:`sfrdask.stages`), plus ``run`` for whole run files. Nothing imports this module.

Bad input ends with one line naming the file and what was expected, and exit status 2;
nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.choices import CLUSTER_KINDS
from sfrdask.errors import SfrdaskError
from sfrdask.stages import get_stage, help_of, names
from sfrdask.stages.base import add_arguments, execute, from_namespace


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s stage module is imported to build its arguments, so
    ``sfrdask synth`` never loads torch."""
    p = argparse.ArgumentParser(
        prog="sfrdask", description="Star formation rates from SDSS images and spectra"
    )
    p.add_argument("--version", action="version", version=f"sfrdask {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    for name in names():
        s = sub.add_parser(name, help=help_of(name), description=help_of(name))
        if name != command:
            continue
        stage = get_stage(name)
        add_arguments(s, stage.params)
        if stage.uses_cluster:
            s.add_argument(
                "--cluster",
                choices=CLUSTER_KINDS,
                default=None,
                help="where the work runs (default: sfrdask.cluster.kind)",
            )
    s = sub.add_parser("run", help="run every stage described by a YAML run file (resumes; see configs/)")
    s.add_argument("config", help="the run file (YAML)")
    s.add_argument("--run-dir", default=None, help="overrides the file's run-dir")
    s.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    s.add_argument(
        "--check", action="store_true", help="check the run file and every stage's inputs; start nothing"
    )
    return p


def _run_file(args: argparse.Namespace) -> int:
    from sfrdask.pipeline import check_run, run_pipeline

    if args.check:
        stages = check_run(args.config, run_dir=args.run_dir)
        print(f"{args.config}: checks passed for stages {', '.join(stages)}; nothing was started")
        return 0
    run = run_pipeline(args.config, run_dir=args.run_dir, force=args.force)
    results = Path(run) / "runs" / "results.md"
    if results.exists():
        print(results.read_text())
    print(f"run directory: {run} (config.yaml, run.log, stages/, reports/, plots/, runs/)")
    for report in sorted(Path(run).glob("*.calibration.md")):
        print(f"interval calibration per model: {report}")
    return 0


def _run_stage(args: argparse.Namespace) -> int:
    stage = get_stage(args.command)
    params = from_namespace(stage.params, args)
    result = execute(stage, params, getattr(args, "cluster", None))
    for line in stage.report(result):
        print(line, flush=True)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (scancel, kill, a batch system's limit) turned into an exception, so that cleanup
    (temporary outputs, the cluster) runs as it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _redeliver_interrupts(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable-exception hook that delivers an interrupt again when Python swallowed it.

    A signal handler runs between two bytecodes of the main thread; when that moment falls inside
    a finaliser or a weakref callback, the exception it raises is only printed ("Exception ignored
    in ...") and the run would go on. The signal is sent again a moment later instead, when the
    main thread is most likely back in ordinary code."""

    def handle(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, KeyboardInterrupt):
            sig = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            threading.Timer(0.05, os.kill, (os.getpid(), sig)).start()
            return
        hook(unraisable)

    return handle


class _InterruptedGather(logging.Filter):
    """Drop asyncio's "Task exception was never retrieved" for Dask's ``AllExit``: after Ctrl-C (or
    SIGTERM) stops a ``gather``, the client closes and its waiting task ends with AllExit, which
    nobody awaits any more. It says nothing about the run, and a traceback on stderr reads as a
    failure (measured: 1 in 9 interrupted ingests printed it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "AllExit"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        sys.unraisablehook = _redeliver_interrupts(sys.__unraisablehook__)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:  # Dask's INFO lines only with --verbose
        handler.setLevel(level)
    logging.getLogger("asyncio").addFilter(_InterruptedGather())
    try:
        config.validate()
        return _run_file(args) if args.command == "run" else _run_stage(args)
    except (SfrdaskError, OSError, ValueError) as e:  # OSError: missing file, full disk, no permission
        print(f"sfrdask {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from distributed import KilledWorker

        if not isinstance(e, KilledWorker):
            raise
        print(
            f"sfrdask {args.command}: error: the workers running task {e.task!r} died "
            f"{dask.config.get('distributed.scheduler.allowed-failures') + 1} times (killed, out of "
            "memory, or a SLURM walltime shorter than the work: raise memory/walltime, or give workers "
            "--lifetime)",
            file=sys.stderr,
        )
        return 2
    except Terminated:
        print(f"sfrdask {args.command}: terminated (SIGTERM); unfinished outputs removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"sfrdask {args.command}: interrupted; unfinished outputs removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Write an output under a temporary name beside it and rename it into place when it is complete.

A failed or interrupted run then never leaves a file or directory that looks finished: either
the previous output is still there, untouched, or the new one is there whole. Every writer of
sfrdask goes through :func:`atomic_output` (this is the only module that renames files), and
refuses an existing output through :func:`refuse_existing` before any work starts.

>>> from pathlib import Path
>>> import tempfile
>>> out = Path(tempfile.mkdtemp()) / "table.csv"
>>> with atomic_output(out) as tmp:
...     _ = tmp.write_text("a,b\\n1,2\\n")
>>> out.read_text()
'a,b\\n1,2\\n'
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sfrdask.errors import SfrdaskError


class OutputExistsError(SfrdaskError, FileExistsError):
    """An output exists and replacing it was not asked for."""


def refuse_existing(path: str | Path, overwrite: bool) -> Path:
    """``path``, unless it exists and ``overwrite`` is false: then a clear error, before any work."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite (overwrite=True from Python) to replace it")
    return path


def remove_partial(path: Path, attempts: int = 20, settle: float = 0.25) -> None:
    """Remove an unfinished output after a failure. Tasks of a failed or interrupted computation
    may still be writing into a directory for a moment (the first error returns before the others
    finish; a task already running finishes its chunk after it is cancelled, and a chunk written
    then makes its directories again), so retry briefly, and count it gone only when it is still
    gone ``settle`` seconds later; never raise, so the error that caused the clean-up is the one
    reported."""
    for _ in range(attempts):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            time.sleep(settle)
            if not path.exists():
                return
        time.sleep(0.25)


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` onto ``final``; an existing directory is moved aside first, then removed."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def temporary_name(final: Path, hidden: bool = True) -> Path:
    """The temporary path beside ``final`` an output is written to: hidden (``.NAME.tmp-XXXXXXXX``,
    keeping the suffix that format checks read), or a plain node name, ``NAME__tmp_XXXXXXXX``, for
    a group written inside a zarr store through its group path."""
    token = uuid.uuid4().hex[:8]
    if hidden:
        return final.with_name(f".{final.name}.tmp-{token}{final.suffix}")
    return final.with_name(f"{final.name}__tmp_{token}")


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = True, hidden: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same file system, so the rename is atomic); rename
    it onto ``path`` when the block ends normally, remove it when the block raises.

    ``overwrite=False`` refuses an existing ``path`` before anything is written; ``hidden``: see
    :func:`temporary_name`.
    """
    final = refuse_existing(path, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final, hidden)
    try:
        yield tmp
        if not tmp.exists():
            raise SfrdaskError(f"{final}: nothing was written")
        replace_path(tmp, final)
    finally:
        if tmp.exists():
            remove_partial(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)

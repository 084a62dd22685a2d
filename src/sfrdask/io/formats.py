"""The input formats sfrdask reads, in one table: name -> the module that reads it.

Every caller that reads a user's cube (ingest, predict, the study) asks :func:`format_of` for the
module, so a new input format is one module and one row here. The module offers:

- ``recognises(path) -> bool``: whether the file (or directory) is of this format, cheaply;
- ``read_metadata(path, image_zoom, spectrum_zoom) -> dict``: per-target metadata, read once and
  handed to ``open_dataset`` for every level;
- ``open_dataset(path, image_zoom, spectrum_zoom, chunks="auto", metadata=None) -> xr.Dataset``:
  one image and one spectrum zoom level, lazily, shaped as
  :func:`~sfrdask.io.hisscube.open_hisscube`'s Dataset (its variables, coordinates and
  ``zoom_levels_present``);
- ``check_levels(path, image_zooms, spectrum_zooms)``: refuse a missing level before any work.

A file that no format recognises is read as HiSS-Cube, whose reader says what is wrong with it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

FORMATS: dict[str, str] = {"hisscube": "sfrdask.io.hisscube"}
DEFAULT = "hisscube"


def format_of(path: str | Path) -> ModuleType:
    """The reader module of the first format that recognises ``path`` (else HiSS-Cube's)."""
    for module in FORMATS.values():
        reader = importlib.import_module(module)
        if reader.recognises(Path(path)):
            return reader
    return importlib.import_module(FORMATS[DEFAULT])

"""sfrdask settings, held in ``dask.config`` under the ``sfrdask`` key.

Defaults live in ``sfrdask.yaml`` beside this module. Users override them the way Dask users
expect: a YAML file in ``~/.config/dask/``, ``DASK_SFRDASK__SECTION__KEY`` environment variables,
or ``dask.config.set``. YAML is always read with ``yaml.safe_load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS = Path(__file__).with_name("sfrdask.yaml")


def _load_defaults() -> None:
    with _DEFAULTS.open() as f:
        defaults = yaml.safe_load(f)
    dask.config.update_defaults(defaults)


def get(key: str, default: Any = None) -> Any:
    """Return ``sfrdask.<key>`` from dask.config (e.g. ``get("synth.seed")``)."""
    return dask.config.get(f"sfrdask.{key}", default=default)


_load_defaults()

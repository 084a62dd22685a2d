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
    """Return ``sfrdask.<key>`` from dask.config (e.g. ``get("synth.seed")``).

    Mappings come back with hyphenated keys whatever the source spelled: a variable such as
    ``DASK_SFRDASK__TRAIN__DDP__COLLECTIVE_TIMEOUT`` arrives as ``collective_timeout``. Upper-case
    keys (environment variable names under ``cluster.worker-env``) are left alone.
    """
    return _hyphenate(dask.config.get(f"sfrdask.{key}", default=default))


def _hyphenate(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k.replace("_", "-") if k.islower() else k): _hyphenate(v) for k, v in value.items()}
    return value


_load_defaults()

"""sfrdask settings, held in ``dask.config`` under the ``sfrdask`` key.

Defaults live in ``sfrdask.yaml`` beside this module. Users override them the way Dask users
expect: a YAML file in ``~/.config/dask/``, ``DASK_SFRDASK__SECTION__KEY`` environment variables,
or ``dask.config.set``. YAML is always read with ``yaml.safe_load``.
"""

from __future__ import annotations

import warnings
from dataclasses import field
from pathlib import Path
from typing import Any

import dask.config
import yaml

from sfrdask.choices import CLUSTER_KINDS
from sfrdask.errors import SfrdaskError

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
    old = RENAMED.get(key)
    if old is not None and dask.config.get(f"sfrdask.{old}", default=None) is not None:
        deprecated(f"setting sfrdask.{old}", f"sfrdask.{key}")
        return _hyphenate(dask.config.get(f"sfrdask.{old}"))
    return _hyphenate(dask.config.get(f"sfrdask.{key}", default=default))


def setting(key: str, help: str = "", **meta: Any) -> Any:
    """A dataclass field whose default is ``sfrdask.<key>`` here, read when the object is made: the
    one home of that default is ``sfrdask.yaml`` (lists come as tuples). ``meta`` says how the
    command line offers it (``parse``, ``choices``: :func:`sfrdask.stages.base.add_arguments`)."""
    return field(default_factory=lambda: _plain(get(key)), metadata={"setting": key, "help": help, **meta})


def _plain(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _hyphenate(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k.replace("_", "-") if k.islower() else k): _hyphenate(v) for k, v in value.items()}
    return value


NULLABLE = ("io.reference-compression", "cluster.timeouts.")  # null: off / Dask's own default
FREE_FORM = ("cluster.worker-env",)  # sections whose keys are the user's (environment variable names)
# new key -> old spelling: the old one keeps working for one release, with a FutureWarning
RENAMED = {"study.curve-zooms": "study.curve-levels"}


def deprecated(old: str, new: str, where: str = "") -> None:
    """Say once that ``old`` is an old spelling of ``new`` (a FutureWarning: shown by default)."""
    warnings.warn(
        f"{where}{old} is deprecated and will be removed in the next release; use {new}",
        FutureWarning,
        stacklevel=3,
    )


class ConfigError(SfrdaskError, ValueError):
    """A setting under ``sfrdask`` that does not exist or has the wrong type."""


def defaults() -> dict[str, Any]:
    """sfrdask's own defaults (``sfrdask.yaml``), before any user setting."""
    with _DEFAULTS.open() as f:
        return yaml.safe_load(f)["sfrdask"]


def validate(cfg: dict[str, Any] | None = None) -> None:
    """Refuse unknown keys and wrongly typed values under ``sfrdask``, naming the key.

    ``cfg`` defaults to the merged configuration (defaults, YAML files, environment variables and
    ``dask.config.set``), so a typo anywhere surfaces before any work starts.
    """
    cfg = _hyphenate(dask.config.get("sfrdask") if cfg is None else cfg)
    _check(cfg, defaults(), "sfrdask")
    kind = str(cfg.get("cluster", {}).get("kind", "local"))
    if kind not in CLUSTER_KINDS and "://" not in kind:
        raise ConfigError(
            f"setting sfrdask.cluster.kind = {kind!r}: expected one of {', '.join(CLUSTER_KINDS)} or a "
            "scheduler address (tls://host:port)"
        )


def _check(value: Any, default: Any, path: str) -> None:
    key = path.removeprefix("sfrdask.")
    if key in FREE_FORM or default is None:
        return
    if value is None and any(key == n or (n.endswith(".") and key.startswith(n)) for n in NULLABLE):
        return
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"setting {path} must be a mapping, got {value!r}")
        for key, v in value.items():
            new = next((n for n, o in RENAMED.items() if f"sfrdask.{o}" == f"{path}.{key}"), None)
            if new is not None:  # an old spelling: read by get() in the new key's place
                _check(v, default[new.rsplit(".", 1)[-1]], f"{path}.{key}")
                continue
            if key not in default:
                known = ", ".join(sorted(default))
                raise ConfigError(f"unknown setting {path}.{key} (known keys under {path}: {known})")
            _check(v, default[key], f"{path}.{key}")
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, list | tuple),
    }.get(type(default), lambda v: True)
    if not ok(value):
        raise ConfigError(
            f"setting {path} = {value!r} has the wrong type: expected {type(default).__name__} "
            f"like the default {default!r}"
        )


_load_defaults()

"""What every stage is made of, and the three ways in: command line, run file, Python.

A stage is a frozen ``Params`` dataclass, ``run(rt, params) -> Result`` and ``report(result)``
(the lines the CLI prints). Fields say how they are set:

- :func:`setting` — the default is ``sfrdask.<key>`` in dask.config (``sfrdask.yaml``, user
  YAML, ``DASK_SFRDASK__...``, a run file's ``settings:``), read when the Params is made;
- :func:`option` — a plain default, for what is not a site-wide setting (paths, flags).

From those fields :func:`add_arguments` builds a subcommand's arguments, :func:`from_mapping`
maps a run-file section onto a Params (refusing unknown keys by name), and :func:`digest`
hashes a Params for resuming runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import numbers
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.config import ConfigError, setting  # noqa: F401  (setting: a field helper of the stages, re-exported)
from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import refuse_existing


def option(default: Any = None, help: str = "", **meta: Any) -> Any:
    """A Params field with a plain default; ``meta``: ``positional``, ``flag`` (CLI spelling),
    ``parse`` (str -> value), ``choices``, ``cli=False`` (not on the command line)."""
    return field(default=default, metadata={"help": help, **meta})


def required(help: str = "", **meta: Any) -> Any:
    """A Params field the caller must give."""
    return field(metadata={"help": help, "required": True, **meta})


@dataclass
class Wiring:
    """What the stages of a run file hand on while their Params are made, in the stages' order
    (:func:`sfrdask.pipeline.stage_params`): the run directory, the places earlier stages write
    (``cube``, ``catalog``, ``store``, ...) and the Params made so far, by stage name."""

    run: Path
    places: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def take(self, place: str, stage: str) -> Path:
        """The place an earlier stage gives (``stage`` is who asks, for the error)."""
        if place not in self.places:
            raise ConfigError(
                f"{stage}: needs the {place} that an earlier stage of the run writes; none does"
            )
        return self.places[place]


@dataclass(frozen=True)
class Stage:
    """One stage's parts (its name and one line of help are in the table of
    :mod:`sfrdask.stages`, so that ``sfrdask --help`` imports no stage).

    A stage that run files can run names its ``section`` of the run file and how its Params are
    made from that section and what earlier stages give (``wire``); the run file's keys, its stage
    list and :func:`sfrdask.pipeline.stage_params` are built from these declarations."""

    params: type
    run: Callable[..., Any]
    report: Callable[[Any], list[str]]
    # (params, cluster kind) -> settings of that kind to override (e.g. enough workers for DDP), or
    # None when these params need no cluster (the stage runs in this process)
    cluster_overrides: Callable[[Any, str], dict[str, Any] | None] | None = None
    uses_cluster: bool = True  # False: a tool that computes nothing on Dask (no --cluster option)
    section: str | None = None  # its key in a run file; None: not run from run files
    # (that section or None, what earlier stages give) -> this run's Params, or None: not in this run
    wire: Callable[[Any, Wiring], Any] | None = None


def copied(source: type, skip: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """The fields of the dataclass ``source`` as ``make_dataclass`` takes them (name, type, field),
    but those in ``skip``. A stage whose options are declared elsewhere (its sub-stages', the
    training settings) takes them this way, so that each is declared once; :func:`same_as` takes
    one field with a help text of its own."""
    return [(f.name, hint, same_as(source, f.name)) for f, hint in fields_of(source) if f.name not in skip]


def same_as(source: type, name: str, help: str | None = None) -> Any:
    """A copy of the field ``name`` of the dataclass ``source`` (its default, its setting, how the
    command line offers it), with another help text if given: one declaration, used twice."""
    f = next(f for f in dataclasses.fields(source) if f.name == name)
    meta = {**f.metadata, **({"help": help} if help else {})}
    return field(default=f.default, default_factory=f.default_factory, metadata=meta)


def params_class(module: str, parts: list[tuple[str, Any, Any]], **namespace: Any) -> type:
    """A frozen ``Params`` dataclass of ``module`` made from ``parts`` (:func:`copied`, and the
    stage's own ``(name, type, field)``); ``namespace``: its methods (``check``)."""
    cls = dataclasses.make_dataclass("Params", parts, frozen=True, namespace=namespace)
    cls.__module__ = module
    return cls


def fields_of(params: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(params)
    return [(f, hints[f.name]) for f in dataclasses.fields(params)]


def base_type(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _parse_list(inner: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(inner(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None

    return parse


def _converter(hint: Any) -> Callable[[str], Any]:
    base, _ = base_type(hint)
    if typing.get_origin(base) is tuple:
        return _parse_list(typing.get_args(base)[0])
    return base


def add_arguments(p: argparse.ArgumentParser, params: type) -> None:
    """Arguments for every field of ``params`` (positional, ``--kebab-name``, flags for booleans).

    Absent options stay ``None`` so the Params' own default (often sfrdask.yaml) applies."""
    for f, hint in fields_of(params):
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        base, _ = base_type(hint)
        kw: dict[str, Any] = {"help": meta.get("help") or None}
        if "setting" in meta:
            value = config.get(meta["setting"])
            kw["help"] = f"{kw['help'] or ''} (default {value!r}: sfrdask.{meta['setting']})".strip()
        elif f.default not in (None, dataclasses.MISSING, False):
            kw["help"] = f"{kw['help'] or ''} (default {f.default})".strip()
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        if meta.get("positional"):
            if typing.get_origin(base) is tuple:
                kw.update(nargs="+", type=typing.get_args(base)[0])
            else:
                kw.update(type=meta.get("parse", base))
            p.add_argument(f.name, **kw)
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if base is bool:
            if f.default is True or "setting" in meta:  # a setting may be on by default: --no-X
                kw["action"] = argparse.BooleanOptionalAction
            else:
                kw["action"] = "store_true"
            p.add_argument(flag, dest=f.name, default=None, **kw)
            continue
        kw["type"] = meta.get("parse", _converter(hint))
        if meta.get("required"):
            kw["required"] = True
        p.add_argument(flag, dest=f.name, default=None, **kw)
        if meta.get("renamed_from"):  # the old spelling, hidden from --help, says what to use
            old = "--" + meta["renamed_from"].replace("_", "-")
            kw.pop("required", None)
            kw.update(help=argparse.SUPPRESS, action=_old_spelling(flag))
            p.add_argument(old, dest=f.name, default=None, **kw)


def _old_spelling(new: str) -> type[argparse.Action]:
    class OldSpelling(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
            print(f"{parser.prog}: {option} is deprecated and will be removed in the next release; "
                  f"use {new}", file=sys.stderr)  # fmt: skip
            setattr(namespace, self.dest, values)

    return OldSpelling


def renamed(params: type, given: Mapping[str, Any], where: str, kebab: bool = False) -> dict[str, Any]:
    """``given`` (names with underscores) with every old spelling of a field replaced by its name,
    and a FutureWarning saying so (in a run file's spelling, with dashes, when ``kebab``); both
    spellings at once are refused."""
    old = {
        f.metadata["renamed_from"]: f.name
        for f in dataclasses.fields(params)
        if f.metadata.get("renamed_from")
    }
    out = dict(given)
    for name in [k for k in given if k in old]:
        was, now = (name, old[name]) if not kebab else (name.replace("_", "-"), old[name].replace("_", "-"))
        if old[name] in given:
            raise ConfigError(f"{where}: {was} and {now} are the same setting; give {now} only")
        config.deprecated(was, now, f"{where}: ")
        out[old[name]] = out.pop(name)
    return out


def from_namespace(params: type, args: argparse.Namespace) -> Any:
    """A Params from parsed arguments: options left out keep the Params' defaults."""
    given = {
        f.name: getattr(args, f.name) for f, _ in fields_of(params) if getattr(args, f.name, None) is not None
    }
    return params(**given)


def from_mapping(params: type, section: Mapping[str, Any] | None, where: str, **fixed: Any) -> Any:
    """A Params from a run-file section (kebab- or snake-case keys); an unknown key is refused by
    name. ``fixed`` are what the run itself decides (paths inside the run directory)."""
    section = {str(k).replace("-", "_"): v for k, v in (section or {}).items()}
    section = {k.replace("_", "-"): v for k, v in renamed(params, section, where, kebab=True).items()}
    known = {f.name: hint for f, hint in fields_of(params) if f.name not in fixed}
    given = {}
    for key, value in section.items():
        name = str(key).replace("-", "_")
        if name not in known:
            names = ", ".join(sorted(k.replace("_", "-") for k in known))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {names})")
        given[name] = coerce(value, known[name], f"{where}.{key}")
    return params(**given, **fixed)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field type ``hint`` wants (lists to tuples, text to paths, "a,b" to a
    tuple); a value of the wrong kind is refused, naming ``where``."""
    base, optional = base_type(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is needed")
    if typing.get_origin(base) is tuple:
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, Path | numbers.Number):
            items = [value]  # one value where a list is expected: a list of one
        elif isinstance(value, list | tuple):
            items = value
        else:
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(base)[0]
        return tuple(coerce(v, inner, where) for v in items)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if base in (int, float):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or (base is int and value != int(value))
        ):
            raise ConfigError(f"{where}: expected {base.__name__}, got {value!r}")
        return base(value)
    if base in (str, Path):
        return base(value)
    return value


def as_record(params: Any) -> dict[str, Any]:
    """The Params as plain JSON-able data (paths as strings, tuples as lists)."""
    out = {}
    for f, _ in fields_of(type(params)):
        v = getattr(params, f.name)
        out[f.name] = (
            [str(x) if isinstance(x, Path) else x for x in v]
            if isinstance(v, tuple)
            else (str(v) if isinstance(v, Path) else v)
        )
    return out


def digest(stage: str, params: Any, *upstream: Any) -> str:
    """What a finished stage's record must match to be skipped: the stage, every resolved
    parameter, the sfrdask version and whatever the caller adds (the stage before, the inputs)."""
    record = as_record(params) if dataclasses.is_dataclass(params) else params
    parts = [__version__, stage, record, *upstream]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_output(params: Any) -> None:
    """Refuse an output (``params.out``) that exists while ``params.overwrite`` is false, or that
    cannot be created because a file stands where one of its directories should be, or the
    directory it goes in is not writable: said now, naming both, rather than after a cluster has
    started."""
    out = getattr(params, "out", None)
    if out is None:
        return
    if getattr(params, "overwrite", True) is False:  # the overwrite rule, said before any cluster starts
        refuse_existing(out, False)
    for parent in Path(out).parents:
        if parent.exists():
            if not parent.is_dir():
                raise SfrdaskError(f"{out}: {parent} is a file, not a directory; choose another output path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise SfrdaskError(f"{out}: no permission to write in {parent}; choose another output path")
            return


def check_inputs(params: Any, made_under: Path | None = None) -> None:
    """Refuse a missing input (a field declared with ``input=True``) by its option name and path,
    and an output that cannot be written, then run the Params' own ``check()`` (catalogue columns,
    levels): all before a cluster starts or a job is queued. Inputs under ``made_under`` (a run
    directory, whose earlier stages write them) are left to those stages."""
    check_output(params)
    for f, _ in fields_of(type(params)):
        if not f.metadata.get("input"):
            continue
        value = getattr(params, f.name)
        for path in value if isinstance(value, tuple) else (value,):
            if path is None:
                continue
            path = Path(path)
            if made_under is not None and path.resolve().is_relative_to(Path(made_under).resolve()):
                continue
            if not path.exists():
                flag = f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
                what = f.metadata.get("help", "")
                raise SfrdaskError(f"{flag}: {path}: no such file or directory ({what})")
    if hasattr(params, "check"):
        params.check()


def execute(stage: Stage, params: Any, where: Any = None) -> Any:
    """Run ``stage`` with ``params`` on ``where``: a cluster kind or scheduler address (``local``,
    ``slurm``, ``threads``, ``synchronous``, ``tls://...``; ``None``: ``sfrdask.cluster.kind``),
    started for this stage and closed after it; or a Runtime or Client the caller owns.

    The one path from Params to a run: the command line, run files (:mod:`sfrdask.pipeline`, on
    the run's Runtime) and the Python API (:mod:`sfrdask.api`, on the caller's client) all come
    here, so inputs and outputs are checked the same way before any work."""
    from sfrdask.runtime import Runtime, open_runtime

    check_inputs(params)  # before any cluster starts
    if not stage.uses_cluster:
        return stage.run(Runtime(None, "threads"), params)
    if where is not None and not isinstance(where, str):
        return stage.run(Runtime.of(where), params)
    kind = where or config.get("cluster.kind")
    overrides = stage.cluster_overrides(params, kind) if stage.cluster_overrides else {}
    if overrides is None:  # these params need no cluster: the stage runs in this process
        return stage.run(Runtime(None, kind if kind in ("threads", "synchronous") else "threads"), params)
    with open_runtime(kind, **overrides) as rt:
        return stage.run(rt, params)

"""The Python API: one function per stage, taking the stage's parameters and returning its result.

``sfrdask.synth``, ``ingest``, ``preprocess``, ``train``, ``evaluate``, ``predict`` and every other
stage of the table in :mod:`sfrdask.stages` (``filter``, ``stats``, ``deblend``, ``pca``,
``build_cube``, ``study``, ...; a stage named like a subpackage, such as the Scene experiment's
``scene``, is ``sfrdask.api.scene``) call the same stage code as the command line and the run
file. Parameters are those of the stage's ``Params`` (``sfrdask ingest --help`` lists them;
keyword names use underscores), and ``client`` says where the work runs: a Dask ``Client``,
``"threads"``, ``"synchronous"``, or ``None`` for Dask's default client when one is connected
(else threads). No cluster is started behind your back: start one with :func:`sfrdask.cluster`.

>>> import sfrdask, tempfile
>>> d = tempfile.mkdtemp()
>>> s = sfrdask.synth(f"{d}/survey", objects=64, seed=1, client="synchronous")
>>> s.objects, s.cube.name
(64, 'survey.h5')
>>> store = sfrdask.ingest(s.cube, f"{d}/store.zarr", catalog=f"{d}/survey", image_zooms=[3],
...                        spectrum_zooms=[3], client="synchronous").store
>>> r = sfrdask.preprocess(store, client="synchronous")  # tables and plots too with out="plots"
>>> sorted(r.pca.groups), r.filter.counts["split"]["train"] > 0
(['image/3', 'spectrum/3'], True)
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from sfrdask.stages import get_stage, help_of
from sfrdask.stages.base import base_type, coerce, execute, fields_of, renamed


class StageFunction:
    """``sfrdask.<stage>(...)``: build the stage's Params from the arguments, run it on ``client``."""

    def __init__(self, name: str):
        self.name = name
        self.__name__ = name.replace("-", "_")
        self.__qualname__ = self.__name__
        self.__module__ = "sfrdask"
        self.__doc__ = (
            f"{help_of(name)[:1].upper()}{help_of(name)[1:]}: the ``{name}`` stage "
            f"(parameters as in ``sfrdask {name} --help``); returns its Result."
        )

    def __call__(self, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        from sfrdask import config
        from sfrdask.config import ConfigError
        from sfrdask.runtime import Runtime

        stage = get_stage(self.name)
        fields = fields_of(stage.params)
        if len(args) > len(fields):
            raise TypeError(f"sfrdask.{self.__name__}() takes at most {len(fields)} positional arguments")
        given = {f.name: v for (f, _), v in zip(fields, args, strict=False)}
        hints = dict((f.name, h) for f, h in fields)
        try:
            kwargs = renamed(stage.params, kwargs, f"sfrdask.{self.__name__}()")
        except ConfigError as e:
            raise TypeError(str(e)) from None
        for k, v in kwargs.items():
            if k not in hints:
                raise TypeError(
                    f"sfrdask.{self.__name__}() got an unexpected argument {k!r}; "
                    f"parameters: {', '.join(hints)}"
                )
            if k in given:
                raise TypeError(f"sfrdask.{self.__name__}() got two values for {k!r}")
            given[k] = v
        # None for a parameter that cannot be None means "the default" (as on the command line)
        given = {k: v for k, v in given.items() if v is not None or _optional(hints[k])}
        try:
            given = {k: coerce(v, hints[k], k) for k, v in given.items()}
        except ConfigError as e:
            raise TypeError(f"sfrdask.{self.__name__}(): {e}") from None
        config.validate()
        params = stage.params(**given)
        # the one path from Params to a run, as the command line and run files take: inputs and
        # outputs checked, then the stage on this client (None: Dask's default client, else threads)
        return execute(stage, params, Runtime.of(client))

    @property
    def __signature__(self) -> inspect.Signature:
        stage = get_stage(self.name)
        params = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=h,
                default=inspect.Parameter.empty
                if f.metadata.get("required")
                else (None if f.default is dataclasses.MISSING else f.default),
            )
            for f, h in fields_of(stage.params)
        ]
        params.append(inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None))
        ret = typing.get_type_hints(stage.run).get("return", inspect.Signature.empty)
        return inspect.Signature(params, return_annotation=ret)

    def __repr__(self) -> str:
        return f"<sfrdask stage function {self.__name__}>"


def _optional(hint: Any) -> bool:
    return base_type(hint)[1]


def functions() -> dict[str, str]:
    """Python name -> stage name, for every stage in the table (:mod:`sfrdask.stages`)."""
    from sfrdask.stages import names

    return {name.replace("-", "_"): name for name in names()}


def __getattr__(attr: str) -> StageFunction:
    """``sfrdask.api.NAME``: the function of the stage NAME, built from the table when asked for, so
    a stage added to the table has its function with nothing else written."""
    stages = functions()
    if attr in stages:
        return StageFunction(stages[attr])
    raise AttributeError(f"module 'sfrdask.api' has no attribute {attr!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *functions()])


def top_level() -> tuple[str, ...]:
    """The stage functions ``import sfrdask`` offers: all of them but those whose name is a
    subpackage's (``sfrdask.models``, ``sfrdask.scene``): those stay ``sfrdask.api.NAME``."""
    import importlib.util

    return tuple(sorted(n for n in functions() if importlib.util.find_spec(f"sfrdask.{n}") is None))


__all__ = ["StageFunction", "functions", "top_level"]

"""The preprocess stage: filter, stats, deblend (every image level) and PCA (every level) in one go.

Its parameters are its sub-stages' (:func:`_params`): each declared once, in the sub-stage that
uses it, so a new filter or PCA setting is an option of ``preprocess`` too, with the same help
and default.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from pathlib import Path

from sfrdask.runtime import Runtime
from sfrdask.stages import deblend, filter, pca, stats
from sfrdask.stages.base import Stage, Wiring, copied, from_mapping, params_class, required

SUB_STAGES = (stats, filter, deblend, pca)  # in the order their options are listed
SET_HERE = ("zooms", "plots")  # every level; the plots go to ``out``


def _params() -> type:
    """``Params``: the store, then every field of the sub-stages' Params (the first of a name
    wins) but those this stage sets itself (:data:`SET_HERE`)."""
    own = [("store", Path, required("zarr store written by ingest", positional=True, input=True))]
    seen = {"store", *SET_HERE}
    for sub in SUB_STAGES:
        fresh = copied(sub.Params, skip=tuple(seen))
        seen.update(name for name, *_ in fresh)
        own += fresh
    return params_class(__name__, own)


Params = _params()


@dataclass(frozen=True)
class Result:
    filter: filter.Result
    stats: stats.Result
    deblend: deblend.Result
    pca: pca.Result


def _sub(params: type, p: typing.Any, **given: object) -> object:
    """A sub-stage's Params from this stage's fields of the same name (by name, never by position,
    so reordering a field cannot move a value), plus ``given``; its other fields keep their defaults."""
    names = {f.name for f in fields(params)}
    return params(**{f.name: getattr(p, f.name) for f in fields(p) if f.name in names} | given)


def run(rt: Runtime, p: typing.Any) -> Result:  # p: a Params
    f = filter.run(rt, _sub(filter.Params, p))
    s = stats.run(rt, _sub(stats.Params, p))
    d = deblend.run(rt, _sub(deblend.Params, p, plots=p.out))  # every image level
    c = pca.run(rt, _sub(pca.Params, p, plots=p.out))  # every level
    return Result(f, s, d, c)


def report(r: Result) -> list[str]:
    return [*filter.report(r.filter), *stats.report(r.stats), *deblend.report(r.deblend), *pca.report(r.pca)]


def wire(section: dict | None, w: Wiring) -> typing.Any:
    """A run file's ``preprocess:`` section, on the run's store; plots and tables in ``plots/``."""
    return from_mapping(
        Params, section, "preprocess", store=w.take("store", "preprocess"), out=w.run / "plots"
    )


STAGE = Stage(Params, run, report, section="preprocess", wire=wire)

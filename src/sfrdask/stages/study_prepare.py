"""The study's preparation: its store ingested and preprocessed at every studied level through the
stages (ingest, filter, and deblend and PCA per level), each step timed, and reused on a rerun while
the cube and every step's parameters are the same (:func:`prepare`)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Protocol

from sfrdask.errors import SfrdaskError
from sfrdask.runtime import Runtime
from sfrdask.stages.base import digest


class Preparation(Protocol):
    """What the preparation reads of the study's parameters (``sfrdask.stages.study.Params``):
    declared here, so that this module, below the study stage, does not import it back."""

    @property
    def cube(self) -> Path: ...
    @property
    def catalog(self) -> Path: ...
    @property
    def image_zooms(self) -> tuple[int, ...]: ...
    @property
    def spectrum_zooms(self) -> tuple[int, ...]: ...


def _steps(p: Preparation, store: Path) -> list[tuple[str, Any, Any]]:
    """(name, stage module, its Params) of the preparation, in order."""
    from sfrdask.stages import deblend, filter, ingest, pca

    ing = ingest.Params(p.cube, store, catalog=p.catalog, image_zooms=p.image_zooms,
                        spectrum_zooms=p.spectrum_zooms, overwrite=True)  # fmt: skip
    steps = [("ingest/all", ingest, ing), ("filter", filter, filter.Params(store))]
    steps += [(f"deblend/image/{z}", deblend, deblend.Params(store, zooms=(z,))) for z in p.image_zooms]
    for m, levels in (("image", p.image_zooms), ("spectrum", p.spectrum_zooms)):
        steps += [(f"pca/{m}/{z}", pca, pca.Params(store, zooms=(z,), modalities=(m,))) for z in levels]
    return steps


def _fingerprint(path: Path) -> list[Any]:
    """Size and a hash of the first and last MiB: the same cube, also one rebuilt byte for byte
    from its seed on another machine (its time stamp would differ), without reading all of it."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        h.update(f.read(2**20))
        f.seek(max(0, size - 2**20))
        h.update(f.read(2**20))
    return [size, h.hexdigest()]


def _by_role(params: Any, p: Preparation, store: Path) -> str:
    """A step's parameters with the paths named by their role (the cube by its fingerprint beside
    them): the same study prepared in another directory, or from a cube and catalogue that moved,
    has the same digest, so a committed record resumes wherever it is checked out."""
    text = repr(params)
    for path, role in ((store, "STORE"), (Path(p.cube), "CUBE"), (Path(p.catalog), "CATALOG")):
        text = text.replace(repr(Path(path)), role)
    return text


def prepare(rt: Runtime, p: Preparation, work: Path) -> tuple[Path, dict[str, Any], str]:
    """The study's store, ingested and preprocessed at every level through the stages, the seconds
    and objects/s of each step, reading every level of the cube included, and the digest of it all
    (recorded in work/prepared.json; reused while the cube and every step's parameters are the same,
    and every recorded training carries it, so a training on another preparation never counts)."""
    import dask

    from sfrdask.io.atomic import write_text
    from sfrdask.io.formats import format_of
    from sfrdask.preprocessing.quality import selected_objects

    store, marker = work / "store.zarr", work / "prepared.json"
    steps = _steps(p, store)
    key = digest(
        "study-prepare", _fingerprint(Path(p.cube)), *(_by_role(params, p, store) for *_, params in steps)
    )
    if marker.exists() and store.exists() and json.loads(marker.read_text())["digest"] == key:
        return store, json.loads(marker.read_text())["stages"], key
    stages: dict[str, Any] = {}

    def timed(name: str, objects: int, fn: Any) -> None:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        stages[name] = {"seconds": round(dt, 3), "objects": objects, "objects_per_s": round(objects / dt, 1)}

    with rt.active():
        for mod, levels in (("image", p.image_zooms), ("spectrum", p.spectrum_zooms)):
            for z in levels:  # reading one level of the cube, data and errors of every object
                zi, zs = (z, p.spectrum_zooms[0]) if mod == "image" else (p.image_zooms[0], z)
                ds = format_of(p.cube).open_dataset(p.cube, zi, zs)
                timed(
                    f"read/{mod}/{z}",
                    ds.sizes["object"],
                    lambda ds=ds, mod=mod: dask.compute(ds[mod].data.sum(), ds[f"{mod}_error"].data.sum()),
                )
        n = ds.sizes["object"]
        for name, module, params in steps:
            objects = n if name in ("ingest/all", "filter") else len(selected_objects(store))
            timed(name, objects, lambda module=module, params=params: module.run(rt, params))
    write_text(marker, json.dumps({"digest": key, "stages": stages}, indent=1))
    return store, stages, key


def recorded(work: Path) -> tuple[dict[str, Any], str]:
    """The stage figures and the digest of the preparation recorded in ``work`` (--report-only)."""
    marker = work / "prepared.json"
    if not marker.exists():
        raise SfrdaskError(f"{marker}: no prepared study here to report on; run the study first")
    prepared = json.loads(marker.read_text())
    return prepared["stages"], prepared["digest"]

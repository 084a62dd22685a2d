"""The predict stage: an SFR catalogue with calibrated intervals for every object of a cube.

``run(rt, params)`` (``sfrdask predict``, ``sfrdask.predict``, the ``predict`` stage of a run
file) does, for trained runs of any model family:

1. **calibrate** on the runs' training store: predictions for its validation and test splits
   through the same raw-data path as below; normalised split conformal (MAPIE) fitted on the
   validation split, checked on the test split (against the true SFR too, for a synthetic
   survey); a report beside the catalogue (``CATALOGUE.calibration.{csv,md}``) and a reliability /
   PIT plot per model (``CATALOGUE.calibration-MODEL.png``); the run directories are only read;
2. **predict** every object of the input (a HiSS-Cube file with its catalogue, or a store),
   chunk by chunk on the cluster: deblending with the training store's parameters, the stored
   PCA transforms, the checkpoint's normalisation, batched inference; memory bounded by a chunk;
3. **write** the catalogue (:mod:`sfrdask.io.sfr_catalogue`) atomically, and a PNG of predicted
   SFR against stellar mass (the star-forming main sequence) when the catalogue has masses.

Several runs are combined as an ensemble (mean of their predictions, calibrated as one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfrdask.config import ConfigError
from sfrdask.errors import SfrdaskError
from sfrdask.io.sfr_catalogue import ROW_FORMS
from sfrdask.runtime import Runtime
from sfrdask.stages.base import Stage, Wiring, fields_of, from_mapping, option, required, setting
from sfrdask.trained.prediction import Catalogue


@dataclass(frozen=True)
class Params:
    """What ``predict`` needs. Defaults of the tunables come from ``sfrdask.predict`` in dask.config."""

    runs: tuple[Path, ...] = required("run directories (several: an ensemble)", positional=True, input=True)
    out: Path = required("CATALOGUE.fits, .csv or .parquet")
    cube: Path | None = option(None, "HiSS-Cube file whose objects to predict", input=True)
    catalog: Path | None = option(None, "MPA-JHU tables for the cube (labels, Z, CLASS, mass)", input=True)
    store: Path | None = option(
        None, "or a zarr store written by sfrdask ingest (instead of --cube)", input=True
    )
    train_store: Path | None = option(
        None,
        "the runs' training store, when it moved since training (default: where the run recorded it)",
        input=True,
    )
    overwrite: bool = option(False, "replace an existing catalogue")
    chunk_mb: float = setting("predict.chunk-mb", "raw inputs per inference task")
    seed: int = setting("predict.seed", "splits the validation set for the calibration")
    plots: bool = option(True, "reliability, PIT and main-sequence plots")
    rows: str = setting("predict.rows", "spectrum: a row per spectrum (joins MPA-JHU row for row); "
                        "target: a row per cube target", choices=ROW_FORMS)  # fmt: skip

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(Path(r) for r in self.runs))
        if self.rows not in ROW_FORMS:
            raise SfrdaskError(f"predict rows must be one of {', '.join(ROW_FORMS)}, got {self.rows!r}")
        if not self.runs:
            raise SfrdaskError("predict needs at least one run directory")
        if (self.cube is None) == (self.store is None):
            raise SfrdaskError(
                "predict reads either a cube (--cube CUBE.h5 [--catalog DIR]) or a store (--store)"
            )


def run(rt: Runtime, params: Params) -> Catalogue:
    """Calibrate, predict every object, write the catalogue (see the module docstring)."""
    from sfrdask.trained.prediction import make_catalogue

    with rt.active():
        return make_catalogue(rt.client, params)


def report(r: Catalogue) -> list[str]:
    test = r.calibration[(r.calibration["group"] == "all")]
    lines = [
        test.round(3).to_string(index=False),
        f"wrote {r.catalogue} ({r.rows} rows; predicted at {r.objects_per_s:.0f} objects/s)",
    ]
    return lines + [f"wrote {p}" for p in (*r.reports, *([r.main_sequence] if r.main_sequence else []))]


def wire(section: dict | None, w: Wiring) -> Params | None:
    """A run file's ``predict: {models: [...], out: NAME, ...}``: the runs of models trained in this
    run, every object of the run's cube, the catalogue in the run directory."""
    if not section:
        return None
    from sfrdask.stages.train import run_dirs

    pred = dict(section)
    names, target = pred.pop("models", None), w.run / pred.pop("out", "catalogue.fits")
    cube, catalog = w.take("cube", "predict"), w.take("catalog", "predict")
    fixed = dict(runs=(), out=target, cube=cube, catalog=catalog, store=None, overwrite=True)
    known = {f.name for f, _ in fields_of(Params)} - set(fixed)
    bad = [k for k in pred if str(k).replace("-", "_") not in known]
    if bad or not names:
        raise ConfigError(
            f"predict: {'unknown key ' + repr(bad[0]) if bad else 'no models'}; the section takes models "
            f"(trained in this run's train section), out (a catalogue file name) and "
            f"{', '.join(sorted(k.replace('_', '-') for k in known))}"
        )
    train = w.params.get("train")
    if train is None:
        raise ConfigError("predict.models names models of this run's train section, which has none")
    unknown = [m for m in names if m not in train.models]
    if unknown:
        raise ConfigError(f"predict.models {unknown} are not trained in this run (train.models)")
    fixed["runs"] = tuple(d for m in names for d in run_dirs(train, m))
    return from_mapping(Params, pred, "predict", **fixed)


STAGE = Stage(Params, run, report, section="predict", wire=wire)

Result = Catalogue  # what the stage returns: the catalogue and its figures

__all__ = ["Params", "Result", "run"]

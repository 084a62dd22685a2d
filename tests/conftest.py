"""Shared fixtures: a tiny synthetic survey (made once per session) and a real LocalCluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfrdask.synth import SynthParams, make_survey

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdss"

# More labels and repeats than the real survey, so a 192-object file exercises every path.
TINY = SynthParams(flag0_fraction=0.35, repeat_fraction=0.12, neighbour_fraction=0.4)


@pytest.fixture(scope="session")
def survey_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "survey"
    make_survey(out, objects=192, seed=11, params=TINY, chunk_objects=64, progress=False)
    return out


@pytest.fixture(scope="session")
def cube(survey_dir: Path) -> Path:
    return survey_dir / "survey.h5"


@pytest.fixture(scope="session")
def client():
    """A real distributed cluster: two single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc,
        Client(lc) as c,
    ):
        yield c


@pytest.fixture(scope="session")
def dr14() -> Path:
    path = SHARED / "catalog" / "skyserver_dr14_photometry_10k.csv"
    if not path.exists():
        pytest.fail(f"{path} is missing: the real SDSS reference files must sit in ../shared/data/sdss")
    return path

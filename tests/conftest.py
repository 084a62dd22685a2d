"""Shared fixtures: a tiny synthetic survey (made once per session) and a real LocalCluster."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sfrdask.synthetic import SynthParams, make_survey

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


@contextlib.contextmanager
def local_cluster(n_workers: int = 2):
    """A real distributed cluster: ``n_workers`` single-threaded worker processes. Its Client is
    not Dask's default: a test hands it to what it runs (``client=``, ``Runtime.of(client)``)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as lc,
        Client(lc, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture(scope="session")
def client():
    """A real cluster shared by the tests that leave it as they found it (tests that kill workers
    use ``own_client``)."""
    with local_cluster() as c:
        yield c


@pytest.fixture
def own_client():
    """A cluster of this test alone, for tests that kill its workers."""
    with local_cluster() as c:
        yield c


@contextlib.contextmanager
def on(client):
    """Run the dask computations inside on ``client`` (what a stage's Runtime does)."""
    from sfrdask.runtime import Runtime

    with Runtime.of(client).active():
        yield


def wait_for_replacement(client, dead: str, n: int = 2, timeout: float = 180.0) -> None:
    """After a worker was killed: wait until the scheduler has dropped ``dead`` and ``n`` workers
    are connected again (the nanny restarts it), so the next test finds a whole cluster."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if dead not in workers and len(workers) >= n:
            return
        time.sleep(0.2)
    raise TimeoutError(f"worker {dead} was not replaced within {timeout:g} s ({len(workers)} workers)")


@pytest.fixture(scope="session")
def dr14() -> Path:
    path = SHARED / "catalog" / "skyserver_dr14_photometry_10k.csv"
    if not path.exists():
        pytest.fail(f"{path} is missing: the real SDSS reference files must sit in ../shared/data/sdss")
    return path


def kill_a_busy_worker_during(fn):
    """Run ``fn(client)`` in a thread on a two-worker cluster of its own; SIGKILL the first worker
    seen processing one of its tasks; return what ``fn`` returned.

    The cluster is this call's alone and is closed afterwards, so the stage has to finish on the
    surviving worker (and the nanny's replacement when it joins in time); nothing after it depends on
    the replacement."""
    out: dict = {}
    with local_cluster() as client:
        pids = client.run(os.getpid)

        def target():
            try:
                with on(client):
                    out["result"] = fn(client)
            except BaseException as e:  # surfaced below
                out["error"] = e

        t = threading.Thread(target=target)
        t.start()
        killed = None
        while t.is_alive() and killed is None:
            busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed = busy[0]
            time.sleep(0.01)
        t.join(timeout=300)
        assert not t.is_alive(), "the stage did not finish within 300 s of the kill"
    if "error" in out:
        raise out["error"]
    assert killed is not None, "the stage ended before any task was seen running"
    return out["result"]


def linked_sdss(tmp: Path, frames: bool = True, spectra: bool = True) -> tuple[Path, Path]:
    """Directories of symlinks to the real SDSS frames and spectra in ../shared, where a test can
    swap one for a broken copy."""
    fd, sd = tmp / "frames", tmp / "spectra"
    fd.mkdir()
    sd.mkdir()
    for p in (SHARED / "frames").glob("frame-*") if frames else []:
        (fd / p.name).symlink_to(p)
    for p in (SHARED / "spectra").glob("spec-*") if spectra else []:
        (sd / p.name).symlink_to(p)
    return fd, sd


def md_rows(text: str) -> list[list[str]]:
    """The cells of every row of the markdown tables in ``text``, stripped (header rows included,
    the ``|---|`` rules left out): what a reader of the .md sees, whatever its column widths."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.lstrip().startswith("|")]
    cells = [[c.strip() for c in row] for row in rows]
    return [row for row in cells if not all(set(c) <= set(":-") for c in row)]

"""Outputs are complete or absent: the one helper every writer uses, and an interrupted ingest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import OutputExistsError, atomic_output, refuse_existing, write_text


def test_a_block_that_raises_leaves_the_previous_output_untouched(tmp_path):
    out = write_text(tmp_path / "t.csv", "old\n")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_directory_is_replaced_whole(tmp_path):
    out = tmp_path / "d"
    for text in ("first", "second"):
        with atomic_output(out) as tmp:
            tmp.mkdir()
            (tmp / "a").write_text(text)
    assert (out / "a").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_nothing_written_is_an_error_not_an_empty_output(tmp_path):
    with pytest.raises(SfrdaskError, match="nothing was written"), atomic_output(tmp_path / "x"):
        pass
    assert not (tmp_path / "x").exists()


def test_an_existing_output_is_refused_before_any_work(tmp_path):
    out = write_text(tmp_path / "t.txt", "keep")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        refuse_existing(out, overwrite=False)
    with pytest.raises(FileExistsError), atomic_output(out, overwrite=False):
        pytest.fail("the block must not run")
    assert refuse_existing(out, overwrite=True) == out
    assert out.read_text() == "keep"


def test_only_the_atomic_module_renames_files():
    """Every writer goes through io.atomic: no other module calls os.replace / rename."""
    import re

    root = Path(__file__).resolve().parents[2] / "sfrdask"
    pattern = re.compile(r"os\.replace\(|os\.rename\(|shutil\.move\(|\.rename\((?!columns)")
    found = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "atomic.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


INTERRUPTS = 20


@pytest.mark.slow
def test_an_interrupted_ingest_exits_130_and_leaves_no_partial_store(tmp_path, cube, survey_dir):
    """Ctrl-C at 20 moments of ``sfrdask ingest`` on a real distributed cluster (this test's own):
    every time the command says it was interrupted (exit 130, no traceback, not killed by the
    signal) and leaves no temporary directory and no store that looks complete; an ingest the
    signal missed has finished whole."""
    from tests.conftest import local_cluster

    outcomes = []
    with local_cluster() as client:
        env = {**os.environ, "DASK_SFRDASK__CLUSTER__KIND": client.scheduler.address}  # sfrdask.cluster.kind
        for i in range(INTERRUPTS):
            out = tmp_path / f"s{i}.zarr"
            p = subprocess.Popen(
                [sys.executable, "-m", "sfrdask", "ingest", str(cube), "--catalog", str(survey_dir),
                 "--out", str(out), "--image-zooms", "0,2", "--spectrum-zooms", "0,2"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while not list(tmp_path.glob(f".s{i}.zarr.tmp-*")) and p.poll() is None:  # writing has begun
                assert time.monotonic() < deadline, "the ingest never started writing"
                time.sleep(0.01)
            time.sleep(0.04 * (i % 10))  # from the first group written to the rename
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
            leftovers = sorted(q.name for q in tmp_path.iterdir() if ".tmp-" in q.name or "__tmp_" in q.name)
            assert leftovers == [], (i, leftovers)
            if p.returncode == 0:  # finished before the signal came: then whole
                assert (out / "zarr.json").exists() and (out / "spectrum" / "2" / "zarr.json").exists()
            else:
                assert p.returncode == 130, (i, p.returncode, err)
                assert "interrupted" in err and "Traceback" not in err, (i, err)
                assert not out.exists(), i
            outcomes.append(p.returncode)
    assert outcomes.count(130) >= INTERRUPTS // 2, outcomes  # most signals came during the ingest

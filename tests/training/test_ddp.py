"""DDP with one torch rank per Dask worker, on a real LocalCluster of two worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask
import numpy as np
import pytest

from sfrdask.training import TrainSpec
from sfrdask.training.ddp import DDPError, pick_workers, train_ddp
from sfrdask.training.loop import fit_net
from tests.conftest import wait_for_replacement

pytestmark = pytest.mark.slow

# Two ranks with batch 8 each and one process with batch 16 see the same objects at every step;
# only the order of floating-point sums differs (gloo's all-reduce averages the two gradients).
# Over 4 epochs that moved test predictions by ~4e-8 dex when measured; the bound leaves margin.
PREDICTION_TOLERANCE = 1e-5


def _spec(store, tmp_path, name, model, **kw):
    base = dict(
        image_zoom=3,
        spectrum_zoom=3,
        out=str(tmp_path / name),
        epochs=4,
        batch_size=16,
        progress=False,
        threads=1,
    )
    return TrainSpec.from_config(store, model, **{**base, **kw})


@pytest.mark.parametrize("model", ["early-fusion", "image-cnn"])
def test_two_ranks_match_one_process(store, tmp_path, client, model):
    opts = {"dropout": [0.0, 0.0]} if model == "early-fusion" else {"dropout": 0.0}  # dropout streams differ
    single = fit_net(_spec(store, tmp_path, "one", model, options=opts))
    ddp = train_ddp(_spec(store, tmp_path, "two", model, options=opts), 2, client)
    assert ddp.ranks == 2 and len(set(ddp.details["rank_digests"])) == 1  # both ranks end bitwise identical
    np.testing.assert_allclose(ddp.test.predicted, single.test.predicted, rtol=0, atol=PREDICTION_TOLERANCE)
    assert ddp.metrics["mse"] == pytest.approx(single.metrics["mse"], rel=1e-4)
    assert ddp.epochs == single.epochs


def test_more_ranks_than_workers_is_refused(store, tmp_path, client):
    with pytest.raises(DDPError, match="3 ranks need 3 Dask workers, the cluster has 2"):
        train_ddp(_spec(store, tmp_path, "x", "early-fusion"), 3, client)


def _kill_rank_1_after_first_checkpoint(spec, client, collective_timeout: float) -> tuple[dict, float]:
    """Train ``spec`` on 2 ranks in a thread; SIGKILL rank 1's worker as soon as rank 0 has written
    its first checkpoint (training runs); return what the client got and the seconds it took."""
    victim = pick_workers(client, 2)[1]
    pid = client.run(os.getpid, workers=[victim])[victim]
    outcome: dict = {}

    def run():
        try:
            train_ddp(spec, 2, client)
        except Exception as e:
            outcome["error"] = e

    with dask.config.set({"sfrdask.train.ddp.collective-timeout": collective_timeout}):
        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 120
        while not (spec.run_dir / "last.pt").exists():
            assert t.is_alive() and time.monotonic() < deadline, ("training never started", outcome)
            time.sleep(0.01)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)  # rank 1's worker process dies mid-epoch
        t.join(timeout=90)
    took = time.monotonic() - killed
    assert not t.is_alive(), "the client is still waiting 90 s after a rank died"
    wait_for_replacement(client, victim)  # the nanny restarts the worker
    return outcome, took


def test_a_killed_rank_is_reported_within_a_timeout(store, tmp_path, own_client):
    spec = _spec(store, tmp_path, "kill", "image-cnn", epochs=100_000, patience=100_000)
    outcome, took = _kill_rank_1_after_first_checkpoint(spec, own_client, collective_timeout=20)
    assert isinstance(outcome.get("error"), DDPError), outcome
    assert "rank 1" in str(outcome["error"]) or "rank 0" in str(outcome["error"])
    assert took < 60


# A resumed DDP run repeats the uninterrupted one's arithmetic (same seeds, same batches per epoch,
# weights and optimizer state restored from last.pt); only gloo's reduction order could differ.
RESUME_TOLERANCE = 1e-5  # dex, on every test prediction


def test_a_killed_rank_then_resume_reaches_the_uninterrupted_result(store, tmp_path, own_client):
    import pandas as pd

    client = own_client
    kw = dict(epochs=40, patience=1000)
    ref = train_ddp(_spec(store, tmp_path, "ref", "image-cnn", **kw), 2, client)
    spec = _spec(store, tmp_path, "killed", "image-cnn", **kw)
    outcome, _ = _kill_rank_1_after_first_checkpoint(spec, client, collective_timeout=10)
    assert isinstance(outcome.get("error"), DDPError), outcome
    resumed = train_ddp(_spec(store, tmp_path, "killed", "image-cnn", resume=True, **kw), 2, client)
    assert resumed.details["resumed"] and resumed.epochs == ref.epochs
    a = pd.read_csv(spec.run_dir / "predictions.csv")["predicted"].to_numpy()
    b = pd.read_csv(_spec(store, tmp_path, "ref", "image-cnn", **kw).run_dir / "predictions.csv")["predicted"]
    assert np.max(np.abs(a - b.to_numpy())) < RESUME_TOLERANCE
    assert resumed.metrics["mse"] == pytest.approx(ref.metrics["mse"], abs=1e-6)

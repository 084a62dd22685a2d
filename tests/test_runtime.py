"""Where a stage runs: the Runtime a caller hands in, and what it makes every dask.compute use."""

from __future__ import annotations

import dask
import pytest

from sfrdask.runtime import Runtime


def test_what_a_python_caller_passes_becomes_a_runtime():
    assert Runtime.of("synchronous") == Runtime(None, "synchronous")
    rt = Runtime(None, "threads")
    assert Runtime.of(rt) is rt
    with pytest.raises(ValueError, match="'threads' or 'synchronous'"):
        Runtime.of("processes")
    with pytest.raises(TypeError, match="int"):
        Runtime.of(3)


def test_no_client_and_none_connected_means_threads():
    from distributed import default_client

    with pytest.raises(ValueError):
        default_client()  # this test needs no default client to be connected
    assert Runtime.of(None) == Runtime(None, "threads")


def test_active_makes_every_compute_inside_use_it():
    before = dask.config.get("scheduler", None)
    with Runtime(None, "synchronous").active():
        assert dask.config.get("scheduler") == "synchronous"
    assert dask.config.get("scheduler", None) == before


def test_a_distributed_runtime_computes_on_its_own_client(client):
    """The session's cluster (not Dask's default client) runs what is computed inside."""
    import os

    with Runtime.of(client).active():
        pid = dask.delayed(os.getpid)().compute()
    assert pid in set(client.run(os.getpid).values())

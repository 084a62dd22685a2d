"""sfrdask.clusters: the notebook form of a cluster, and the dashboard link that names where the
dashboard listens (the SLURM side of both is in test_cluster_slurm.py)."""

from __future__ import annotations

import urllib.request

import dask

import sfrdask
from sfrdask.clusters import _dashboard_link_on, tunnel_hint


def test_open_cluster_stays_up_until_the_client_closes_it():
    before = dask.config.get("scheduler", None)
    client = sfrdask.open_cluster("local", n_workers=1)
    try:
        cluster = client.cluster
        assert client.submit(sum, [1, 2]).result() == 3
        with urllib.request.urlopen(client.dashboard_link, timeout=10) as r:
            assert r.status == 200
    finally:
        client.close()
    assert cluster.status.name == "closed" and client.status == "closed"
    assert dask.config.get("scheduler", None) == before  # the client is no longer the default scheduler
    assert sfrdask.open_cluster("threads") is None


def test_the_dashboard_link_names_the_bound_host_and_the_tunnel_its_port():
    with dask.config.set(_dashboard_link_on("127.0.0.1")):
        link = dask.config.get("distributed.dashboard.link").format(scheme="http", host="10.1.2.3", port=8787)
    assert link == "http://127.0.0.1:8787/status"
    assert _dashboard_link_on("0.0.0.0") == {}  # bound everywhere: the scheduler's address is right
    assert "ssh -N -L 8787:localhost:8787 " in tunnel_hint(link)

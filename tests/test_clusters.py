"""sfrdask.clusters: the notebook form of a cluster, and the dashboard link that names where the
dashboard listens (the SLURM side of both is in test_cluster_slurm.py)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import dask
import pytest

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


@pytest.mark.slow
def test_a_distributed_training_under_a_performance_report_logs_no_sizeof_warning(tmp_path):
    """A DDP training's deep stacks made the workers' profile replies too deep for Python's default
    recursion limit: each worker logged "Sizeof calculation for object of type 'dict' failed"
    (twice per demo run). The clusters sfrdask starts give their workers the headroom."""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys\n"
        "from distributed import performance_report\n"
        "import sfrdask\n"
        "from sfrdask.synthetic import SynthParams, make_survey\n"
        "if __name__ == '__main__':\n"
        "    out = sys.argv[1]\n"
        "    params = SynthParams(flag0_fraction=0.6)\n"
        "    make_survey(out + '/s', objects=200, seed=3, params=params, progress=False)\n"
        "    with sfrdask.cluster('local') as client:\n"
        "        store = sfrdask.ingest(out + '/s/survey.h5', out + '/st.zarr', catalog=out + '/s',\n"
        "                               image_zooms=[3], spectrum_zooms=[3], client=client).store\n"
        "        sfrdask.preprocess(store, out + '/plots', client=client)\n"
        "        with performance_report(filename=out + '/report.html'):\n"
        "            sfrdask.train(store, 'late-fusion', image_zoom=3, spectrum_zoom=3, ranks=2, epochs=3,\n"
        "                          batch_size=16, out=out + '/runs', client=client)\n"
    )  # fmt: skip
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 0
    assert "Sizeof calculation" not in r.stdout + r.stderr

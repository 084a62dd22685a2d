"""The sfrdask command: the demo steps work, and bad input gives one clear line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sfrdask
from sfrdask.cli import main

SFRDASK = Path(sys.executable).with_name("sfrdask")  # the console script beside this interpreter


def _ingest(survey: Path, store: str | Path, image_zooms: str, spectrum_zooms: str) -> int:
    return main(
        [
            "ingest",
            str(survey / "survey.h5"),
            "--catalog",
            str(survey),
            "--out",
            str(store),
            "--image-zooms",
            image_zooms,
            "--spectrum-zooms",
            spectrum_zooms,
            "--cluster",
            "threads",
        ]
    )


def test_synth_info_ingest_plot(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--objects", "64", "--seed", "3", "--out", str(out), "--cluster", "threads"]) == 0
    assert "objects/s" in capsys.readouterr().out
    assert main(["info", str(out / "survey.h5"), "--catalog", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["targets"] == 64 and info["labels"]["matched"] > 0
    assert _ingest(out, str(tmp_path / "st.zarr"), "2,3", "3") == 0
    png = tmp_path / "labels.png"
    assert main(["plot-labels", str(tmp_path / "st.zarr"), "--out", str(png), "--label", "AVR"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["info", str(out / "survey.h5")]) == 0
    assert "stored band order" in capsys.readouterr().out


def test_a_log_file_gets_plain_lines_and_the_version(tmp_path):
    """`sfrdask synth ... > log 2>&1`: progress as whole lines, no carriage returns."""
    log = tmp_path / "synth.log"
    with log.open("w") as f:
        r = subprocess.run(
            [
                str(SFRDASK),
                "synth",
                "--objects",
                "300",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "s"),
                "--cluster",
                "threads",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    text = log.read_text()
    assert r.returncode == 0, text
    assert "\r" not in text and "synthetic survey: 3/3 tasks (100%" in text
    v = subprocess.run([str(SFRDASK), "--version"], capture_output=True, text=True)
    assert v.stdout.strip() == f"sfrdask {sfrdask.__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "{bad}"], "not an HDF5 file"),
        (["info", "{missing}"], "no such file"),
        (["ingest", "{bad}", "--out", "{tmp}/x.zarr", "--cluster", "threads"], "not an HDF5 file"),
        (["info", "{bad}", "--catalog", "{tmp}"], "no gal_info_dr7_v5_2.fit"),
        (["plot-labels", "{tmp}/none.zarr", "--out", "{tmp}/p.png"], "none.zarr: no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    bad = tmp_path / "bad.h5"
    bad.write_text("garbage")
    fmt = {"bad": bad, "missing": tmp_path / "missing.h5", "tmp": tmp_path}
    assert SFRDASK.exists(), "the sfrdask console script is installed with the package"
    proc = subprocess.run([SFRDASK, *[a.format(**fmt) for a in args]], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "p.png").exists()


def test_bad_zoom_argument(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ingest", "x.h5", "--out", "y", "--image-zooms", "0,7"])
    assert e.value.code == 2
    assert "zoom levels are 0..3" in capsys.readouterr().err


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    assert main(["synth", "--objects", "8", "--out", str(tmp_path / "s"), "--cluster", "threads"]) == 2
    assert Path(tmp_path / "s").is_dir() and not any((tmp_path / "s").iterdir())


def test_preprocess_commands(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--objects", "128", "--seed", "4", "--out", str(out), "--cluster", "threads"]) == 0
    store = str(tmp_path / "st.zarr")
    assert _ingest(out, store, "3", "3") == 0
    assert main(["deblend", store, "--cluster", "threads"]) == 2
    assert "run `sfrdask filter`" in capsys.readouterr().err
    plots = tmp_path / "plots"
    argv = ["preprocess", store, "--out", str(plots), "--cluster", "threads"]
    assert main([*argv, "--image-components", "4", "--spectrum-components", "4"]) == 0
    text = capsys.readouterr().out
    assert "clean/3:" in text and "pca/image/3: 4 components" in text and "pca/spectrum/3" in text
    for png in ("label_distribution.png", "deblend_zoom3.png", "pca_explained_variance.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"
    assert (plots / "label_stats.csv").exists()
    assert main(["filter", store, "--flag", "99", "--cluster", "threads"]) == 2
    assert "no object passes the selection" in capsys.readouterr().err


def test_python_m_exits_with_mains_status_after_an_interrupt_caught_inside_an_exec(tmp_path):
    """An interrupt raised while a dataclass is being built (a nested ``exec``) and handled by main
    must still exit 130 under ``python -m sfrdask``, not by SIGINT (CPython marks it unhandled)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sfrdask.cli\n"
        "def main():\n"
        "    try:\n"
        "        exec('raise KeyboardInterrupt')\n"
        "    except KeyboardInterrupt:\n"
        "        return 130\n"
        "sfrdask.cli.main = main\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    r = subprocess.run([sys.executable, "-m", "sfrdask"], capture_output=True, text=True, env=env)
    assert r.returncode == 130, r.stderr  # -2 without the empty exec in src/sfrdask/__main__.py


def test_an_interrupt_swallowed_by_a_finaliser_is_delivered_again():
    """SIGTERM raised inside a weakref callback is only printed by Python; sfrdask sends it again."""
    import signal
    import threading
    import types

    from sfrdask.cli import Terminated, _redeliver_interrupts

    got, seen = threading.Event(), []
    old = signal.signal(signal.SIGTERM, lambda *_: got.set())
    try:
        hook = _redeliver_interrupts(seen.append)
        hook(types.SimpleNamespace(exc_value=Terminated()))
        assert got.wait(5) and seen == []  # the signal came again; nothing printed
        other = types.SimpleNamespace(exc_value=ValueError("x"))
        hook(other)
        assert seen == [other]  # anything else goes to the usual hook
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["ingest", "{tmp}/no.h5", "--out", "{tmp}/s.zarr"], "cube: {tmp}/no.h5: no such file"),
        (["predict", "{tmp}/no-run", "--out", "{tmp}/c.fits", "--store", "{tmp}/s"], "runs: {tmp}/no-run"),
        (["info", "{tmp}/no.h5", "--catalog", "{tmp}"], "cube: {tmp}/no.h5: no such file"),
        (["synth", "--objects", "8", "--out", "{tmp}"], "{tmp} exists; pass --overwrite"),  # overwrite rule
    ],
)
def test_a_missing_input_exits_2_before_a_local_cluster_starts(tmp_path, capsys, monkeypatch, argv, named):
    import sfrdask.clusters

    monkeypatch.setattr(sfrdask.clusters, "cluster", lambda *a, **k: pytest.fail("a cluster was started"))
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main([*argv, "--cluster", "local"] if argv[0] != "info" else argv) == 2
    assert named.format(tmp=tmp_path) in capsys.readouterr().err

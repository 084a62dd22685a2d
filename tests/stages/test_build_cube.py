"""The build-cube stage through the CLI, on the real SDSS files in ../shared/data/sdss: what it
reports on success, and the builds it refuses (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from sfrdask import open_hisscube
from sfrdask.io.levels import BANDS
from tests.conftest import SHARED, linked_sdss

pytestmark = pytest.mark.realdata

FRAMES, SPECTRA = SHARED / "frames", SHARED / "spectra"
STAR = ("spec-3126-54804-0211.fits", "spec-3127-54835-0622.fits", "spec-7330-56684-0434.fits")


def _refused_build(frames: Path, spectra: Path, out: Path) -> str:
    """Run ``sfrdask build-cube`` expecting a refusal: exit 2, no traceback, nothing written; the
    message line."""
    r = subprocess.run(
        [sys.executable, "-m", "sfrdask", "build-cube", "--frames", str(frames), "--spectra", str(spectra),
         "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_frame_without_wcs_and_broken_spectrum_are_named(tmp_path):
    fd, sd = linked_sdss(tmp_path)
    with fits.open(FRAMES / "frame-i-002820-3-0122.fits.bz2") as hdul:
        for k in ("CTYPE1", "CRVAL1", "CD1_1"):
            del hdul[0].header[k]
        (fd / "frame-i-002820-3-0122.fits.bz2").unlink()
        hdul.writeto(fd / "frame-i-002820-3-0122.fits")
    (sd / "spec-0266-51602-0001.fits").unlink()
    (sd / "spec-0266-51602-0001.fits").write_bytes(
        (SPECTRA / "spec-0266-51602-0001.fits").read_bytes()[:5000]
    )
    (fd / "frame-r-999999-3-0001.fits").write_text("not a FITS file")
    msg = _refused_build(fd, sd, tmp_path / "c.h5")
    assert "frames rejected: 2" in msg and "spectra rejected: 1" in msg


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_frame_too_small_for_the_lower_levels_refuses_the_build(tmp_path):
    """Every frame cropped so that the F star's 64 px cutout still fits (it starts at column 0)
    but its zoom-1 cutout falls off the halved frame: no target, exit 2, nothing written."""
    from astropy.wcs import WCS

    fd, sd = linked_sdss(tmp_path, frames=False)
    for band in BANDS:
        with fits.open(FRAMES / f"frame-{band}-002820-3-0122.fits.bz2") as hdul:
            x, _ = WCS(hdul[0].header).wcs_world2pix([[38.3018, -0.1339]], 0)[0]
            c0 = int(x) - 32  # the zoom-0 cutout starts at column 0 of the cropped frame
            hdul[0].data = hdul[0].data[:, c0:]
            hdul[0].header["CRPIX1"] -= c0
            hdul[1].data = hdul[1].data[c0:]
            sky = hdul[2].data
            allsky, xi, yi = (np.asarray(sky[k][0], np.float32) for k in ("ALLSKY", "XINTERP", "YINTERP"))
            xi = xi[c0:]
            hdul[2] = fits.BinTableHDU.from_columns([
                fits.Column(name="ALLSKY", format=f"{allsky.size}E", dim=str(allsky.shape[::-1]),
                            array=allsky[None]),
                fits.Column(name="XINTERP", format=f"{xi.size}E", array=xi[None]),
                fits.Column(name="YINTERP", format=f"{yi.size}E", array=yi[None]),
            ])  # fmt: skip
            hdul.writeto(fd / f"frame-{band}-002820-3-0122.fits")
    msg = _refused_build(fd, sd, tmp_path / "c.h5")
    assert "at every zoom level" in msg and "'lower_level_off_frame': 1" in msg, msg


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_cli_reports_counts_on_success(tmp_path):
    fd, sd = linked_sdss(tmp_path)
    for p in sd.glob("spec-*"):
        if not p.name.startswith(STAR):
            p.unlink()
    (sd / "spec-9999-55555-0001.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    # a spectrum named by its objID is read by its header; files that are no FITS are named as skipped
    (sd / STAR[0]).rename(sd / "1237646012710109380.fits")
    (sd / "notes.txt").write_text("observing log")
    (fd / "frame-u-002820-3-0122.fits.bz2.md5").write_text("0" * 32)
    r = subprocess.run(
        [sys.executable, "-m", "sfrdask", "build-cube", "--frames", str(fd), "--spectra", str(sd),
         "--out", str(tmp_path / "c.h5"), "--cluster", "threads"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "spectra: 3 of 4 usable" in r.stdout and "1 written" in r.stdout
    assert "rejected" in r.stdout and "spec-9999-55555-0001.fits" in r.stdout
    assert (
        "skipped" in r.stdout and "notes.txt" in r.stdout and "frame-u-002820-3-0122.fits.bz2.md5" in r.stdout
    )
    report = json.loads((tmp_path / "c.h5.build.json").read_text())
    assert len(report["spectra"]["skipped"]) == 1 and len(report["frames"]["skipped"]) == 1
    assert str(sd / "1237646012710109380.fits") not in {
        **report["spectra"]["rejected"],
        **report["spectra"]["skipped"],
    }
    assert open_hisscube(tmp_path / "c.h5", 2, 2).sizes["object"] == 1

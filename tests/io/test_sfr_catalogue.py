"""The SFR catalogue files: every format round-trips, FITS carries units and flag meanings, and a
failed or refused write leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import atomic_output
from sfrdask.io.sfr_catalogue import FLAG_BITS, read_catalogue, write_catalogue


def _table(n: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    med = rng.normal(0, 1, n).astype(np.float32)
    return pd.DataFrame(
        {
            "PLATEID": np.arange(n) + 266,
            "MJD": np.full(n, 51630),
            "FIBERID": np.arange(n) + 1,
            "RA": rng.uniform(0, 360, n),
            "DEC": rng.uniform(-10, 10, n),
            "Z": rng.uniform(0, 0.3, n),
            "CLASS": ["GALAXY", "QSO", "", "STAR", "GALAXY"][:n],
            "MEDIAN": med,
            "P2P5": med - 1,
            "P16": med - 0.5,
            "P84": med + 0.5,
            "P97P5": med + 1,
            "FLAGS": np.array([0, 1, 9, 41, 64][:n], np.int32),
        }
    )


@pytest.mark.parametrize("ext", [".fits", ".csv", ".parquet"])
def test_round_trip(tmp_path, ext):
    t = _table()
    out = write_catalogue(t, tmp_path / f"c{ext}", {"MODEL": "gbt-both", "SFRDASK": "0.2.0"})
    back = read_catalogue(out)
    assert list(back.columns) == list(t.columns)
    np.testing.assert_allclose(back["MEDIAN"], t["MEDIAN"], rtol=1e-6)
    assert back["CLASS"].fillna("").tolist() == t["CLASS"].tolist()
    assert back["FLAGS"].tolist() == t["FLAGS"].tolist()
    assert [p.name for p in tmp_path.iterdir()] == [f"c{ext}"]


def test_fits_header_has_units_provenance_and_flag_meanings(tmp_path):
    out = write_catalogue(_table(), tmp_path / "c.fits", {"MODEL": "gbt-both", "TRAINST": "x" * 120})
    with fits.open(out) as hdul:
        h = hdul[1].header
        units = {h[f"TTYPE{i}"]: h.get(f"TUNIT{i}") for i in range(1, h["TFIELDS"] + 1)}
        comments = str(h["COMMENT"])
    assert units["P97P5"] == "log(solMass/yr)" and units["RA"] == "deg" and units["FLAGS"] is None
    assert h["MODEL"] == "gbt-both" and h["TRAINST"] == "x" * 120
    for bit, (name, _) in FLAG_BITS.items():
        assert f"FLAGS bit {bit} {name}" in comments
        assert h[f"FLAG{bit}"] == name  # the keyword names the bit's value, as FLAGS and the docs do
    assert "FLAG0" not in h


def test_refusals_write_nothing(tmp_path):
    with pytest.raises(SfrdaskError, match="unknown catalogue format"):
        write_catalogue(_table(), tmp_path / "c.txt", {})
    (tmp_path / "c.fits").write_text("old")
    with pytest.raises(SfrdaskError, match="--overwrite"):
        write_catalogue(_table(), tmp_path / "c.fits", {})
    assert (tmp_path / "c.fits").read_text() == "old"
    write_catalogue(_table(), tmp_path / "c.fits", {}, overwrite=True)
    assert read_catalogue(tmp_path / "c.fits").shape[0] == 5


def test_atomic_output_keeps_the_old_file_when_the_writer_fails(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("complete")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert out.read_text() == "complete" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    d = tmp_path / "dir"
    with atomic_output(d) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("1")
    with atomic_output(d) as tmp:  # a directory is replaced whole
        tmp.mkdir()
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in d.iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "t.csv"]


def test_per_spectrum_rows_repeat_each_target_once_per_visit():
    """MPA-JHU has a row per spectrum: a target with three spectra gives three rows with each
    spectrum's keys and the target's prediction; a target without spectra keeps its one row."""
    from sfrdask.io.sfr_catalogue import per_spectrum

    cat = _table(3).assign(TARGET=[0, 1, 2])
    visits = {
        "PLATEID": np.array([[7330, 3126, 3127], [266, -1, -1], [-1, -1, -1]]),
        "MJD": np.array([[56684, 54804, 54835], [51630, -1, -1], [-1, -1, -1]]),
        "FIBERID": np.array([[434, 211, 622], [7, -1, -1], [-1, -1, -1]]),
    }
    out = per_spectrum(cat, visits)
    assert out["TARGET"].tolist() == [0, 0, 0, 1, 2]
    assert out["N_VISITS"].tolist() == [3, 3, 3, 1, 0]
    assert out["PLATEID"].tolist() == [7330, 3126, 3127, 266, cat["PLATEID"][2]]
    assert out["FIBERID"].tolist()[:4] == [434, 211, 622, 7]
    assert out["MEDIAN"].tolist()[:3] == [cat["MEDIAN"][0]] * 3

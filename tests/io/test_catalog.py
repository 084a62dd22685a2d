"""MPA-JHU catalogues: reading, the row-position join, the cube join, and bad tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sfrdask import join_labels, open_hisscube, read_catalog_dir, read_mpajhu
from sfrdask.errors import CatalogError
from sfrdask.io.catalog import (
    GAL_INFO_NAME,
    TOTLGM_NAME,
    TOTSFR_NAME,
    label_coverage,
    resolve_label,
    write_fits_table,
)


@pytest.fixture(scope="module")
def catalog(survey_dir):
    return read_catalog_dir(survey_dir)


@pytest.fixture(scope="module")
def labelled(cube, catalog):
    return join_labels(open_hisscube(cube), catalog)


def test_read_tables(catalog):
    for c in ("PLATEID", "MJD", "FIBERID", "RA", "DEC", "Z", "CLASS", "AVG", "P16", "P84", "FLAG", "LGM_AVG"):
        assert c in catalog
    assert set(catalog["CLASS"]) <= {"GALAXY", "QSO"}
    assert catalog["FLAG"].dtype == np.int64


def test_avr_is_avg():
    assert resolve_label("AVR") == "AVG" == resolve_label("avg")
    assert resolve_label("mass") == "LGM_AVG"


def test_join_recovers_the_true_labels(labelled, survey_dir):
    truth = pd.read_csv(survey_dir / "truth_objects.csv")
    flag0 = labelled["FLAG"].values == 0
    np.testing.assert_array_equal(
        flag0, (truth["FLAG"] == 0).to_numpy() & (truth["class"] != "STAR").to_numpy()
    )
    np.testing.assert_allclose(labelled["AVG"].values[flag0], truth["AVG"].to_numpy()[flag0], rtol=1e-6)
    # Z and CLASS are not in spectrum headers (as in real files): they come from gal_info
    gal = labelled["CLASS"].values == "GALAXY"
    np.testing.assert_allclose(labelled["Z"].values[gal], truth["z"].to_numpy()[gal], rtol=1e-6)
    stars = (truth["class"] == "STAR").to_numpy()
    assert (labelled["FLAG"].values[stars] == -1).all() and np.isnan(labelled["AVG"].values[stars]).all()


def test_targets_with_several_spectra_match_through_a_later_one(labelled, survey_dir):
    """The first spectrum of a repeat target is a BOSS plate absent from DR7, as in real files."""
    truth = pd.read_csv(survey_dir / "truth_objects.csv")
    rep = (truth["n_spectra"] > 1).to_numpy() & (truth["class"] != "STAR").to_numpy()
    assert rep.sum() >= 3
    assert (labelled["PLATEID"].values[rep] >= 3500).all()
    assert (labelled["label_spectrum"].values[rep] >= 1).all()
    assert (labelled["FLAG"].values[rep] >= 0).all()


def test_coverage_counts(labelled, catalog):
    cov = label_coverage(labelled, catalog)
    assert cov["objects"] == 192
    assert cov["matched"] == int((labelled["FLAG"].values >= 0).sum())
    assert cov["flag0_objects"] == int((labelled["FLAG"].values == 0).sum()) > 0
    assert cov["catalog_flag0_rows"] >= cov["flag0_objects"]
    assert labelled.attrs["labels_matched"] == cov["matched"]


def test_missing_values_become_nan(labelled):
    bad = labelled["FLAG"].values > 0
    assert np.isnan(labelled["AVG"].values[bad]).any(), "-99 placeholders must not pass as log SFR"
    assert (labelled["AVG"].values[np.isfinite(labelled["AVG"].values)] > -10).all()


# -- bad input ----------------------------------------------------------------------------------


def _tables(tmp_path, n_info=3, n_sfr=3, drop=None):
    info = {
        "PLATEID": np.arange(n_info) + 9000,
        "MJD": np.full(n_info, 60000),
        "FIBERID": np.arange(n_info) + 1,
    }
    sfr = {"AVG": np.zeros(n_sfr, np.float32), "FLAG": np.zeros(n_sfr, np.int64)}
    if drop:
        sfr.pop(drop)
    write_fits_table(tmp_path / GAL_INFO_NAME, info)
    write_fits_table(tmp_path / TOTSFR_NAME, sfr)
    return tmp_path / GAL_INFO_NAME, tmp_path / TOTSFR_NAME


def test_row_count_mismatch(tmp_path):
    g, s = _tables(tmp_path, 3, 4)
    with pytest.raises(
        CatalogError, match=r"gal_totsfr_dr7_v5_2\.fits: 4 rows but .*gal_info_dr7_v5_2\.fit has 3"
    ):
        read_mpajhu(g, s)


def test_missing_column(tmp_path):
    g, s = _tables(tmp_path, drop="AVG")
    with pytest.raises(CatalogError, match=r"gal_totsfr_dr7_v5_2\.fits: missing column\(s\) AVG"):
        read_mpajhu(g, s)


def test_not_fits(tmp_path):
    p = tmp_path / "x.fits"
    p.write_text("hello")
    with pytest.raises(CatalogError, match=r"x\.fits"):
        read_mpajhu(p, p)


def test_missing_directory_entries(tmp_path):
    with pytest.raises(CatalogError, match=r"no gal_info_dr7_v5_2\.fit"):
        read_catalog_dir(tmp_path)


def test_no_object_matches(tmp_path, cube):
    g, s = _tables(tmp_path)
    with pytest.raises(CatalogError, match="no cube object matched"):
        join_labels(open_hisscube(cube), read_mpajhu(g, s))


def test_totlgm_row_mismatch(tmp_path):
    g, s = _tables(tmp_path)
    write_fits_table(tmp_path / TOTLGM_NAME, {"AVG": np.zeros(2, np.float32), "FLAG": np.zeros(2, np.int64)})
    with pytest.raises(CatalogError, match=r"totlgm_dr7_v5_2\.fit: 2 rows"):
        read_mpajhu(g, s, tmp_path / TOTLGM_NAME)


def test_placeholder_rows_are_whole(catalog):
    """A flagged row without an estimate holds -99 in every PDF column, not in some of them."""
    missing = catalog["AVG"] <= -99
    assert missing.any() and (catalog.loc[missing, "FLAG"] != 0).all()
    for c in ("MEDIAN", "P16", "P84", "P2P5", "P97P5", "LGM_AVG"):
        assert (catalog.loc[missing, c] <= -99).all(), c
        assert (catalog.loc[~missing, c] > -99).all(), c

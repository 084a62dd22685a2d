"""The permuted-band guard: fibre-aperture colours against where SDSS objects lie."""

from __future__ import annotations

import shutil
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from sfrdask import open_hisscube
from sfrdask.cli import main
from sfrdask.io.bands import LOCI, PermutedBandsWarning, check_bands
from sfrdask.io.hisscube import layout as L
from sfrdask.io.levels import N_ZOOM
from sfrdask.io.store import open_store, write_store
from tests.conftest import SHARED

SWAP_U_Z = [4, 1, 2, 3, 0]


@pytest.fixture(scope="module")
def permuted(cube, tmp_path_factory):
    """The test survey with u and z pixels swapped in every target, headers untouched."""
    out = tmp_path_factory.mktemp("bands") / "permuted.h5"
    shutil.copy(cube, out)
    with h5py.File(out, "r+") as f:
        for z in range(N_ZOOM):
            for name in (L.image_dataset(z), f"{L.image_group(z)}/errors"):
                ds = f[name]
                refs = f[f"{L.image_group(z)}/image_metadata_refs"][:, :, 0]
                bands = [[f[r["ds_path"].decode()][r["ds_slice_idx"]]["header"] for r in row] for row in refs]
                data = ds[...]
                for t, row in enumerate(bands):  # swap the planes that the headers call u and z
                    pu = next(i for i, h in enumerate(row) if b'"FILTER": "u"' in h or b'"FILTER":"u"' in h)
                    pz = next(i for i, h in enumerate(row) if b'"FILTER": "z"' in h or b'"FILTER":"z"' in h)
                    data[t, [pu, pz]] = data[t, [pz, pu]]
                ds[...] = data
    return out


@pytest.mark.realdata
def test_loci_are_the_sdss_dr14_sample():
    d = pd.read_csv(SHARED / "catalog" / "skyserver_dr14_photometry_10k.csv")
    for cls, (median, width) in LOCI.items():
        g = d[d["class"] == cls]
        c = np.stack([g.u - g.g, g.g - g.r, g.r - g.i, g.i - g.z], axis=1)
        np.testing.assert_allclose(np.median(c, axis=0), median, rtol=0, atol=0.001)
        half = (np.percentile(c, 84, axis=0) - np.percentile(c, 16, axis=0)) / 2
        np.testing.assert_allclose(half, width, rtol=0, atol=0.01)


@pytest.mark.parametrize("zoom", [0, 3])
def test_every_permutation_is_named_and_the_true_order_passes(cube, zoom):
    """Any of the 119 wrong orders fires and names the planes that hold u, g, r, i, z."""
    import itertools

    img = open_hisscube(cube, zoom, zoom).image.values
    assert not check_bands(img, zoom).permuted
    rng = np.random.default_rng(0)
    perms = list(itertools.permutations(range(5)))[1:]
    for k in rng.choice(len(perms), 12, replace=False):
        perm = perms[k]
        found = check_bands(img[:, list(perm)], zoom)
        assert found.permuted, (perm, found)
        assert found.best == "".join("ugriz"[perm.index(b)] for b in range(5)), (perm, found)


def test_info_and_ingest_warn_on_a_permuted_cube_and_stay_quiet_on_a_true_one(
    cube, permuted, survey_dir, tmp_path, capsys
):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PermutedBandsWarning)
        assert main(["info", str(cube)]) == 0
    out = capsys.readouterr().out
    assert "band colours" in out and "look like SDSS galaxies" in out and "WARNING" not in out

    with pytest.warns(PermutedBandsWarning, match=r"planes read as z, g, r, i, u"):
        assert main(["info", str(permuted)]) == 0
    assert "WARNING: the image planes' colours do not look like u, g, r, i, z" in capsys.readouterr().out
    with pytest.warns(PermutedBandsWarning, match=r"planes read as z, g, r, i, u"):
        store = write_store(permuted, tmp_path / "p.zarr", image_zooms=(2,), spectrum_zooms=(2,))
    assert open_store(store, 2, 2).attrs["band_check"]["best"] == "zgriu"

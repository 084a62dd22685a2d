from __future__ import annotations

import numpy as np
import pytest

from sfrdask.io import levels


def test_stored_wavelengths_match_a_real_hisscube_file():
    # first values of /semi_sparse_cube/{0,3}/spectra/wl in a file written by HiSS-Cube itself
    np.testing.assert_array_equal(levels.stored_wavelengths(0)[:5], [3840, 3840, 3840, 3844, 3844])
    np.testing.assert_array_equal(levels.stored_wavelengths(3)[:5], [3840, 3848, 3856, 3868, 3876])
    assert [levels.spectrum_samples(z) for z in range(4)] == [4620, 2310, 1155, 577]
    assert [levels.image_size(z) for z in range(4)] == [64, 32, 16, 8]


@pytest.mark.parametrize("zoom", [-1, 4, 1.5])
def test_bad_zoom(zoom):
    with pytest.raises(ValueError, match="zoom level"):
        levels.image_size(zoom)


def test_image_levels_keep_surface_brightness_and_scale_errors():
    data = np.full((2, 5, 64, 64), 3.0, np.float32)
    err = np.full_like(data, 0.8)
    out = levels.all_image_levels(data, err)
    assert [d.shape[-1] for d, _ in out] == [64, 32, 16, 8]
    np.testing.assert_allclose(out[1][0], 3.0, rtol=1e-6)
    np.testing.assert_allclose(out[1][1], 0.2, rtol=1e-6)  # errors divided by 4 per level
    np.testing.assert_allclose(out[3][1], 0.8 / 64, rtol=1e-6)


def test_image_nan_is_never_filled():
    data = np.ones((1, 5, 64, 64), np.float32)
    data[0, 2, 10, 10] = np.nan
    d1, _ = levels.downsample_images(data, np.ones_like(data))
    assert np.isnan(d1[0, 2, 5, 5]) and np.isfinite(d1[0, 1]).all()


def test_spectrum_levels_conserve_smooth_flux_and_keep_gaps():
    wl = levels.wavelength_grid(0)
    flux = (1e-17 * (wl / 5000.0) ** -1.5)[None, :]
    flux[0, 1000:1040] = np.nan
    out = levels.all_spectrum_levels(flux, np.full_like(flux, 1e-18))
    for z, (f, e) in enumerate(out):
        grid = levels.wavelength_grid(z)
        good = np.isfinite(f[0])
        np.testing.assert_allclose(
            f[0, good][50:-50], (1e-17 * (grid / 5000.0) ** -1.5)[good][50:-50], rtol=2e-3
        )
        if z:
            assert np.isnan(f[0]).any(), "a 40-sample gap must stay masked at every level"
            np.testing.assert_allclose(np.nanmedian(e), 1e-18 / 2**z, rtol=1e-5)

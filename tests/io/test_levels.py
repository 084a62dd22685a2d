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


def test_frame_levels_halve_the_frame_with_opencvs_bicubic():
    """Each level is floor(W/2) x floor(H/2) (an odd frame loses its last row/column); surface
    brightness is kept; errors are divided by 4 per level."""
    data = np.full((2, 101, 130), 3.0, np.float32)
    out = levels.frame_levels(data, np.full_like(data, 0.8))
    assert [d.shape for d, _ in out] == [(2, 101, 130), (2, 50, 65), (2, 25, 32), (2, 12, 16)]
    np.testing.assert_allclose(out[1][0], 3.0, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out[1][1], 0.2, rtol=1e-6, atol=0)
    np.testing.assert_allclose(out[3][1], 0.8 / 64, rtol=1e-6, atol=0)


def test_interior_pixels_follow_opencvs_cubic_kernel():
    """OpenCV's INTER_CUBIC (a = -0.75) at a 2x reduction samples each output pixel at the centre
    of a 2 x 2 block: weights -3/32, 19/32, 19/32, -3/32 along each axis (computed here by hand)."""
    rng = np.random.default_rng(0)
    frame = rng.normal(1e-16, 1e-17, (40, 48)).astype(np.float32)
    half = levels.frame_levels(frame, frame)[1][0]
    w = np.array([-3, 19, 19, -3]) / 32.0
    f = frame.astype(np.float64)
    for i, j in ((5, 7), (10, 3), (18, 22)):
        block = f[2 * i - 1 : 2 * i + 3, 2 * j - 1 : 2 * j + 3]
        assert half[i, j] == pytest.approx(w @ block @ w, rel=1e-5, abs=0)


def test_a_bad_pixel_spreads_into_the_kernel_it_touches():
    data = np.ones((64, 64), np.float32)
    data[20, 20] = np.nan
    d1, _ = levels.frame_levels(data, np.ones_like(data))[1]
    assert np.isnan(d1[10, 10]) and np.isfinite(d1[:, 14:]).all() and np.isfinite(d1[14:]).all()


def test_cutout_start_is_hisscubes_rule_on_the_scaled_wcs():
    """The level's pixel comes from the frame's WCS with CRPIX / 2^z and CD x 2^z (HiSS-Cube's
    get_image_lower_res_wcs); the cutout starts at int(pixel) - size / 2."""
    from astropy.wcs import WCS

    rng = np.random.default_rng(1)
    px = rng.uniform(40, 1400, (50, 2))
    for z in range(4):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval, w.wcs.crpix = [38.3, -0.1], [1025.0 / 2**z, 745.0 / 2**z]
        w.wcs.cd = np.array([[0.0, 1.1e-4], [1.1e-4, 0.0]]) * 2**z
        w0 = WCS(naxis=2)
        w0.wcs.ctype, w0.wcs.crval, w0.wcs.crpix = w.wcs.ctype, w.wcs.crval, [1025.0, 745.0]
        w0.wcs.cd = np.array([[0.0, 1.1e-4], [1.1e-4, 0.0]])
        world = w0.wcs_pix2world(px, 0)
        level = w.wcs_world2pix(world, 0)
        np.testing.assert_allclose(levels.level_pixel(px, z), level, rtol=1e-9, atol=0)
        expected = np.floor(level).astype(int) - 32 // 2**z
        assert (levels.cutout_start(px, z) == expected).all()


def test_spectrum_ends_drop_where_zeros_enter_the_smoothing():
    """Zero padding beyond the ends (astropy's convolve, boundary "fill"): a flat spectrum keeps its
    value inside and falls at the first and last samples of every lower level."""
    flat = np.ones((1, 4620))
    out = levels.all_spectrum_levels(flat, np.full_like(flat, 0.1))
    for z in (1, 2, 3):
        f, e = out[z]
        assert f[0, 10:-10] == pytest.approx(1.0, rel=1e-6)
        assert 0.3 < f[0, 0] < 0.75 and 0.3 < f[0, -1] < 0.75
        np.testing.assert_allclose(e, 0.1 / 2**z, rtol=1e-6, atol=0)


def test_spectrum_levels_conserve_smooth_flux_and_keep_gaps():
    wl = levels.wavelength_grid(0)
    flux = (1e-17 * (wl / 5000.0) ** -1.5)[None, :]
    err = np.full_like(flux, 1e-18)
    flux[0, 1000:1040] = err[0, 1000:1040] = np.nan  # a masked stretch (ivar = 0): both NaN
    out = levels.all_spectrum_levels(flux, err)
    for z, (f, e) in enumerate(out):
        grid = levels.wavelength_grid(z)
        # astropy bridges the gap by normalised convolution: a few samples beside it shift slightly
        good = np.isfinite(f[0]) & (np.convolve(np.isnan(f[0]), np.ones(21), mode="same") == 0)
        np.testing.assert_allclose(
            f[0, good][50:-50], (1e-17 * (grid / 5000.0) ** -1.5)[good][50:-50], rtol=2e-3
        )
        if z:
            assert np.isnan(f[0]).any(), "a 40-sample gap must stay masked at every level"
            assert np.isnan(e[0]).sum() == np.isnan(f[0]).sum()  # flux and error masked together
            np.testing.assert_allclose(np.nanmedian(e), 1e-18 / 2**z, rtol=1e-5)

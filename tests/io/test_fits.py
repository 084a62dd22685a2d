"""The FITS -> HiSS-Cube builder on the real SDSS files in ../shared/data/sdss (read from there)."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from sfrdask import open_hisscube
from sfrdask.fits_to_cube import build_cube, group_targets
from sfrdask.io.fits import (
    FitsError,
    read_frame,
    read_spectrum,
    rebin_spectrum,
    scan_spectrum,
)
from sfrdask.io.levels import BANDS, combine_ivw, wavelength_grid
from tests.conftest import SHARED, linked_sdss

pytestmark = pytest.mark.realdata

FRAMES, SPECTRA = SHARED / "frames", SHARED / "spectra"
STAR = ("spec-3126-54804-0211.fits", "spec-3127-54835-0622.fits", "spec-7330-56684-0434.fits")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import dask

    out = tmp_path_factory.mktemp("fits") / "cube.h5"
    with dask.config.set(scheduler="threads"):
        report = build_cube(FRAMES, SPECTRA, out, progress=False)
    return out, report


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_f_star_field_gives_one_complete_target(built):
    out, report = built
    t = report["targets"]
    assert t["written"] == 1 and t["spectra_per_target_max"] == 3
    assert t["found"] == 13 and t["outside_every_frame"] == 12  # every other spectrum lies off the field
    assert report["frames"]["usable"] == 5 and report["spectra"]["usable"] == 26
    assert json.loads(Path(f"{out}.build.json").read_text()) == report
    ds = open_hisscube(out, 0, 0)
    assert ds.sizes["object"] == 1 and list(ds.band.values) == list(BANDS)
    assert sorted(ds.spec_plateid.values[0].tolist()) == [3126, 3127, 7330]
    assert abs(float(ds.RA[0]) - 38.3018) < 1e-3 and abs(float(ds.DEC[0]) + 0.1339) < 1e-3


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_every_plane_carries_its_own_band(built):
    """Plane p of the stored cutout is the band its frame header says (u, g, r, i, z)."""
    import h5py

    out, _ = built
    with h5py.File(out, "r") as f:
        refs = f["dense_cube/0/ml_image/image_metadata_refs"][0, :, 0]
        for p, ref in enumerate(refs):
            meta = f[ref["ds_path"].decode()][ref["ds_slice_idx"]]
            assert json.loads(meta["header"])["FILTER"].strip() == BANDS[p]
            assert meta["path"].decode().startswith(f"frame-{BANDS[p]}-")


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_star_is_the_brightest_source_at_the_centre(built):
    out, _ = built
    img = open_hisscube(out, 0, 0).image.values[0]
    for p in range(5):
        y, x = np.unravel_index(np.nanargmax(img[p]), img[p].shape)
        assert abs(y - 31.5) <= 2 and abs(x - 31.5) <= 2, (BANDS[p], y, x)
    # the cutout holds the frame's pixels in the HiSS-Cube unit: compare with the frame itself
    flux, _, _ = read_frame(FRAMES / "frame-r-002820-3-0122.fits.bz2")
    r = img[2] / (3.631e-6 * 2.99792458e-5 / 6166.0**2 * 78.5)
    assert np.nanmax(r) == pytest.approx(flux[483 - 40 : 483 + 40, 779 - 40 : 779 + 40].max(), rel=1e-5)


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_cutouts_are_the_frame_pixels_hisscube_cuts(built):
    """Every plane is the frame's 64 x 64 block from int(x) - 32, int(y) - 32 (HiSS-Cube's
    process_cutout_bounds on the WCS position, 0-based), in the cube unit: pixel for pixel."""
    from sfrdask.io.fits import frame_wcs
    from sfrdask.io.levels import nmgy_to_stored

    out, _ = built
    ds = open_hisscube(out, 0, 0)
    img = ds.image.values[0]
    for p, band in enumerate(BANDS):
        flux, _, header = read_frame(FRAMES / f"frame-{band}-002820-3-0122.fits.bz2")
        x, y = frame_wcs(header, "frame").world_to_pixel_values(float(ds.RA[0]), float(ds.DEC[0]))
        x0, y0 = int(x) - 32, int(y) - 32
        expected = flux[y0 : y0 + 64, x0 : x0 + 64] * np.float32(nmgy_to_stored(band))
        np.testing.assert_allclose(img[p], expected, rtol=1e-6, err_msg=band)


def _hisscube_level_cutouts(band: str, ra: float, dec: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The F star's cutouts at every level as HiSS-Cube would cut them, computed here from the
    format's facts alone (../shared/docs/hisscube-format.md, HiSS-Cube's photometry.py and
    astrometry.py): the frame in the cube unit, halved level by level with OpenCV's INTER_CUBIC to
    floor(W/2) x floor(H/2) (errors likewise, divided by 4), the level's WCS with CRPIX / 2^z and
    CD x 2^z, and the block from int(pixel) - size/2."""
    import cv2
    from astropy.wcs import WCS

    with fits.open(FRAMES / f"frame-{band}-002820-3-0122.fits.bz2") as hdul:
        header = hdul[0].header
        mid = {"u": 3551, "g": 4686, "r": 6166, "i": 7480, "z": 8932}[band]
        unit = 3.631e-6 * 2.99792458e-5 / mid**2 * 78.5
        data = (np.asarray(hdul[0].data, dtype=np.float32) * np.float32(unit)).astype(np.float32)
    err = read_frame(FRAMES / f"frame-{band}-002820-3-0122.fits.bz2")[1] * np.float32(unit)
    out = []
    for z in range(4):
        if z:
            size = (data.shape[1] // 2, data.shape[0] // 2)
            data = cv2.resize(data, size, interpolation=cv2.INTER_CUBIC)
            err = cv2.resize(err, size, interpolation=cv2.INTER_CUBIC) / np.float32(4)
        w = WCS(naxis=2)
        w.wcs.ctype = [header["CTYPE1"], header["CTYPE2"]]
        w.wcs.crval = [header["CRVAL1"], header["CRVAL2"]]
        w.wcs.crpix = [header["CRPIX1"] / 2**z, header["CRPIX2"] / 2**z]
        w.wcs.cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]]) * 2**z
        x, y = w.wcs_world2pix([[ra, dec]], 0)[0]
        s = 64 // 2**z
        x0, y0 = int(x) - s // 2, int(y) - s // 2
        assert 0 <= x0 and x0 + s <= data.shape[1] and 0 <= y0 and y0 + s <= data.shape[0]
        out.append((data[y0 : y0 + s, x0 : x0 + s], err[y0 : y0 + s, x0 : x0 + s]))
    return out


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_every_level_is_the_block_hisscube_cuts_from_its_halved_frame(built):
    """Images at zooms 0-3 equal, within float32 precision, the blocks HiSS-Cube cuts from its
    downsampled frames around the target's first spectrum (the BOSS one: HiSS-Cube orders a
    target's spectra by TAI, else MJD, and the first one's cutouts serve the whole target)."""
    out, _ = built
    with fits.open(SPECTRA / "spec-7330-56684-0434.fits") as hdul:
        ra, dec = float(hdul[0].header["PLUG_RA"]), float(hdul[0].header["PLUG_DEC"])
    ds0 = open_hisscube(out, 0, 0)
    assert ds0.spec_plateid.values[0].tolist()[:3] == [7330, 3126, 3127]  # as in the real file
    assert (float(ds0.RA[0]), float(ds0.DEC[0])) == (ra, dec)
    for band in BANDS:
        expected = _hisscube_level_cutouts(band, ra, dec)
        for z, (data, err) in enumerate(expected):
            ds = open_hisscube(out, z, z)
            got = ds.image.sel(band=band).values[0]
            np.testing.assert_allclose(got, data, rtol=1e-5, atol=0, err_msg=f"{band} zoom {z}")
            np.testing.assert_allclose(ds.image_error.sel(band=band).values[0], err, rtol=1e-5, atol=0,
                                       err_msg=f"{band} zoom {z} errors")  # fmt: skip


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_spectrum_levels_are_made_per_spectrum_then_combined(built):
    """Each spectrum's levels on their own (astropy's Gaussian smoothing, sigma 2 samples, zeros
    beyond the ends; linear interpolation onto half the samples; errors interpolated / 2), then
    the dense row is their inverse-variance mean (HiSS-Cube's aggregate_inverse_variance_weighting)."""
    from astropy.convolution import Gaussian1DKernel, convolve

    out, _ = built
    levels = []
    for name in STAR:
        f, e = read_spectrum(SPECTRA / name)
        wl = wavelength_grid(0)
        mine = [(f, e)]
        for _ in range(3):
            smooth = convolve(f, Gaussian1DKernel(stddev=2))
            new = np.linspace(wl[0], wl[-1], wl.size // 2)
            f, e, wl = np.interp(new, wl, smooth), np.interp(new, wl, e) / 2, new
            mine.append((f, e))
        levels.append(mine)
    for z in range(4):
        f = np.array([lv[z][0] for lv in levels])
        e = np.array([lv[z][1] for lv in levels])
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(f / e**2, axis=0) / np.nansum(1 / e**2, axis=0)
        ds = open_hisscube(out, z, z)
        got = ds.spectrum.values[0]
        ok = np.isfinite(got)
        assert ok.mean() > 0.95, z
        np.testing.assert_allclose(got[ok], mean[ok], rtol=1e-5, atol=0, err_msg=f"zoom {z}")
        if z:  # the ends drop: zeros beyond the spectrum enter the smoothing
            assert got[0] < 0.8 * got[8] and got[-1] < 0.8 * got[-9]


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_real_field_in_the_tree_layout_reads_the_same(built, tmp_path):
    """The real F star's cube rewritten in HiSS-Cube's TREE layout: same keys, position, pixels."""
    from sfrdask.io.hisscube.write import write_tree

    out, _ = built
    tree = write_tree(out, tmp_path / "tree.h5")
    for z in range(4):
        a, b = open_hisscube(out, z, z), open_hisscube(tree, z, z)
        assert b.attrs["format"] == "HiSS-Cube TREE layout, dense cube"
        for k in ("spec_plateid", "spec_mjd", "spec_fiberid", "RA", "DEC"):
            np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
        np.testing.assert_array_equal(a.image.values, b.image.values)
        np.testing.assert_array_equal(a.spectrum.values, b.spectrum.values)
    assert sorted(b.spec_plateid.values[0]) == [3126, 3127, 7330]


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_all_zoom_levels_are_written(built):
    out, _ = built
    for z, (s, n) in enumerate(((64, 4620), (32, 2310), (16, 1155), (8, 577))):
        ds = open_hisscube(out, z, z)
        assert ds.image.shape == (1, 5, s, s) and ds.spectrum.shape == (1, n)
        assert np.isfinite(ds.image.values).all()


def test_frame_errors_follow_the_sdss_recipe():
    flux, err, header = read_frame(FRAMES / "frame-g-002820-3-0122.fits.bz2")
    assert header["FILTER"] == "g" and flux.shape == err.shape == (1489, 2048)
    assert (err > 0).all()
    # brighter pixels are noisier (Poisson term); the faintest are limited by sky + dark current
    bright = flux > np.percentile(flux, 99.9)
    faint = flux < np.percentile(flux, 50)
    assert err[bright].mean() > 2 * err[faint].mean()


@pytest.mark.parametrize("name", ["spec-0411-51817-0119.fits", "spec-7330-56684-0434.fits"])
def test_spectra_rebinned_conserve_flux(name):
    """SDSS-I/II (plate 411) and BOSS (plate 7330) layouts; flux over each band within 1%."""
    with fits.open(SPECTRA / name) as hdul:
        t = hdul[1].data
        wl, f, ivar = 10 ** t["loglam"].astype(float), t["flux"].astype(float), t["ivar"].astype(float)
    grid = wavelength_grid(0)
    flux, err = read_spectrum(SPECTRA / name)
    assert flux.shape == err.shape == (4620,)
    good = ivar > 0
    for lo, hi in ((4000.0, 5500.0), (5500.0, 7000.0), (7000.0, 8800.0)):
        sel = (wl > lo) & (wl < hi) & good
        raw = np.sum(f[sel] * 1e-17 * np.gradient(wl)[sel])
        m = (grid > lo) & (grid < hi) & np.isfinite(flux)
        new = np.sum(flux[m] * np.gradient(grid)[m])
        assert new == pytest.approx(raw, rel=0.01), (name, lo, hi)
    assert np.isnan(flux[grid < wl[0] - 5]).all()  # outside the observed range: NaN, not zero


def test_rebinning_propagates_errors_and_masks():
    wl = np.linspace(4000, 5000, 1001)
    f, e = np.ones_like(wl), np.full_like(wl, 0.1)
    f[500:510] = np.nan  # masked pixels
    out = np.arange(4001.5, 4998.0, 4.0)  # each output bin is exactly 4 input pixels
    rf, re = rebin_spectrum(wl, f, e, out)
    assert np.nanmax(np.abs(rf - 1)) < 1e-12
    assert np.nanmedian(re) == pytest.approx(0.1 / 2, rel=1e-9)  # sqrt(4) smaller errors
    assert np.isnan(rf[125]) and np.isfinite(rf[120])  # 4500-4503 A all masked
    half = rebin_spectrum(wl, f, e, out + 0.5)[1]  # bins straddling pixels: partial shares
    assert 0.04 < np.nanmedian(half) < 0.05


def test_plates_411_and_412_are_two_galaxies_combined():
    files = sorted(SPECTRA.glob("spec-041[12]-*.fits"))
    assert len(files) == 11
    scans = [scan_spectrum(p) for p in files]
    labels = group_targets([s["ra"] for s in scans], [s["dec"] for s in scans])
    assert sorted(np.bincount(labels).tolist()) == [3, 8]
    for t in range(2):
        ids = np.flatnonzero(labels == t)
        obs = [read_spectrum(files[i]) for i in ids]
        flux, err = combine_ivw([o[0] for o in obs], [o[1] for o in obs])
        single = np.nanmedian([np.nanmedian(o[1]) for o in obs])
        assert np.isfinite(flux).mean() > 0.9
        assert np.nanmedian(err) < single / np.sqrt(len(ids)) * 1.5  # combining beats one epoch


@pytest.mark.slow  # builds a cube from the real frames (~40 s each on 2 cores)
def test_truncated_frame_is_counted_and_the_build_refused(tmp_path):
    fd, sd = linked_sdss(tmp_path)
    (fd / "frame-u-002820-3-0122.fits.bz2").unlink()
    raw = bz2.decompress((FRAMES / "frame-u-002820-3-0122.fits.bz2").read_bytes())
    (fd / "frame-u-002820-3-0122.fits").write_bytes(raw[: len(raw) // 2])
    refused = r"no target has whole cutouts in all five bands at every zoom.*'missing_bands': 1"
    with pytest.raises(FitsError, match=refused) as e:
        build_cube(fd, sd, tmp_path / "cube.h5", progress=False)
    assert "frames rejected: 1" in str(e.value)
    assert not (tmp_path / "cube.h5").exists() and not list(tmp_path.glob(".cube.h5*"))


def test_spectrum_outside_the_grid_is_refused_with_its_range(tmp_path):
    with fits.open(SPECTRA / "spec-0411-51817-0119.fits") as hdul:
        hdul[1].data["loglam"] = hdul[1].data["loglam"] + 0.35  # shifted to 9,000-20,000 A
        hdul.writeto(tmp_path / "spec-0411-51817-0119.fits")
    r = scan_spectrum(tmp_path / "spec-0411-51817-0119.fits")
    assert not r["ok"] and "less than half of the cube's 3840-8915 A grid" in r["reason"]
    assert "levels cannot be made" in r["reason"]


@pytest.mark.parametrize(
    "placement,expected",
    [("hisscube", (100 - 32, 200 - 32)), ("centred", (101 - 32, 200 - 32))],
)
def test_cutouts_start_where_hisscube_starts_them(placement, expected):
    """HiSS-Cube cuts at int(pixel) - 32 (process_cutout_bounds); `centred` rounds instead."""
    from astropy.wcs import WCS

    from sfrdask.io.fits import cutout_origin

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.0, 2.0], [1024.0, 744.0], [-0.396 / 3600, 0.396 / 3600]
    ra, dec = w.wcs_pix2world([[100.7, 200.2], [1e7, 1e7]], 0).T
    x0, y0, inside = cutout_origin(w, ra, dec, (1489, 2048), placement)
    assert (int(x0[0, 0]), int(y0[0, 0])) == expected and inside[:, 0].tolist() == [True, False]
    # lower levels: the same rule on the level's own pixel grid, (p + 1) / 2^z - 1 (CRPIX / 2^z)
    if placement == "hisscube":
        for got, p in ((x0[0], 100.7), (y0[0], 200.2)):
            assert got.tolist() == [int((p + 1) / 2**z - 1) - 32 // 2**z for z in range(4)]
    with pytest.raises(ValueError, match="unknown cutout placement"):
        cutout_origin(w, ra, dec, (1489, 2048), "middle")


def test_targets_are_healpix_cells_as_in_hisscube():
    """HiSS-Cube groups spectra by nested HEALPix order-15 cells: two spectra 0.1" apart on either
    side of a cell edge are two targets there (friends of friends would make them one)."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2**15, order="nested")
    ra0, dec0 = 38.3018, -0.1339
    c0 = hp.lonlat_to_healpix(ra0 * u.deg, dec0 * u.deg)
    step = 0.05 / 3600  # walk east in 0.05" steps to the cell's edge
    k = next(k for k in range(1, 1000) if hp.lonlat_to_healpix((ra0 + k * step) * u.deg, dec0 * u.deg) != c0)
    ra = [ra0, ra0 + (k - 1) * step, ra0 + (k + 1) * step, 200.0]
    dec = [dec0, dec0, dec0, 10.0]
    assert group_targets(ra, dec).tolist() == [0, 0, 1, 2]
    assert group_targets(ra, dec, grouping="fof").tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="unknown target grouping"):
        group_targets(ra, dec, grouping="nearest")

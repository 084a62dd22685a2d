"""The reader on genuine SDSS metadata: a cube whose headers and pixels come from the real frames of
field 2820-3-122 and the three real spectra of the F star at RA 38.3018, Dec -0.1339.

Planes are stored u, r, i, z, g (the order a real HiSS-Cube file of this field has) and the BOSS
spectrum is the target's first, as in the real file.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from sfrdask import join_labels, open_hisscube, read_mpajhu
from sfrdask.io.catalog import GAL_INFO_NAME, TOTSFR_NAME, write_fits_table
from sfrdask.io.hisscube.write import HissCubeWriter
from sfrdask.io.levels import N_ZOOM, all_spectrum_levels, frame_levels, wavelength_grid

pytestmark = pytest.mark.realdata

STORED_ORDER = "urizg"
SPECTRA = ("spec-7330-56684-0434.fits", "spec-3126-54804-0211.fits", "spec-3127-54835-0622.fits")
STAR_X, STAR_Y = 779, 483


def _json_header(h: fits.Header) -> dict:
    """The header as HiSS-Cube serialises it: a dict of the primary cards."""
    return {k: v if isinstance(v, int | float | bool | str) else str(v) for k, v in h.items() if k}


@pytest.fixture(scope="module")
def real_cube(tmp_path_factory, dr14):
    sdss = dr14.parents[1]
    frames, headers, cutouts = [], [], []
    for band in STORED_ORDER:
        path = sdss / "frames" / f"frame-{band}-002820-3-0122.fits.bz2"
        with fits.open(path) as hdul:
            headers.append(_json_header(hdul[0].header))
            cutouts.append(
                hdul[0].data[STAR_Y - 32 : STAR_Y + 32, STAR_X - 32 : STAR_X + 32].astype(np.float32)
            )
        frames.append(path.name)
    spec_headers, fluxes = [], []
    wl = wavelength_grid(0)
    for name in SPECTRA:
        with fits.open(sdss / "spectra" / name) as hdul:
            spec_headers.append(_json_header(hdul[0].header))
            d = hdul[1].data
            fluxes.append(np.interp(wl, 10 ** d["loglam"], d["flux"]).astype(np.float32) * 1e-17)
    path = tmp_path_factory.mktemp("real") / "real.h5"
    data = np.stack(cutouts)[None]
    spec = np.mean(fluxes, axis=0)[None]
    with HissCubeWriter(path, n_targets=1, n_spectra=3, n_images=5) as w:
        w.write_image_headers(0, frames, headers)
        w.write_spectrum_headers(0, list(SPECTRA), spec_headers)
        w.write_targets(
            0,
            frame_levels(data, np.abs(data) * 0.01 + 1e-3),  # the metadata matter here, not the levels
            all_spectrum_levels(spec, np.full_like(spec, 1e-18)),
            [[0, 1, 2]],
            np.arange(5)[None],
        )
    return path, dict(zip(STORED_ORDER, cutouts, strict=True))


def test_real_frame_headers_map_the_bands(real_cube):
    path, cutouts = real_cube
    ds = open_hisscube(path)
    assert ds.attrs["stored_band_order"] == "urizg"
    for band in "ugriz":
        np.testing.assert_array_equal(ds.image.sel(band=band).values[0], cutouts[band])
    r = ds.image.sel(band="r").values[0]
    y, x = np.unravel_index(np.argmax(r), r.shape)
    assert abs(y - 32) <= 2 and abs(x - 32) <= 2, "the F star is the brightest source near the centre"
    for z in range(1, N_ZOOM):
        assert open_hisscube(path, image_zoom=z).image.shape[-1] == 64 // 2**z


def test_real_spectrum_headers_give_keys_and_position(real_cube):
    ds = open_hisscube(real_cube[0])
    np.testing.assert_array_equal(ds.spec_plateid.values[0], [7330, 3126, 3127])
    np.testing.assert_array_equal(ds.spec_mjd.values[0], [56684, 54804, 54835])
    np.testing.assert_array_equal(ds.spec_fiberid.values[0], [434, 211, 622])
    assert ds.RA.values[0] == pytest.approx(38.3018, abs=1e-3)  # PLUG_RA, not the plate centre
    assert ds.DEC.values[0] == pytest.approx(-0.1339, abs=1e-3)


def test_label_join_skips_the_boss_spectrum(real_cube, tmp_path):
    """DR7 holds the SDSS-II spectra only: the join must find the target through its second one."""
    write_fits_table(
        tmp_path / GAL_INFO_NAME,
        {"PLATEID": np.array([3126, 999]), "MJD": np.array([54804, 1]), "FIBERID": np.array([211, 1])},
    )
    write_fits_table(
        tmp_path / TOTSFR_NAME, {"AVG": np.array([-1.5, 0.0], np.float32), "FLAG": np.array([0, 0])}
    )
    ds = join_labels(
        open_hisscube(real_cube[0]), read_mpajhu(tmp_path / GAL_INFO_NAME, tmp_path / TOTSFR_NAME)
    )
    assert ds.label_spectrum.values[0] == 1 and ds.AVG.values[0] == pytest.approx(-1.5)


def test_the_pipelines_line_fits_are_read_in_cgs_and_unmeasured_lines_are_not_zero_fluxes(dr14, tmp_path):
    """SPZLINE of a real spectrum: H-alpha of the plate-412 galaxy as the file holds it (LINEAREA
    2654.5134 x 1e-17 erg/s/cm^2, LINEAREA_ERR 21.641), Mg II (below its wavelength range) not
    measured (LINEAREA_ERR = -1: error NaN); a file without the HDU is refused, naming it."""
    from sfrdask.io.fits import FitsError, read_line_fits

    lines = read_line_fits(dr14.parents[1] / "spectra" / "spec-0412-51931-0319.fits")
    np.testing.assert_allclose(lines["H_alpha"], (2654.5134e-17, 21.641012e-17), rtol=1e-6, atol=0)
    assert lines["Mg_II 2799"][0] == 0 and np.isnan(lines["Mg_II 2799"][1])
    assert {"H_beta", "[O_III] 5007", "[N_II] 6583"} <= set(lines)
    bare = tmp_path / "spec-no-lines.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=[1.0])])]
    ).writeto(bare)
    with pytest.raises(FitsError, match="no SPZLINE HDU"):
        read_line_fits(bare)

"""physics-halpha: line fits on known input, the fibre-aperture physics of the synthetic survey, and
repeat observations of real galaxies (../shared/data/sdss/spectra)."""

from __future__ import annotations

import numpy as np
import pytest

from sfrdask import open_hisscube
from sfrdask.io.levels import wavelength_grid
from sfrdask.models import get_model
from sfrdask.models.physics import (
    CASE_B,
    HALPHA,
    HBETA,
    K_HALPHA,
    K_HBETA,
    KENNICUTT,
    HalphaSFR,
    aperture_factor,
    balmer_attenuation,
    fit_line,
    luminosity_distance_cm,
)
from sfrdask.synthetic.truth import read_truth
from tests.conftest import SHARED


def _gauss(wl: np.ndarray, centre: float, flux: float, sigma: float) -> np.ndarray:
    return flux * np.exp(-0.5 * ((wl - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)


def _spectrum(z: float, ha: float, hb: float, rng: np.random.Generator, noise: float = 1e-18):
    wl = wavelength_grid(0)
    f = 2e-17 + 1e-21 * (wl - 6000)  # sloped continuum
    f += _gauss(wl, HALPHA * (1 + z), ha, 2.5) + _gauss(wl, HBETA * (1 + z), hb, 2.5 * HBETA / HALPHA)
    f += _gauss(wl, 6585.27 * (1 + z), 0.4 * ha, 2.5)  # [N II] beside H-alpha
    return wl, f + rng.normal(0, noise, wl.size), np.full(wl.size, noise)


def test_line_fit_recovers_injected_fluxes():
    rng = np.random.default_rng(0)
    wl, f, e = _spectrum(0.05, 3e-15, 7e-16, rng)
    ha, ha_err, width = fit_line(wl, f, e, 0.05, "halpha")
    hb = fit_line(wl, f, e, 0.05, "hbeta")[0]
    assert ha == pytest.approx(3e-15, rel=0.03) and hb == pytest.approx(7e-16, rel=0.05)
    assert 0 < ha_err < 0.05 * ha and 1.5 < width < 4
    wl2, f2, e2 = _spectrum(0.05, 0.0, 0.0, rng)  # no line: consistent with zero
    ha0, err0, _ = fit_line(wl2, f2, e2, 0.05, "halpha")
    assert abs(ha0) < 4 * err0
    assert np.isnan(fit_line(wl, f, e, 0.5, "halpha")[0])  # redshifted out of the spectrum


def test_balmer_decrement_and_kennicutt():
    a_true = 1.2  # magnitudes at H-alpha
    ebv = a_true / K_HALPHA
    ha = 1e-14 * 10 ** (-0.4 * a_true)
    hb = 1e-14 / CASE_B * 10 ** (-0.4 * K_HBETA * ebv)
    a = balmer_attenuation(np.array([ha]), np.array([hb]), np.array([hb / 50]))
    assert a[0] == pytest.approx(a_true, rel=1e-9)
    assert balmer_attenuation(np.array([ha]), np.array([hb]), np.array([hb]))[0] == 0  # S/N 1: unused
    rng = np.random.default_rng(1)
    wl, f, e = _spectrum(0.05, ha, hb, rng, noise=1e-19)
    log_sfr = HalphaSFR().predict(wl, f[None], e[None], np.array([0.05]))[0]
    want = np.log10(KENNICUTT * 4 * np.pi * luminosity_distance_cm(0.05) ** 2 * 1e-14)
    assert log_sfr == pytest.approx(want, abs=0.03)


def test_aperture_factor():
    point = np.zeros((1, 64, 64))
    point[0, 31:33, 31:33] = 1.0
    assert aperture_factor(point, 0)[0] == pytest.approx(1.0)
    flat = np.ones((1, 64, 64))
    fibre_px = np.pi * (1.5 / 0.396) ** 2
    assert aperture_factor(flat, 0)[0] == pytest.approx(64 * 64 / fibre_px, rel=0.02)


def test_registered_without_training():
    assert get_model("physics-halpha").family == "physics"
    assert get_model("physics-halpha-aperture").inputs == ("spectrum", "image")


def test_synthetic_survey_fibre_physics(cube, survey_dir):
    """The spectrum sees only the fibre: the estimate recovers the *fibre* SFR the generator put in
    H-alpha, and the r-band aperture correction moves it to the whole galaxy's SFR."""
    truth, _ = read_truth(survey_dir)
    ds = open_hisscube(cube, 0, 0)
    sp, er, z = ds.spectrum.values.astype(float), ds.spectrum_error.values.astype(float), truth.z.to_numpy()
    strong = ((truth["class"] == "GALAXY") & (truth.logsfr_fibre > -1.0)).to_numpy()
    assert strong.sum() >= 15
    fibre = HalphaSFR().predict(wavelength_grid(0), sp[strong], er[strong], z[strong])
    total = HalphaSFR(aperture=True).predict(
        wavelength_grid(0), sp[strong], er[strong], z[strong], ds.image.values[strong, 2], 0
    )
    res_fibre = fibre - truth.logsfr_fibre.to_numpy()[strong]
    assert abs(np.median(res_fibre)) < 0.15 and np.median(np.abs(res_fibre)) < 0.2
    to_total = truth.logsfr_true.to_numpy()[strong]
    assert np.median(fibre - to_total) < -0.25  # the fibre misses most of the galaxy
    assert abs(np.median(total - to_total)) < abs(np.median(fibre - to_total)) - 0.15


@pytest.mark.realdata
def test_repeat_spectra_of_real_galaxies_agree():
    """Plate 412 holds eight epochs of one star-forming galaxy: scatter below 0.1 dex."""
    from sfrdask.io.fits import read_spectrum, scan_spectrum

    files = sorted((SHARED / "spectra").glob("spec-0412-*.fits"))
    assert len(files) == 8
    scans = [scan_spectrum(p) for p in files]
    obs = [read_spectrum(p) for p in files]
    est = HalphaSFR()
    log_sfr = est.predict(
        wavelength_grid(0), np.array([o[0] for o in obs]), np.array([o[1] for o in obs]),
        np.array([s["z"] for s in scans]),
    )  # fmt: skip
    assert np.isfinite(log_sfr).all()
    assert np.std(log_sfr, ddof=1) < 0.1
    assert (est.details["halpha"] / est.details["halpha_err"] > 20).all()

"""Write a synthetic SDSS survey: a HiSS-Cube file, MPA-JHU catalogues and the ground truth.

Planning (population, labels, spectrum keys, neighbours) is cheap and tabular, so it runs on the
client; rendering (images and spectra at every zoom level) runs as one task per chunk of targets
on the Dask cluster, and chunks are written in order, a bounded number in flight. Chunk ``c`` is
drawn from ``numpy.random.default_rng([seed, c, stream])``: the same seed gives the same bytes on
any cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask import config
from sfrdask._version import __version__
from sfrdask.io.atomic import atomic_output, refuse_existing
from sfrdask.io.catalog import GAL_INFO_NAME, TOTLGM_NAME, TOTSFR_NAME, write_fits_table
from sfrdask.io.hisscube.write import HissCubeWriter
from sfrdask.io.levels import BANDS, N_ZOOM, all_spectrum_levels, image_size, nmgy_to_stored
from sfrdask.progress import map_ordered
from sfrdask.synthetic import images as img
from sfrdask.synthetic.population import (
    FIBRE_RADIUS,
    SynthParams,
    draw_labels,
    draw_targets,
    fibre_fractions,
    galaxy_morphology,
)
from sfrdask.synthetic.spectra import render_spectra

FIELD_TARGETS = 64  # targets sharing one synthetic SDSS field (5 frames)
CUBE_NAME = "survey.h5"


def _rng(seed: int, chunk: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, chunk, stream])


def _neighbours(rng: np.random.Generator, t: dict[str, np.ndarray], frac: float) -> list[dict[str, Any]]:
    """Other galaxies and stars in the cutouts; about a quarter of them overlap the target."""
    rows: list[dict[str, Any]] = []
    n = len(t["z"])
    has = rng.random(n) < frac
    for i in np.flatnonzero(has):
        for _ in range(1 + min(rng.poisson(0.5), 2)):
            star = rng.random() < 0.35
            if rng.random() < 0.25:
                r_off, ang = rng.uniform(5, 15), rng.uniform(0, 2 * np.pi)
                x, y = r_off * np.cos(ang), r_off * np.sin(ang)
            else:
                x, y = rng.uniform(-30, 30, 2)
            r = float(np.clip(t["mag"][i, 2] + rng.uniform(-1.0, 3.5), 14.5, 21.5))
            if star:
                gr = float(np.clip(0.42 + rng.normal(0, 0.3), -0.3, 1.6))
                colours = [0.62 + 1.2 * gr + gr, gr, 0.0, -(0.35 * gr + 0.01), -(0.5 * gr + 0.01)]
                morph = dict(point=True, re_arcsec=0.0, sersic=1.0, ba=1.0, pa=0.0)
            else:
                q = float(rng.random())
                zn = float(rng.uniform(0.03, 0.3))
                gr = 0.45 + 0.35 * q + zn
                colours = [gr + 1.1 + 0.9 * q, gr, 0.0, -(0.3 + 0.1 * q), -(0.5 + 0.2 * q)]
                s, re, ba, pa = galaxy_morphology(
                    rng, np.array([rng.uniform(9.5, 11.2)]), np.array([q]), np.array([zn])
                )
                morph = dict(
                    point=False, re_arcsec=float(re[0]), sersic=float(s[0]), ba=float(ba[0]), pa=float(pa[0])
                )
            mags = np.array(colours) + r
            rows.append(
                dict(
                    target=int(i),
                    kind="star" if star else "galaxy",
                    x=float(x),
                    y=float(y),
                    **{f"mag_{b}": float(m) for b, m in zip(BANDS, mags, strict=True)},
                    **morph,
                )
            )
    return rows


def plan_chunk(seed: int, chunk: int, n: int, p: SynthParams) -> dict[str, Any]:
    """Everything about one chunk of targets except pixels: population, labels, neighbours."""
    rng = _rng(seed, chunk, 0)
    t = draw_targets(rng, n, p)
    labels = draw_labels(rng, t, p)
    fibre_r = FIBRE_RADIUS["sdss"]
    f_star, f_sf = fibre_fractions(
        np.maximum(t["re_arcsec"], 0.05), t["sersic"], t["ba"], t["q_old"], t["seeing_r"], fibre_r
    )
    f_star = np.where(t["point"], 0.8, f_star)
    f_sf = np.where(t["point"], 1.0, f_sf)
    repeat = rng.random(n) < p.repeat_fraction
    n_obs = np.where(repeat, rng.integers(2, 4, n), 1)
    offsets = rng.normal(0, 0.3, (n, 2))
    n_fields = -(-n // FIELD_TARGETS)
    band_orders = np.stack([rng.permutation(5) for _ in range(n_fields)])
    neighbours = _neighbours(rng, t, p.neighbour_fraction)
    # the fibre's position in zoom-0 cutout pixels: HiSS-Cube cuts at int(pixel) - 32, so it lies in
    # [32, 33); its sub-pixel phase sets where the lower levels' cutouts start
    fibre = 32.0 + rng.random((n, 2))
    return dict(
        chunk=chunk,
        n=n,
        t=t,
        labels=labels,
        f_star=f_star,
        f_sf=f_sf,
        n_obs=n_obs,
        offsets=offsets,
        fibre=fibre,
        band_orders=band_orders,
        neighbours=neighbours,
    )


def render_chunk(seed: int, plan: dict[str, Any]) -> dict[str, Any]:
    """Pixels of one chunk: image planes in stored (field) order and spectra, at all zoom levels."""
    rng = _rng(seed, plan["chunk"], 1)
    t, n = plan["t"], plan["n"]
    flux_nmgy = 10 ** (-0.4 * (t["mag"] - 22.5))
    images = [
        (np.empty((n, 5, s, s), np.float32), np.empty((n, 5, s, s), np.float32))
        for s in (image_size(z) for z in range(N_ZOOM))
    ]
    by_target: dict[int, list[dict]] = {}
    for row in plan["neighbours"]:
        by_target.setdefault(row["target"], []).append(row)
    for i in range(n):
        centre = plan["fibre"][i] - 31.5  # the fibre, from the cutout's centre
        comps = [
            dict(
                x=centre[0] + plan["offsets"][i, 0],
                y=centre[1] + plan["offsets"][i, 1],
                point=bool(t["point"][i]),
                re_arcsec=t["re_arcsec"][i],
                sersic=t["sersic"][i],
                ba=t["ba"][i],
                pa=t["pa"][i],
                flux=flux_nmgy[i],
            )
        ]
        for nb in by_target.get(i, []):
            nb_flux = 10 ** (-0.4 * (np.array([nb[f"mag_{b}"] for b in BANDS]) - 22.5))
            comps.append(dict(nb, x=centre[0] + nb["x"], y=centre[1] + nb["y"], flux=nb_flux))
        levels = img.render_cutout(rng, comps, float(t["seeing_r"][i]), tuple(plan["fibre"][i]))
        order = plan["band_orders"][i // FIELD_TARGETS]
        for (data, err), (d, e) in zip(images, levels, strict=True):
            data[i], err[i] = d[order], e[order]
    flux, ferr = render_spectra(rng, t, plan["f_star"], plan["f_sf"], plan["n_obs"])
    return {"images": images, "spectra": all_spectrum_levels(flux, ferr)}


def _assign_spectra(plans: list[dict[str, Any]]) -> None:
    """Unique (PLATEID, MJD, FIBERID) per spectrum; repeats start with a BOSS re-observation."""
    sdss = boss = 0
    for plan in plans:
        keys = []
        for i in range(plan["n"]):
            spec = []
            for j in range(int(plan["n_obs"][i])):
                if j == 0 and plan["n_obs"][i] > 1:
                    plate, fibre, survey = 3500 + boss // 1000, 1 + boss % 1000, "boss"
                    mjd = 55200 + (plate - 3500) * 3
                    boss += 1
                else:
                    plate, fibre, survey = 266 + sdss // 640, 1 + sdss % 640, "sdss"
                    mjd = 51600 + (plate - 266) * 2
                    sdss += 1
                spec.append((plate, mjd, fibre, survey))
            keys.append(spec)
        plan["spectra"] = keys


SCAN_ORDER = "riuzg"  # SDSS camera rows in the order a point of sky crosses them
SCAN_DELAY = 71.66  # seconds between two camera rows (frames of field 2820-3-122)


def _field_centre(field: int) -> tuple[float, float]:
    return 10.0 + 0.25 * (field % 1400), -1.0 + 0.5 * ((field // 1400) % 5)


def _spectrum_header(
    plate: int, mjd: int, fibre: int, survey: str, ra: float, dec: float, ra_f: float, dec_f: float,
    t: dict[str, Any], i: int,
) -> dict[str, Any]:  # fmt: skip
    """A spectrum file's primary header, as SDSS writes it, for target ``i`` of the chunk."""
    return {
        "SIMPLE": True,
        "BITPIX": 8,
        "NAXIS": 0,
        "TELESCOP": "SDSS 2.5-M",
        "FLAVOR": "science",
        "BUNIT": "1E-17 erg/cm^2/s/Ang",
        "PLATEID": plate,
        "MJD": mjd,
        "FIBERID": fibre,
        "RA": round(ra_f, 5),
        "DEC": round(dec_f, 5),
        "PLUG_RA": ra,
        "PLUG_DEC": dec,
        "TAI": mjd * 86400.0,
        "EXPTIME": 2700.0,
        "NEXP": 3,
        "FIBRERAD": FIBRE_RADIUS[survey],
        "NAME": f"{plate:04d}-{mjd:05d}-{fibre:02d}",
        "Z": float(np.float32(t["z"][i])),
        "CLASS": str(t["class"][i]),
        "ORIGIN": "sfrdask synthetic survey",
    }


def _frame_header(band: str, field: int, ra_f: float, dec_f: float) -> dict[str, Any]:
    """A frame file's primary header (its WCS centred on the field), as SDSS writes it."""
    return {
        "SIMPLE": True,
        "BITPIX": -32,
        "NAXIS": 2,
        "NAXIS1": 2048,
        "NAXIS2": 1489,
        "FILTER": band,
        "RUN": 2820 + field // 800,
        "CAMCOL": 1 + field % 6,
        "FRAME": field % 800,
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CRPIX1": 1024.5,
        "CRPIX2": 744.5,
        "CRVAL1": ra_f,
        "CRVAL2": dec_f,
        "CD1_1": 0.0,
        "CD1_2": 1.1e-4,
        "CD2_1": 1.1e-4,
        "CD2_2": 0.0,
        "BUNIT": "nanomaggy",
        "NMGY": 0.005,
        "EXPTIME": 53.907456,
        # SDSS scans the sky across its camera rows r, i, u, z, g: a band's frame of a
        # field is taken ~71.7 s after the row before (HiSS-Cube's TREE orders by it)
        "TAI": 4.5e9 + 600.0 * field + SCAN_DELAY * SCAN_ORDER.index(band),
        "ORIGIN": "sfrdask synthetic survey",
    }


def _headers(plan: dict[str, Any], field0: int, seed: int) -> tuple[list, list, list, list, np.ndarray]:
    """Spectrum and frame headers of a chunk, and each target's RA/Dec.

    A spectrum header carries the target's Z (float32, as the SpecObj table of a spectrum file's
    HDU 2 stores it) and CLASS, stars included, as a cube built from real spectrum files does
    (:mod:`sfrdask.io.fits` copies them from HDU 2 into the header).
    """
    n, t = plan["n"], plan["t"]
    rng = _rng(seed, plan["chunk"], 2)
    spec_paths, spec_headers, radec = [], [], np.zeros((n, 2))
    for i in range(n):
        ra_f, dec_f = _field_centre(field0 + i // FIELD_TARGETS)
        ra, dec = ra_f + rng.uniform(-0.1, 0.1), dec_f + rng.uniform(-0.1, 0.1)
        radec[i] = ra, dec
        for plate, mjd, fibre, survey in plan["spectra"][i]:
            spec_paths.append(f"spec-{plate:04d}-{mjd:05d}-{fibre:04d}.fits")
            spec_headers.append(_spectrum_header(plate, mjd, fibre, survey, ra, dec, ra_f, dec_f, t, i))
    frame_paths, frame_headers = [], []
    for f_local, order in enumerate(plan["band_orders"]):
        field = field0 + f_local
        ra_f, dec_f = _field_centre(field)
        for plane in order:
            band = BANDS[plane]
            frame_paths.append(
                f"frame-{band}-{2820 + field // 800:06d}-{1 + field % 6}-{field % 800:04d}.fits.bz2"
            )
            frame_headers.append(_frame_header(band, field, ra_f, dec_f))
    return spec_paths, spec_headers, frame_paths, frame_headers, radec


def _stored_fluxes(mag: np.ndarray) -> dict[str, np.ndarray]:
    """Total fluxes in the stored image unit, per band, from ugriz magnitudes ``(..., 5)``."""
    return {f"flux_{b}": 10 ** (-0.4 * (mag[..., k] - 22.5)) * nmgy_to_stored(b) for k, b in enumerate(BANDS)}


def _chunk_tables(plan: dict[str, Any], radec: np.ndarray, obj0: int) -> dict[str, pd.DataFrame]:
    """Truth, neighbour and catalogue rows of one chunk, built column by column."""
    t, lab, n = plan["t"], plan["labels"], plan["n"]
    galaxy = t["class"] == "GALAXY"
    with np.errstate(divide="ignore"):
        logsfr_fibre = np.where(galaxy, t["logsfr"] + np.log10(plan["f_sf"]), np.nan)
    truth = pd.DataFrame(
        {
            "object": obj0 + np.arange(n),
            "class": t["class"],
            "z": t["z"],
            "ra": radec[:, 0],
            "dec": radec[:, 1],
            "logm": t["logm"],
            "logsfr_true": t["logsfr"],
            "logsfr_fibre": logsfr_fibre,
            "f_star_fibre": plan["f_star"],
            "f_sf_fibre": plan["f_sf"],
            "q_old": t["q_old"],
            "a_halpha": t["a_halpha"],
            "re_arcsec": t["re_arcsec"],
            "sersic": t["sersic"],
            "ba": t["ba"],
            "pa": t["pa"],
            "point": t["point"],
            "seeing_r": t["seeing_r"],
            "x": plan["fibre"][:, 0] + plan["offsets"][:, 0],
            "y": plan["fibre"][:, 1] + plan["offsets"][:, 1],
            "fibre_x": plan["fibre"][:, 0],
            "fibre_y": plan["fibre"][:, 1],
            "n_spectra": plan["n_obs"],
            "AVG": lab["sfr"]["AVG"],
            "FLAG": lab["sfr"]["FLAG"],
            "label_half_width": lab["label_half_width"],
            **{f"mag_{b}": t["mag"][:, k] for k, b in enumerate(BANDS)},
            **_stored_fluxes(t["mag"]),
        }
    )
    nbs = pd.DataFrame(plan["neighbours"])
    if len(nbs):
        nbs.insert(0, "object", obj0 + nbs.pop("target"))
        nbs["x"] += plan["fibre"][nbs["object"] - obj0, 0]
        nbs["y"] += plan["fibre"][nbs["object"] - obj0, 1]
        nbs = nbs.assign(**_stored_fluxes(nbs[[f"mag_{b}" for b in BANDS]].to_numpy()))
    # one catalogue row per DR7 (SDSS-I/II) spectrum of a galaxy or quasar; stars are not in MPA-JHU
    idx, keys = [], []
    for i, specs in enumerate(plan["spectra"]):
        if t["class"][i] != "STAR":
            for plate, mjd, fibre, survey in specs:
                if survey == "sdss":
                    idx.append(i)
                    keys.append((plate, mjd, fibre))
    idx = np.asarray(idx, dtype=int)
    keys = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
    cat = pd.DataFrame(
        {
            "PLATEID": keys[:, 0],
            "MJD": keys[:, 1],
            "FIBERID": keys[:, 2],
            "RA": radec[idx, 0],
            "DEC": radec[idx, 1],
            "Z": t["z"][idx],
            "SPECTROTYPE": t["class"][idx],
            **{f"SFR_{k}": v[idx] for k, v in lab["sfr"].items()},
            **{f"LGM_{k}": v[idx] for k, v in lab["lgm"].items()},
        }
    )
    return {"catalog": cat, "truth": truth, "neighbours": nbs}


def _tables(plans: list[dict[str, Any]], radecs: list[np.ndarray]) -> dict[str, pd.DataFrame]:
    """Catalogue rows and the truth tables of the whole survey."""
    parts, obj0 = [], 0
    for plan, radec in zip(plans, radecs, strict=True):
        parts.append(_chunk_tables(plan, radec, obj0))
        obj0 += plan["n"]
    return {
        k: pd.concat([p[k] for p in parts], ignore_index=True) for k in ("catalog", "truth", "neighbours")
    }


def _write_catalogs(d: Path, cat: pd.DataFrame) -> None:
    info_cols = {k: cat[k].to_numpy() for k in ("PLATEID", "MJD", "FIBERID")}
    info_cols.update(
        RA=cat["RA"].to_numpy(),
        DEC=cat["DEC"].to_numpy(),
        Z=cat["Z"].to_numpy().astype(np.float32),
        SPECTROTYPE=cat["SPECTROTYPE"].to_numpy().astype(str),
    )
    write_fits_table(d / GAL_INFO_NAME, info_cols)
    for prefix, name in (("SFR_", TOTSFR_NAME), ("LGM_", TOTLGM_NAME)):
        cols = {c[len(prefix) :]: cat[c].to_numpy() for c in cat.columns if c.startswith(prefix)}
        cols["FLAG"] = cols["FLAG"].astype(np.int64)
        write_fits_table(d / name, cols)


def _write_headers(w: HissCubeWriter, plans: list[dict[str, Any]], seed: int) -> tuple[list, list, list]:
    """Every chunk's spectrum and frame headers into the cube, in order; returns the targets'
    RA/Dec and, per chunk, each target's spectrum rows and image (frame x band) rows."""
    radecs, spec_index, image_index = [], [], []
    spec0 = field0 = 0
    for plan in plans:
        sp, sh, fp, fh, radec = _headers(plan, field0, seed)
        w.write_spectrum_headers(spec0, sp, sh)
        w.write_image_headers(5 * field0, fp, fh)
        radecs.append(radec)
        idx, s = [], spec0
        for specs in plan["spectra"]:
            idx.append(list(range(s, s + len(specs))))
            s += len(specs)
        spec_index.append(idx)
        fields = field0 + np.arange(plan["n"]) // FIELD_TARGETS
        image_index.append(5 * fields[:, None] + np.arange(5)[None, :])
        spec0, field0 = s, field0 + len(plan["band_orders"])
    return radecs, spec_index, image_index


def make_survey(
    out: str | Path,
    objects: int | None = None,
    seed: int | None = None,
    params: SynthParams | None = None,
    chunk_objects: int | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    client: Any = None,
) -> Path:
    """Write a synthetic survey into directory ``out`` and return the cube's path.

    Chunks of objects are rendered on ``client`` (a Dask Client; ``None``: Dask's configured
    in-process scheduler) and written here, in order.

    ``out`` receives ``survey.h5`` (HiSS-Cube DATASET layout), the three MPA-JHU FITS tables,
    ``truth_objects.csv``, ``truth_neighbours.csv`` and ``survey.json``. It appears only when
    complete (written in a temporary sibling directory, then renamed).
    """
    out = Path(out)
    objects = int(objects if objects is not None else config.get("synth.objects"))
    seed = int(seed if seed is not None else config.get("synth.seed"))
    chunk_objects = int(chunk_objects or config.get("synth.chunk-objects"))
    params = params or SynthParams()  # sfrdask.synth.* from dask.config
    if objects < 1:
        raise ValueError(f"objects must be at least 1, got {objects}")
    if chunk_objects % FIELD_TARGETS:
        raise ValueError(f"chunk_objects must be a multiple of {FIELD_TARGETS}, got {chunk_objects}")
    refuse_existing(out, overwrite)

    sizes = [min(chunk_objects, objects - a) for a in range(0, objects, chunk_objects)]
    plans = [plan_chunk(seed, c, n, params) for c, n in enumerate(sizes)]
    _assign_spectra(plans)
    n_spectra = sum(len(s) for p in plans for s in p["spectra"])
    n_fields = sum(len(p["band_orders"]) for p in plans)

    with atomic_output(out) as tmp:  # complete or absent
        tmp.mkdir()
        with HissCubeWriter(tmp / CUBE_NAME, objects, n_spectra, 5 * n_fields, compression=compression) as w:
            radecs, spec_index, image_index = _write_headers(w, plans, seed)
            target0 = 0
            for plan, px in zip(
                plans,
                map_ordered(
                    lambda pl: render_chunk(seed, pl),
                    plans,
                    client,
                    total=len(plans),
                    desc="synthetic survey",
                    progress=progress,
                ),
                strict=True,
            ):
                c = plan["chunk"]
                w.write_targets(target0, px["images"], px["spectra"], spec_index[c], image_index[c])
                target0 += plan["n"]
        tables = _tables(plans, radecs)
        _write_catalogs(tmp, tables["catalog"])
        tables["truth"].to_csv(tmp / "truth_objects.csv", index=False, float_format="%.9g")
        tables["neighbours"].to_csv(tmp / "truth_neighbours.csv", index=False, float_format="%.9g")
        meta = {
            "sfrdask_version": __version__,
            "objects": objects,
            "seed": seed,
            "chunk_objects": chunk_objects,
            "spectra": n_spectra,
            "frames": 5 * n_fields,
            "params": asdict(params),
            "flag0_objects": int((tables["truth"]["FLAG"] == 0).sum()),
        }
        (tmp / "survey.json").write_text(json.dumps(meta, indent=2))
    return out / CUBE_NAME

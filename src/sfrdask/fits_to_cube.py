"""Build a HiSS-Cube file (DATASET layout) from SDSS frame and spectrum FITS files, on Dask: the
planning and the orchestration above the FITS readers of :mod:`sfrdask.io.fits`.

For example (``sfrdask build-cube --frames frames/ --spectra spectra/ --out cube.h5``)::

    from sfrdask.fits_to_cube import build_cube

    report = build_cube("frames/", "spectra/", "cube.h5")
    report["targets"]["written"]

What it does, following ``docs/formats.md``:

1. *Scan* every frame (``frame-*.fits[.bz2]``: band, WCS, data readable) and every spectrum
   (``spec-PLATE-MJD-FIBER.fits`` or any other ``*.fits`` name: identified by their headers; SDSS-I/II
   and BOSS: PLUG_RA/PLUG_DEC, redshift, class) in
   parallel. Unreadable or truncated files, frames without a WCS and unknown bands are counted and
   named in the report, not fatal.
2. *Group* spectra whose plug positions lie within ``match_arcsec`` into targets (repeat
   observations of one object), and find for each target the frames holding a whole 64 x 64
   cutout around it. A target is kept only when all five bands have one; the others are counted
   (outside every frame, or missing bands).
3. *Extract* in batches of targets: one task per frame reads it once and cuts out every target of
   the batch it covers; one task per spectrum rebins it. Frame flux (nanomaggies) gets its errors
   from the calibration vector, the sky and the CCD gain / dark variance, then the HiSS-Cube unit;
   spectra are rebinned flux-conserving onto the 4620-sample grid. Epochs of a band and spectra of
   a target are combined by inverse-variance weighting; the lower zoom levels follow.
4. *Write* with the same writer as the synthetic survey, to a temporary file renamed when complete,
   plus ``CUBE.build.json`` (the report).
Memory is bounded by the batch: frames are read inside tasks and only cutouts come back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from sfrdask import config
from sfrdask.choices import GROUPINGS, PLACEMENTS
from sfrdask.io.atomic import atomic_output, refuse_existing, write_text
from sfrdask.io.fits import (
    FitsError,
    cutout_origin,
    frame_cutouts,
    frame_wcs,
    scan_frame,
    scan_spectrum,
    spectrum_levels,
)
from sfrdask.io.hisscube.layout import observation_time
from sfrdask.io.hisscube.write import HissCubeWriter
from sfrdask.io.levels import (
    BANDS,
    CUTOUT_SIZE,
    N_ZOOM,
    combine_ivw,
    image_size,
)
from sfrdask.progress import map_ordered, track


# -- planning --------------------------------------------------------------------------------------
def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def group_targets(
    ra: Sequence[float],
    dec: Sequence[float],
    grouping: str = "healpix",
    healpix_order: int = 15,
    match_arcsec: float = 3.0,
) -> np.ndarray:
    """Target label of each spectrum, numbered in order of their first spectrum.

    ``healpix`` (HiSS-Cube's rule): spectra whose plug positions fall in the same nested HEALPix
    cell of ``healpix_order`` (15: cells about 6.4" across) are one target. ``fof``: positions
    linked within ``match_arcsec`` (friends of friends) are one target, whatever cell they are in.
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if ra.size == 0:
        return np.zeros(0, dtype=int)
    if grouping == "healpix":
        import astropy.units as u  # astropy: only when a cube is built
        from astropy_healpix import HEALPix

        cells = HEALPix(nside=2**healpix_order, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
        first: dict[int, int] = {}
        return np.array([first.setdefault(int(c), len(first)) for c in cells])
    if grouping != "fof":
        raise ValueError(f"unknown target grouping {grouping!r}: expected one of {GROUPINGS}")
    xyz = _unit(ra, dec)
    n = len(xyz)
    chord = 2 * np.sin(np.radians(match_arcsec / 3600) / 2)
    pairs = np.array(sorted(cKDTree(xyz).query_pairs(chord)), dtype=int).reshape(-1, 2)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order: dict[int, int] = {}
    return np.array([order.setdefault(lab, len(order)) for lab in labels])


def plan_targets(
    spectra: list[dict], frames: list[dict], placement: str = "hisscube", **grouping: Any
) -> dict[str, Any]:
    """Targets from the usable spectra (``grouping``: see :func:`group_targets`), and the frames
    that hold a whole cutout of each at every zoom level, per band.

    A target's spectra are in HiSS-Cube's order, by observation time (TAI, else MJD), and its
    cutouts are cut around the first one's plug position, as HiSS-Cube cuts them (the cutouts of a
    target's first spectrum serve the whole target)."""
    labels = group_targets([s["ra"] for s in spectra], [s["dec"] for s in spectra], **grouping)
    n_t = int(labels.max()) + 1 if labels.size else 0
    spectra_of: list[list[int]] = [[] for _ in range(n_t)]
    for i, t in enumerate(labels):  # one pass: the spectra of each target, in file order
        spectra_of[t].append(i)
    spectra_of = [sorted(ids, key=lambda i: observation_time(spectra[i]["header"])) for ids in spectra_of]
    ra = np.array([spectra[ids[0]]["ra"] for ids in spectra_of])
    dec = np.array([spectra[ids[0]]["dec"] for ids in spectra_of])
    cover: list[dict[str, list[int]]] = [{b: [] for b in BANDS} for _ in range(n_t)]
    lower_level_off: set[int] = set()  # whole at zoom 0 in some frame, not at a lower level
    tree = cKDTree(_unit(ra, dec)) if n_t else None
    for j, fr in enumerate(frames):
        wcs = frame_wcs(fr["header"], fr["path"])
        ny, nx = fr["shape"]
        c_ra, c_dec = wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
        radius = np.hypot(nx, ny) / 2 * np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))  # degrees
        near = tree.query_ball_point(
            _unit(np.array([c_ra]), np.array([c_dec]))[0], 2 * np.sin(np.radians(radius))
        )
        if not near:
            continue
        near = np.array(sorted(near))
        _, _, inside = cutout_origin(wcs, ra[near], dec[near], (ny, nx), placement)
        for t in near[inside.all(axis=1)]:
            cover[t][fr["band"]].append(j)
        lower_level_off.update(near[inside[:, 0] & ~inside.all(axis=1)].tolist())
    bands_covered = [sum(bool(cover[t][b]) for b in BANDS) for t in range(n_t)]
    return {
        "labels": labels,
        "spectra": spectra_of,
        "ra": ra,
        "dec": dec,
        "cover": cover,
        "complete": [t for t, k in enumerate(bands_covered) if k == len(BANDS)],
        "outside": [t for t, k in enumerate(bands_covered) if k == 0],
        "incomplete": [t for t, k in enumerate(bands_covered) if 0 < k < len(BANDS)],
        "lower_level_off_frame": sorted(t for t in lower_level_off if bands_covered[t] < len(BANDS)),
        "placement": placement,
    }


# -- the build ---------------------------------------------------------------------------------------
FRAME_PATTERNS = ("frame-*.fits", "frame-*.fits.bz2")
# spectra are identified by their headers (PLATEID, MJD, FIBERID), not by their names: files named
# by objID or anything else are read too
SPECTRUM_PATTERNS = ("*.fits", "*.fit", "*.fits.gz")


def _files(d: Path, patterns: tuple[str, ...], what: str) -> tuple[list[Path], dict[str, str]]:
    """The files of ``d`` matching ``patterns``, and every other file there with why it is skipped."""
    if not d.is_dir():
        raise FitsError(f"{d}: no such directory of {what}")
    files = sorted({p for pat in patterns for p in d.glob(pat) if p.is_file()})
    skipped = {
        str(p): f"not read: its name matches none of {', '.join(patterns)}"
        for p in sorted(d.iterdir())
        if p.is_file() and p not in files and not p.name.startswith(".")
    }
    if not files:
        raise FitsError(f"{d}: no {what} ({' or '.join(patterns)}) found")
    return files, skipped


def build_cube(
    frames: str | Path,
    spectra: str | Path,
    out: str | Path,
    match_arcsec: float = 3.0,
    batch: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    client: Any = None,
    placement: str | None = None,
    grouping: str | None = None,
    healpix_order: int | None = None,
) -> dict[str, Any]:
    """Turn a directory of SDSS frames and one of spectra into a HiSS-Cube file; return the report.

    Scans files on ``client`` (``None``: Dask's in-process scheduler). Raises FitsError when no target ends
    up with whole cutouts in all five bands.
    """
    out = Path(out)
    placement = placement or config.get("io.cutout-placement")
    grouping = grouping or config.get("io.target-grouping")
    healpix_order = int(config.get("io.healpix-order") if healpix_order is None else healpix_order)
    if placement not in PLACEMENTS:
        raise FitsError(f"unknown cutout placement {placement!r}: expected one of {PLACEMENTS}")
    if grouping not in GROUPINGS:
        raise FitsError(f"unknown target grouping {grouping!r}: expected one of {GROUPINGS}")
    refuse_existing(out, overwrite)
    frame_files, frames_skipped = _files(Path(frames), FRAME_PATTERNS, "SDSS frames")
    spec_files, spectra_skipped = _files(Path(spectra), SPECTRUM_PATTERNS, "SDSS spectra")
    f_scan = _scan(scan_frame, frame_files, client, "scan frames", progress)
    s_scan = _scan(scan_spectrum, spec_files, client, "scan spectra", progress)
    good_f = [f for f in f_scan if f["ok"]]
    good_s = [s for s in s_scan if s["ok"]]
    plan = plan_targets(good_s, good_f, placement, grouping=grouping, healpix_order=healpix_order,
                        match_arcsec=match_arcsec)  # fmt: skip
    report: dict[str, Any] = {
        "frames": {"found": len(frame_files), "usable": len(good_f),
                   "rejected": {f["path"]: f["reason"] for f in f_scan if not f["ok"]},
                   "skipped": frames_skipped},
        "spectra": {"found": len(spec_files), "usable": len(good_s),
                    "rejected": {s["path"]: s["reason"] for s in s_scan if not s["ok"]},
                    "skipped": spectra_skipped},
        "targets": {"found": len(plan["cover"]), "written": len(plan["complete"]),
                    "outside_every_frame": len(plan["outside"]), "missing_bands": len(plan["incomplete"]),
                    "lower_level_off_frame": len(plan["lower_level_off_frame"])},
        "cutout_placement": placement,
        "target_grouping": grouping if grouping == "fof" else f"healpix order {healpix_order} (nested)",
    }  # fmt: skip
    if not plan["complete"]:
        raise FitsError(
            f"no target has whole cutouts in all five bands at every zoom level ({CUTOUT_SIZE} to "
            f"{image_size(N_ZOOM - 1)} px, each cut from its level's halved frame): {report['targets']} "
            f"(frames rejected: {len(report['frames']['rejected'])}, spectra rejected: "
            f"{len(report['spectra']['rejected'])}; files skipped: "
            f"{len(frames_skipped) + len(spectra_skipped)}, named in the report)"
        )
    _write_cube(out, plan, good_f, good_s, batch, progress)
    report["targets"]["spectra_per_target_max"] = max(len(plan["spectra"][t]) for t in plan["complete"])
    write_text(out.with_name(out.name + ".build.json"), json.dumps(report, indent=1))
    return report


def _scan(fn: Any, files: list[Path], client: Any, desc: str, progress: bool) -> list[dict[str, Any]]:
    """``fn`` (a frame's or a spectrum's scan) over ``files`` on ``client``, in order."""
    return list(map_ordered(fn, [str(p) for p in files], client, len(files), desc=desc, progress=progress))


def _write_cube(
    out: Path, plan: dict[str, Any], good_f: list, good_s: list, batch: int, progress: bool
) -> None:
    """The planned targets with whole cutouts (``plan["complete"]``) into a HiSS-Cube file at
    ``out``, complete or absent: the headers of the frames and spectra they use, then the targets
    in batches."""
    keep = plan["complete"]
    spec_of = [plan["spectra"][t] for t in keep]
    used_frames = sorted({j for t in keep for b in BANDS for j in plan["cover"][t][b]})
    frame_row = {j: k for k, j in enumerate(used_frames)}
    spec_rows = [i for ids in spec_of for i in ids]
    spec_row = {i: k for k, i in enumerate(spec_rows)}
    with atomic_output(out) as tmp:  # complete or absent
        with HissCubeWriter(
            tmp, n_targets=len(keep), n_spectra=len(spec_rows), n_images=len(used_frames)
        ) as w:
            w.write_image_headers(0, [Path(good_f[j]["path"]).name for j in used_frames],
                                  [good_f[j]["header"] for j in used_frames])  # fmt: skip
            w.write_spectrum_headers(0, [Path(good_s[i]["path"]).name for i in spec_rows],
                                     [good_s[i]["header"] for i in spec_rows])  # fmt: skip
            for a in _progress(range(0, len(keep), batch), progress):
                ts = list(range(a, min(a + batch, len(keep))))
                _write_batch(w, a, ts, keep, spec_of, plan, good_f, good_s, frame_row, spec_row)


def _progress(it: range, show: bool) -> Any:
    return track(it, len(it), "extract + write", enabled=show, unit="batches")


def _write_batch(
    w: HissCubeWriter,
    start: int,
    ts: list[int],
    keep: list[int],
    spec_of: list,
    plan: dict,
    frames: list[dict],
    spectra: list[dict],
    frame_row: dict,
    spec_row: dict,
) -> None:
    """Extract, combine and write targets ``ts`` (positions in ``keep``) at rows ``start:``."""
    by_frame: dict[int, list[tuple[int, float, float]]] = {}
    for k in ts:
        t = keep[k]
        for b in BANDS:
            for j in plan["cover"][t][b]:
                by_frame.setdefault(j, []).append((k, float(plan["ra"][t]), float(plan["dec"][t])))
    cut_tasks = [
        dask.delayed(frame_cutouts, pure=False)((frames[j]["path"], tg, plan["placement"]))
        for j, tg in by_frame.items()
    ]
    spec_ids = [i for k in ts for i in spec_of[k]]
    spec_tasks = [dask.delayed(spectrum_levels, pure=False)(spectra[i]["path"]) for i in spec_ids]
    cuts, specs = dask.compute(cut_tasks, spec_tasks)
    per: dict[tuple[int, str], list] = {}
    for j, found in zip(by_frame, cuts, strict=True):
        for k, band, levels in found:
            per.setdefault((k, band), []).append((j, levels))
    n = len(ts)
    shapes = [(n, 5, image_size(z), image_size(z)) for z in range(N_ZOOM)]
    images = [(np.full(sh, np.nan, np.float32), np.full(sh, np.nan, np.float32)) for sh in shapes]
    index = np.zeros((n, 5), dtype=np.int64)
    for r, k in enumerate(ts):
        for p, b in enumerate(BANDS):
            obs = per.get((k, b))
            if not obs:
                raise FitsError(
                    f"target at RA {plan['ra'][keep[k]]:.5f}: no {b} cutout came back from its frames"
                )
            for z, (img, ierr) in enumerate(images):  # epochs of a band: inverse-variance mean per level
                img[r, p], ierr[r, p] = combine_ivw([o[1][z][0] for o in obs], [o[1][z][1] for o in obs])
            index[r, p] = frame_row[obs[0][0]]
    got = dict(zip(spec_ids, specs, strict=True))
    spec_levels = []
    for z in range(N_ZOOM):  # the dense row of a level: the inverse-variance mean of its spectra there
        rows = [combine_ivw([got[i][z][0] for i in spec_of[k]], [got[i][z][1] for i in spec_of[k]])
                for k in ts]  # fmt: skip
        spec_levels.append(tuple(np.array([row[c] for row in rows], np.float32) for c in (0, 1)))
    w.write_targets(start, images, spec_levels, [[spec_row[i] for i in spec_of[k]] for k in ts], index)

"""Write HiSS-Cube files in the DATASET layout, as the reference implementation lays them out.

The synthetic survey and the FITS builder use this writer; :func:`write_tree` writes a file
again in the TREE layout (tests, and files for tools that expect it). Rows are written in
batches at fixed offsets, so a file of any size is written without holding it in memory.
A file without whole frames (the synthetic survey) keeps the semi-sparse *metadata* that
the dense cube's references point at, and leaves ``image_cutout_refs`` empty. Reference tables
(200 slots per row, nearly all empty) are gzip-compressed unless ``io.reference-compression`` is
null (HiSS-Cube's own, uncompressed layout); data are not compressed, unless asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from sfrdask import config
from sfrdask.errors import HissCubeFormatError
from sfrdask.io.atomic import atomic_output
from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.h5 import open_h5, parse_header
from sfrdask.io.hisscube.layout import observation_time
from sfrdask.io.hisscube.meta import read_target_metadata
from sfrdask.io.hisscube.tree import FRAME_ORDER, MIDPOINTS, cell_path, spatial_group, time_name, typed_group
from sfrdask.io.levels import N_ZOOM, image_size, spectrum_samples, stored_wavelengths, wavelength_grid


def serialise_header(header: dict[str, Any], max_bytes: int, what: str) -> bytes:
    """JSON of a FITS header, as HiSS-Cube stores it; refuses to truncate silently."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    if len(raw) > max_bytes:
        raise HissCubeFormatError(f"{what}: header is {len(raw)} bytes, the layout allows {max_bytes}")
    return raw


def rescale_image_header(header: dict[str, Any], zoom: int) -> dict[str, Any]:
    """The header of a frame at ``zoom``: pixel sizes doubled and reference pixels halved per level."""
    h = dict(header)
    f = 2**zoom
    for k in ("CRPIX1", "CRPIX2"):
        if k in h:
            h[k] = h[k] / f
    for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        if k in h:
            h[k] = h[k] * f
    for k in ("NAXIS1", "NAXIS2"):
        if k in h:
            h[k] = int(h[k]) // f
    return h


class HissCubeWriter:
    """Create a DATASET-layout file and fill it batch by batch.

    Used as (see :func:`sfrdask.synthetic.make_survey` and :func:`sfrdask.fits_to_cube.build_cube`)::

        with HissCubeWriter(path, n_targets=10, n_spectra=12, n_images=5) as w:
            w.write_image_headers(0, names, headers)
            w.write_spectrum_headers(0, names, headers)
            w.write_targets(0, image_levels, spectrum_levels, spectrum_index, image_index)
    """

    def __init__(
        self,
        path: str | Path,
        n_targets: int,
        n_spectra: int,
        n_images: int,
        compression: str | None = None,
        reference_compression: str | Literal["config"] | None = "config",
    ) -> None:
        self.path = Path(path)
        if reference_compression == "config":
            reference_compression = config.get("io.reference-compression")
        self.reference_compression = reference_compression
        self.n_targets, self.n_spectra, self.n_images = n_targets, n_spectra, n_images
        self._kw: dict[str, Any] = {"track_times": False}
        if compression:
            self._kw.update(compression=compression, shuffle=True)
        self.f = h5py.File(self.path, "w", libver="latest")
        self._create()

    # -- structure -------------------------------------------------------------------------
    def _ds(self, grp: h5py.Group, name: str, shape: tuple, dtype: Any, chunks: Any = None) -> h5py.Dataset:
        kw = dict(self._kw) if chunks is not None else {"track_times": False}
        if dtype is L.REF_DTYPE:  # 200 slots per row, nearly all empty: gzip makes them ~100x smaller
            kw = {"track_times": False}
            if self.reference_compression:
                kw.update(compression=self.reference_compression, shuffle=True)
                if self.reference_compression == "gzip":
                    kw["compression_opts"] = 1
        return grp.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, **kw)

    def _create(self) -> None:
        f, n = self.f, self.n_targets
        f.attrs.update(NX_class="NXroot", default="/dense_cube")
        f.attrs["image_count"] = np.int64(self.n_images)
        f.attrs["spectrum_count"] = np.int64(self.n_spectra)
        img_hdr = L.header_dtype(L.IMAGE_HEADER_BYTES)
        spec_hdr = L.header_dtype(L.SPECTRUM_HEADER_BYTES)
        f.create_dataset("fits_images_metadata", (self.n_images,), dtype=img_hdr, track_times=False)
        f.create_dataset("fits_spectra_metadata", (self.n_spectra,), dtype=spec_hdr, track_times=False)

        sparse = f.create_group(L.SPARSE)
        sparse.attrs["NX_class"] = "NXentry"
        dense = f.create_group(L.DENSE)
        dense.attrs.update(NX_class="NXentry", default="/dense_cube/0")
        dense.attrs["target_count"] = np.int64(n)
        for z in range(N_ZOOM):
            zg = sparse.create_group(str(z))
            images = zg.create_group("images")
            images.attrs.update(NX_class="NXdata", signal="data")
            self._ds(images, "metadata", (self.n_images,), img_hdr, chunks=(1,))
            self._ds(images, "db_index", (self.n_images,), L.IMAGE_INDEX_DTYPE)
            self._ds(images, "wcs", (self.n_images,), L.WCS_DTYPE)
            spectra = zg.create_group("spectra")
            spectra.attrs.update(NX_class="NXdata", signal="data", axes=[".", "wl"])
            self._ds(spectra, "metadata", (self.n_spectra,), spec_hdr, chunks=(1,))
            self._ds(spectra, "db_index", (self.n_spectra,), L.SPECTRUM_INDEX_DTYPE)
            wl = spectra.create_dataset("wl", data=stored_wavelengths(z), track_times=False)

            dz = dense.create_group(str(z))
            if z == 0:
                dz.attrs["default"] = "/dense_cube/0/ml_image"
            s, m = image_size(z), spectrum_samples(z)
            mi = dz.create_group("ml_image")
            mi.attrs.update(NX_class="NXdata", signal=f"cutout_3d_cube_zoom_{z}")
            if z == 0:
                mi.attrs["default"] = f"/dense_cube/0/ml_image/cutout_3d_cube_zoom_{z}"
            data = self._ds(mi, f"cutout_3d_cube_zoom_{z}", (n, 5, s, s), np.float32, chunks=(1, 5, s, s))
            err = self._ds(mi, "errors", (n, 5, s, s), np.float32, chunks=(1, 5, s, s))
            data.attrs["error_ds"] = err.ref
            data.attrs["interpretation"] = "image"
            self._ds(mi, "image_cutout_refs", (n, 5, L.MAX_REFS), L.REF_DTYPE, chunks=(1, 5, L.MAX_REFS))
            self._ds(mi, "image_metadata_refs", (n, 5, L.MAX_REFS), L.REF_DTYPE, chunks=(1, 5, L.MAX_REFS))
            ms = dz.create_group("ml_spectrum")
            ms.attrs.update(NX_class="NXdata", axes=[".", "wl"], signal=f"spectral_1d_cube_zoom_{z}")
            sdata = self._ds(ms, f"spectral_1d_cube_zoom_{z}", (n, m), np.float32, chunks=(1, m))
            serr = self._ds(ms, "errors", (n, m), np.float32, chunks=(1, m))
            sdata.attrs["error_ds"] = serr.ref
            sdata.attrs["interpretation"] = "spectrum"
            self._ds(ms, "spec_metadata_refs", (n, L.MAX_REFS), L.REF_DTYPE, chunks=(1, L.MAX_REFS))
            ms["wl"] = wl  # hard link, as in real files

    # -- metadata --------------------------------------------------------------------------
    def write_image_headers(
        self, start: int, paths: Sequence[str], headers: Sequence[dict[str, Any]]
    ) -> None:
        """Headers of whole frames (zoom 0 WCS); each zoom gets its rescaled copy."""
        for z in range(N_ZOOM):
            rows = np.zeros(len(headers), dtype=L.header_dtype(L.IMAGE_HEADER_BYTES))
            wcs = np.zeros(len(headers), dtype=L.WCS_DTYPE)
            for i, (p, h) in enumerate(zip(paths, headers, strict=True)):
                hz = rescale_image_header(h, z)
                rows[i] = (p.encode(), serialise_header(hz, L.IMAGE_HEADER_BYTES, f"image {p}"))
                for k in L.WCS_DTYPE.names:
                    if k in hz:
                        wcs[i][k] = hz[k]
            grp = self.f[f"{L.SPARSE}/{z}/images"]
            grp["metadata"][start : start + len(rows)] = rows
            grp["wcs"][start : start + len(rows)] = wcs
            if z == 0:
                self.f["fits_images_metadata"][start : start + len(rows)] = rows

    def write_spectrum_headers(
        self, start: int, paths: Sequence[str], headers: Sequence[dict[str, Any]]
    ) -> None:
        for z in range(N_ZOOM):
            rows = np.zeros(len(headers), dtype=L.header_dtype(L.SPECTRUM_HEADER_BYTES))
            for i, (p, h) in enumerate(zip(paths, headers, strict=True)):
                hz = dict(h, NAXIS1=spectrum_samples(z))
                rows[i] = (p.encode(), serialise_header(hz, L.SPECTRUM_HEADER_BYTES, f"spectrum {p}"))
            self.f[f"{L.SPARSE}/{z}/spectra/metadata"][start : start + len(rows)] = rows
            if z == 0:
                self.f["fits_spectra_metadata"][start : start + len(rows)] = rows

    # -- targets ---------------------------------------------------------------------------
    def write_targets(
        self,
        start: int,
        image_levels: Sequence[tuple[np.ndarray, np.ndarray]],
        spectrum_levels: Sequence[tuple[np.ndarray, np.ndarray]],
        spectrum_index: Sequence[Sequence[int]],
        image_index: np.ndarray,
    ) -> None:
        """Rows ``start:start+k`` of the dense cube at every zoom level.

        ``image_index[t, p]`` is the frame behind plane ``p`` of target ``t`` (planes in stored
        order); ``spectrum_index[t]`` lists the spectra combined into target ``t``, first one first.
        """
        k = len(spectrum_index)
        stop = start + k
        for z in range(N_ZOOM):
            data, err = image_levels[z]
            flux, ferr = spectrum_levels[z]
            if data.shape[0] != k or flux.shape[0] != k:
                raise HissCubeFormatError(f"{self.path}: batch of {k} targets, got {data.shape[0]} images")
            mi = self.f[L.image_group(z)]
            ms = self.f[L.spectrum_group(z)]
            mi[f"cutout_3d_cube_zoom_{z}"][start:stop] = data
            mi["errors"][start:stop] = err
            ms[f"spectral_1d_cube_zoom_{z}"][start:stop] = flux
            ms["errors"][start:stop] = ferr

            img_refs = np.zeros((k, 5, L.MAX_REFS), dtype=L.REF_DTYPE)
            img_refs["ds_path"][:, :, 0] = L.sparse_metadata(z, "images").encode()
            img_refs["ds_slice_idx"][:, :, 0] = image_index
            mi["image_metadata_refs"][start:stop] = img_refs
            spec_refs = np.zeros((k, L.MAX_REFS), dtype=L.REF_DTYPE)
            path = L.sparse_metadata(z, "spectra").encode()
            for t, idx in enumerate(spectrum_index):
                spec_refs["ds_path"][t, : len(idx)] = path
                spec_refs["ds_slice_idx"][t, : len(idx)] = idx
            ms["spec_metadata_refs"][start:stop] = spec_refs

    def close(self) -> None:
        if self.f:
            self.f.close()
            self.f = None

    def __enter__(self) -> HissCubeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the TREE layout (the 2021 paper's), written from a DATASET-layout file ----------------------
def write_tree(src: str | Path, out: str | Path, healpix_order: int = 15) -> Path:
    """Write the DATASET-layout file ``src`` again in the TREE layout at ``out``.

    Targets go into nested HEALPix cells of ``healpix_order`` by their first spectrum's plug
    position (cells created in pixel order, so the dense rows follow HiSS-Cube's walk); each
    target's spectra sit under their own time groups; each referenced frame is a strip of the
    cutouts it serves. As HiSS-Cube does, each cell's ``image_cutouts_<zoom>`` references are
    sorted by the frames' observation time (TAI) and the dense image planes follow that order
    (plane k: the frame of reference k), and every reference table of the dense cube stays empty.
    """
    src, out = Path(src), Path(out)
    meta = read_target_metadata(src)
    spec_refs, img_refs, spec_rows, img_rows, dense = _read_dataset_layout(src)
    ok = np.isfinite(meta["RA"]) & np.isfinite(meta["DEC"])
    if not ok.all():
        raise HissCubeFormatError(f"{src}: {int((~ok).sum())} target(s) lack PLUG_RA/PLUG_DEC to place them")
    cells, members, row_targets = _cells(meta, healpix_order)
    # planes in the order of their frames' observation time (ties: the stored order)
    frame_time = [observation_time(parse_header(bytes(r["header"]))) for r in img_rows[0]]

    def _by_time(t: int) -> list[int]:
        return sorted(range(5), key=lambda p: frame_time[int(img_refs[t, p]["ds_slice_idx"])])

    by_time = np.array([_by_time(t) for t in row_targets], dtype=np.int64).reshape(-1, 5)

    with atomic_output(out) as tmp, h5py.File(tmp, "w", libver="latest", track_order=True) as g:
        sparse = g.create_group(L.SPARSE, track_order=True)
        sparse.attrs["NX_class"] = "NXentry"
        for t in row_targets:  # spectrum cells first: their creation order is the dense row order
            spatial_group(sparse, cell_path(int(cells[t]), healpix_order))
        strips: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (zoom, frame) -> (target, plane)
        for t in row_targets:
            for p in range(5):
                for z in range(N_ZOOM):
                    strips.setdefault((z, int(img_refs[t, p]["ds_slice_idx"])), []).append((t, p))
        frame_ds = _write_frames(sparse, strips, img_rows, dense, cells, healpix_order)

        for r, t in enumerate(row_targets):
            cell = int(cells[t])
            node = spatial_group(sparse, cell_path(cell, healpix_order))
            for member in members[cell]:
                for slot in spec_refs[member]:
                    if not slot["ds_path"]:
                        continue
                    i = int(slot["ds_slice_idx"])
                    h0 = parse_header(bytes(spec_rows[0][i]["header"]))
                    time = typed_group(node, time_name(h0, f"spectrum{i}"), "time")
                    for z in range(N_ZOOM):
                        m = spectrum_samples(z)
                        res = typed_group(time, str(m), "resolution", res_zoom=z)
                        name = bytes(spec_rows[z][i]["path"]).decode() or f"spectrum-{i}.fits"
                        data = np.stack(
                            [wavelength_grid(z), dense[z][2][member], dense[z][3][member]], axis=1
                        ).astype(np.float32)
                        ds = res.create_dataset(name, data=data)
                        ds.attrs["mime-type"] = "spectrum"
                        ds.attrs["serialized_header"] = bytes(spec_rows[z][i]["header"])
            for z in range(N_ZOOM):
                refs = node.create_dataset(f"image_cutouts_{z}", (L.MAX_REFS,), dtype=h5py.regionref_dtype)
                s = image_size(z)
                for k, p in enumerate(by_time[r]):
                    frame = int(img_refs[t, p]["ds_slice_idx"])
                    j = strips[(z, frame)].index((t, int(p)))
                    refs[k] = frame_ds[(z, frame)].regionref[:, j * s : (j + 1) * s, :]

        _write_dense(g, dense, row_targets, by_time)
        for name, rows in (("fits_images_metadata", img_rows[0]), ("fits_spectra_metadata", spec_rows[0])):
            g.create_dataset(name, data=rows)
    return out


def _cells(meta: dict[str, Any], healpix_order: int) -> tuple[np.ndarray, dict[int, list[int]], list[int]]:
    """Each target's nested HEALPix cell, the targets of each cell, and one row per cell (HiSS-Cube's
    target: targets sharing a cell keep the first one's data), in pixel order."""
    import astropy.units as u  # astropy: only for the HEALPix index
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2**healpix_order, order="nested")
    cells = np.asarray(hp.lonlat_to_healpix(meta["RA"] * u.deg, meta["DEC"] * u.deg), dtype=np.int64)
    order = np.argsort(cells, kind="stable")
    first_of_cell: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for t in order:
        first_of_cell.setdefault(int(cells[t]), int(t))
        members.setdefault(int(cells[t]), []).append(int(t))
    return cells, members, [first_of_cell[c] for c in sorted(first_of_cell)]


def _read_dataset_layout(src: Path) -> tuple[Any, Any, dict, dict, dict]:
    """What the TREE file is written from: the spectrum and (first) image references, the sparse
    metadata rows of every zoom, and the dense data and errors of every zoom."""
    with open_h5(src) as f:
        spec_refs = f[f"{L.spectrum_group(0)}/spec_metadata_refs"][...]
        img_refs = f[f"{L.image_group(0)}/image_metadata_refs"][:, :, 0]
        spec_rows = {z: f[L.sparse_metadata(z, "spectra")][...] for z in range(N_ZOOM)}
        img_rows = {z: f[L.sparse_metadata(z, "images")][...] for z in range(N_ZOOM)}
        dense = {
            z: tuple(
                f[name][...]
                for name in (
                    L.image_dataset(z),
                    f"{L.image_group(z)}/errors",
                    L.spectrum_dataset(z),
                    f"{L.spectrum_group(z)}/errors",
                )
            )
            for z in range(N_ZOOM)
        }
    return spec_refs, img_refs, spec_rows, img_rows, dense


def _write_frames(
    sparse: h5py.Group,
    strips: dict[tuple[int, int], list[tuple[int, int]]],
    img_rows: dict,
    dense: dict,
    cells: np.ndarray,
    healpix_order: int,
) -> dict[tuple[int, int], h5py.Dataset]:
    """Each referenced frame as a strip of the cutouts it serves, under its frame-order cell, time,
    band and resolution groups, as HiSS-Cube nests them; returns the datasets by (zoom, frame)."""
    frame_ds: dict[tuple[int, int], h5py.Dataset] = {}
    for (z, frame), uses in sorted(strips.items()):
        h = parse_header(bytes(img_rows[z][frame]["header"]))
        band = str(h.get("FILTER", "")).strip().lower()
        s = image_size(z)
        first_t = uses[0][0]
        ipix = int(cells[first_t]) >> (2 * (healpix_order - FRAME_ORDER))
        node = spatial_group(sparse, cell_path(ipix, FRAME_ORDER))
        time = typed_group(node, time_name(h, f"frame{frame}"), "time")
        spectral = typed_group(time, str(MIDPOINTS.get(band, 0)), "spectral")
        res = typed_group(spectral, str((s * len(uses), s)), "resolution", NX_class="NXdata", res_zoom=z)
        name = bytes(img_rows[z][frame]["path"]).decode() or f"frame-{band}-{frame}.fits"
        ds = res.create_dataset(name, (s, s * len(uses), 2), np.float32)
        for j, (t, p) in enumerate(uses):
            d, e = dense[z][0][t, p], dense[z][1][t, p]
            ds[:, j * s : (j + 1) * s, 0] = d
            ds[:, j * s : (j + 1) * s, 1] = e
        ds.attrs.update({"mime-type": "image", "interpretation": "image"})
        ds.attrs["serialized_header"] = bytes(img_rows[z][frame]["header"])
        frame_ds[(z, frame)] = ds
    return frame_ds


def _write_dense(g: h5py.File, dense: dict, rows: list[int], planes: np.ndarray) -> None:
    """The dense cube of ``rows``, plane k of row r being stored plane ``planes[r, k]`` of the source,
    reference tables empty."""
    dense_grp = g.create_group(L.DENSE, track_order=True)
    dense_grp.attrs.update(NX_class="NXentry", default="/dense_cube/0")
    dense_grp.attrs["target_count"] = np.int64(len(rows))
    k = len(rows)
    for z in range(N_ZOOM):
        s, m = image_size(z), spectrum_samples(z)
        zg = dense_grp.create_group(str(z))
        mi = zg.create_group("ml_image")
        mi.attrs.update(NX_class="NXdata", signal=f"cutout_3d_cube_zoom_{z}")
        img = np.take_along_axis(dense[z][0][rows], planes[:, :, None, None], axis=1)
        err = np.take_along_axis(dense[z][1][rows], planes[:, :, None, None], axis=1)
        d = mi.create_dataset(f"cutout_3d_cube_zoom_{z}", data=img, chunks=(1, 5, s, s))
        e = mi.create_dataset("errors", data=err, chunks=(1, 5, s, s))
        d.attrs.update(error_ds=e.ref, interpretation="image")
        for name in ("image_cutout_refs", "image_metadata_refs"):
            mi.create_dataset(name, (k, 5, L.MAX_REFS), L.REF_DTYPE, chunks=(1, 5, L.MAX_REFS))
        ms = zg.create_group("ml_spectrum")
        ms.attrs.update(NX_class="NXdata", signal=f"spectral_1d_cube_zoom_{z}")
        sd = ms.create_dataset(f"spectral_1d_cube_zoom_{z}", data=dense[z][2][rows], chunks=(1, m))
        se = ms.create_dataset("errors", data=dense[z][3][rows], chunks=(1, m))
        sd.attrs.update(error_ds=se.ref, interpretation="spectrum")
        ms.create_dataset("spec_metadata_refs", (k, L.MAX_REFS), L.REF_DTYPE, chunks=(1, L.MAX_REFS))

"""Write HiSS-Cube files in the DATASET layout, as the reference implementation lays them out.

The synthetic survey uses this writer, and so will the FITS builder. Rows are written in
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
from sfrdask.io import layout as L
from sfrdask.io.levels import N_ZOOM, image_size, spectrum_samples, stored_wavelengths


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

    Used as (see :func:`sfrdask.synthetic.make_survey` and :func:`sfrdask.io.fits.build_cube`)::

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

"""HiSS-Cube's TREE layout: files written by sfrdask's converter with the layout facts of a real one
(../shared/docs/hisscube-tree-file-structure.txt), read as the DATASET file they came from."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from sfrdask import open_hisscube
from sfrdask.errors import HissCubeFormatError
from sfrdask.io.hisscube import describe
from sfrdask.io.hisscube import layout as L
from sfrdask.io.hisscube.meta import read_target_metadata
from sfrdask.io.hisscube.tree import cell_index, spectrum_cells
from sfrdask.io.hisscube.write import write_tree
from sfrdask.io.levels import BANDS, N_ZOOM
from sfrdask.io.store import open_store, write_store
from tests.io.hisscube.test_read import write_small_cube


@pytest.fixture
def pair(tmp_path):
    """A DATASET file with scrambled plane orders and two spectra per target, and its TREE twin."""
    src = write_small_cube(tmp_path / "d.h5", ["zigru", "urizg", "gzuir", "ugriz"], spectra_per_target=2)
    return src, write_tree(src, tmp_path / "t.h5")


def _null_refs():
    return np.array([h5py.RegionReference()] * 200, dtype=h5py.regionref_dtype)


def _by_plate(ds):
    """Rows in key order: the TREE layout orders targets by HEALPix cell, not as the source did."""
    key = (ds.PLATEID.astype("int64") * 100_000 + ds.MJD) * 10_000 + ds.FIBERID
    return ds.isel(object=np.argsort(key.values, kind="stable"))


def test_tree_has_the_reference_layout_facts(pair):
    _, tree = pair
    with h5py.File(tree, "r") as f:
        for z in range(N_ZOOM):  # the dense cube's reference tables are empty in this layout
            assert not f[f"{L.spectrum_group(z)}/spec_metadata_refs"][...]["ds_path"].any()
            assert not f[f"{L.image_group(z)}/image_metadata_refs"][...]["ds_path"].any()
        cells = spectrum_cells(f)
        assert len(cells) == f[L.DENSE].attrs["target_count"] == 4
        for node, times in cells:
            assert node.name.count("/") == 17  # /semi_sparse_cube + orders 0..15
            assert node.attrs["type"] == "spatial" and len(times) == 2
            for t in times:
                assert t.attrs["type"] == "time"
                assert [int(g.attrs["res_zoom"]) for g in t.values()] == [0, 1, 2, 3]
                spec = next(iter(t["4620"].values()))
                assert spec.shape == (4620, 3) and spec.attrs["mime-type"] == "spectrum"
                assert "PLATEID" in json.loads(spec.attrs["serialized_header"])
            refs = node["image_cutouts_0"]
            assert refs.shape == (200,) and refs.dtype == h5py.regionref_dtype
            frames = [f[r] for r in refs[...] if r]
            assert len(frames) == 5
            filters = [json.loads(fr.attrs["serialized_header"])["FILTER"] for fr in frames]
            assert sorted(filters) == sorted(BANDS)
            assert f[refs[0]][refs[0]].shape == (64, 64, 2)  # a region of 64 x 64 x 2 at zoom 0


@pytest.mark.parametrize(("zi", "zs"), [(0, 0), (1, 2), (3, 3)])
def test_tree_reads_as_the_dataset_file_it_came_from(pair, zi, zs):
    src, tree = pair
    a, b = _by_plate(open_hisscube(src, zi, zs)), _by_plate(open_hisscube(tree, zi, zs))
    assert a.attrs["format"].startswith("HiSS-Cube DATASET")
    assert b.attrs["format"].startswith("HiSS-Cube TREE")
    for k in ("PLATEID", "MJD", "FIBERID", "spec_plateid", "spec_mjd", "spec_fiberid", "RA", "DEC"):
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    assert (b.PLATEID.values > 0).all() and np.isfinite(b.RA.values).all()
    for v in ("image", "image_error", "spectrum", "spectrum_error"):
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    for i in range(5):  # planes carry 1 + their band's index: mapped through the referenced FILTERs
        np.testing.assert_array_equal(b.image.values[:, i], i + 1)


@pytest.mark.parametrize("zoom", [0, 2])
def test_fast_cell_index_walks_as_the_typed_walk(pair, zoom):
    """The one-call walk of link names finds the same cells, spectra and order as the walk that
    opens every group and reads its type (HiSS-Cube's own walk)."""
    _, tree = pair
    with h5py.File(tree, "r") as f:
        typed = [
            (node.name, [next(iter(t[str(4620 // 2**zoom)].values())).name for t in times], True)
            for node, times in spectrum_cells(f)
        ]
        assert cell_index(f, zoom, f"image_cutouts_{zoom}") == typed


def _ref_filters(f, node, zoom):
    refs = node[f"image_cutouts_{zoom}"][...]
    return "".join(json.loads(f[r].attrs["serialized_header"])["FILTER"] for r in refs if r)


def test_planes_follow_the_frames_observation_time(tmp_path):
    """HiSS-Cube's TREE order (../shared/docs/hisscube-format.md): a cell's references, and with
    them the dense planes, sorted by frame TAI; SDSS's scan order r, i, u, z, g, not wavelength."""
    scan = {b: 71.66 * k for k, b in enumerate("riuzg")}
    src = write_small_cube(tmp_path / "d.h5", ["zigru", "ugriz", "gzuir"], tai=scan)
    tree = write_tree(src, tmp_path / "t.h5")
    with h5py.File(tree, "r") as f:
        for node, _ in spectrum_cells(f):
            for z in range(N_ZOOM):
                assert _ref_filters(f, node, z) == "riuzg"
        for z in range(N_ZOOM):
            raw = f[L.image_dataset(z)][...]
            for k, b in enumerate("riuzg"):  # plane k: the band of reference k
                assert (raw[:, k] == 1 + BANDS.index(b)).all(), (z, k, b)
    assert describe(tree)["stored_band_order"] == "riuzg"
    for z in range(N_ZOOM):
        img = open_hisscube(tree, z, z).image.values
        for i in range(5):  # every band read back where it belongs
            assert (img[:, i] == i + 1).all(), (z, BANDS[i])


def _set_frame_header(f, node, zoom, band, **changes):
    """Change the serialized_header of the frame behind ``node``'s reference of ``band``."""
    for r in node[f"image_cutouts_{zoom}"][...]:
        if r and json.loads(f[r].attrs["serialized_header"])["FILTER"] == band:
            h = json.loads(f[r].attrs["serialized_header"])
            h.update(changes)
            f[r].attrs["serialized_header"] = json.dumps({k: v for k, v in h.items() if v is not None})
            return
    raise AssertionError(f"no {band} frame")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"FILTER": None}, r"FILTER '', expected one of u, g, r, i, z"),
     ({"FILTER": "r"}, r"more than one frame of band r")],
)  # fmt: skip
def test_plane_whose_band_cannot_be_proven_refuses_the_file(pair, changes, message):
    """A frame without FILTER, or two frames of one band: the message names target and level."""
    _, tree = pair
    with h5py.File(tree, "r+") as f:
        node, _ = spectrum_cells(f)[1]
        _set_frame_header(f, node, 2, "g", **changes)
    where = r"target \d+-\d+-\d+ \(cell /semi_sparse_cube/[\d/]+\): TREE layout, image zoom 2"
    with pytest.raises(HissCubeFormatError, match=rf"{where}.*{message}"):
        open_hisscube(tree, image_zoom=2)
    open_hisscube(tree, image_zoom=1)  # the other levels' frames are untouched


def test_band_without_a_referenced_frame_reads_nan(pair):
    _, tree = pair
    with h5py.File(tree, "r+") as f:
        node, _ = spectrum_cells(f)[0]
        refs = node["image_cutouts_0"]
        kept = [r for r in refs[...] if r and json.loads(f[r].attrs["serialized_header"])["FILTER"] != "g"]
        new = _null_refs()
        new[: len(kept)] = kept
        refs[...] = new
    ds = open_hisscube(tree)
    img = ds.image.values
    assert np.isnan(img[0, BANDS.index("g")]).all()
    assert np.isfinite(np.delete(img[0], BANDS.index("g"), axis=0)).all() and np.isfinite(img[1:]).all()
    assert float(ds.image_bad_fraction[0]) == pytest.approx(0.2)


def test_cell_without_cutouts_gets_no_row(pair):
    """HiSS-Cube writes no dense row for a cell whose cutouts are missing: later cells move up."""
    _, tree = pair
    with h5py.File(tree, "r") as f:
        first = spectrum_cells(f)[0][0].name
    with h5py.File(tree, "r+") as f:
        f[first]["image_cutouts_0"][...] = _null_refs()
    meta = read_target_metadata(tree)
    assert (meta["spec_plateid"][-1] == -1).all() and (meta["plane_of_band"][-1] == -1).all()
    assert (meta["spec_plateid"][:3] > 0).all()


def test_tree_errors_name_the_layout(pair, tmp_path):
    _, tree = pair
    with h5py.File(tree, "r+") as f:
        node, _ = spectrum_cells(f)[0]
        del node["image_cutouts_1"]
    with pytest.raises(HissCubeFormatError, match=r"TREE layout: .* no image_cutouts_1"):
        open_hisscube(tree, image_zoom=1)
    with h5py.File(tree, "r+") as f:
        del f[L.SPARSE]
        f.create_group(L.SPARSE)
    with pytest.raises(HissCubeFormatError, match=r"neither HiSS-Cube layout.*DATASET.*TREE"):
        open_hisscube(tree)


def test_synthetic_survey_as_tree_ingests_with_its_labels(cube, survey_dir, tmp_path):
    """The whole path a TREE user takes: info, then ingest with the catalogue join."""
    from sfrdask.io.catalog import read_catalog_dir

    tree = write_tree(cube, tmp_path / "tree.h5")
    info = describe(tree)
    # planes in the frames' observation order, as HiSS-Cube writes them: SDSS's scan order
    assert info["layout"] == "TREE" and info["stored_band_order"] == "riuzg"
    cat = read_catalog_dir(survey_dir)
    a = open_store(write_store(cube, tmp_path / "a.zarr", cat, (2,), (2,)), 2, 2)
    b = open_store(write_store(tree, tmp_path / "b.zarr", cat, (2,), (2,)), 2, 2)
    a, b = _by_plate(a), _by_plate(b)
    assert b.sizes["object"] == a.sizes["object"]
    for k in ("PLATEID", "AVG", "FLAG", "Z", "CLASS"):
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    np.testing.assert_array_equal(a.image.values, b.image.values)


def test_unprovable_planes_end_the_cli_with_one_line_and_exit_2(pair, tmp_path, capsys):
    """From the command line: one line naming the file, the target and the level; exit 2; no store."""
    from sfrdask.cli import main

    _, tree = pair
    with h5py.File(tree, "r+") as f:
        node, _ = spectrum_cells(f)[2]
        _set_frame_header(f, node, 0, "u", FILTER="g")
    assert main(["info", str(tree)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tree) in err[0] and "image zoom 0" in err[0] and "band g" in err[0], err
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(tree), "--out", str(out), "--image-zooms", "0", "--spectrum-zooms", "0"]) == 2
    assert "more than one frame of band g" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".s.zarr*"))

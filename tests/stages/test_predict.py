"""``sfrdask predict``: a catalogue row for every cube object, joinable with MPA-JHU, the same
test-split predictions as ``evaluate``, calibrated intervals, and bad input refused cleanly."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.table import Table, hstack, join

import sfrdask
from sfrdask.cli import main
from sfrdask.io.catalog import find_catalogs
from sfrdask.io.sfr_catalogue import BIT, SFR_COLUMNS, read_catalogue
from sfrdask.trained.modelling import evaluate

pytestmark = pytest.mark.slow
SFRDASK = Path(sys.executable).with_name("sfrdask")
KEYS = ["PLATEID", "MJD", "FIBERID"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SFRDASK), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def catalogue(trained, tmp_path_factory):
    """One catalogue from the tree, the network and the physics model together (an ensemble)."""
    out = tmp_path_factory.mktemp("cat") / "sfr.fits"
    return sfrdask.predict(
        [trained["gbt-both"], trained["spectrum-mlp"], trained["physics-halpha"]],
        out,
        cube=trained["cube"],
        catalog=trained["survey"],
        client="threads",
    )


def test_physics_classes_and_their_flags(catalogue, trained):
    """The physics member classifies every spectrum; its classes set the AGN, broad-line and
    upper-limit bits, and star formation dominates the synthetic galaxies."""
    from sfrdask.bpt import AGN_CLASSES, CLASSES

    cat = read_catalogue(catalogue.catalogue)
    cls = cat["PHYS_CLASS"].to_numpy(str)
    assert set(cls) <= set(CLASSES)
    flags = cat["FLAGS"].to_numpy()
    assert ((flags & BIT["AGN_LINES"]) > 0).tolist() == np.isin(cls, AGN_CLASSES).tolist()
    assert ((flags & BIT["BROAD_LINE"]) > 0).tolist() == (cls == "BROAD_LINE").tolist()
    assert ((flags & BIT["SFR_UPPER_LIMIT"]) > 0).tolist() == (cls == "NO_HALPHA").tolist()
    gal = (cat["CLASS"] == "GALAXY").to_numpy()
    assert np.isin(cls[gal], ["SF", "SF_LOW_SN"]).mean() > 0.5
    assert (cls[(cat["CLASS"] == "STAR").to_numpy()] != "SF").all()
    # the SDSS pipeline's rule beside it: its line is laxer than Kauffmann et al. (2003), so every
    # BPT star-forming spectrum (four lines detected) is STARFORMING or STARBURST there too
    sub = np.char.replace(cat["SDSS_SUBCLASS"].fillna("").astype(str).to_numpy(str), " BROADLINE", "")
    assert set(sub) <= {"", "STARFORMING", "STARBURST", "AGN", "BROADLINE"}
    assert np.isin(sub[cls == "SF"], ["STARFORMING", "STARBURST"]).all() and (cls == "SF").any()


def test_one_row_per_spectrum_with_the_documented_columns(catalogue, trained):
    """The default form: every spectrum of every target is a row (MPA-JHU's rows are spectra)."""
    cat = read_catalogue(catalogue.catalogue)
    with h5py.File(trained["cube"], "r") as f:
        n = f["dense_cube/0/ml_image/cutout_3d_cube_zoom_0"].shape[0]
        n_spectra = int(f.attrs["spectrum_count"])
    assert len(cat) == catalogue.rows == n_spectra > n  # the survey has repeat targets
    assert sorted(set(cat["TARGET"])) == list(range(n))
    per_target = cat.groupby("TARGET")
    assert (per_target.size() == per_target["N_VISITS"].first()).all()
    assert (per_target["MEDIAN"].nunique() == 1).all()  # one prediction per target, on each visit
    assert not cat.duplicated(list(KEYS)).any()
    assert list(cat.columns[:12]) == [*KEYS, "RA", "DEC", "Z", "CLASS", *SFR_COLUMNS]
    assert np.isfinite(cat[["MEDIAN", "P2P5", "P16", "P84", "P97P5"]].to_numpy()).all()
    assert (cat["P2P5"] <= cat["P16"]).all() and (cat["P16"] <= cat["MEDIAN"]).all()
    assert (cat["MEDIAN"] <= cat["P84"]).all() and (cat["P84"] <= cat["P97P5"]).all()
    assert {"MEDIAN_GBT_BOTH", "MEDIAN_SPECTRUM_MLP", "MEDIAN_PHYSICS_HALPHA"} <= set(cat.columns)
    hdr = Table.read(catalogue.catalogue, hdu=1, unit_parse_strict="silent").meta
    assert hdr["SFRDASK"] == sfrdask.__version__ and "gbt-both" in hdr["MODEL"]
    from astropy.io import fits

    with fits.open(catalogue.catalogue) as hdul:
        h = hdul[1].header
        units = {h[f"TTYPE{i}"]: h.get(f"TUNIT{i}") for i in range(1, h["TFIELDS"] + 1)}
    assert units["MEDIAN"] == units["P16"] == "log(solMass/yr)"
    # stars (their class is in no MPA-JHU row, nor in the cube) are flagged as a class without SFR
    # labels; objects outside the selection as such
    truth = pd.read_csv(trained["survey"] / "truth_objects.csv").set_index("object")
    stars = (truth.loc[cat["TARGET"], "class"] == "STAR").to_numpy()
    assert stars.any() and (cat.loc[stars, "FLAGS"] & BIT["NO_SFR_CLASS"]).all()
    assert not (cat.loc[cat["CLASS"].isin(["GALAXY", "QSO"]), "FLAGS"] & BIT["NO_SFR_CLASS"]).any()
    assert ((cat["SPLIT"] == "none") == ((cat["FLAGS"] & BIT["NOT_SELECTED"]) > 0)).all()
    assert ((cat["FLAGS"] & BIT["USED_IN_FIT"]) > 0).sum() == cat["SPLIT"].isin(["train", "validation"]).sum()


def test_the_catalogue_joins_mpajhu_on_plate_mjd_fiber(catalogue, trained):
    cat = Table.read(catalogue.catalogue, hdu=1, unit_parse_strict="silent")
    paths = find_catalogs(trained["survey"])
    gal_info = Table.read(paths["gal_info"], hdu=1)
    totsfr = Table.read(paths["totsfr"], hdu=1)
    keys = KEYS
    for k in keys:
        gal_info[k] = gal_info[k].astype(np.int64)
    joined = join(cat, gal_info[keys], keys=keys, join_type="inner")
    labelled = (np.asarray(cat["FLAGS"]) & BIT["HAS_LABEL"]) > 0
    assert len(joined) >= labelled.sum() > 0
    # every MPA-JHU row of a cube spectrum finds its row, repeat visits included
    ds = sfrdask.open_hisscube(trained["cube"])
    spec = np.stack([ds[f"spec_{k.lower()}"].values.ravel() for k in keys], axis=1)
    cube_keys = {tuple(int(v) for v in row) for row in spec if row[0] >= 0}
    info_keys = {tuple(int(v) for v in r) for r in gal_info[keys]}
    assert len(joined) == len(cube_keys & info_keys)
    # gal_totsfr has no keys of its own: its rows follow gal_info's, as in MPA-JHU DR7
    sfr = hstack([gal_info[keys], totsfr[["AVG", "FLAG"]]])
    both = join(cat, sfr, keys=keys, join_type="inner")
    good = (both["FLAG"] == 0) & (both["AVG"] > -99)
    assert good.sum() > 100
    # the joined MPA-JHU value is the label the model was trained on: predictions track it
    r = np.corrcoef(np.asarray(both["MEDIAN"])[good], np.asarray(both["AVG"])[good])[0, 1]
    assert r > 0.5


@pytest.mark.parametrize("model", ["gbt-both", "spectrum-mlp", "physics-halpha"])
def test_test_split_predictions_equal_evaluate(catalogue, trained, model):
    cat = read_catalogue(catalogue.catalogue)
    ev = evaluate(trained[model], trained["store"], split="test")
    column = f"MEDIAN_{model.upper().replace('-', '_')}"
    by_target = cat.drop_duplicates("TARGET").set_index("TARGET")
    got = by_target.loc[ev["objects"], column].to_numpy()
    np.testing.assert_allclose(got, ev["predicted"], atol=2e-4)
    assert (by_target.loc[ev["objects"], "SPLIT"] == "test").all()


def test_intervals_cover_within_binomial_noise(catalogue):
    """Split conformal guarantees coverage >= nominal on average over calibration sets; for one
    calibration set of n_cal objects and n checked objects, the empirical coverage scatters by about
    sqrt(p (1 - p) / n) from each side. Allow 3 standard deviations of both. The fixture's
    validation split is small (< sfrdask.predict.pool-below labelled objects): the intervals rest on
    validation + test, and each object's coverage is checked with a calibration fitted without it."""
    from sfrdask.trained.calibration import POOLED_CHECK

    cal = catalogue.calibration
    rows = cal[(cal["split"] == POOLED_CHECK) & (cal["group"] == "all")]
    assert set(rows["model"]) >= {"gbt-both", "spectrum-mlp", "physics-halpha"}
    hdr = Table.read(catalogue.catalogue, hdu=1, unit_parse_strict="silent").meta
    assert hdr["CALIB"].endswith("validation + test splits")
    for _, row in rows.iterrows():
        n = row["n"]
        n_cal = 0.5 * 0.8 * n  # 4 of 5 folds calibrate; half of those give the scores
        for p, col in ((0.68, "coverage_68"), (0.95, "coverage_95")):
            tol = 3 * math.sqrt(p * (1 - p)) * (1 / math.sqrt(n) + 1 / math.sqrt(n_cal))
            assert abs(row[col] - p) <= tol, (row["model"], col, row[col], tol)
        assert row["width_68"] < row["width_95"]
        # the synthetic survey's truth: labels scatter around it, so intervals for labels cover it too
        assert row["coverage_68_true"] >= row["coverage_68"] - 0.1


def test_wide_intervals_are_flagged_and_reported_by_class(catalogue):
    import dask as _dask

    cat = read_catalogue(catalogue.catalogue)
    limit = float(_dask.config.get("sfrdask.predict.wide-interval-dex"))
    wide = (cat["P97P5"] - cat["P2P5"]).to_numpy() > limit
    assert ((cat["FLAGS"].to_numpy() & BIT["WIDE_INTERVAL"]) > 0).tolist() == wide.tolist()
    md = (catalogue.catalogue.parent / "sfr.calibration.md").read_text()
    notes = md.split("## Read before using the intervals")[1]
    for cls in ("GALAXY", "QSO"):
        rows = cat.drop_duplicates("TARGET")
        width = (rows["P97P5"] - rows["P2P5"])[rows["CLASS"] == cls]
        said = re.search(rf"class {cls}: median 95% interval width ([0-9.]+) dex", notes)
        assert said and abs(float(said.group(1)) - np.median(width)) <= 0.006  # float32 columns, 2 decimals


def test_calibration_report_and_plots_written_beside_the_catalogue(catalogue, trained):
    here = catalogue.catalogue.parent
    md = (here / "sfr.calibration.md").read_text()
    assert "gbt-both" in md and "coverage_68" in md and "class GALAXY" in md and "decile 10" in md
    for m in ("gbt-both", "spectrum-mlp", "physics-halpha"):
        assert (here / f"sfr.calibration-{m}.png").read_bytes()[:4] == b"\x89PNG"
        assert not list(trained[m].glob("calibration*"))  # predict only reads a run directory
    assert not list(trained["runs"].glob("calibration*"))
    assert catalogue.main_sequence is not None and catalogue.main_sequence.exists()


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def test_a_run_that_moved_predicts_from_another_directory(trained, tmp_path, monkeypatch):
    """Trained with relative paths in one directory; the run directory and its store then move
    together, and predict runs from a third directory with the run directory read-only: the store
    is found relative to the run directory, and predict writes nothing into it. When the store
    moves on its own, the error names every path tried, and --train-store points at it."""
    from sfrdask.errors import StoreError
    from sfrdask.trained.modelling import train

    first = tmp_path / "first"
    first.mkdir()
    shutil.copytree(trained["store"], first / "store.zarr")
    monkeypatch.chdir(first)
    with dask.config.set(scheduler="threads"):
        run = Path(train("store.zarr", "gbt-both", 3, 3, out="runs", progress=False).run_dir)
    recorded = json.loads((run / "metrics.json").read_text())["inputs"]
    assert Path(recorded["store"]).is_absolute() and recorded["store_from_run"].startswith("..")
    moved = tmp_path / "moved"
    (first).rename(moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir = moved / run
    before = _snapshot(moved / "runs")
    for p in [run_dir, *run_dir.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        with dask.config.set(scheduler="threads"):
            r = sfrdask.predict(run_dir, "sfr.fits", store=moved / "store.zarr", client="threads")
        assert r.rows > 0 and (elsewhere / "sfr.calibration.md").exists()
        hdr = Table.read(elsewhere / "sfr.fits", hdu=1, unit_parse_strict="silent").meta
        assert hdr["TRAINST"] == str((moved / "store.zarr").resolve()) and Path(hdr["RUNS"]).is_absolute()
        assert _snapshot(moved / "runs") == before

        (moved / "store.zarr").rename(tmp_path / "store-now-here.zarr")
        with pytest.raises(StoreError) as e:
            sfrdask.predict(run_dir, "again.fits", store=tmp_path / "store-now-here.zarr", client="threads")
        for tried in (first / "store.zarr", moved / "store.zarr", Path("store.zarr")):
            assert str(tried) in str(e.value)
        assert "--train-store" in str(e.value)
        r = sfrdask.predict(
            run_dir, "again.fits", store=tmp_path / "store-now-here.zarr",
            train_store=tmp_path / "store-now-here.zarr", client="threads",
        )  # fmt: skip
        assert r.rows > 0
    finally:
        for p in [run_dir, *run_dir.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize(("ext", "rows"), [(".csv", "spectrum"), (".parquet", "target")])
def test_other_formats_from_a_store(trained, tmp_path, ext, rows):
    """Both row forms: a row per spectrum (the default), or one per target (``rows="target"``)."""
    out = tmp_path / f"sfr{ext}"
    with dask.config.set(scheduler="threads"):
        r = sfrdask.predict(trained["gbt-both"], out, store=trained["store"], rows=rows)
    cat = read_catalogue(out)
    st = sfrdask.open_store(trained["store"], None, None)
    spectra = int((st.spec_plateid.values >= 0).sum())
    assert len(cat) == r.rows == (spectra if rows == "spectrum" else st.sizes["object"])
    assert cat["TARGET"].nunique() == st.sizes["object"] and (cat["N_VISITS"] >= 1).all()
    assert np.isfinite(cat["P16"]).all()


def test_an_ensemble_led_by_a_spectrum_only_model_reads_the_images_too(trained, tmp_path):
    with dask.config.set(scheduler="threads"):
        r = sfrdask.predict(
            [trained["spectrum-mlp"], trained["gbt-both"]], tmp_path / "e.csv", store=trained["store"]
        )
    cat = read_catalogue(r.catalogue)
    np.testing.assert_allclose(
        cat["MEDIAN"], (cat["MEDIAN_SPECTRUM_MLP"] + cat["MEDIAN_GBT_BOTH"]) / 2, atol=1e-5
    )


def test_on_a_cluster_with_progress_lines_in_the_log(trained, client, tmp_path, capsys):
    """On a real LocalCluster, as `sfrdask predict` runs it: the same predictions as in-process,
    and progress as plain lines (stderr is no terminal here)."""
    from sfrdask.runtime import Runtime
    from sfrdask.stages.predict import Params, run

    def params(name: str) -> Params:
        return Params(runs=(trained["gbt-both"],), out=tmp_path / name, store=trained["store"], plots=False)

    a = read_catalogue(run(Runtime.of(client), params("a.csv")).catalogue)
    err = capsys.readouterr().err
    assert "calibration (store.zarr): " in err and "tasks (100%" in err and "\r" not in err
    b = read_catalogue(run(Runtime.of("synchronous"), params("b.csv")).catalogue)
    np.testing.assert_allclose(a["MEDIAN"], b["MEDIAN"], atol=1e-6)


# ---- bad input: one line naming the file and what was expected, exit 2, nothing written ----


def _bad(capsys, run: Path, cube: Path, out: Path, *extra: str) -> str:
    code = main(["predict", str(run), "--cube", str(cube), "--out", str(out), "--cluster", "threads", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not out.exists() and not [f for f in out.parent.iterdir() if f.name.startswith(f".{out.name}")]
    return lines[0]


def test_bad_runs_are_refused(trained, tmp_path, capsys):
    out = tmp_path / "o" / "sfr.fits"
    out.parent.mkdir()
    run = tmp_path / "run"
    shutil.copytree(trained["gbt-both"], run)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "sfrdask_version": "0.1.0"}))
    msg = _bad(capsys, run, trained["cube"], out)
    assert "sfrdask 0.1.0" in msg and str(run) in msg
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "model.npz").unlink()
    assert "no trained model" in _bad(capsys, run, trained["cube"], out)

    phys = tmp_path / "phys"
    shutil.copytree(trained["physics-halpha"], phys)
    saved = json.loads((phys / "model.json").read_text())
    saved["identity"]["model"] = "no-such-model"
    (phys / "model.json").write_text(json.dumps(saved))
    msg = _bad(capsys, phys, trained["cube"], out)
    assert "model.json" in msg and "no-such-model" in msg


def test_a_cube_without_the_trained_level_is_refused(trained, tmp_path, capsys):
    cube = tmp_path / "levels01.h5"
    shutil.copy(trained["cube"], cube)
    with h5py.File(cube, "r+") as f:
        del f["dense_cube/3"]
    out = tmp_path / "sfr.fits"
    msg = _bad(capsys, trained["gbt-both"], cube, out, "--catalog", str(trained["survey"]))
    assert str(cube) in msg and ("zoom" in msg or "dense_cube/3" in msg)


def test_an_existing_output_needs_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "sfr.fits"
    out.write_text("keep me")
    code = main(["predict", str(trained["gbt-both"]), "--store", str(trained["store"]), "--out", str(out)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me"


def test_missing_flag_columns_warn_and_go_on(trained, tmp_path):
    """A store ingested without a catalogue has no labels: HAS_LABEL cannot be set. Say so, then
    write the catalogue anyway."""
    bare = tmp_path / "bare.zarr"
    with dask.config.set(scheduler="threads"):
        sfrdask.write_store(trained["cube"], bare, image_zooms=(3,), spectrum_zooms=(3,))
    out = tmp_path / "sfr.csv"
    p = _cli(
        "predict", str(trained["gbt-both"]), "--store", str(bare), "--out", str(out), "--cluster", "threads"
    )
    assert p.returncode == 0, p.stderr
    assert "flag HAS_LABEL" in p.stderr and "unavailable" in p.stderr
    assert "\r" not in p.stderr  # progress as plain lines when not on a terminal
    cat = read_catalogue(out)
    assert cat["TARGET"].nunique() == 700 and not ((cat["FLAGS"] & BIT["HAS_LABEL"]) > 0).any()

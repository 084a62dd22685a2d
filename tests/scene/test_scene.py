"""The Scene experiment on its synthetic stand-in (same file layout as the Kaggle download)."""

from __future__ import annotations

import subprocess
import sys

import dask
import pandas as pd
import pytest

from sfrdask.models import ModelError, list_models
from sfrdask.scene import make_scene, read_scene, run_scene
from sfrdask.scene.data import SceneError, fixed_split

pytestmark = pytest.mark.slow
MODELS = {"scene-tree-audio", "scene-tree-both", "scene-nn-audio", "scene-cnn-image", "scene-early-fusion",
          "scene-intermediate-fusion", "scene-late-fusion"}  # fmt: skip


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene") / "data", objects=320, seed=3, size=32)


@pytest.fixture(scope="module")
def results(scene_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("scene-out")
    with dask.config.set(scheduler="threads"):
        r = run_scene(scene_dir, out=out, size=16, epochs=15, progress=False)
    return r, out


def test_stand_in_has_the_download_layout(scene_dir):
    df = pd.read_csv(scene_dir / "dataset.csv")
    assert [f"MFCC_{i}" for i in range(1, 105)] == [c for c in df.columns if c.startswith("MFCC_")]
    assert set(df.CLASS1) == {"indoors", "outdoors"} and df.CLASS2.nunique() == 8
    for cls, name in zip(df.CLASS2[:5], df.IMAGE[:5], strict=True):
        assert (scene_dir / cls / name).is_file()
    again = make_scene(scene_dir.parent / "again", objects=320, seed=3, size=32)
    assert (again / "dataset.csv").read_bytes() == (scene_dir / "dataset.csv").read_bytes()  # same seed


def test_loader_reads_audio_images_and_both_tasks(scene_dir):
    with dask.config.set(scheduler="threads"):
        s = read_scene(scene_dir, size=16, progress=False)
    assert s.audio.shape == (320, 104) and s.images.shape == (320, 3, 16, 16)
    assert 0 <= s.images.min() and s.images.max() <= 1
    assert s.classes["CLASS1"] == ["indoors", "outdoors"] and len(s.classes["CLASS2"]) == 8
    split = fixed_split(s.files)
    assert (fixed_split(s.files[::-1])[::-1] == split).all()  # depends on the file, not the row order
    assert 0.6 < (split == "train").mean() < 0.8


def test_every_model_on_both_tasks(results):
    r, out = results
    t = r["table"]
    assert set(t.model) == MODELS and set(t.task) == {"CLASS1", "CLASS2"} and len(t) == 14
    acc = t.set_index(["task", "model"]).accuracy
    chance = {"CLASS1": 0.5, "CLASS2": 1 / 8}
    for (task, model), a in acc.items():
        assert a > chance[task], (task, model, a)
    # the stand-in is built so that one audio feature is weak and the full vectors are strong
    assert acc["CLASS2", "scene-nn-audio"] > acc["CLASS2", "scene-tree-audio"] + 0.2
    assert acc["CLASS2", "scene-intermediate-fusion"] >= acc["CLASS2", "scene-nn-audio"]
    assert acc.loc["CLASS2"].max() < 1.0  # occlusion, motion, lighting and noisy audio: nothing saturates
    for task in ("CLASS1", "CLASS2"):
        assert (out / f"confusion_{task}.png").stat().st_size > 0
    assert "scene-late-fusion" in (out / "results.md").read_text()


def test_classifiers_have_a_registry_of_their_own():
    from sfrdask.scene.models import SCENE_MODELS
    from sfrdask.trained.modelling import train

    assert {m.name for m in SCENE_MODELS.list()} == MODELS
    assert not MODELS & {m.name for m in list_models()}
    with pytest.raises(ModelError, match="sfrdask scene"):
        train("unused.zarr", "scene-cnn-image", image_zoom=2)
    with pytest.raises(ModelError, match="SFR models: `sfrdask models`"):
        SCENE_MODELS.get("gbt-both")
    assert SCENE_MODELS.get("scene-late-fusion").inputs == ("audio", "image")


def test_bad_scene_input_is_one_line(scene_dir, tmp_path):
    with pytest.raises(SceneError, match=r"no dataset\.csv"):
        read_scene(tmp_path)
    df = pd.read_csv(scene_dir / "dataset.csv")
    (tmp_path / "dataset.csv").write_text(df.drop(columns=["CLASS2"]).to_csv(index=False))
    with pytest.raises(SceneError, match="CLASS2"):
        read_scene(tmp_path)
    df.to_csv(tmp_path / "dataset.csv", index=False)  # images missing
    cmd = [sys.executable, "-m", "sfrdask", "scene", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
           "--cluster", "threads"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1

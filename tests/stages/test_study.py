"""``sfrdask study``: the resolution study as a stage, its trainings as Dask tasks, resumable."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sfrdask
from sfrdask.errors import SfrdaskError
from tests.conftest import kill_a_busy_worker_during

SMALL = dict(models=("gbt", "early-fusion"), image_zooms=(2, 3), spectrum_zooms=(2, 3), pairs="diagonal",
             seeds=(0, 1), epochs=2, batch_size=16, tune_trials=0, control="", curves=False,
             epoch_limit=4)  # fmt: skip
N_SMALL = 3 * 2 * 2 + 1 * 2 * 2  # gbt-image/-spectrum/-both at 2 levels, early fusion at 2 matched pairs


@pytest.mark.slow
def test_study_trains_the_grid_resumes_and_reports(cube, survey_dir, tmp_path):
    out = tmp_path / "study"
    r = sfrdask.study(cube, survey_dir, out, client="threads", **SMALL)
    assert r.planned == r.trainings == r.trained_now == N_SMALL
    lines = (out / "work" / "done.jsonl").read_text().splitlines()
    assert len(lines) == N_SMALL and len({json.dumps([json.loads(x)[k] for k in ("model", "image_zoom",
               "spectrum_zoom", "seed")]) for x in lines}) == N_SMALL  # fmt: skip
    for f in ("study.md", "study.csv", "study.json", "stages.csv", "r2_heatmap.png", "pareto.png"):
        assert (out / f).stat().st_size > 0, f
    text = (out / "study.md").read_text()
    assert "R^2 by level" in text and "16 px / 1155" in text and "8 px / 577" in text
    stages = json.loads((out / "work" / "prepared.json").read_text())["stages"]
    assert {"read/image/2", "ingest/all", "filter", "deblend/image/3", "pca/spectrum/2"} <= set(stages)
    again = sfrdask.study(cube, survey_dir, out, client="threads", **SMALL)  # resumes: nothing left
    assert again.trained_now == 0 and again.trainings == N_SMALL
    assert (out / "work" / "done.jsonl").read_text().splitlines() == lines
    report = sfrdask.study(cube, survey_dir, out, client="threads", report_only=True, **SMALL)
    assert report.trained_now == 0 and report.trainings == N_SMALL
    # trainings recorded on another preparation (another cube, other steps) do not count
    rows = [json.loads(x) for x in lines]
    rows[0]["prepared"] = rows[1]["prepared"] = "another-preparation"
    (out / "work" / "done.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    redo = sfrdask.study(cube, survey_dir, out, client="threads", **SMALL)
    assert redo.trained_now == 2 and redo.trainings == N_SMALL


@pytest.mark.slow
def test_a_worker_killed_during_the_study_loses_nothing_and_repeats_nothing(cube, survey_dir, tmp_path):
    out = tmp_path / "study"
    r = kill_a_busy_worker_during(lambda c: sfrdask.study(cube, survey_dir, out, client=c, **SMALL))
    assert r.trainings == N_SMALL
    rows = [json.loads(x) for x in (out / "work" / "done.jsonl").read_text().splitlines()]
    keys = [(x["model"], x["image_zoom"], x["spectrum_zoom"], x["seed"]) for x in rows]
    assert len(keys) == len(set(keys)) == N_SMALL  # every cell once
    assert all(x["worker"].startswith("tcp://") for x in rows)  # trained on the workers
    assert (out / "performance.html").stat().st_size > 0


@pytest.mark.slow
def test_ctrl_c_then_rerun_trains_only_what_was_missing(cube, survey_dir, tmp_path):
    out = tmp_path / "study"
    args = [sys.executable, "-m", "sfrdask", "study", "--cube", str(cube), "--catalog", str(survey_dir),
            "--out", str(out), "--models", "gbt,early-fusion", "--image-levels", "2,3",
            "--spectrum-levels", "2,3", "--pairs", "diagonal", "--seeds", "0,1", "--epochs", "2",
            "--batch-size", "16", "--cluster", "local", "--tune-trials", "0", "--control", "",
            "--no-curves", "--epoch-limit", "4"]  # fmt: skip
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = out / "work" / "done.jsonl"
    deadline = time.monotonic() + 300
    while not (record.exists() and len(record.read_text().splitlines()) >= 2):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    before = {json.dumps(json.loads(x), sort_keys=True) for x in record.read_text().splitlines()}
    assert 2 <= len(before) < N_SMALL
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = [json.loads(x) for x in record.read_text().splitlines()]
    assert len(after) == N_SMALL and before <= {json.dumps(x, sort_keys=True) for x in after}
    trained = re.findall(r"^study: \d+/(\d+) trainings", r.stderr, flags=re.M)
    assert len(trained) == int(trained[0]) == N_SMALL - len(before)  # only what was missing


FULL = dict(models=("intermediate-fusion",), image_zooms=(2, 3), spectrum_zooms=(2, 3),
            pairs="diagonal", seeds=(0, 1), epochs=2, epoch_limit=4, batch_size=8, tune_trials=2,
            tune_epochs=2, control="intermediate-fusion", curve_models=1, curve_zooms=(3,),
            curve_fractions=(0.5,))  # fmt: skip


@pytest.mark.slow
def test_the_study_tunes_continues_controls_compares_and_projects(cube, survey_dir, tmp_path):
    out = tmp_path / "study"
    r = sfrdask.study(cube, survey_dir, out, client="threads", **FULL)
    rows = [json.loads(x) for x in (out / "work" / "done.jsonl").read_text().splitlines()]
    # seeds x (cells, control, curve point), the cells and curve points with both stems
    assert r.trainings == r.planned == len(rows) == 2 * (2 * 2 + 1 + 1 * 2)
    assert {x["setup"] for x in rows} == {"", "control", "frac0.5"}
    assert {(x["setup"], x["stem"]) for x in rows} == {("", ""), ("", "average"), ("control", ""),
                                                       ("frac0.5", ""), ("frac0.5", "average")}  # fmt: skip
    nets = [x for x in rows if x["model"] == "intermediate-fusion"]
    assert all(x["stop"] in ("patience", "cap", "diverged") for x in nets)
    assert all(len(x["val_curve"]) == x["epochs"] <= 4 and x["epochs"] >= 2 for x in nets)
    assert all(x["stop"] != "cap" or x["epochs"] == 4 for x in nets)  # a cap below the limit was continued
    assert all(x["tuned"] and len(x["test_predicted"]) == x["n_test"] for x in nets)
    chosen = json.loads((out / "work" / "tuning" / "chosen.json").read_text())
    assert chosen["budget"] == 2 and len(chosen["cells"]) == 2  # the two cells; the control is not tuned
    lowest = chosen["cells"]["intermediate-fusion-image3-spectrum3"]["params"]
    assert all(
        x["tuned"] == lowest for x in nets if x["setup"] == "control"
    )  # the recipe of what it reproduces
    text = (out / "study.md").read_text()
    for section in ("## Recommendation", "## R^2 with 95% intervals", "## Control cell", "## Convergence",
                    "## Tuned settings", "## Learning curves",
                    "## Stem chosen by validation loss"):  # fmt: skip
        assert section in text, section
    for f in ("r2_intervals.png", "learning_curves.png", "pareto.png", "r2_heatmap.png"):
        assert (out / f).stat().st_size > 0, f
    # --report-only reports what the record holds, whatever the command line's defaults say
    again = sfrdask.study(
        cube, survey_dir, out, client="threads", report_only=True, seeds=(0, 1, 2), epochs=60
    )
    assert again.trainings == again.planned == r.trainings and again.trained_now == 0
    text = (out / "study.md").read_text()
    assert "seeds 0, 1;" in text and "its cap of 2 epochs" in text and "2 Optuna trials" in text


def test_a_study_that_would_train_nothing_is_refused_before_it_starts(cube, survey_dir, tmp_path):
    for bad, message in ((dict(seeds=()), "--seeds must be at least 1"),
                         (dict(epochs=0), "--epochs must be at least 1"),
                         (dict(tune_trials=-1), "--tune-trials must be at least 0"),
                         (dict(control="intermedate-fusion"), "unknown model 'intermedate-fusion'"),
                         (dict(curve_fractions=(1.5,)), "--curve-fractions must lie between 0 and 1"),
                         ):  # fmt: skip
        with pytest.raises(SfrdaskError, match=message):
            sfrdask.study(cube, survey_dir, tmp_path / "study", client="synchronous",
                          **{**SMALL, **bad})  # fmt: skip
    assert not (tmp_path / "study").exists()  # refused before anything was written


def test_the_preparation_digest_does_not_depend_on_where_the_study_lives(tmp_path):
    """A committed record resumes wherever it is checked out: the preparation's digest names the
    store, cube and catalogue by their role."""
    from sfrdask.stages import get_stage
    from sfrdask.stages.study_prepare import _by_role, _steps

    texts = []
    for where in (tmp_path / "a", Path("bench-output/resolution")):
        cube = where / "work" / "survey" / "survey.h5"
        p = get_stage("study").params(cube=cube, catalog=cube.parent, out=where)
        store = where / "work" / "store.zarr"
        texts.append([_by_role(params, p, store) for *_, params in _steps(p, store)])
    assert texts[0] == texts[1] and "STORE" in texts[0][0] and str(tmp_path) not in "".join(texts[0])


@pytest.mark.slow
def test_one_seed_on_too_few_test_objects_is_refused_before_any_training(cube, survey_dir, tmp_path):
    """The bootstrap's minimum (100 test objects with one seed) is checked once the selection is
    known, before tuning or training, not when the report is written hours later."""
    with pytest.raises(SfrdaskError, match="at least 100 test objects with one seed"):
        sfrdask.study(cube, survey_dir, tmp_path / "study", client="synchronous", **{**SMALL, "seeds": (0,)})
    assert not (tmp_path / "study" / "work" / "done.jsonl").exists()
    assert not (tmp_path / "study" / "work" / "tuning").exists()

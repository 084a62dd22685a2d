"""The record of finished trainings: what a resumed study skips and ``--report-only`` reports."""

from __future__ import annotations

import json

from sfrdask.resolution.grid import Training
from sfrdask.resolution.record import Record


def test_each_training_once_the_later_row_winning(tmp_path):
    rows = [  # rows from before seeds were recorded count as seed 0
        {"model": "image-cnn", "image_zoom": 2, "spectrum_zoom": None, "r2": 0.3},
        {"model": "image-cnn", "image_zoom": 2, "spectrum_zoom": None, "seed": 1, "r2": 0.4},
        {"model": "image-cnn", "image_zoom": 2, "spectrum_zoom": None, "seed": 1, "r2": 0.5},
    ]
    (tmp_path / "done.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = Record(tmp_path / "done.jsonl")
    assert sorted(done.rows) == [Training("image-cnn", 2, None, 0), Training("image-cnn", 2, None, 1)]
    assert done.rows[Training("image-cnn", 2, None, 1)]["r2"] == 0.5


def test_adding_rewrites_the_record_whole_through_a_temporary_file(tmp_path):
    r = Record(tmp_path / "done.jsonl")
    assert len(r) == 0 and not (tmp_path / "done.jsonl").exists()
    row = {"model": "gbt-both", "image_zoom": 2, "spectrum_zoom": 2, "seed": 1, "r2": 0.5}
    r.add(row)
    r.add({**row, "r2": 0.6})  # the same training again: replaced, not added
    again = Record(tmp_path / "done.jsonl")
    assert len(again) == 1 and Training("gbt-both", 2, 2, 1) in again
    assert again.rows[Training("gbt-both", 2, 2, 1)]["r2"] == 0.6
    assert [p.name for p in tmp_path.iterdir()] == ["done.jsonl"]

"""The info stage: what a cube holds, read from its metadata, with the catalogue's coverage."""

from __future__ import annotations

import h5py

from sfrdask.stages import info
from sfrdask.stages.base import execute


def test_info_counts_what_the_file_holds(cube, survey_dir):
    r = execute(info.STAGE, info.Params(cube, catalog=survey_dir))
    with h5py.File(cube, "r") as f:  # the counts as the file records them, read without sfrdask
        targets = int(f["dense_cube"].attrs["target_count"])
        spectra = int(f.attrs["spectrum_count"])
    assert r.info["targets"] == targets and r.info["spectrum_count"] == spectra
    assert list(r.info["zoom_levels"]) == [0, 1, 2, 3] and "labels" in r.info
    assert str(targets) in "\n".join(info.report(r))

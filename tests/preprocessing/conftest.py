from __future__ import annotations

import pytest

from sfrdask import read_catalog_dir, write_store
from sfrdask.preprocessing import select_objects


@pytest.fixture(scope="module")
def store(cube, survey_dir, tmp_path_factory):
    """A store with images at zoom 0 and 3, spectra at 1 and 3, labels, and a selection."""
    out = tmp_path_factory.mktemp("pre") / "s.zarr"
    write_store(cube, out, catalog=read_catalog_dir(survey_dir), image_zooms=(0, 3), spectrum_zooms=(1, 3))
    select_objects(out)
    return out

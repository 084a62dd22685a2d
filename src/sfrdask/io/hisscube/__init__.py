"""The HiSS-Cube backend: one package for the one input format.

- :mod:`.read`: :func:`open_hisscube` (the cube at an image and a spectrum level as a lazy
  ``xarray.Dataset``, reading its targets' metadata itself), :func:`describe`, :func:`check_levels`,
  and the xarray backend (``xr.open_dataset(path, engine="hisscube")``);
- :mod:`.meta`: each target's metadata (spectrum headers, band order), either layout;
- :mod:`.tree`: the TREE layout (the 2021 paper's), :mod:`.layout` the DATASET layout's names;
- :mod:`.h5`: opening files and checking what they hold, with errors that name them;
- :mod:`.write`: writing files in the DATASET layout (and TREE again), as the reference does.

It is the first row of :data:`sfrdask.io.formats.FORMATS`, through the functions every input format
offers (``recognises``, ``read_metadata``, ``open_dataset``, ``check_levels``). A new input format is
a package (or module) of its own beside this one, and a row there.
"""

from pathlib import Path

import h5py

from sfrdask.io.hisscube.meta import read_target_metadata
from sfrdask.io.hisscube.read import HissCubeBackendEntrypoint, check_levels, describe, open_hisscube


def recognises(path: Path) -> bool:
    """An HDF5 file (its signature, not its name)."""
    return Path(path).is_file() and h5py.is_hdf5(path)


read_metadata = read_target_metadata  # the input-format functions (sfrdask.io.formats)
open_dataset = open_hisscube

__all__ = [
    "HissCubeBackendEntrypoint",
    "check_levels",
    "describe",
    "open_dataset",
    "open_hisscube",
    "read_metadata",
    "recognises",
]

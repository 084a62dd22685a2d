"""Training: data from the store, the training loop, DDP on Dask workers, trees and physics fits.

Training and scoring a registered model end to end (its run directory, the results table) is
:mod:`sfrdask.trained.modelling`, a layer above. The names below load when first used, so that
:mod:`sfrdask.training.settings` (read by the command line) does not load torch.
"""

import importlib

_LAZY = {
    "ChunkDistributedSampler": "sfrdask.training.data",
    "Normaliser": "sfrdask.training.data",
    "StoreDataset": "sfrdask.training.data",
    "TrainSpec": "sfrdask.training.spec",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sfrdask.training' has no attribute {name!r}")


__all__ = sorted(_LAZY)

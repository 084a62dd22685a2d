"""Training: data from the store, the training loop, DDP on Dask workers, trees and physics fits.

Training and scoring a registered model end to end (its run directory, the results table) is
:mod:`sfrdask.modelling`, a layer above.
"""

from sfrdask.training.data import ChunkDistributedSampler, Normaliser, StoreDataset
from sfrdask.training.spec import TrainSpec

__all__ = ["ChunkDistributedSampler", "Normaliser", "StoreDataset", "TrainSpec"]

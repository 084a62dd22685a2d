"""Training and evaluation: data from the store, the training loop, DDP on Dask workers."""

from sfrdask.training.data import ChunkDistributedSampler, Normaliser, StoreDataset
from sfrdask.training.run import evaluate, train
from sfrdask.training.spec import TrainSpec

__all__ = ["ChunkDistributedSampler", "Normaliser", "StoreDataset", "TrainSpec", "evaluate", "train"]

"""Training and evaluation: data from the store, the training loop, DDP on Dask workers."""

from sfrdask.train.data import ChunkDistributedSampler, Normaliser, StoreDataset
from sfrdask.train.run import evaluate, train
from sfrdask.train.spec import TrainSpec

__all__ = ["ChunkDistributedSampler", "Normaliser", "StoreDataset", "TrainSpec", "evaluate", "train"]

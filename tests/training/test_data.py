"""Training data from the store: chunk-ordered sampling, rank slices, training-split statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
import zarr

from sfrdask import open_store
from sfrdask.errors import StoreError
from sfrdask.training.data import (
    ChunkDistributedSampler,
    Normaliser,
    StoreDataset,
    input_sources,
    resolve_target,
    split_objects,
    target_values,
)


def _dataset(store, split="train", inputs=("image", "spectrum"), image_zoom=3):
    src = input_sources(store, inputs, image_zoom, 3)
    y = target_values(store, "AVG")
    objs = split_objects(store, split, y)
    ds = StoreDataset(store, objs, src, y[objs])
    return ds


class _Fake:
    """Only what the sampler reads: the length and the blocks."""

    def __init__(self, sizes):
        edges = np.cumsum([0, *sizes])
        self.blocks = [np.arange(a, b) for a, b in itertools.pairwise(edges)]

    def __len__(self):
        return int(self.blocks[-1][-1] + 1)


def test_ranks_split_every_global_batch_like_one_process():
    data = _Fake([7, 13, 5, 11, 9, 10])
    one = list(ChunkDistributedSampler(data, batch_size=8, num_replicas=1, seed=3))
    ranks = [
        list(ChunkDistributedSampler(data, batch_size=4, num_replicas=2, rank=r, seed=3)) for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(one) // 2
    for step in range(len(one) // 8):
        together = ranks[0][4 * step : 4 * step + 4] + ranks[1][4 * step : 4 * step + 4]
        assert together == one[8 * step : 8 * step + 8]
    assert len(set(one)) == len(one) == 8 * (len(data) // 8)  # no repeats, incomplete batch dropped


def test_epoch_order_follows_chunk_windows():
    data = _Fake([10] * 12)
    s = ChunkDistributedSampler(data, batch_size=5, seed=0, window=2)
    s.set_epoch(4)
    order = s.order()
    block_of = np.repeat(np.arange(12), 10)
    for w in range(6):  # each run of 20 positions comes from exactly two whole blocks
        blocks = set(block_of[order[20 * w : 20 * w + 20]])
        assert len(blocks) == 2
    s.set_epoch(5)
    assert not np.array_equal(s.order(), order)
    s.set_epoch(4)
    assert np.array_equal(s.order(), order)


@pytest.mark.parametrize("image_zoom, group", [(0, "image/0"), (3, "clean/3")])
def test_batches_hold_the_stored_rows(store, image_zoom, group):
    ds = _dataset(store, image_zoom=image_zoom)
    assert ds.sources["image"].group == group  # deblended cutouts where they exist
    ds.normaliser = Normaliser.fit(ds.sample(), ds.y)
    pos = [5, 0, len(ds) - 1, 17, 6]
    batch = ds.__getitems__(pos)
    images = xr.open_zarr(store, group=group, zarr_format=3, consolidated=False).image.values
    spectra = open_store(store, image_zoom=None, spectrum_zoom=3).spectrum.values
    objs = ds.objects[pos]
    np.testing.assert_array_equal(batch["image"].numpy(), ds.normaliser.apply("image", images[objs]))
    np.testing.assert_array_equal(batch["spectrum"].numpy(), ds.normaliser.apply("spectrum", spectra[objs]))
    np.testing.assert_allclose(ds.normaliser.untarget(batch["target"].numpy()), ds.y[pos], rtol=1e-6)
    if image_zoom == 0:  # 64 px rows fill several 1 MB chunks: blocks follow them
        chunk = zarr.open_array(store / "image/0/image", mode="r").chunks[0]
        assert len(ds.blocks) > 2
        for b in ds.blocks:
            assert len(set(ds.objects[b] // chunk)) == 1


def test_statistics_come_from_the_training_split_only(store):
    train, test = _dataset(store, "train"), _dataset(store, "test")
    norm = Normaliser.fit(train.sample(), train.y)
    assert norm.stats["target_mean"] == pytest.approx(train.y.mean())
    assert norm.stats["target_mean"] != pytest.approx(np.r_[train.y, test.y].mean(), abs=1e-12)
    z = norm.apply("spectrum", train.sample()["spectrum"])
    assert abs(z.mean()) < 0.05 and 0.8 < z.std() < 1.2  # standardised on these very objects


def test_targets_and_missing_features(store):
    assert resolve_target("AVR") == "AVG" and resolve_target("mass") == "LGM_AVG"
    ssfr = target_values(store, "SSFR")
    np.testing.assert_allclose(ssfr, target_values(store, "AVG") - target_values(store, "LGM_AVG"))
    with pytest.raises(StoreError, match="unknown target"):
        resolve_target("colour")
    with pytest.raises(StoreError, match=r"no 'pca/image/2' group \(needed by x\); run `sfrdask pca`"):
        input_sources(store, ("image_pca",), 2, 2, who="x")
    with pytest.raises(StoreError, match="spectrum zoom level 0"):
        input_sources(store, ("spectrum",), 3, 0)

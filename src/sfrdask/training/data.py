"""Training data straight from the zarr store, read whole chunks at a time.

:class:`StoreDataset` serves the objects of one split. It reads the store block by block (a block
is one zarr chunk of the largest input along ``object``), keeps decoded, normalised blocks in an
LRU cache of ``sfrdask.train.cache-mb`` (all of them, when they fit: later epochs then read
nothing), and hands out whole batches through ``__getitems__``. :class:`ChunkDistributedSampler`
orders each epoch so that I/O stays sequential: blocks shuffled, then objects shuffled within a
window of ``shuffle-chunks`` blocks; with several DDP ranks, every global batch is cut into one
equal slice per rank, so N ranks with batch b see exactly what one process with batch N*b sees.

Normalisation statistics come from the training split only (:class:`Normaliser`):
images ``(asinh(x / noise_b) - mean_b) / std_b`` per band (noise from the MAD), spectra
``(asinh(x / s) - mean_w) / std_w`` per wavelength, PCA features and the target standardised;
NaN left after the bad-pixel cut become 0 (the training mean).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset, DistributedSampler

from sfrdask import config
from sfrdask.errors import StoreError
from sfrdask.io.catalog import resolve_label
from sfrdask.io.levels import wavelength_grid
from sfrdask.io.store import missing_level, open_store, store_levels
from sfrdask.preprocessing.compact import compact_group
from sfrdask.preprocessing.context import context_features, rest_frame, usable_redshift
from sfrdask.preprocessing.quality import selected_objects, selection_digest

TARGETS = {
    "AVG": "log10 SFR [Msun/yr] (MPA-JHU AVG, 'AVR')",
    "LGM_AVG": "log10 stellar mass [Msun]",
    "SSFR": "log10 sSFR = SFR / M* [1/yr]",
}
# axis labels of each target, for plots (units in brackets; every target is a log10, so errors are dex)
AXIS_LABELS = {
    "AVG": r"log SFR [M$_\odot$ yr$^{-1}$]",
    "LGM_AVG": r"log M$_*$ [M$_\odot$]",
    "SSFR": r"log sSFR [yr$^{-1}$]",
}
NORM_SAMPLE = 2048  # training objects used for the image and spectrum statistics


def resolve_target(name: str) -> str:
    """``AVR``/``SFR`` -> ``AVG``, ``MASS`` -> ``LGM_AVG``, ``SSFR``; anything else is refused."""
    t = "SSFR" if name.upper() in ("SSFR", "LOGSSFR") else resolve_label(name)
    if t not in TARGETS:
        raise StoreError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)} (or AVR, SFR, MASS)")
    return t


def target_values(store: str | Path, target: str) -> np.ndarray:
    """The target for every object of the store (NaN where unknown)."""
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    need = ("AVG", "LGM_AVG") if target == "SSFR" else (target,)
    for col in need:
        if col not in root:
            extra = " (stellar mass: ingest with the totlgm table)" if col.startswith("LGM") else ""
            raise StoreError(f"{store}: no {col} column for target {target}{extra}")
    if target == "SSFR":
        return root["AVG"].values.astype(np.float64) - root["LGM_AVG"].values.astype(np.float64)
    return root[target].values.astype(np.float64)


@dataclass(frozen=True)
class Source:
    """Where one model input lives in the store, or its values when computed (the context)."""

    name: str
    group: str
    var: str
    objects: np.ndarray | None = None  # store index of each row, for groups of some objects only
    # (PCA features, the compact selection, a deblended compact selection); None: row = object
    values: np.ndarray | None = None  # computed per store object instead of read (context)
    transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (rows, objects) -> rows

    def array(self, store: Path) -> zarr.Array | np.ndarray:
        if self.values is not None:
            return self.values
        return zarr.open_array(store / self.group / self.var, mode="r", zarr_format=3)


def _store_column(store: Path, name: str) -> np.ndarray | None:
    path = store / name
    return zarr.open_array(path, mode="r", zarr_format=3)[:] if (path / "zarr.json").exists() else None


def store_context(store: str | Path, parts: tuple[str, ...]) -> np.ndarray:
    """The context matrix of every store object (:mod:`sfrdask.preprocessing.context`)."""
    store = Path(store)
    z = _store_column(store, "Z")
    if z is None:
        n = zarr.open_array(store / "object", mode="r", zarr_format=3).shape[0]
        z = np.full(n, np.nan)
    return context_features(z, _store_column(store, "CLASS"), parts)


def input_sources(
    store: str | Path,
    inputs: tuple[str, ...],
    image_zoom: int | None,
    spectrum_zoom: int | None,
    who: str = "",
    context: tuple[str, ...] = (),
    rest_frame: bool = False,
) -> dict[str, Source]:
    """Locate each input (deblended images when present), or say which stage must run first.

    ``context`` names the parts of the ``context`` input; ``rest_frame`` resamples the spectra
    to the rest frame as they are read (:mod:`sfrdask.preprocessing.context`)."""
    store = Path(store)
    levels = store_levels(store)
    who = f" (needed by {who})" if who else ""
    out = {}
    for name in inputs:
        if name == "context":
            out[name] = Source(name, "", "", values=store_context(store, context))
            continue
        modality = name.split("_")[0]
        zoom = image_zoom if modality == "image" else spectrum_zoom
        if zoom is None:
            raise StoreError(f"input {name}{who} needs --{modality}-zoom")
        if zoom not in levels[modality]:
            raise StoreError(missing_level(store, modality, zoom, levels[modality]) + who)
        if name.endswith("_pca"):
            group = f"pca/{modality}/{zoom}"
            if not (store / group / "zarr.json").exists():
                raise StoreError(f"{store}: no '{group}' group{who}; run `sfrdask pca` on this store first")
            out[name] = Source(name, group, "features", _group_objects(store, group))
        elif name == "image" and (store / f"clean/{zoom}" / "zarr.json").exists():
            g = zarr.open_group(store / f"clean/{zoom}", mode="r", zarr_format=3)
            if g.attrs.get("selection") != selection_digest(selected_objects(store)):
                raise StoreError(
                    f"{store}: clean/{zoom} was made from another selection; rerun `sfrdask deblend`"
                )
            objs = _group_objects(store, f"clean/{zoom}")
            full = objs.size == zarr.open_array(store / "object", mode="r", zarr_format=3).shape[0]
            out[name] = Source(name, f"clean/{zoom}", "image", None if full else objs)
        elif compact := compact_group(store, modality, zoom):
            out[name] = Source(name, compact, modality, _group_objects(store, compact))
        else:
            out[name] = Source(name, f"{modality}/{zoom}", modality)
    if rest_frame and "spectrum" in out:
        z = _store_column(store, "Z")
        if z is None or not usable_redshift(z).any():
            raise StoreError(f"{store}: no usable Z column, which rest-frame spectra need")
        to_rest = functools.partial(_to_rest, z=z, grid=wavelength_grid(spectrum_zoom))
        out["spectrum"] = dataclasses.replace(out["spectrum"], transform=to_rest)
    return out


def _to_rest(x: np.ndarray, objects: np.ndarray, z: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return rest_frame(x, z[objects], grid)


def _group_objects(store: Path, group: str) -> np.ndarray:
    return np.asarray(zarr.open_array(store / group / "object", mode="r", zarr_format=3)[:])


def split_objects(store: str | Path, split: str, y: np.ndarray) -> np.ndarray:
    """Selected objects of one split whose target ``y`` (one value per store object) is known."""
    idx = selected_objects(store, split)
    return idx[np.isfinite(y[idx])]


class Normaliser:
    """Training-split statistics and the transforms built on them (see the module docstring)."""

    def __init__(self, stats: dict[str, np.ndarray]):
        self.stats = {k: np.asarray(v, np.float64) for k, v in stats.items()}

    @classmethod
    def fit(cls, sample: dict[str, np.ndarray], y: np.ndarray) -> Normaliser:
        """``sample``: raw inputs of (a sample of) the training objects; ``y``: all training targets."""
        st: dict[str, np.ndarray] = {"target_mean": np.mean(y), "target_std": np.std(y) or 1.0}
        for name, x in sample.items():
            # images in float32: a 2,048-object sample at 64 px is 168 MB instead of 336 MB per copy
            x = np.asarray(x, np.float32 if name == "image" else np.float64)
            if name == "image":
                bands = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
                med = np.nanmedian(bands, axis=1, keepdims=True)
                noise = 1.4826 * np.nanmedian(np.abs(bands - med), axis=1)
                noise = np.where(np.isfinite(noise) & (noise > 0), noise, 1.0)
                t = np.arcsinh(bands / noise[:, None])
                st["image_noise"], st["image_mean"], st["image_std"] = (
                    noise,
                    np.nanmean(t, 1),
                    np.nanstd(t, 1),
                )
            elif name == "spectrum":
                s = np.nanmedian(np.abs(x))
                s = s if np.isfinite(s) and s > 0 else 1.0
                t = np.arcsinh(x / s)
                st["spectrum_scale"] = np.array(s)
                st["spectrum_mean"], st["spectrum_std"] = np.nanmean(t, 0), np.nanstd(t, 0)
            else:
                st[f"{name}_mean"], st[f"{name}_std"] = np.nanmean(x, 0), np.nanstd(x, 0)
        for k in [k for k in st if k.endswith("_std")]:
            st[k] = np.where(np.isfinite(st[k]) & (st[k] > 0), st[k], 1.0)
        for k in [k for k in st if k.endswith("_mean")]:
            st[k] = np.where(np.isfinite(st[k]), st[k], 0.0)
        return cls(st)

    def apply(self, name: str, x: np.ndarray) -> np.ndarray:
        s = self.stats
        x = np.asarray(x, np.float64)
        if name == "image":
            shape = (1, -1, 1, 1)
            t = np.arcsinh(x / s["image_noise"].reshape(shape))
            t = (t - s["image_mean"].reshape(shape)) / s["image_std"].reshape(shape)
        elif name == "spectrum":
            t = (np.arcsinh(x / s["spectrum_scale"]) - s["spectrum_mean"]) / s["spectrum_std"]
        else:
            t = (x - s[f"{name}_mean"]) / s[f"{name}_std"]
        return np.where(np.isfinite(t), t, 0.0).astype(np.float32)

    def target(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, np.float64) - self.stats["target_mean"]) / self.stats["target_std"]).astype(
            np.float32
        )

    def untarget(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, np.float64) * self.stats["target_std"] + self.stats["target_mean"]

    def state(self) -> dict[str, torch.Tensor]:
        """As tensors, so it travels inside a ``weights_only`` checkpoint."""
        return {k: torch.as_tensor(v) for k, v in self.stats.items()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Normaliser:
        return cls({k: v.numpy() for k, v in state.items()})


class StoreDataset(Dataset):
    """The objects ``objects`` (store indices, sorted) with the inputs ``sources`` and targets ``y``."""

    def __init__(
        self,
        store: str | Path,
        objects: np.ndarray,
        sources: dict[str, Source],
        y: np.ndarray,
        normaliser: Normaliser | None = None,
        cache_mb: float | None = None,
    ):
        self.store = Path(store)
        self.objects = np.asarray(objects, np.int64)
        if np.any(np.diff(self.objects) <= 0):
            raise ValueError("objects must be sorted and unique (store order keeps reads sequential)")
        self.sources = sources
        self.y = np.asarray(y, np.float64)
        self.normaliser = normaliser
        self.cache_mb = float(config.get("train.cache-mb") if cache_mb is None else cache_mb)
        self._arrays = {name: src.array(self.store) for name, src in sources.items()}
        self.shapes = {name: tuple(a.shape[1:]) for name, a in self._arrays.items()}
        self.block_of, self.blocks = self._blocking()
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_bytes = 0

    def _blocking(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Positions grouped by the store chunk (of the largest input) that holds them."""
        stored = [n for n, src in self.sources.items() if src.values is None]  # not the computed context
        big = max(stored, key=lambda n: math.prod(self.shapes[n]))
        step = self._arrays[big].chunks[0]
        rows = self.objects if self.sources[big].objects is None else self._rows(self.sources[big])
        key = rows // step
        _, first = np.unique(key, return_index=True)
        edges = [*first.tolist(), self.objects.size]
        blocks = [np.arange(a, b) for a, b in itertools.pairwise(edges)]
        block_of = np.repeat(np.arange(len(blocks)), [b.size for b in blocks])
        return block_of, blocks

    def __len__(self) -> int:
        return self.objects.size

    def _rows(self, src: Source, objs: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``src``'s group holding ``objs`` (default: all of this dataset's objects)."""
        objs = self.objects if objs is None else objs
        rows = np.searchsorted(src.objects, objs)
        if rows.size and (rows.max() >= src.objects.size or not np.array_equal(src.objects[rows], objs)):
            raise StoreError(
                f"{self.store}: {src.group} lacks some of the objects; rerun the stage that writes it"
            )
        return rows

    def raw_block(self, k: int) -> dict[str, np.ndarray]:
        """Inputs of block ``k`` as stored (one contiguous read per input)."""
        objs = self.objects[self.blocks[k]]
        out = {}
        for name, src in self.sources.items():
            rows = objs if src.objects is None else self._rows(src, objs)
            a, b = int(rows[0]), int(rows[-1]) + 1
            out[name] = np.asarray(self._arrays[name][a:b])[rows - a]
            if src.transform is not None:
                out[name] = src.transform(out[name], objs)
        return out

    def _block(self, k: int) -> dict[str, np.ndarray]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        norm = self.normaliser
        if norm is None:
            raise RuntimeError("fit or set a Normaliser before reading batches")
        data = {n: norm.apply(n, x) for n, x in self.raw_block(k).items()}
        data["target"] = norm.target(self.y[self.blocks[k]])
        self._cache[k] = data
        self._cache_bytes += sum(v.nbytes for v in data.values())
        while len(self._cache) > 1 and self._cache_bytes > self.cache_mb * 2**20:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= sum(v.nbytes for v in old.values())
        return data

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        pos = np.asarray(positions, np.int64)
        blocks = self.block_of[pos]
        parts: dict[str, list[np.ndarray]] = {}
        order = []
        for k in np.unique(blocks):
            sel = pos[blocks == k]
            local = sel - self.blocks[k][0]
            for name, arr in self._block(int(k)).items():
                parts.setdefault(name, []).append(arr[local])
            order.append(np.flatnonzero(blocks == k))
        inv = np.argsort(np.concatenate(order), kind="stable")
        return {name: torch.from_numpy(np.concatenate(p)[inv]) for name, p in parts.items()}

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}

    def sample(self, limit: int = NORM_SAMPLE) -> dict[str, np.ndarray]:
        """Raw inputs of about ``limit`` objects from blocks spread over the split (for statistics)."""
        per = max(1, int(np.mean([b.size for b in self.blocks])))
        want = min(len(self.blocks), max(1, -(-limit // per)))
        picks = np.unique(np.linspace(0, len(self.blocks) - 1, want).round().astype(int))
        got = [self.raw_block(int(k)) for k in picks]
        return {n: np.concatenate([g[n] for g in got]) for n in self.sources}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every object's normalised inputs and target, in store order (for trees and inference)."""
        return {k: v.numpy() for k, v in self.__getitems__(list(range(len(self)))).items()}


class ChunkDistributedSampler(DistributedSampler):
    """A DistributedSampler whose epoch order follows the store's chunks (see the module docstring).

    Yields this rank's positions; a DataLoader with ``batch_size`` = the per-rank batch turns them
    into batches. Incomplete global batches are dropped when ``drop_last`` (training), so every
    rank runs the same number of steps.
    """

    def __init__(
        self,
        dataset: StoreDataset,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        window: int | None = None,
    ):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.drop_last_batches = drop_last
        self.window = int(config.get("train.shuffle-chunks") if window is None else window)
        g = batch_size * num_replicas
        n = len(dataset)
        self.steps = n // g if drop_last else -(-n // g)
        self.num_samples = self.steps * batch_size

    def order(self) -> np.ndarray:
        """The global order of positions for this epoch (the same on every rank)."""
        blocks = self.dataset.blocks
        if not self.shuffle:
            return np.arange(len(self.dataset))
        rng = np.random.default_rng([self.seed, self.epoch])
        chosen = rng.permutation(len(blocks))
        parts = []
        for w in range(0, len(chosen), self.window):
            pos = np.concatenate([blocks[k] for k in chosen[w : w + self.window]])
            parts.append(rng.permutation(pos))
        return np.concatenate(parts)

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        g, b = self.batch_size * self.num_replicas, self.batch_size
        if not self.drop_last_batches and order.size < self.steps * g:  # pad by wrapping around
            order = np.concatenate([order, order[: self.steps * g - order.size]])
        mine = [order[i * g + self.rank * b : i * g + (self.rank + 1) * b] for i in range(self.steps)]
        return iter(np.concatenate(mine).tolist() if mine else [])

    def __len__(self) -> int:
        return self.num_samples


def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``__getitems__`` already returns a batch."""
    return batch

"""What every sfrdask network shares: the training protocol and small building blocks.

A network's ``forward(batch, phase)`` takes a dict of input tensors and returns whatever its
``loss`` and ``prediction`` need; keeping the loss outside ``forward`` but the computation inside
it is what lets ``DistributedDataParallel`` synchronise every phase's gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sfrdask.choices import STEMS

Batch = dict[str, torch.Tensor]


class SfrNet(nn.Module):
    """Base class: one regression phase, mean-squared error on the standardised target."""

    phases: tuple[str, ...] = ("regress",)

    def begin_phase(self, phase: str) -> None:
        """Called before each phase (e.g. to freeze pre-trained encoders)."""

    def loss(self, out: torch.Tensor, y: torch.Tensor, phase: str = "regress") -> torch.Tensor:
        return F.mse_loss(out, y)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        """The (batch,) prediction from ``forward``'s output."""
        return out


def context_size(shapes: dict[str, tuple[int, ...]]) -> int:
    """How many context numbers (redshift, class; :mod:`sfrdask.preprocessing.context`) the model
    is given beside its declared inputs: 0 when none."""
    return int(shapes.get("context", (0,))[0])


def with_context(features: torch.Tensor, batch: Batch, n_context: int) -> torch.Tensor:
    """``features`` with the batch's context columns appended (unchanged when ``n_context`` is 0):
    models add the context just before their regression head."""
    return torch.cat([features, batch["context"]], dim=1) if n_context else features


def mlp(sizes: list[int], dropout: list[float] | float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU and dropout between them (none after the last)."""
    n = len(sizes) - 1
    drops = dropout if isinstance(dropout, list) else [dropout] * (n - 1)
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < n - 1:
            layers.append(nn.ReLU())
            if drops[i] > 0:
                layers.append(nn.Dropout(drops[i]))
    return nn.Sequential(*layers)


def conv_trunk(
    in_ch: int, size: int, channels: tuple[int, ...] = (32, 64, 128), groups: int = 1
) -> nn.Sequential:
    """3x3 conv + ReLU stages, max-pooled while the map is larger than 4 px, then global average:
    the same network runs at 64, 32, 16 and 8 px. Output: (batch, channels[-1])."""
    layers: list[nn.Module] = []
    c = in_ch
    for out in channels:
        layers += [nn.Conv2d(c, out, 3, padding=1, groups=groups), nn.ReLU()]
        if size > 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


# The common working resolution of every image and spectrum network: the smallest level (8 px,
# 577 samples). A network at a higher level first brings its input down to it (:class:`ImageStem`,
# :class:`SpectrumStem`), so its trunk, capacity and optimisation are those of the 8 px / 577
# network whatever the level: what it learns at 8 px it can represent at 64 px with no extra
# difficulty (the resolution study's fairness; docs/training.md, "A fair model at every level").
WORK_IMAGE_PX = 8
WORK_SAMPLES = 577
# The stems (sfrdask.choices.STEMS): ``common``, the input averaged down to the working resolution
# plus ``detail`` learned channels (strided convolution over each working pixel's footprint);
# ``average``, the averaged input alone (the study's control and its other stem: the higher level's
# data reduced inside the model to the lowest level's shape); ``none``, the input as it is (the
# networks before the stems; their old checkpoints).


@contextlib.contextmanager
def _own_stream() -> Iterator[None]:
    """A stem's weights from a random stream of their own (derived from the seed), so that building
    one at any level leaves the global stream, and so every other layer's initial weights, as they
    are at 8 px / 577 samples."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch.initial_seed() + 1)
        yield


def _check_stem(stem: str) -> None:
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")


class ImageStem(nn.Module):
    """(batch, bands, s, s) -> (batch, out_channels, 8, 8) for s = 8 .. 64: the cutout averaged over
    each working pixel's s/8 x s/8 footprint (exactly what the network sees at 8 px, up to how
    HiSS-Cube resamples), then ``detail`` channels of a convolution with that footprint as kernel
    and stride. The layer after the stem starts with zero weights on the detail channels
    (:func:`zero_detail`), so at initialisation a network computes at 64 px what it computes at
    8 px on the averaged cutout."""

    def __init__(self, bands: int, size: int, stem: str = "common", detail: int = 16):
        super().__init__()
        _check_stem(stem)
        self.stem, self.bands = stem, bands
        self.factor = max(size // WORK_IMAGE_PX, 1) if stem != "none" else 1
        self.size = size // self.factor
        with _own_stream():
            self.detail = (
                nn.Conv2d(bands, detail, self.factor, stride=self.factor) if stem == "common" else None
            )

    @staticmethod
    def channels(bands: int, stem: str, detail: int = 16) -> int:
        """Channels out of a stem of this kind."""
        return bands + (detail if stem == "common" else 0)

    @staticmethod
    def side(size: int, stem: str) -> int:
        """Side of the stem's output for an input of ``size`` px."""
        return size if stem == "none" else min(size, WORK_IMAGE_PX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = F.avg_pool2d(x, self.factor) if self.factor > 1 else x
        return plain if self.detail is None else torch.cat([plain, self.detail(x)], dim=1)


class SpectrumStem(nn.Module):
    """(batch, L) -> (batch, out_channels, 577) for L = 577 .. 4620: the spectrum averaged over
    each working sample's L/577 samples, then ``detail`` channels of a 1-D convolution with that
    footprint as kernel and stride (zero weights after it at first, as :class:`ImageStem`)."""

    def __init__(self, samples: int, stem: str = "common", detail: int = 4):
        super().__init__()
        _check_stem(stem)
        self.stem = stem
        self.factor = max(samples // WORK_SAMPLES, 1) if stem != "none" else 1
        self.samples = samples // self.factor
        with _own_stream():
            self.detail = nn.Conv1d(1, detail, self.factor, stride=self.factor) if stem == "common" else None

    @staticmethod
    def channels(stem: str, detail: int = 4) -> int:
        """Channels out of a stem of this kind."""
        return 1 + (detail if stem == "common" else 0)

    @staticmethod
    def length(samples: int, stem: str) -> int:
        """Samples out of the stem for an input of ``samples``."""
        return samples if stem == "none" else samples // max(samples // WORK_SAMPLES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, : self.samples * self.factor].unsqueeze(1)
        plain = F.avg_pool1d(x, self.factor) if self.factor > 1 else x
        return plain if self.detail is None else torch.cat([plain, self.detail(x)], dim=1)


@torch.no_grad()
def zero_detail(layer: nn.Module, plain: int) -> None:
    """Zero the weights by which ``layer`` (the first convolution or linear layer after a stem)
    reads the stem's detail channels (inputs from ``plain`` on: channels of a convolution, or
    features of a linear layer reading the flattened (channels, samples), plain channel first), so
    that the network starts as its lowest-level counterpart on the averaged input."""
    layer.weight[:, plain:] = 0

"""Spectrum networks (any of 4620, 2310, 1155, 577 samples)."""

from __future__ import annotations

import torch
from torch import nn

from sfrdask.models.base import Batch, SfrNet, SpectrumStem, context_size, mlp, with_context, zero_detail
from sfrdask.models.registry import register


class SpectrumMLP(SfrNet):
    """Two hidden layers (256, 64) on the spectrum at the 577-sample working resolution
    (:class:`sfrdask.models.base.SpectrumStem`: averaged plus learned detail channels, flattened);
    ``features`` gives the 64-d embedding."""

    out_features = 64

    def __init__(
        self,
        shape: tuple[int, ...],
        dropout: float = 0.3,
        hidden: int = 256,
        n_context: int = 0,
        stem: str = "common",
    ):
        super().__init__()
        self.n_context = n_context
        n = SpectrumStem.length(shape[0], stem)
        self.body = nn.Sequential(mlp([SpectrumStem.channels(stem) * n, hidden, 64], dropout), nn.ReLU())
        zero_detail(self.body[0][0], n)
        self.head = nn.Linear(64 + n_context, 1)
        self.stem = SpectrumStem(shape[0], stem)

    def features(self, spectrum: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(spectrum).flatten(1))

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        f = with_context(self.features(batch["spectrum"]), batch, self.n_context)
        return self.head(f).squeeze(-1)


class ConvGRU(SfrNet):
    """1-D convolutions (local line and continuum shapes) at the 577-sample working resolution,
    then a GRU over the downsampled sequence; ``features`` gives the GRU's last hidden state."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dropout: float = 0.2,
        hidden: int = 64,
        steps: int = 64,
        n_context: int = 0,
        stem: str = "common",
    ):
        super().__init__()
        n = SpectrumStem.length(shape[0], stem)
        self.n_context, self.hidden, self.out_features = n_context, hidden, hidden
        self.conv = nn.Sequential(
            nn.Conv1d(SpectrumStem.channels(stem), 16, 9, padding=4),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 7, padding=3),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.AdaptiveAvgPool1d(min(steps, max(n // 4, 1))),
        )
        zero_detail(self.conv[0], 1)
        self.gru = nn.GRU(32, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + n_context, 1)
        self.stem = SpectrumStem(shape[0], stem)

    def features(self, spectrum: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(self.conv(self.stem(spectrum)).transpose(1, 2))
        return h[-1]

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        f = with_context(self.drop(self.features(batch["spectrum"])), batch, self.n_context)
        return self.head(f).squeeze(-1)


@register("spectrum-mlp", "net", ("spectrum",), "2-layer MLP on the spectrum")
def _spectrum_mlp(shapes: dict, dropout: float = 0.3, width: int = 256, stem: str = "common") -> SfrNet:
    return SpectrumMLP(shapes["spectrum"], dropout, width, n_context=context_size(shapes), stem=stem)


@register("spectrum-hybrid", "net", ("spectrum",), "1-D convolutions followed by a GRU")
def _spectrum_hybrid(shapes: dict, dropout: float = 0.2, width: int = 64, stem: str = "common") -> SfrNet:
    return ConvGRU(shapes["spectrum"], dropout, hidden=width, n_context=context_size(shapes), stem=stem)

"""What every sfrdask network shares: the training protocol and small building blocks.

A network's ``forward(batch, phase)`` takes a dict of input tensors and returns whatever its
``loss`` and ``prediction`` need; keeping the loss outside ``forward`` but the computation inside
it is what lets ``DistributedDataParallel`` synchronise every phase's gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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

"""CLIP-style contrastive pre-training of image and spectrum encoders, then a regression head.

Phase ``pretrain``: both encoders map an object's cutout and spectrum into one normalised
embedding space, trained with the symmetric InfoNCE loss (the other objects in the batch are the
negatives). Phase ``regress``: the encoders are frozen and a head regresses the target from the
two embeddings. :meth:`ContrastiveNet.embed` gives the frozen joint embedding, on which the
trainer also reports k-nearest-neighbour regression.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sfrdask.models.base import Batch, SfrNet, context_size, mlp, with_context
from sfrdask.models.fusion import feature_branches
from sfrdask.models.registry import register


class ContrastiveNet(SfrNet):
    phases = ("pretrain", "regress")

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dim: int = 64,
        dropout: float = 0.2,
        n_context: int = 0,
        width: int = 32,
        stem: str = "common",
    ):
        super().__init__()
        self.n_context = n_context
        self.image, self.spectrum = feature_branches(image_shape, spectrum_shape, "mlp", width, stem)
        self.proj_image = nn.Linear(self.image.out_features, dim)
        self.proj_spectrum = nn.Linear(self.spectrum.out_features, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.head = mlp([2 * dim + n_context, 64, 1], dropout)

    def _embeddings(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        zi = F.normalize(self.proj_image(self.image.features(batch["image"])), dim=1)
        zs = F.normalize(self.proj_spectrum(self.spectrum.features(batch["spectrum"])), dim=1)
        return zi, zs

    def begin_phase(self, phase: str) -> None:
        frozen = phase == "regress"
        for part in (self.image, self.spectrum, self.proj_image, self.proj_spectrum):
            for p in part.parameters():
                p.requires_grad_(not frozen)
        self.logit_scale.requires_grad_(not frozen)
        for p in self.head.parameters():
            p.requires_grad_(frozen)

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        zi, zs = self._embeddings(batch)
        if phase == "pretrain":
            scale = self.logit_scale.clamp(max=math.log(100)).exp()
            return scale * zi @ zs.T  # (batch, batch) similarity logits
        return self.head(with_context(torch.cat([zi, zs], dim=1), batch, self.n_context)).squeeze(-1)

    def loss(self, out: torch.Tensor, y: torch.Tensor, phase: str = "regress") -> torch.Tensor:
        if phase == "pretrain":
            target = torch.arange(out.shape[0], device=out.device)
            return (F.cross_entropy(out, target) + F.cross_entropy(out.T, target)) / 2
        return F.mse_loss(out, y)

    @torch.no_grad()
    def embed(self, batch: Batch) -> torch.Tensor:
        """The frozen joint embedding (image and spectrum embeddings side by side)."""
        return torch.cat(self._embeddings(batch), dim=1)


@register(
    "contrastive",
    "net",
    ("image", "spectrum"),
    "CLIP-style InfoNCE pre-training, then a regression head (+ kNN)",
)
def _contrastive(
    shapes: dict, dim: int = 64, dropout: float = 0.2, width: int = 32, stem: str = "common"
) -> SfrNet:
    return ContrastiveNet(
        shapes["image"], shapes["spectrum"], dim, dropout, context_size(shapes), width, stem
    )

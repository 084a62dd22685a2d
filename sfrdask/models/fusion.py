"""Fusion of images and spectra: early, intermediate, late, and cross-attention.

The thesis' models keep their architecture (``early-fusion``: 100 + 50 PCA features -> 128 -> 64
-> 1, dropout 0.3 / 0.2; ``intermediate-fusion``: CNN + MLP branches; ``late-fusion``: equal-weight
average). ``hybrid-fusion`` and ``late-fusion-learned`` build on the strongest single-modality
networks instead: the image CNN and the conv + GRU spectrum network. Every model appends the
context (redshift, class), when given, before its regression layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sfrdask.models.base import Batch, SfrNet, context_size, mlp, with_context
from sfrdask.models.image import ImageCNN
from sfrdask.models.registry import register
from sfrdask.models.spectrum import ConvGRU, SpectrumMLP


class EarlyFusionNet(SfrNet):
    """PCA image and spectrum features concatenated -> 128 -> 64 -> 1 (ReLU, dropout 0.3, 0.2)."""

    def __init__(
        self, n_image: int, n_spectrum: int, dropout: tuple[float, float] = (0.3, 0.2), n_context: int = 0
    ):
        super().__init__()
        self.n_context = n_context
        self.net = mlp([n_image + n_spectrum + n_context, 128, 64, 1], list(dropout))

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        x = with_context(torch.cat([batch["image_pca"], batch["spectrum_pca"]], dim=1), batch, self.n_context)
        return self.net(x).squeeze(-1)


def feature_branches(
    image_shape: tuple[int, ...], spectrum_shape: tuple[int, ...], spectrum: str = "mlp"
) -> tuple[ImageCNN, SpectrumMLP | ConvGRU]:
    """A CNN image branch and a spectrum branch (``mlp``: the MLP; ``conv-gru``: 1-D convolutions
    and a GRU) giving 64-d features (no heads, no dropout)."""
    image = ImageCNN(image_shape, dropout=0.0)
    spec = SpectrumMLP(spectrum_shape, dropout=0.0) if spectrum == "mlp" else ConvGRU(spectrum_shape, 0.0)
    del image.head, spec.head  # only the feature extractors are used
    return image, spec


class FusionNet(SfrNet):
    """Intermediate fusion: a CNN image branch and a spectrum branch (the thesis' MLP, or the
    conv + GRU network for ``hybrid-fusion``), their 64-d features concatenated (with the context)
    and passed through fully connected fusion layers 64 -> 32 -> 1."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dropout: float = 0.3,
        n_context: int = 0,
        spectrum_branch: str = "mlp",
    ):
        super().__init__()
        self.n_context = n_context
        self.image, self.spectrum = feature_branches(image_shape, spectrum_shape, spectrum_branch)
        self.fusion = mlp([128 + n_context, 64, 32, 1], [dropout, dropout / 2])

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        f = torch.cat([self.image.features(batch["image"]), self.spectrum.features(batch["spectrum"])], dim=1)
        return self.fusion(with_context(f, batch, self.n_context)).squeeze(-1)


class BranchNet(SfrNet):
    """Late fusion: an image network and a spectrum network (the MLP, or the conv + GRU network),
    each with its own loss (no gradient passes between them, so they train as two separate models),
    predictions averaged."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dropout: float = 0.3,
        n_context: int = 0,
        spectrum_branch: str = "mlp",
    ):
        super().__init__()
        self.image = ImageCNN(image_shape, dropout, n_context=n_context)
        if spectrum_branch == "mlp":
            self.spectrum = SpectrumMLP(spectrum_shape, dropout, n_context=n_context)
        else:
            self.spectrum = ConvGRU(spectrum_shape, dropout=min(dropout, 0.2), n_context=n_context)

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        return torch.stack([self.image(batch), self.spectrum(batch)], dim=1)

    def loss(self, out: torch.Tensor, y: torch.Tensor, phase: str = "regress") -> torch.Tensor:
        return F.mse_loss(out[:, 0], y) + F.mse_loss(out[:, 1], y)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out.mean(dim=1)


class LearnedLateFusion(BranchNet):
    """Late fusion with learned weights: the image CNN and the conv + GRU spectrum network each
    regress the target with their own loss, and a softmax over two learned logits weighs their
    predictions. The weights learn from the combined prediction's loss with the branch outputs
    detached, so they cannot pull a branch away from its own best fit."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dropout: float = 0.3,
        n_context: int = 0,
    ):
        super().__init__(image_shape, spectrum_shape, dropout, n_context, spectrum_branch="conv-gru")
        self.logits = nn.Parameter(torch.zeros(2))

    @property
    def weights(self) -> torch.Tensor:
        """The (image, spectrum) weights of the combined prediction."""
        return torch.softmax(self.logits, dim=0)

    def loss(self, out: torch.Tensor, y: torch.Tensor, phase: str = "regress") -> torch.Tensor:
        combined = out.detach() @ self.weights
        return F.mse_loss(out[:, 0], y) + F.mse_loss(out[:, 1], y) + F.mse_loss(combined, y)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out @ self.weights


class CrossAttentionFusion(SfrNet):
    """Image patches and spectral segments as tokens; each modality attends to the other's tokens
    (two multi-head cross-attention layers), the attended tokens are pooled and regressed."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dim: int = 64,
        heads: int = 4,
        segments: int = 32,
        dropout: float = 0.2,
        n_context: int = 0,
    ):
        super().__init__()
        self.n_context = n_context
        bands, size = image_shape[0], image_shape[-1]
        patch = max(size // 4, 1)
        self.patches = nn.Conv2d(bands, dim, patch, stride=patch)  # (size/patch)^2 = 16 tokens
        n_img = (size // patch) ** 2
        self.seg = max(spectrum_shape[0] // segments, 1)
        self.n_spec = spectrum_shape[0] // self.seg
        self.segments = nn.Linear(self.seg, dim)
        self.pos_img = nn.Parameter(torch.zeros(1, n_img, dim))
        self.pos_spec = nn.Parameter(torch.zeros(1, self.n_spec, dim))
        self.img_to_spec = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.spec_to_img = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_img, self.norm_spec = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.head = mlp([2 * dim + n_context, 64, 1], dropout)

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        img = self.patches(batch["image"]).flatten(2).transpose(1, 2) + self.pos_img
        s = batch["spectrum"][:, : self.n_spec * self.seg]
        spec = self.segments(s.reshape(s.shape[0], self.n_spec, self.seg)) + self.pos_spec
        a_img, _ = self.img_to_spec(img, spec, spec, need_weights=False)
        a_spec, _ = self.spec_to_img(spec, img, img, need_weights=False)
        img = self.norm_img(img + a_img).mean(dim=1)
        spec = self.norm_spec(spec + a_spec).mean(dim=1)
        return self.head(with_context(torch.cat([img, spec], dim=1), batch, self.n_context)).squeeze(-1)


@register(
    "early-fusion", "net", ("image_pca", "spectrum_pca"), "EarlyFusionNet: PCA features -> 128 -> 64 -> 1"
)
def _early(shapes: dict, dropout: tuple[float, float] = (0.3, 0.2)) -> SfrNet:
    return EarlyFusionNet(
        shapes["image_pca"][0], shapes["spectrum_pca"][0], tuple(dropout), n_context=context_size(shapes)
    )


@register(
    "intermediate-fusion", "net", ("image", "spectrum"), "FusionNet: CNN + MLP branches, fused features"
)
def _intermediate(shapes: dict, dropout: float = 0.3) -> SfrNet:
    return FusionNet(shapes["image"], shapes["spectrum"], dropout, n_context=context_size(shapes))


@register(
    "late-fusion", "net", ("image", "spectrum"), "BranchNet: image CNN and spectrum MLP, predictions averaged"
)
def _late(shapes: dict, dropout: float = 0.3) -> SfrNet:
    return BranchNet(shapes["image"], shapes["spectrum"], dropout, n_context=context_size(shapes))


@register(
    "hybrid-fusion",
    "net",
    ("image", "spectrum"),
    "FusionNet with the conv/GRU spectrum branch: image CNN + conv/GRU, fused features",
)
def _hybrid(shapes: dict, dropout: float = 0.3) -> SfrNet:
    return FusionNet(
        shapes["image"], shapes["spectrum"], dropout, context_size(shapes), spectrum_branch="conv-gru"
    )


@register(
    "late-fusion-learned",
    "net",
    ("image", "spectrum"),
    "image CNN and conv/GRU spectrum predictions, weighted by learned weights",
)
def _late_learned(shapes: dict, dropout: float = 0.3) -> SfrNet:
    return LearnedLateFusion(shapes["image"], shapes["spectrum"], dropout, n_context=context_size(shapes))


@register(
    "cross-attention",
    "net",
    ("image", "spectrum"),
    "image patches and spectral segments attend to each other",
)
def _cross(shapes: dict, dim: int = 64, heads: int = 4, dropout: float = 0.2) -> SfrNet:
    return CrossAttentionFusion(
        shapes["image"],
        shapes["spectrum"],
        dim=dim,
        heads=heads,
        dropout=dropout,
        n_context=context_size(shapes),
    )

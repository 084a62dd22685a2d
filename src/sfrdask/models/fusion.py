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

from sfrdask.models.base import (
    Batch,
    ImageStem,
    SfrNet,
    SpectrumStem,
    context_size,
    mlp,
    with_context,
    zero_detail,
)
from sfrdask.models.image import ImageCNN
from sfrdask.models.registry import register
from sfrdask.models.spectrum import ConvGRU, SpectrumMLP


class EarlyFusionNet(SfrNet):
    """PCA image and spectrum features concatenated -> 128 -> 64 -> 1 (ReLU, dropout 0.3, 0.2)."""

    def __init__(
        self,
        n_image: int,
        n_spectrum: int,
        dropout: tuple[float, float] = (0.3, 0.2),
        n_context: int = 0,
        width: int = 128,
    ):
        super().__init__()
        self.n_context = n_context
        self.net = mlp([n_image + n_spectrum + n_context, width, width // 2, 1], list(dropout))

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        x = with_context(torch.cat([batch["image_pca"], batch["spectrum_pca"]], dim=1), batch, self.n_context)
        return self.net(x).squeeze(-1)


def feature_branches(
    image_shape: tuple[int, ...],
    spectrum_shape: tuple[int, ...],
    spectrum: str = "mlp",
    width: int = 32,
    stem: str = "common",
) -> tuple[ImageCNN, SpectrumMLP | ConvGRU]:
    """A CNN image branch (``width`` channels first) and a spectrum branch (``mlp``: the MLP,
    8 x ``width`` hidden; ``conv-gru``: 1-D convolutions and a GRU, 2 x ``width`` hidden) giving
    their features (``out_features`` wide; no heads, no dropout), both behind their stems."""
    image = ImageCNN(image_shape, dropout=0.0, width=width, stem=stem)
    if spectrum == "mlp":
        spec: SpectrumMLP | ConvGRU = SpectrumMLP(spectrum_shape, dropout=0.0, hidden=8 * width, stem=stem)
    else:
        spec = ConvGRU(spectrum_shape, 0.0, hidden=2 * width, stem=stem)
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
        width: int = 32,
        stem: str = "common",
    ):
        super().__init__()
        self.n_context = n_context
        self.image, self.spectrum = feature_branches(
            image_shape, spectrum_shape, spectrum_branch, width, stem
        )
        n = self.image.out_features + self.spectrum.out_features
        self.fusion = mlp([n + n_context, 64, 32, 1], [dropout, dropout / 2])

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
        width: int = 32,
        stem: str = "common",
    ):
        super().__init__()
        self.image = ImageCNN(image_shape, dropout, width, n_context=n_context, stem=stem)
        if spectrum_branch == "mlp":
            self.spectrum: SpectrumMLP | ConvGRU = SpectrumMLP(
                spectrum_shape, dropout, 8 * width, n_context=n_context, stem=stem
            )
        else:
            self.spectrum = ConvGRU(
                spectrum_shape, dropout=min(dropout, 0.2), hidden=2 * width, n_context=n_context, stem=stem
            )

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
        width: int = 32,
        stem: str = "common",
    ):
        super().__init__(image_shape, spectrum_shape, dropout, n_context, "conv-gru", width, stem)
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
    (two multi-head cross-attention layers), the attended tokens are pooled and regressed. Both
    token sets are cut from the working resolution (the stems): 4 x 4 patches of the 8 px map and
    32 segments of the 577 samples, whatever the level."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        spectrum_shape: tuple[int, ...],
        dim: int = 64,
        heads: int = 4,
        segments: int = 32,
        dropout: float = 0.2,
        n_context: int = 0,
        stem: str = "common",
    ):
        super().__init__()
        self.n_context = n_context
        bands, size = image_shape[0], ImageStem.side(image_shape[-1], stem)
        patch = max(size // 4, 1)
        self.patches = nn.Conv2d(ImageStem.channels(bands, stem), dim, patch, stride=patch)  # 16 tokens
        zero_detail(self.patches, bands)
        n_img = (size // patch) ** 2
        samples = SpectrumStem.length(spectrum_shape[0], stem)
        self.seg = max(samples // segments, 1)
        self.n_spec = samples // self.seg
        self.segments = nn.Linear(SpectrumStem.channels(stem) * self.seg, dim)  # a token: (channels, seg)
        zero_detail(self.segments, self.seg)
        self.pos_img = nn.Parameter(torch.zeros(1, n_img, dim))
        self.pos_spec = nn.Parameter(torch.zeros(1, self.n_spec, dim))
        self.img_to_spec = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.spec_to_img = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_img, self.norm_spec = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.head = mlp([2 * dim + n_context, 64, 1], dropout)
        self.image_stem = ImageStem(bands, image_shape[-1], stem)
        self.spectrum_stem = SpectrumStem(spectrum_shape[0], stem)

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        img = self.patches(self.image_stem(batch["image"])).flatten(2).transpose(1, 2) + self.pos_img
        s = self.spectrum_stem(batch["spectrum"])[:, :, : self.n_spec * self.seg]  # (batch, channels, n)
        s = s.reshape(s.shape[0], s.shape[1], self.n_spec, self.seg).permute(0, 2, 1, 3).flatten(2)
        spec = self.segments(s) + self.pos_spec
        a_img, _ = self.img_to_spec(img, spec, spec, need_weights=False)
        a_spec, _ = self.spec_to_img(spec, img, img, need_weights=False)
        img = self.norm_img(img + a_img).mean(dim=1)
        spec = self.norm_spec(spec + a_spec).mean(dim=1)
        return self.head(with_context(torch.cat([img, spec], dim=1), batch, self.n_context)).squeeze(-1)


@register(
    "early-fusion", "net", ("image_pca", "spectrum_pca"), "EarlyFusionNet: PCA features -> 128 -> 64 -> 1"
)
def _early(shapes: dict, dropout: tuple[float, float] | float = (0.3, 0.2), width: int = 128) -> SfrNet:
    drops = (dropout, dropout * 2 / 3) if isinstance(dropout, float) else tuple(dropout)  # one tuned number
    return EarlyFusionNet(
        shapes["image_pca"][0], shapes["spectrum_pca"][0], drops, n_context=context_size(shapes), width=width
    )


@register(
    "intermediate-fusion", "net", ("image", "spectrum"), "FusionNet: CNN + MLP branches, fused features"
)
def _intermediate(shapes: dict, dropout: float = 0.3, width: int = 32, stem: str = "common") -> SfrNet:
    return FusionNet(shapes["image"], shapes["spectrum"], dropout, context_size(shapes), "mlp", width, stem)


@register(
    "late-fusion", "net", ("image", "spectrum"), "BranchNet: image CNN and spectrum MLP, predictions averaged"
)
def _late(shapes: dict, dropout: float = 0.3, width: int = 32, stem: str = "common") -> SfrNet:
    return BranchNet(shapes["image"], shapes["spectrum"], dropout, context_size(shapes), "mlp", width, stem)


@register(
    "hybrid-fusion",
    "net",
    ("image", "spectrum"),
    "FusionNet with the conv/GRU spectrum branch: image CNN + conv/GRU, fused features",
)
def _hybrid(shapes: dict, dropout: float = 0.3, width: int = 32, stem: str = "common") -> SfrNet:
    return FusionNet(
        shapes["image"], shapes["spectrum"], dropout, context_size(shapes), "conv-gru", width, stem
    )


@register(
    "late-fusion-learned",
    "net",
    ("image", "spectrum"),
    "image CNN and conv/GRU spectrum predictions, weighted by learned weights",
)
def _late_learned(shapes: dict, dropout: float = 0.3, width: int = 32, stem: str = "common") -> SfrNet:
    return LearnedLateFusion(shapes["image"], shapes["spectrum"], dropout, context_size(shapes), width, stem)


@register(
    "cross-attention",
    "net",
    ("image", "spectrum"),
    "image patches and spectral segments attend to each other",
)
def _cross(
    shapes: dict, width: int = 64, heads: int = 4, dropout: float = 0.2, stem: str = "common"
) -> SfrNet:
    return CrossAttentionFusion(  # width: the dimension of a token
        shapes["image"],
        shapes["spectrum"],
        dim=width,
        heads=heads,
        dropout=dropout,
        n_context=context_size(shapes),
        stem=stem,
    )

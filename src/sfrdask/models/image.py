"""Image networks on the five-band cutouts (any of 64, 32, 16, 8 px)."""

from __future__ import annotations

import torch
from torch import nn

from sfrdask.models.base import (
    Batch,
    ImageStem,
    SfrNet,
    context_size,
    conv_trunk,
    mlp,
    with_context,
    zero_detail,
)
from sfrdask.models.registry import ModelError, register


class ImageCNN(SfrNet):
    """A CNN on the five bands together, behind the stem that brings any cutout to the 8 px working
    resolution (:class:`sfrdask.models.base.ImageStem`); ``features`` gives the 64-d embedding; the
    context (redshift, class), when given, joins it before the linear head."""

    out_features = 64

    def __init__(
        self,
        shape: tuple[int, ...],
        dropout: float = 0.3,
        width: int = 32,
        n_context: int = 0,
        stem: str = "common",
    ):
        super().__init__()
        bands, size = shape[0], shape[-1]
        self.n_context = n_context
        channels = ImageStem.channels(bands, stem)
        self.trunk = conv_trunk(channels, ImageStem.side(size, stem), (width, 2 * width, 4 * width))
        zero_detail(self.trunk[0], bands)
        self.proj = nn.Sequential(nn.Linear(4 * width, 64), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(64 + n_context, 1)
        self.stem = ImageStem(bands, size, stem)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(self.trunk(self.stem(image)))

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        f = with_context(self.features(batch["image"]), batch, self.n_context)
        return self.head(f).squeeze(-1)


class PerBandCNN(SfrNet):
    """Each band through its own convolutions (grouped convs), merged by a 1x1 conv, then a head.
    It reads the cutout as it is (no working-resolution stem: its groups are the bands), so it is
    not one of the study's networks."""

    def __init__(self, shape: tuple[int, ...], dropout: float = 0.3, per_band: int = 8, n_context: int = 0):
        super().__init__()
        bands, size = shape[0], shape[-1]
        self.n_context = n_context
        w = bands * per_band
        self.bands = conv_trunk(bands, size, (w, 2 * w), groups=bands)[:-2]  # keep the spatial map
        merged = 64
        self.merge = nn.Sequential(
            nn.Conv2d(2 * w, merged, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = mlp([merged + n_context, 64, 1], dropout)

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        f = with_context(self.merge(self.bands(batch["image"])), batch, self.n_context)
        return self.head(f).squeeze(-1)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SmallResNet(SfrNet):
    """A ResNet of three residual stages (32, 64, 128 channels; two downsamplings) behind the
    working-resolution stem (``stem="none"``: on the cutout as it is, which needs >= 16 px)."""

    def __init__(
        self, shape: tuple[int, ...], dropout: float = 0.3, n_context: int = 0, stem: str = "common"
    ):
        super().__init__()
        self.n_context = n_context
        channels = ImageStem.channels(shape[0], stem)
        self.stem = nn.Sequential(nn.Conv2d(channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        zero_detail(self.stem[0], shape[0])
        self.stages = nn.Sequential(_Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(128 + n_context, 1)
        self.working = ImageStem(
            shape[0], shape[-1], stem
        )  # its name: older checkpoints call the conv "stem"

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The 128-d embedding (after pooling and dropout)."""
        return self.pool(self.stages(self.stem(self.working(image))))

    def forward(self, batch: Batch, phase: str = "regress") -> torch.Tensor:
        return self.head(with_context(self.features(batch["image"]), batch, self.n_context)).squeeze(-1)


@register("image-cnn", "net", ("image",), "CNN on the five bands together")
def _image_cnn(shapes: dict, dropout: float = 0.3, width: int = 32, stem: str = "common") -> SfrNet:
    return ImageCNN(shapes["image"], dropout, width, n_context=context_size(shapes), stem=stem)


@register("image-perband", "net", ("image",), "CNN processing each band separately, merged by a 1x1 conv")
def _image_perband(shapes: dict, dropout: float = 0.3) -> SfrNet:
    return PerBandCNN(shapes["image"], dropout, n_context=context_size(shapes))


@register("image-resnet", "net", ("image",), "small ResNet (3 residual stages, BatchNorm)")
def _image_resnet(shapes: dict, dropout: float = 0.3, stem: str = "common") -> SfrNet:
    if stem == "none" and shapes["image"][-1] < 16:
        raise ModelError(f"model 'image-resnet' without a stem needs images of at least 16 px, got "
                         f"{shapes['image'][-1]} px; choose a lower image zoom (0 = 64 px)")  # fmt: skip
    return SmallResNet(shapes["image"], dropout, n_context=context_size(shapes), stem=stem)

"""Scene classifiers in the model registry (task "classification"): a decision tree and an MLP on
the audio, a CNN on the frames, and early, intermediate and late fusion of both. Nets return
class logits (late fusion: both branches' logits); ``proba`` turns outputs into probabilities."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from sklearn.tree import DecisionTreeClassifier
from torch import nn

from sfrdask.models.base import conv_trunk, mlp
from sfrdask.models.registry import Registry

Batch = dict[str, torch.Tensor]


class SceneNet(nn.Module):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    def proba(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(-1)


class AudioNet(SceneNet):
    def __init__(self, n_in: int, n_classes: int, dropout: float = 0.3):
        super().__init__()
        self.features = mlp([n_in, 128, 64], dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, n_classes))

    def forward(self, b: Batch) -> torch.Tensor:
        return self.head(self.features(b["audio"]))


class ImageNet(SceneNet):
    def __init__(self, shape: tuple[int, ...], n_classes: int, dropout: float = 0.3):
        super().__init__()
        self.features = conv_trunk(shape[0], shape[-1], (16, 32, 64))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(64, n_classes))

    def forward(self, b: Batch) -> torch.Tensor:
        return self.head(self.features(b["image"]))


class EarlyFusion(SceneNet):
    def __init__(self, n_audio: int, n_image: int, n_classes: int):
        super().__init__()
        self.net = mlp([n_audio + n_image, 128, 64, n_classes], [0.3, 0.2])

    def forward(self, b: Batch) -> torch.Tensor:
        return self.net(torch.cat([b["audio"], b["image_pca"]], 1))


class IntermediateFusion(SceneNet):
    def __init__(self, n_audio: int, shape: tuple[int, ...], n_classes: int):
        super().__init__()
        self.audio = mlp([n_audio, 128, 64], 0.3)
        self.image = conv_trunk(shape[0], shape[-1], (16, 32, 64))
        self.fusion = mlp([128, 64, n_classes], 0.3)

    def forward(self, b: Batch) -> torch.Tensor:
        return self.fusion(torch.cat([F.relu(self.audio(b["audio"])), self.image(b["image"])], 1))


class LateFusion(SceneNet):
    """Two classifiers trained side by side (own losses), class probabilities averaged."""

    def __init__(self, n_audio: int, shape: tuple[int, ...], n_classes: int):
        super().__init__()
        self.audio, self.image = AudioNet(n_audio, n_classes), ImageNet(shape, n_classes)

    def forward(self, b: Batch) -> torch.Tensor:
        return torch.stack([self.audio(b), self.image(b)], 1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out[:, 0], y) + F.cross_entropy(out[:, 1], y)

    def proba(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(-1).mean(1)


def _tree(shapes: dict, n_classes: int, seed: int = 0, **_: Any) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=seed)


def _n(shapes: dict, name: str) -> int:
    return int(shapes[name][0])


SCENE_MODELS = Registry("Scene model", "classification", " (SFR models: `sfrdask models`)")
register = SCENE_MODELS.register
register("scene-tree-audio", "tree", ("audio",), "decision tree on the MFCC features")(_tree)
register("scene-tree-both", "tree", ("audio", "image_pca"), "decision tree on MFCC + image PCA features")(
    _tree
)
register("scene-nn-audio", "net", ("audio",), "MLP on the MFCC features")(
    lambda shapes, n_classes, **kw: AudioNet(_n(shapes, "audio"), n_classes)
)
register("scene-cnn-image", "net", ("image",), "CNN on the video frames")(
    lambda shapes, n_classes, **kw: ImageNet(shapes["image"], n_classes)
)
register("scene-early-fusion", "net", ("audio", "image_pca"), "MLP on MFCC + image PCA features")(
    lambda shapes, n_classes, **kw: EarlyFusion(_n(shapes, "audio"), _n(shapes, "image_pca"), n_classes)
)
register("scene-intermediate-fusion", "net", ("audio", "image"), "audio MLP + frame CNN features, fused FC")(
    lambda shapes, n_classes, **kw: IntermediateFusion(_n(shapes, "audio"), shapes["image"], n_classes)
)
register("scene-late-fusion", "net", ("audio", "image"), "audio MLP and frame CNN, probabilities averaged")(
    lambda shapes, n_classes, **kw: LateFusion(_n(shapes, "audio"), shapes["image"], n_classes)
)

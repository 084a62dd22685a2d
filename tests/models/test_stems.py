"""The working-resolution stems: a network at a higher level starts as its 8 px / 577-sample
counterpart on the averaged input, and its trunk does not grow with the level."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sfrdask.models import get_model

SHAPES = {0: {"image": (5, 64, 64), "spectrum": (4620,)}, 1: {"image": (5, 32, 32), "spectrum": (2310,)},
          3: {"image": (5, 8, 8), "spectrum": (577,)}}  # fmt: skip
NETWORKS = [
    "image-cnn",
    "image-resnet",
    "spectrum-mlp",
    "spectrum-hybrid",
    "intermediate-fusion",
    "hybrid-fusion",
    "late-fusion",
    "late-fusion-learned",
    "cross-attention",
    "contrastive",
]


def _build(name: str, level: int, **options):
    torch.manual_seed(0)
    return get_model(name).build(SHAPES[level], **options).eval()


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("level", [0, 1])
def test_a_network_at_a_higher_level_starts_as_the_8px_network_on_the_averaged_input(name, level):
    torch.manual_seed(1)
    size, samples = SHAPES[level]["image"][-1], SHAPES[level]["spectrum"][0]
    image, spectrum = torch.randn(4, 5, size, size), torch.randn(4, samples)
    f = size // 8
    low = {
        "image": F.avg_pool2d(image, f),
        "spectrum": F.avg_pool1d(spectrum[:, : 577 * f].unsqueeze(1), f)[:, 0],
    }
    with torch.no_grad():
        high_out = _build(name, level)({"image": image, "spectrum": spectrum})
        low_out = _build(name, 3)(low)
    torch.testing.assert_close(high_out, low_out, rtol=1e-5, atol=0)
    assert not torch.equal(high_out, torch.zeros_like(high_out))


@pytest.mark.parametrize("name", ["image-cnn", "spectrum-mlp", "intermediate-fusion"])
def test_the_trunk_is_the_same_at_every_level(name):
    """Only the stem's strided detail convolution grows with the footprint; every other layer
    has the shape it has at 8 px / 577 samples."""
    high, low = _build(name, 0), _build(name, 3)
    shapes = {k: v.shape for k, v in high.state_dict().items() if "detail" not in k}
    assert shapes == {k: v.shape for k, v in low.state_dict().items() if "detail" not in k}


def test_the_average_stem_is_the_control_and_none_is_the_input_as_it_is():
    torch.manual_seed(1)
    image = torch.randn(2, 5, 64, 64)
    net = _build("image-cnn", 0, stem="average")
    assert not any("detail" in k for k in net.state_dict())
    with torch.no_grad():
        assert net.stem(image).shape == (2, 5, 8, 8)
        torch.testing.assert_close(net.stem(image), F.avg_pool2d(image, 8), rtol=0, atol=0)
        assert _build("image-cnn", 0, stem="none").stem(image).shape == (2, 5, 64, 64)
    with pytest.raises(ValueError, match="unknown stem 'blur'"):
        _build("image-cnn", 0, stem="blur")

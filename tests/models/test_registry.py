"""The model registry: every network runs at every resolution it accepts; trees save without pickle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.tree import DecisionTreeRegressor

from sfrdask.io.levels import image_size, spectrum_samples
from sfrdask.models import ModelError, get_model, list_models
from sfrdask.models.trees import TreeArrays

NETS = [m.name for m in list_models() if m.family == "net"]


def _shapes(zoom: int) -> dict[str, tuple[int, ...]]:
    s, n = image_size(zoom), spectrum_samples(zoom)
    return {"image": (5, s, s), "spectrum": (n,), "image_pca": (100,), "spectrum_pca": (50,)}


def test_registry_has_the_issue_models():
    names = {m.name for m in list_models()}
    expected = {
        "tree-spectrum", "tree-image", "tree-both", "gbt-both", "image-cnn", "image-perband", "image-resnet",
        "spectrum-mlp", "spectrum-hybrid", "early-fusion", "intermediate-fusion", "late-fusion",
        "cross-attention", "contrastive",
    }  # fmt: skip
    assert expected <= names


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match=r"known SFR models: .*early-fusion"):
        get_model("earlyfusion")


@pytest.mark.parametrize("zoom", [0, 1, 2, 3])
@pytest.mark.parametrize("name", NETS)
def test_every_net_at_every_resolution(name, zoom):
    spec = get_model(name)
    shapes = _shapes(zoom)
    if spec.min_image_px > image_size(zoom) and "image" in spec.inputs:
        with pytest.raises(ModelError, match=f"at least {spec.min_image_px} px"):
            spec.check_shapes(shapes)
        return
    spec.check_shapes(shapes)
    torch.manual_seed(0)
    net = spec.build(shapes)
    batch = {k: torch.randn(3, *shapes[k]) for k in spec.inputs}
    y = torch.randn(3)
    for phase in net.phases:
        net.begin_phase(phase)
        out = net(batch, phase=phase)
        loss = net.loss(out, y, phase)
        loss.backward()
        assert torch.isfinite(loss)
        assert any(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert net.prediction(net(batch)).shape == (3,)


def test_early_fusion_is_the_users_architecture():
    net = get_model("early-fusion").build(_shapes(0))
    layers = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(150, 128), (128, 64), (64, 1)]
    assert [m.p for m in net.net if isinstance(m, torch.nn.Dropout)] == [0.3, 0.2]


def test_contrastive_freezes_encoders_for_the_head():
    net = get_model("contrastive").build(_shapes(3))
    net.begin_phase("pretrain")
    assert not any(p.requires_grad for p in net.head.parameters())
    net.begin_phase("regress")
    assert all(p.requires_grad for p in net.head.parameters())
    assert not any(p.requires_grad for p in net.image.parameters())


@pytest.mark.parametrize(
    "est",
    [
        DecisionTreeRegressor(max_depth=6, random_state=0),
        HistGradientBoostingRegressor(max_iter=30, random_state=0),
    ],
)
def test_tree_arrays_predict_like_sklearn_and_load_without_pickle(est, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = x[:, 0] - 2 * x[:, 1] ** 2 + rng.normal(0, 0.1, 400)
    est.fit(x, y)
    trees = TreeArrays.from_estimator(est)
    x_new = rng.normal(size=(200, 6))
    np.testing.assert_allclose(trees.predict(x_new), est.predict(x_new), rtol=1e-9, atol=1e-9)
    trees.save(tmp_path / "m.npz", identity="{}", norm_x=np.arange(3.0))
    back, meta = TreeArrays.load(tmp_path / "m.npz")  # np.load(allow_pickle=False) inside
    np.testing.assert_array_equal(back.predict(x_new), trees.predict(x_new))
    assert meta["identity"] == "{}" and meta["norm_x"].tolist() == [0.0, 1.0, 2.0]

"""Tree baselines on PCA features, and a pickle-free format for fitted trees.

Fitted trees are saved as plain arrays (``.npz``, loaded with ``allow_pickle=False``) and
predicted by :class:`TreeArrays` in numpy, so a results directory from someone else can be
evaluated without unpickling anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.tree import DecisionTreeRegressor

from sfrdask.models.registry import register

FEATURES = {"spectrum": ("spectrum_pca",), "image": ("image_pca",), "both": ("image_pca", "spectrum_pca")}
DEPTHS = (3, 4, 5, 6, 8, 10, 12)  # the decision tree's depth is chosen on the validation split


def _tree(shapes: dict, seed: int = 0, max_depth: int | None = None) -> DecisionTreeRegressor:
    return DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=5, random_state=seed)


def _gbt(
    shapes: dict, seed: int = 0, max_iter: int = 500, learning_rate: float = 0.05
) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=max_iter,
        learning_rate=learning_rate,
        early_stopping=True,
        n_iter_no_change=20,
        random_state=seed,
    )


for _what, _inputs in FEATURES.items():
    register(
        f"tree-{_what}",
        "tree",
        _inputs,
        f"decision tree on {_what} PCA features (depth chosen on validation)",
    )(_tree)
    register(
        f"gbt-{_what}", "tree", _inputs, f"gradient-boosted trees on {_what} PCA features (early stopping)"
    )(_gbt)


def fit_tree(
    est: DecisionTreeRegressor | HistGradientBoostingRegressor,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> DecisionTreeRegressor | HistGradientBoostingRegressor:
    """Fit with the validation split doing the model selection (tree depth, boosting rounds)."""
    if isinstance(est, HistGradientBoostingRegressor):
        return est.fit(x, y, X_val=x_val, y_val=y_val)
    if est.max_depth is not None:
        return est.fit(x, y)
    best, best_mse = None, np.inf
    for d in DEPTHS:
        cand = DecisionTreeRegressor(**{**est.get_params(), "max_depth": d}).fit(x, y)
        mse = float(np.mean((cand.predict(x_val) - y_val) ** 2))
        if mse < best_mse:
            best, best_mse = cand, mse
    return best


@dataclass
class TreeArrays:
    """Trees as flat arrays: ``tree`` (which tree a node belongs to), left, right, feature,
    threshold, value, leaf; ``roots`` the first node of each tree; ``baseline`` added to the sum."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    baseline: float

    @classmethod
    def from_estimator(cls, est: DecisionTreeRegressor | HistGradientBoostingRegressor) -> TreeArrays:
        if isinstance(est, DecisionTreeRegressor):
            t = est.tree_
            leaf = t.children_left < 0
            return cls(
                left=t.children_left.astype(np.int64),
                right=t.children_right.astype(np.int64),
                feature=np.where(leaf, 0, t.feature).astype(np.int64),
                threshold=t.threshold.astype(np.float64),
                value=t.value[:, 0, 0].astype(np.float64),
                leaf=leaf,
                missing_left=np.ones(leaf.size, bool),
                roots=np.array([0], np.int64),
                baseline=0.0,
            )
        parts, roots, offset = [], [], 0
        for (pred,) in est._predictors:  # one tree per boosting round for a regressor
            n = pred.nodes
            roots.append(offset)
            parts.append((n["left"].astype(np.int64) + offset, n["right"].astype(np.int64) + offset, n))
            offset += n.size
        nodes = np.concatenate([p[2] for p in parts])
        return cls(
            left=np.concatenate([p[0] for p in parts]),
            right=np.concatenate([p[1] for p in parts]),
            feature=nodes["feature_idx"].astype(np.int64),
            threshold=nodes["num_threshold"].astype(np.float64),
            value=nodes["value"].astype(np.float64),
            leaf=nodes["is_leaf"].astype(bool),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            roots=np.asarray(roots, np.int64),
            baseline=float(np.ravel(est._baseline_prediction)[0]),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Walk every tree for all rows at once (vectorised over rows)."""
        x = np.asarray(x, np.float64)
        rows = np.arange(x.shape[0])
        out = np.full(x.shape[0], self.baseline)
        for root in self.roots:
            node = np.full(x.shape[0], root)
            while not (done := self.leaf[node]).all():
                v = x[rows, self.feature[node]]
                go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
                node = np.where(done, node, np.where(go_left, self.left[node], self.right[node]))
            out += self.value[node]
        return out

    def save(self, path: str | Path, **meta: str | int | float) -> None:
        arrays = {k: np.asarray(v) for k, v in self.__dict__.items()}
        np.savez(path, **arrays, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()})

    @classmethod
    def load(cls, path: str | Path) -> tuple[TreeArrays, dict[str, object]]:
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in cls.__dataclass_fields__}
            meta = {k[5:]: (z[k] if z[k].ndim else z[k].item()) for k in z.files if k.startswith("meta_")}
        fields["baseline"] = float(fields["baseline"])
        return cls(**fields), meta

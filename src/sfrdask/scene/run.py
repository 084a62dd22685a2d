"""Train and score the Scene classifiers on a fixed split: accuracy per task and model, confusion
matrices (PNG), and the results table (CSV, JSON, markdown) in the output directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sfrdask.choices import SPLITS
from sfrdask.io.atomic import write_text
from sfrdask.models import ModelError
from sfrdask.plots import save_figure
from sfrdask.scene.data import SceneData, fixed_split, read_scene
from sfrdask.scene.models import SCENE_MODELS
from sfrdask.tables import markdown

TASKS = ("CLASS1", "CLASS2")


def _features(
    data: SceneData, split: np.ndarray, pca_components: int = 32
) -> dict[str, dict[str, np.ndarray]]:
    """Standardised audio, per-channel standardised images and image PCA features, per split;
    every statistic from the training split only."""
    from sklearn.decomposition import PCA  # scikit-learn: only when the Scene baseline runs

    tr = split == "train"
    a_mu, a_sd = data.audio[tr].mean(0), data.audio[tr].std(0) + 1e-6
    i_mu = data.images[tr].mean((0, 2, 3), keepdims=True)
    i_sd = data.images[tr].std((0, 2, 3), keepdims=True) + 1e-6
    audio = (data.audio - a_mu) / a_sd
    images = ((data.images - i_mu) / i_sd).astype(np.float32)
    flat = images.reshape(len(images), -1)
    pca = PCA(n_components=min(pca_components, int(tr.sum()) - 1), random_state=0).fit(flat[tr])
    image_pca = pca.transform(flat).astype(np.float32)
    image_pca /= image_pca[tr].std(0) + 1e-6
    return {
        s: {
            "audio": audio[split == s].astype(np.float32),
            "image": images[split == s],
            "image_pca": image_pca[split == s],
        }
        for s in SPLITS
    }


def _fit_tree(spec: Any, x: dict, y: dict, seed: int) -> np.ndarray:
    """A decision tree whose depth is chosen on the validation split; test class predictions."""
    mats = {s: np.concatenate([x[s][i].reshape(len(x[s][i]), -1) for i in spec.inputs], 1) for s in x}
    best = None
    for depth in (2, 3, 4, 6, 8, 10, 14, 20, None):
        est = (
            spec.build({}, n_classes=0, seed=seed).set_params(max_depth=depth).fit(mats["train"], y["train"])
        )
        acc = float((est.predict(mats["validation"]) == y["validation"]).mean())
        if best is None or acc > best[0]:
            best = (acc, est)
    return best[1].predict(mats["test"])


def _fit_net(
    spec: Any, x: dict, y: dict, n_classes: int, epochs: int, batch: int, seed: int, patience: int = 8
) -> tuple[np.ndarray, int]:
    """AdamW + cross entropy, early stopping on validation accuracy; test class predictions."""
    torch.manual_seed(seed)
    shapes = {k: tuple(v.shape[1:]) for k, v in x["train"].items()}
    model = spec.build(shapes, n_classes=n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    t = {s: {k: torch.from_numpy(v) for k, v in x[s].items()} for s in x}
    yt = torch.from_numpy(y["train"])
    gen = torch.Generator().manual_seed(seed)
    n = len(yt)

    def predict(s: str) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model.proba(model(t[s])).argmax(-1).numpy()

    best, best_state, bad, done = -1.0, None, 0, 0
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for a in range(0, n, batch):
            idx = order[a : a + batch]
            opt.zero_grad()
            model.loss(model({k: v[idx] for k, v in t["train"].items()}), yt[idx]).backward()
            opt.step()
        done += 1
        acc = float((predict("validation") == y["validation"]).mean())
        if acc > best:
            best, bad = acc, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    return predict("test"), done


def plot_confusion(matrices: dict[str, np.ndarray], classes: list[str], title: str, out: Path) -> Path:
    """One confusion matrix (rows: true, columns: predicted, counts) per model."""
    import matplotlib.pyplot as plt  # matplotlib: only when plotting

    k = len(matrices)
    ncol = min(4, k)
    nrow = -(-k // ncol)
    side = 2.2 + 0.35 * len(classes)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(side * ncol, side * nrow), squeeze=False, layout="constrained"
    )
    for ax, (name, m) in zip(axes.flat, matrices.items(), strict=False):
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="w" if v > m.max() / 2 else "k")
        acc = np.trace(m) / max(m.sum(), 1)
        ax.set_xticks(range(len(classes)), classes, rotation=60, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set(title=f"{name}\naccuracy {acc:.3f}", xlabel="predicted", ylabel="true")
    for ax in axes.flat[k:]:
        ax.axis("off")
    fig.suptitle(title)
    return save_figure(fig, out)


def run_scene(
    data: str | Path,
    out: str | Path = "scene-output",
    models: list[str] | None = None,
    size: int = 32,
    epochs: int = 40,
    batch_size: int = 32,
    seed: int = 0,
    image_column: str | None = None,
    progress: bool = True,
    client: Any = None,
) -> dict[str, Any]:
    """Every Scene model on both tasks (CLASS1 indoors/outdoors, CLASS2 environment); frames are
    decoded on ``client`` (``None``: Dask's in-process scheduler)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = models or [m.name for m in SCENE_MODELS.list()]
    specs = [SCENE_MODELS.get(n) for n in names]
    bad = [s.name for s in specs if s.task != "classification"]
    if bad:
        raise ModelError(f"{bad} are not Scene (classification) models; `sfrdask models` lists them")
    scene = read_scene(data, size=size, image_column=image_column, progress=progress, client=client)
    split = fixed_split(scene.files)
    counts = {s: int((split == s).sum()) for s in SPLITS}
    if min(counts.values()) == 0:
        raise ValueError(
            f"{data}: {len(split)} rows are too few for a train/validation/test split ({counts})"
        )
    x = _features(scene, split)
    rows = []
    for task in TASKS:
        y = {s: scene.labels[task][split == s] for s in SPLITS}
        k = len(scene.classes[task])
        matrices = {}
        for spec in specs:
            t0 = time.perf_counter()
            if spec.family == "tree":
                pred, ep = _fit_tree(spec, x, y, seed), None
            else:
                pred, ep = _fit_net(spec, x, y, k, epochs, batch_size, seed)
            m = np.zeros((k, k), np.int64)
            np.add.at(m, (y["test"], pred), 1)
            matrices[spec.name] = m
            rows.append({"task": task, "model": spec.name, "inputs": "+".join(spec.inputs),
                         "accuracy": float((pred == y["test"]).mean()), "n_test": len(pred), "epochs": ep,
                         "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
        plot_confusion(matrices, scene.classes[task], f"{task} (test split, {counts['test']} frames)",
                       out / f"confusion_{task}.png")  # fmt: skip
    table = pd.DataFrame(rows)
    for name, text in (("results.csv", table.to_csv(index=False)),
                       ("results.json", json.dumps({"split": counts, "rows": rows}, indent=1)),
                       ("results.md", _markdown(table))):  # fmt: skip
        write_text(out / name, text)
    return {"table": table, "split": counts, "classes": scene.classes}


def _markdown(table: pd.DataFrame) -> str:
    wide = table.pivot(index="model", columns="task", values="accuracy").reindex(table.model.unique())
    wide = wide[["CLASS1", "CLASS2"]].rename(
        columns={"CLASS1": "CLASS1 (indoors/outdoors)", "CLASS2": "CLASS2 (environment)"}
    )
    return markdown(wide.rename_axis("model").reset_index())

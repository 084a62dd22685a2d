"""What a trained network looks at: integrated-gradients attributions (captum) over wavelength and
over pixels, averaged per class and per SFR bin.

Two questions are answered with numbers and plots:

- Does the spectrum branch use the lines and the break? Each object's attribution over its spectrum
  is moved to the rest frame (by its redshift) and normalised to sum 1; the share that falls in
  windows around H-alpha + [N II], H-beta, [O III] 5007, [O II] 3727 and the 4000 A break, divided
  by the windows' share of the wavelengths, is the window's *enrichment* (1: no preference).
- Does the image branch use light inside or outside the 3" fibre? The share of each object's
  image attribution (all bands) within 1.5" of the centre, against the share of the cutout's area
  there.

Attributions are taken against the all-zero input, which after normalisation is the training
split's mean object (:class:`sfrdask.training.data.Normaliser`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfrdask.errors import SfrdaskError
from sfrdask.io.atomic import write_text
from sfrdask.io.levels import BANDS, wavelength_grid
from sfrdask.io.store import open_store
from sfrdask.models import get_model
from sfrdask.preprocessing.context import REST_PIVOT, columns, rest_frame
from sfrdask.trained.inference import load_run
from sfrdask.training.data import AXIS_LABELS
from sfrdask.training.spec import TrainSpec, load_splits

# rest-frame windows [Angstrom] (vacuum wavelengths, as SDSS spectra)
WINDOWS = {
    "[O II] 3727": (3717.0, 3740.0),
    "4000 A break": (3850.0, 4100.0),
    "H-beta": (4852.0, 4872.0),
    "[O III] 5007": (4998.0, 5018.0),
    "H-alpha + [N II]": (6540.0, 6595.0),
}
FIBRE_ARCSEC, PIXEL_ARCSEC = 1.5, 0.396  # SDSS fibre radius; SDSS frame pixels (zoom 0)


@dataclass
class Explanation:
    """Per-object attributions of one run on some objects of one split."""

    model: str
    run_dir: Path
    target: str
    objects: np.ndarray  # store indices
    groups: pd.DataFrame  # per object: class, sfr_bin
    spectrum: np.ndarray | None  # (n, L) rest-frame |attribution|, each object's sum 1
    rest_wavelength: np.ndarray | None  # (L,) Angstrom
    image: np.ndarray | None  # (n, s, s) |attribution| summed over bands, each object's sum 1
    bands: np.ndarray | None  # (n, 5) share of the image attribution per band
    image_zoom: int | None
    context: pd.DataFrame | None  # per object, |attribution| share of each context column


def explain_run(
    run: str | Path,
    store: str | Path,
    split: str = "test",
    objects: int = 256,
    steps: int = 32,
    seed: int = 0,
) -> Explanation:
    """Integrated gradients of a network's prediction for up to ``objects`` objects of ``split``."""
    import torch  # torch and captum load only when an attribution is computed
    from captum.attr import IntegratedGradients

    trained = load_run(run)
    pixels = [i for i in ("image", "spectrum") if i in trained.inputs]
    if not get_model(trained.model).traits.explainable or not pixels:
        raise SfrdaskError(
            f"{trained.path}: {trained.model} is a {trained.family} model on {', '.join(trained.inputs)}; "
            "explain needs a network that reads cutouts or spectra (not PCA features)"
        )
    ident = trained.identity
    spec = TrainSpec.from_config(
        store,
        trained.model,
        image_zoom=ident["image_zoom"],
        spectrum_zoom=ident["spectrum_zoom"],
        target=ident["target"],
        context=trained.context,
        rest_frame=trained.rest_frame,
        progress=False,
    )
    ds = load_splits(spec, normaliser=trained.normaliser)[split]
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(len(ds), size=min(objects, len(ds)), replace=False))
    batch = ds.__getitems__(pos.tolist())
    names = [n for n in ("image", "spectrum", "context") if n in trained.inputs]
    net = trained.build()

    def predict(*tensors: torch.Tensor) -> torch.Tensor:
        return net.prediction(net(dict(zip(names, tensors, strict=True))))

    inputs = tuple(batch[n].requires_grad_() for n in names)
    attr = IntegratedGradients(predict).attribute(
        inputs, baselines=tuple(torch.zeros_like(x) for x in inputs), n_steps=steps, internal_batch_size=256
    )
    a = {n: np.abs(t.detach().numpy().astype(np.float64)) for n, t in zip(names, attr, strict=True)}
    obj = ds.objects[pos]
    root = open_store(store, image_zoom=None, spectrum_zoom=None)
    z = root["Z"].values.astype(np.float64)[obj] if "Z" in root else np.full(obj.size, np.nan)
    cls = root["CLASS"].values.astype(str)[obj] if "CLASS" in root else np.full(obj.size, "")
    groups = pd.DataFrame({"class": np.char.strip(cls.astype(str)), "sfr_bin": sfr_bins(ds.y[pos])})

    spectrum = wave = image = bands = context = None
    if "spectrum" in a:
        grid = wavelength_grid(spec.spectrum_zoom)
        wave = grid / (1 + REST_PIVOT)
        s = a["spectrum"] if trained.rest_frame else rest_frame(a["spectrum"], z, grid)
        spectrum = s / np.nansum(s, axis=1, keepdims=True)
    if "image" in a:
        image = a["image"].sum(axis=1)
        bands = a["image"].sum(axis=(2, 3)) / image.sum(axis=(1, 2))[:, None]
        image = image / image.sum(axis=(1, 2), keepdims=True)
    if "context" in a:
        c = (
            a["context"]
            / np.maximum(sum(v.sum(axis=tuple(range(1, v.ndim))) for v in a.values()), 1e-30)[:, None]
        )
        context = pd.DataFrame(c, columns=list(columns(trained.context)))
    return Explanation(
        trained.model,
        trained.path,
        trained.target,
        obj,
        groups,
        spectrum,
        wave,
        image,
        bands,
        ident["image_zoom"],
        context,
    )


def sfr_bins(y: np.ndarray) -> np.ndarray:
    """Terciles of the target, labelled by their range (so each bin holds a third of the objects)."""
    edges = np.quantile(y, [0, 1 / 3, 2 / 3, 1])
    which = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, 2)
    labels = [f"{edges[i]:.2f} to {edges[i + 1]:.2f}" for i in range(3)]
    return np.array([labels[i] for i in which])


def window_table(e: Explanation) -> pd.DataFrame:
    """Per group: share of the spectrum attribution in each window and its enrichment."""
    rows = []
    for kind, label, sel in _groups(e):
        s = _nanmean(e.spectrum[sel])
        covered = np.isfinite(s)
        total = np.nansum(s)
        row = {"group": kind, "value": label, "objects": int(sel.sum())}
        for name, (lo, hi) in WINDOWS.items():
            w = covered & (e.rest_wavelength >= lo) & (e.rest_wavelength <= hi)
            share = float(np.nansum(s[w]) / total) if total > 0 else np.nan
            frac = w.sum() / max(covered.sum(), 1)
            row[f"{name} share"] = share
            row[f"{name} enrichment"] = share / frac if frac > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def fibre_table(e: Explanation) -> pd.DataFrame:
    """Per group: share of the image attribution inside the fibre, the fibre's share of the
    cutout's area, and each band's share."""
    r = radius_arcsec(e.image.shape[-1], e.image_zoom)
    inside = r <= FIBRE_ARCSEC
    rows = []
    for kind, label, sel in _groups(e):
        rows.append(
            {
                "group": kind,
                "value": label,
                "objects": int(sel.sum()),
                "inside fibre": float(e.image[sel][:, inside].sum(axis=1).mean()),
                "fibre area": float(inside.mean()),
                **{f"{b} band": float(e.bands[sel, i].mean()) for i, b in enumerate(BANDS)},
            }
        )
    return pd.DataFrame(rows)


def radius_arcsec(size: int, zoom: int) -> np.ndarray:
    """Distance of each pixel centre from the cutout's centre, in arcsec."""
    c = (np.arange(size) - (size - 1) / 2) * PIXEL_ARCSEC * 2**zoom
    return np.hypot(*np.meshgrid(c, c))


def _nanmean(x: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """Mean over objects, NaN where no object covers a wavelength (no warning), or where fewer
    than ``min_share`` of them do (a mean there would speak for a few objects of the group only)."""
    n = np.isfinite(x).sum(axis=0)
    enough = (n > 0) & (n >= min_share * len(x))
    return np.where(enough, np.nansum(x, axis=0) / np.maximum(n, 1), np.nan)


COVERED = 0.5  # the spectrum plot draws a group's mean where at least this share of it is observed


def _groups(e: Explanation) -> list[tuple[str, str, np.ndarray]]:
    out = [("all", "all", np.ones(len(e.objects), bool))]
    for kind in ("class", "sfr_bin"):
        for v in sorted(set(e.groups[kind])):
            out.append((kind, v, (e.groups[kind] == v).to_numpy()))
    return out


def plot_spectrum(e: Explanation, out: Path, label: str) -> Path:
    """Mean rest-frame attribution per class and per SFR bin, with the line windows shaded."""
    from sfrdask.plots import plt, save_figure  # matplotlib: only when plotting

    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True, layout="constrained")
    for ax, kind in zip(axes, ("class", "sfr_bin"), strict=True):
        for _, v, sel in [g for g in _groups(e) if g[0] == kind]:
            name = f"{v} (n = {sel.sum()})" if kind == "class" else f"{label} {v} (n = {sel.sum()})"
            curve = _nanmean(e.spectrum[sel], COVERED)
            if not np.isfinite(curve).any():  # e.g. quasars at z ~ 1.3: their rest frame is bluer
                name += ": no wavelength observed for half of them"
            ax.plot(e.rest_wavelength, curve, lw=0.8, label=name)
        for i, (name, (lo, hi)) in enumerate(WINDOWS.items()):
            ax.axvspan(lo, hi, color=f"C{i + 3}", alpha=0.2, label=name if kind == "class" else None)
        ax.set_ylabel("mean |attribution| per sample\n(each object's total = 1)")
        ax.text(0.01, 0.97, f"each curve where at least {COVERED:.0%} of its objects are observed",
                transform=ax.transAxes, fontsize=7, va="top")  # fmt: skip
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_title(f"{e.model}: integrated gradients over the spectrum ({len(e.objects)} test objects)")
    axes[1].set_xlabel(r"rest-frame wavelength [$\AA$]")
    return save_figure(fig, out)


def plot_image(e: Explanation, out: Path, label: str) -> Path:
    """Mean attribution map with the fibre drawn, and radial profiles per class and SFR bin."""
    from sfrdask.plots import plt, save_figure  # matplotlib: only when plotting

    size, zoom = e.image.shape[-1], e.image_zoom
    half = size / 2 * PIXEL_ARCSEC * 2**zoom
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    im = a.imshow(e.image.mean(axis=0), origin="lower", extent=(-half, half, -half, half), cmap="magma")
    a.add_patch(plt.Circle((0, 0), FIBRE_ARCSEC, fill=False, color="cyan", lw=1.2, label='3" fibre'))
    a.set_xlabel("offset [arcsec]")
    a.set_ylabel("offset [arcsec]")
    a.set_title(f'mean |attribution|, all bands ({size} px of {PIXEL_ARCSEC * 2**zoom:.3g}")', fontsize=9)
    a.legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=a, label="share of each object's attribution")
    r = radius_arcsec(size, zoom)
    edges = np.linspace(0, r.max() + 1e-9, min(size // 2, 16) + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    ring = [(r >= lo) & (r < hi) for lo, hi in itertools.pairwise(edges)]
    for kind, v, sel in _groups(e):
        mean = e.image[sel].mean(axis=0)
        prof = [mean[m].mean() if m.any() else np.nan for m in ring]
        name = "all" if kind == "all" else (v if kind == "class" else f"{label} {v}")
        b.plot(
            mid,
            prof,
            marker="o",
            ms=3,
            lw=1,
            ls="-" if kind != "sfr_bin" else "--",
            label=f"{name} (n = {sel.sum()})",
        )
    b.axvline(FIBRE_ARCSEC, color="k", lw=1, ls=":", label='fibre radius 1.5"')
    b.set_xlabel("radius [arcsec]")
    b.set_ylabel("mean |attribution| per pixel")
    b.set_yscale("log")
    b.legend(fontsize=7)
    fig.suptitle(f"{e.model}: integrated gradients over the cutouts ({len(e.objects)} test objects)")
    return save_figure(fig, out)


def write_explanation(e: Explanation, out: str | Path) -> dict[str, Any]:
    """The plots and tables of ``e`` in ``out``; returns the paths and the tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    label = AXIS_LABELS[e.target].split(" [")[0]
    written: dict[str, Any] = {"files": []}
    if e.spectrum is not None:
        written["windows"] = window_table(e)
        write_text(out / "spectrum_windows.csv", written["windows"].to_csv(index=False, float_format="%.4g"))
        written["files"] += [
            out / "spectrum_windows.csv",
            plot_spectrum(e, out / "spectrum_attribution.png", label),
        ]
    if e.image is not None:
        written["fibre"] = fibre_table(e)
        write_text(out / "image_fibre.csv", written["fibre"].to_csv(index=False, float_format="%.4g"))
        written["files"] += [out / "image_fibre.csv", plot_image(e, out / "image_attribution.png", label)]
    if e.context is not None:
        written["context"] = e.context.mean().to_dict()
    return written

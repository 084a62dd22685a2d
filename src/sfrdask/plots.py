"""PNG plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from sfrdask.io.atomic import atomic_output
from sfrdask.io.levels import BANDS


def save_figure(fig: plt.Figure, out: str | Path) -> Path:
    """Save through a temporary file, renamed when complete."""
    try:
        with atomic_output(out) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(out)


def plot_label_distribution(ds: xr.Dataset, out: str | Path, label: str = "AVG") -> Path:
    """Histogram of log SFR for FLAG == 0 objects per class, and the SFR-mass plane when mass exists."""
    flag = ds["FLAG"].values
    good = flag == 0
    y = ds[label].values
    cls = ds["CLASS"].values.astype(str)
    has_mass = "LGM_AVG" in ds
    fig, axes = plt.subplots(1, 2 if has_mass else 1, figsize=(11 if has_mass else 6, 4.2), squeeze=False)
    ax = axes[0, 0]
    bins = np.linspace(np.nanmin(y[good]) - 0.2, np.nanmax(y[good]) + 0.2, 40) if good.any() else 20
    for c in sorted(set(cls[good])):
        sel = good & (cls == c) & np.isfinite(y)
        ax.hist(
            y[sel], bins=bins, histtype="stepfilled", alpha=0.5, label=f"{c or 'unknown'} (n={sel.sum()})"
        )
    ax.set_xlabel(f"{label}: " + r"log SFR [M$_\odot$ yr$^{-1}$]")
    ax.set_ylabel("objects")
    ax.set_title(f"Labels with FLAG == 0: {good.sum()} of {flag.size} objects")
    ax.legend()
    if has_mass:
        ax = axes[0, 1]
        m = ds["LGM_AVG"].values
        for c in sorted(set(cls[good])):
            sel = good & (cls == c) & np.isfinite(m) & np.isfinite(y)
            ax.scatter(m[sel], y[sel], s=4, alpha=0.5, label=c)
        xs = np.linspace(9, 12, 10)
        ax.plot(xs, 0.76 * xs - 7.64, "k--", lw=1, label="main sequence (Renzini & Peng 2015)")
        ax.set_xlabel(r"log M$_*$ [M$_\odot$]")
        ax.set_ylabel(r"log SFR [M$_\odot$ yr$^{-1}$]")
        ax.set_title("SFR-mass plane")
        ax.legend(markerscale=3, fontsize=8)
    return save_figure(fig, out)


def _limits(img: np.ndarray) -> tuple[float, float]:
    """Display range of one cutout: the 5th and 99.7th percentiles of its finite pixels."""
    v = img[np.isfinite(img)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [5, 99.7])
    return float(lo), float(max(hi, lo + 1e-30))


def _stretch(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """asinh stretch between ``lo`` and ``hi``."""
    return np.arcsinh(np.clip((img - lo) / (hi - lo), 0, None) * 10) / np.arcsinh(10)


SDSS_PIXEL_ARCSEC = 0.396  # SDSS frame pixels; each zoom level halves the sampling


def plot_deblend_montage(
    raw: np.ndarray,
    clean: np.ndarray,
    mask: np.ndarray,
    out: str | Path,
    titles: list[str] | None = None,
    band: int = 2,
    zoom: int = 0,
) -> Path:
    """Before/after montage of one band: the raw cutout with the replaced pixels outlined, and the
    cleaned cutout, both on the raw cutout's display scale (so the change is what is seen)."""
    k, side = raw.shape[0], raw.shape[-1]
    pix = SDSS_PIXEL_ARCSEC * 2**zoom
    fig, axes = plt.subplots(2, k, figsize=(1.9 * k, 4.3), squeeze=False)
    for i in range(k):
        lo, hi = _limits(raw[i, band])
        axes[0, i].imshow(_stretch(raw[i, band], lo, hi), origin="lower", cmap="gray", vmin=0, vmax=1)
        if (mask[i] & 1).any():
            axes[0, i].contour(mask[i] & 1, levels=[0.5], colors="tab:red", linewidths=0.6)
        axes[1, i].imshow(_stretch(clean[i, band], lo, hi), origin="lower", cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(titles[i] if titles else f"#{i}", fontsize=7)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    bar = 5.0 / pix  # a 5 arcsec scale bar
    axes[1, 0].plot([1, 1 + bar], [1.5, 1.5], color="w", lw=1.5)
    axes[1, 0].text(1, 2.5, '5"', color="w", fontsize=7)
    axes[0, 0].set_ylabel("before (neighbours outlined)")
    axes[1, 0].set_ylabel("after")
    fig.suptitle(
        f"{BANDS[band]} band, {side} x {side} px ({pix:.3g} arcsec/px); both rows on the raw cutout's "
        "asinh scale",
        fontsize=8,
    )
    return save_figure(fig, out)


def main_sequence_plot(cat: pd.DataFrame, mass: np.ndarray, flag: np.ndarray, out: str | Path) -> Path:
    """Predicted log SFR against MPA-JHU stellar mass, one point per galaxy with a mass: FLAG == 0
    and FLAG != 0 (or unmatched) in two colours, objects the model was fitted on (train and
    validation splits) apart from the out-of-sample rest, each group with its count."""
    cls = cat["CLASS"].astype(str).str.strip().str.upper().to_numpy()
    gal = (cls == "GALAXY") & np.isfinite(mass)
    fitted = cat["SPLIT"].isin(["train", "validation"]).to_numpy()
    sfr = cat["MEDIAN"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    groups = (
        (flag != 0, "FLAG != 0 or unmatched", "C1"),
        (flag == 0, "FLAG == 0", "C0"),
    )
    for good, label, colour in groups:
        for used, how, marker in ((~fitted, "out of sample", "o"), (fitted, "train / validation", "x")):
            sel = gal & good & used
            if sel.any():
                ax.scatter(mass[sel], sfr[sel], s=7, alpha=0.55, color=colour, marker=marker, lw=0.8,
                           label=f"{label}, {how} (n = {int(sel.sum())})")  # fmt: skip
    ax.set_xlabel(r"log stellar mass [M$_\odot$] (MPA-JHU LGM_AVG)")
    ax.set_ylabel(r"predicted log SFR [M$_\odot$ yr$^{-1}$]")
    ax.set_title(
        f"Predicted SFR against stellar mass: the {int(gal.sum())} galaxies of {len(cat)} objects "
        "with an MPA-JHU mass", fontsize=9,
    )  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7, markerscale=2)
    return save_figure(fig, out)

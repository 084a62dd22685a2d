"""PNG plots people would rather look at than read."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


def save_figure(fig: plt.Figure, out: str | Path) -> Path:
    """Save through a temporary file, renamed when complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)
    return out


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
    ax.set_xlabel(f"{label}: log10 SFR [Msun/yr]")
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
        ax.set_xlabel("log10 M* [Msun]")
        ax.set_ylabel("log10 SFR [Msun/yr]")
        ax.set_title("SFR-mass plane")
        ax.legend(markerscale=3, fontsize=8)
    return save_figure(fig, out)


def _stretch(img: np.ndarray) -> np.ndarray:
    """asinh stretch of one band for display."""
    v = img[np.isfinite(img)]
    if v.size == 0:
        return np.zeros_like(img)
    lo, hi = np.percentile(v, [5, 99.7])
    soft = max(hi - lo, 1e-30)
    return np.arcsinh(np.clip((img - lo) / soft, 0, None) * 10) / np.arcsinh(10)


def plot_deblend_montage(
    raw: np.ndarray,
    clean: np.ndarray,
    mask: np.ndarray,
    out: str | Path,
    titles: list[str] | None = None,
    band: int = 2,
) -> Path:
    """Before/after montage: raw cutout (one band), replaced pixels outlined, cleaned cutout."""
    k = raw.shape[0]
    fig, axes = plt.subplots(2, k, figsize=(1.9 * k, 4.0), squeeze=False)
    for i in range(k):
        axes[0, i].imshow(_stretch(raw[i, band]), origin="lower", cmap="gray")
        if (mask[i] & 1).any():
            axes[0, i].contour(mask[i] & 1, levels=[0.5], colors="tab:red", linewidths=0.6)
        axes[1, i].imshow(_stretch(clean[i, band]), origin="lower", cmap="gray")
        axes[0, i].set_title(titles[i] if titles else f"#{i}", fontsize=7)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("before")
    axes[1, 0].set_ylabel("after")
    return save_figure(fig, out)

"""The physics baseline on real SDSS spectra: its BPT classes against the SDSS pipeline's, and its speed.

    python benchmarks/physics_agreement.py --out bench-output

Reads the 26 real spectra in ../shared/data/sdss/spectra (never copied), makes their zoom levels as
HiSS-Cube does (:func:`sfrdask.io.levels.all_spectrum_levels`) and runs the line fits of
``physics-halpha`` at every level, with the pipeline's redshift (HDU 2). Writes a table of each
spectrum's pipeline CLASS/SUBCLASS (SDSS's own emission-line class: STARFORMING, STARBURST,
AGN, BROADLINE, or none) beside sfrdask's class and log SFR per level, the repeat scatter of the
plate-412 galaxy, spectra per second of one process per level, and the line fluxes against the
pipeline's own fits in each file (SPZLINE): per level and line, the median and largest |log ratio|
of the lines at pipeline S/N > 10, and the Balmer decrements (:func:`line_agreement`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine, markdown, write_json

from sfrdask.bpt import bpt_region
from sfrdask.io.atomic import write_text
from sfrdask.io.fits import FitsError, read_line_fits, read_spectrum, scan_spectrum
from sfrdask.io.levels import N_ZOOM, all_spectrum_levels, spectrum_samples, wavelength_grid
from sfrdask.models.physics import HalphaSFR

SPECTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdss" / "spectra"
AGN_LIKE = ("AGN", "AGN_LOW_SN", "BROAD_LINE")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spectra", type=Path, default=SPECTRA)
    p.add_argument("--out", type=Path, default=Path("bench-output"))
    p.add_argument("--repeat", type=int, default=5, help="timing repeats (the best is kept)")
    args = p.parse_args()
    manifest = pd.read_csv(args.spectra / "MANIFEST.csv")
    obs = [read_spectrum(args.spectra / f) for f in manifest.file]
    z = np.array([scan_spectrum(args.spectra / f)["z"] for f in manifest.file])
    levels = [all_spectrum_levels(f, e) for f, e in obs]
    table = manifest[["file", "sdss_class", "subclass", "z"]].fillna("").copy()
    speed, details = [], []
    for zoom in range(N_ZOOM):
        flux = np.array([lv[zoom][0] for lv in levels], dtype=np.float64)
        err = np.array([lv[zoom][1] for lv in levels], dtype=np.float64)
        best = np.inf
        for _ in range(args.repeat):
            est = HalphaSFR()
            t0 = time.perf_counter()
            log_sfr = est.predict(wavelength_grid(zoom), flux, err, z)
            best = min(best, time.perf_counter() - t0)
        details.append(est.details)
        table[f"class {spectrum_samples(zoom)}"] = est.details["bpt_class"]
        table[f"SDSS rule {spectrum_samples(zoom)}"] = est.details["sdss_subclass"]
        table[f"log SFR {spectrum_samples(zoom)}"] = np.round(log_sfr, 2)
        rate = round(len(obs) / best, 1)
        speed.append({"samples": spectrum_samples(zoom), "spectra per s (1 process)": rate})
    sf = table["subclass"].isin(["STARFORMING", "STARBURST"])
    agree = []
    for zoom in range(N_ZOOM):
        cls = table[f"class {spectrum_samples(zoom)}"]
        p412 = table["file"].str.startswith("spec-0412-") & (cls == "SF")
        sfr412 = table.loc[p412, f"log SFR {spectrum_samples(zoom)}"]
        agree.append({
            "samples": spectrum_samples(zoom),
            "pipeline SF/starburst": int(sf.sum()),
            "called SF": int((cls[sf] == "SF").sum()),
            "called composite": int((cls[sf] == "COMPOSITE").sum()),
            "called AGN-like": int(cls[sf].isin(AGN_LIKE).sum()),
            "plate 412 SF epochs": int(p412.sum()),
            "plate 412 scatter (dex)": round(float(np.std(sfr412, ddof=1)), 3) if len(sfr412) > 1 else None,
        })  # fmt: skip
    rows = table.to_dict(orient="records")
    fluxes, balmer, classes, skipped = line_agreement(args.spectra, manifest, details)
    res = {"spectra": rows, "agreement": agree, "speed": speed, "fluxes": fluxes, "balmer": balmer,
           "classes": classes, "skipped": skipped, "machine": machine()}  # fmt: skip
    write_json(args.out / "physics_agreement.json", res)
    text = "\n\n".join(markdown(t) for t in (rows, agree, speed, fluxes, balmer, classes))
    text += f"\n\nskipped: {skipped}"
    write_text(args.out / "physics_agreement.md", text + "\n")
    print(text)


# the SPZLINE name of each line -> the estimator's detail holding sfrdask's flux of it
LINES = {"H_alpha": "halpha", "[N_II] 6583": "nii", "H_beta": "hbeta", "[O_III] 5007": "oiii"}
UNMEASURED = "lines not measured (LINEAREA_ERR = -1)"
BPT_SNR = 5.0  # the four lines above this S/N in the pipeline's fits: their BPT class is compared


def region(f: dict[str, float]) -> str:
    """The BPT region (:func:`sfrdask.bpt.bpt_region`) of fluxes keyed by their SPZLINE names."""
    return str(
        bpt_region(np.log10(f["[N_II] 6583"] / f["H_alpha"]), np.log10(f["[O_III] 5007"] / f["H_beta"]))
    )


def line_agreement(
    spectra: Path, manifest: pd.DataFrame, details: list[dict[str, np.ndarray]]
) -> tuple[list[dict], list[dict], list[dict], dict[str, int]]:
    """The estimator's own H-alpha, H-beta, [N II] 6583 and [O III] 5007 fluxes (``details`` of
    :class:`HalphaSFR` per spectrum level) against the SDSS pipeline's fits in each file (SPZLINE
    ``LINEAREA``): per level and line, the lines with pipeline S/N > 10 and their median and
    largest |log10 ratio|; the Balmer decrement's ratio where both Balmer lines have S/N > 10; the
    BPT class from both sets of fluxes where the pipeline has all four lines at S/N > 5, and the
    SDSS SUBCLASS rule on sfrdask's fits against the pipeline's SUBCLASS (galaxies). Files without
    SPZLINE and lines the pipeline did not measure (``LINEAREA_ERR`` = -1) are skipped and
    counted, never taken as zero fluxes."""
    skipped = {"files without SPZLINE": 0, UNMEASURED: 0}
    per, dec, cls = [], [], []
    for j, f in enumerate(manifest.file):
        try:
            ref = read_line_fits(spectra / f)
        except FitsError:
            skipped["files without SPZLINE"] += 1
            continue
        measured = {k: ref[k] for k in LINES if k in ref and np.isfinite(ref[k][1])}
        skipped[UNMEASURED] += len(LINES) - len(measured)
        snr = {k: a / e for k, (a, e) in measured.items()}
        for zoom, d in enumerate(details):
            ours = {k: float(d[v][j]) for k, v in LINES.items()}
            for k, (area, _) in measured.items():
                dex = float(np.log10(ours[k] / area)) if ours[k] > 0 < area else np.nan
                per.append({"samples": spectrum_samples(zoom), "line": k, "snr": snr[k], "dex": dex})
            if all(snr.get(k, 0) > 10 for k in ("H_alpha", "H_beta")):
                pipe = measured["H_alpha"][0] / measured["H_beta"][0]
                dec.append(
                    {"samples": spectrum_samples(zoom), "ratio": ours["H_alpha"] / ours["H_beta"] / pipe}
                )
            row = {"samples": spectrum_samples(zoom), "galaxy": manifest.sdss_class[j] == "GALAXY"}
            if len(snr) == 4 and min(snr.values()) > BPT_SNR:
                mine = region(ours) if min(ours.values()) > 0 else "unmeasured"
                row["bpt"] = (region({k: a for k, (a, _) in measured.items()}), mine)
            row["subclass"] = (str(manifest.subclass.fillna("")[j]), str(d["sdss_subclass"][j]))
            cls.append(row)
    hi = pd.DataFrame(per).query("snr > 10")
    summary = [
        {"samples": s, "line": ln, "lines (S/N > 10)": len(g),
         "median |dex|": float(np.nanmedian(np.abs(g.dex))), "max |dex|": float(np.nanmax(np.abs(g.dex))),
         "off > 0.1 dex": int((np.abs(g.dex) > 0.1).sum()), "unmeasured": int(g.dex.isna().sum())}
        for (s, ln), g in hi.groupby(["samples", "line"], sort=False)
    ]  # fmt: skip
    balmer = [
        {"samples": s, "spectra": len(g), "decrement ratio min": g.ratio.min(), "max": g.ratio.max(),
         "within 20%": int((np.abs(g.ratio - 1) <= 0.2).sum())}
        for s, g in pd.DataFrame(dec).groupby("samples", sort=False)
    ]  # fmt: skip
    classes = []
    for s, g in pd.DataFrame(cls).groupby("samples", sort=False):
        bpt = [p for p in g.get("bpt", pd.Series(dtype=object)).dropna()]
        sub = [p for p in g[g.galaxy].subclass]
        classes.append({
            "samples": s, f"BPT: four lines S/N > {BPT_SNR:g}": len(bpt),
            "same BPT class": sum(a == b for a, b in bpt),
            "galaxies": len(sub), "same SUBCLASS": sum(a == b for a, b in sub),
            "SUBCLASS differs (pipeline -> sfrdask)": "; ".join(f"{a or '-'} -> {b or '-'}"
                                                                for a, b in sub if a != b),
        })  # fmt: skip
    return summary, balmer, classes, skipped


if __name__ == "__main__":
    main()

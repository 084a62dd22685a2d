"""The physics baseline on real SDSS spectra: its BPT classes against the SDSS pipeline's, and its speed.

    python benchmarks/physics_agreement.py --out bench-output

Reads the 26 real spectra in ../shared/data/sdss/spectra (never copied), makes their zoom levels as
HiSS-Cube does (:func:`sfrdask.io.levels.all_spectrum_levels`) and runs the line fits of
``physics-halpha`` at every level, with the pipeline's redshift (HDU 2). Writes a table of each
spectrum's pipeline CLASS/SUBCLASS (SDSS's own emission-line class: STARFORMING, STARBURST,
AGN, BROADLINE, or none) beside sfrdask's class and log SFR per level, the repeat scatter of the
plate-412 galaxy, and spectra per second of one process per level.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine, markdown, write_json

from sfrdask.io.atomic import write_text
from sfrdask.io.fits import read_spectrum, scan_spectrum
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
    speed = []
    for zoom in range(N_ZOOM):
        flux = np.array([lv[zoom][0] for lv in levels], dtype=np.float64)
        err = np.array([lv[zoom][1] for lv in levels], dtype=np.float64)
        best = np.inf
        for _ in range(args.repeat):
            est = HalphaSFR()
            t0 = time.perf_counter()
            log_sfr = est.predict(wavelength_grid(zoom), flux, err, z)
            best = min(best, time.perf_counter() - t0)
        table[f"class {spectrum_samples(zoom)}"] = est.details["bpt_class"]
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
    res = {"spectra": rows, "agreement": agree, "speed": speed, "machine": machine()}
    write_json(args.out / "physics_agreement.json", res)
    text = "\n\n".join(markdown(t) for t in (rows, agree, speed))
    write_text(args.out / "physics_agreement.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""Calibrated prediction intervals for any trained model: normalised split conformal prediction.

Every model family (trees, networks, fusion, contrastive, physics) gives a point prediction. Its
uncertainty is made the same way for all of them, with MAPIE's ``SplitConformalRegressor`` and
``ResidualNormalisedScore`` on the validation split (never used for fitting weights):

1. a small difficulty model (:class:`DifficultyModel`) learns log |residual| from the prediction
   itself, the redshift, the median spectral S/N and the class (a linear regression on a random
   half of the validation split);
2. on the other half, the conformity scores |y - prediction| / difficulty give, for each nominal
   level, the factor that makes ``prediction ± factor * difficulty`` cover that share of them.

The factors are found per class (Mondrian conformal prediction: galaxies and quasars each get
their own, so coverage holds within each class), with pooled factors for any other class.

The intervals are therefore wider where the model is less sure (faint spectra, quasars, extreme
SFRs), and their coverage holds on average over objects like the validation split (exchangeable
with it). :func:`coverage_table` checks that on the test split, overall, per class and per decile
of the prediction; :func:`reliability_plot` shows nominal against empirical coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin

from sfrdask import config
from sfrdask.errors import SfrdaskError
from sfrdask.io.sfr_catalogue import object_classes

LEVELS = (0.68, 0.95)  # the catalogue's intervals: P16-P84 and P2P5-P97P5
RELIABILITY = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
RESIDUAL_SPLIT = 0.5  # share of the validation split that fits the difficulty model
# conformity scores a calibration needs: more than 1/level and 1/(1 - level) for every level
MIN_SCORES = int(np.floor(max(max(1 / lv, 1 / (1 - lv)) for lv in LEVELS + RELIABILITY))) + 1
MIN_TOTAL = 2 * MIN_SCORES  # labelled validation objects calibration needs at all (half give scores)
MIN_GROUP = 40  # labelled validation objects a group (class) needs for factors of its own


class GivenPrediction(RegressorMixin, BaseEstimator):
    """A fitted 'estimator' whose prediction is column 0 of X: the model's own prediction, made
    elsewhere (on Dask workers), handed to MAPIE as a prefit estimator."""

    def __init__(self, n_features: int = 5) -> None:
        self.n_features = n_features
        self.n_features_in_ = n_features  # what scikit-learn and MAPIE take as "fitted"

    def fit(self, x: Any, y: Any = None) -> GivenPrediction:
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, np.float64)[:, 0]


def difficulty_features(
    pred: np.ndarray,
    z: np.ndarray,
    snr: np.ndarray,
    is_qso: np.ndarray,
    spread: np.ndarray | None = None,
) -> np.ndarray:
    """The columns MAPIE sees: the prediction first (what :class:`GivenPrediction` returns), then
    what the difficulty model uses: prediction, log(1 + redshift), log10 median S/N, quasar or not
    and, for an ensemble of models, log10 of the spread of its members' predictions. Unknown
    redshifts and S/N get a neutral value (0.1, S/N 1), so every object gets an interval."""
    z = np.where(np.isfinite(z), z, 0.1)
    lz = np.log1p(np.clip(z, 0.0, None))
    lsnr = np.log10(np.clip(np.where(np.isfinite(snr), snr, 1.0), 1e-3, None))
    cols = [pred, pred, lz, lsnr, np.asarray(is_qso, float)]
    if spread is not None:
        cols.append(np.log10(np.asarray(spread, np.float64) + 0.01))
    return np.column_stack(cols).astype(np.float64)


@dataclass
class Calibration:
    """Fitted normalised split-conformal calibrations (MAPIE): one per group of objects (Mondrian:
    each class gets its own), plus a pooled one for objects of groups not calibrated."""

    regressors: dict[str, Any]  # group -> SplitConformalRegressor; "" is the pooled one
    levels: tuple[float, ...]
    scores: dict[str, int] = field(default_factory=dict)  # group -> conformity scores behind it

    def warnings(self, groups: Any, below: int) -> list[str]:
        """What a reader of the intervals should know: a group of ``groups`` (the classes being
        predicted) whose intervals rest on fewer than ``below`` conformity scores, or borrow the
        pooled factors because it has too few labelled objects of its own."""
        out = []
        pooled = self.scores.get("", 0)
        if pooled < below:
            out.append(f"all intervals rest on {pooled} conformity scores (< {below}): their coverage "
                       f"scatters by about +-{_scatter(pooled):.2f} from the nominal level")  # fmt: skip
        for g in sorted({str(g) for g in np.asarray(groups, str)} - {""}):
            n = self.scores.get(g)
            if n is None:
                out.append(f"class {g}: too few labelled calibration objects of its own (< {MIN_GROUP}): "
                           f"it uses the factors pooled over all classes ({pooled} scores)")  # fmt: skip
            elif n < below:
                out.append(f"class {g}: its intervals rest on {n} conformity scores (< {below}): coverage "
                           f"scatters by about +-{_scatter(n):.2f}")  # fmt: skip
        return out

    def intervals(
        self, x: np.ndarray, groups: np.ndarray | None = None
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``{level: (low, high)}`` for rows of :func:`difficulty_features` in ``groups``."""
        groups = np.full(len(x), "") if groups is None else np.asarray(groups, str)
        lo = np.empty((len(x), len(self.levels)))
        hi = np.empty_like(lo)
        for g in np.unique(groups):
            rows = groups == g
            _, b = self.regressors.get(g, self.regressors[""]).predict_interval(x[rows])
            lo[rows], hi[rows] = b[:, 0, :], b[:, 1, :]
        return {lv: (lo[:, i], hi[:, i]) for i, lv in enumerate(self.levels)}


class DifficultyModel(RegressorMixin, BaseEstimator):
    """How large an object's residual is expected to be: exp of a linear model of log |residual|,
    bounded to the range of its own fitted values, so that it never extrapolates to a vanishing
    or exploding scale for objects unlike those it was fitted on."""

    def fit(self, x: np.ndarray, residual: np.ndarray) -> DifficultyModel:
        # scikit-learn: only when the difficulty model is fitted
        from sklearn.linear_model import LinearRegression

        target = np.log(np.maximum(np.abs(residual), 1e-3))
        self.linear_ = LinearRegression().fit(x, target)
        self.n_features_in_ = x.shape[1]
        self.bounds_ = tuple(np.percentile(self.linear_.predict(x), [1, 99]))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(self.linear_.predict(x), *self.bounds_))


def _conformalize(
    x: np.ndarray, y: np.ndarray, difficulty: DifficultyModel, levels: tuple[float, ...]
) -> Any:
    from mapie.conformity_scores import ResidualNormalisedScore  # MAPIE loads only when intervals are fitted
    from mapie.regression import SplitConformalRegressor

    score = ResidualNormalisedScore(residual_estimator=difficulty, prefit=True)
    reg = SplitConformalRegressor(
        GivenPrediction(x.shape[1]), confidence_level=list(levels), conformity_score=score, prefit=True
    )
    return reg.conformalize(x, y)


def fit_calibration(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    seed: int = 0,
    levels: tuple[float, ...] = LEVELS + RELIABILITY,
) -> Calibration:
    """Calibrate on validation rows ``x`` (:func:`difficulty_features`) with labels ``y``.

    A random half (seeded) fits the :class:`DifficultyModel` on all classes together; the other
    half gives the conformity scores. With ``groups`` (e.g. the class), the scores of each group of
    at least :data:`MIN_GROUP` labelled objects (and :data:`MIN_SCORES` scores) set that group's
    intervals on their own (Mondrian
    conformal prediction: coverage holds within each group, not only on average over them); the
    pooled scores serve the other groups.
    """
    ok = np.flatnonzero(np.isfinite(y) & np.isfinite(x).all(axis=1))
    if ok.size < MIN_TOTAL:
        raise SfrdaskError(
            f"calibration needs at least {MIN_TOTAL} validation objects with labels, got {ok.size}"
        )
    rng = np.random.default_rng(seed)
    fit_rows = np.zeros(len(x), bool)
    fit_rows[rng.choice(ok, round(ok.size * RESIDUAL_SPLIT), replace=False)] = True
    score_rows = np.zeros(len(x), bool)
    score_rows[ok] = True
    score_rows &= ~fit_rows
    difficulty = DifficultyModel().fit(x[fit_rows], y[fit_rows] - x[fit_rows, 0])
    groups = np.full(len(x), "") if groups is None else np.asarray(groups, str)
    regs = {"": _conformalize(x[score_rows], y[score_rows], difficulty, levels)}
    scores = {"": int(score_rows.sum())}
    for g in np.unique(groups[ok]):
        rows = score_rows & (groups == g)
        if g and np.sum(groups[ok] == g) >= MIN_GROUP and rows.sum() >= MIN_SCORES:
            regs[g] = _conformalize(x[rows], y[rows], difficulty, levels)
            scores[g] = int(rows.sum())
    return Calibration(regs, tuple(levels), scores)


def _scatter(n: int, level: float = 0.68) -> float:
    """The binomial scatter of the coverage an interval calibrated on ``n`` scores gets."""
    return float(np.sqrt(level * (1 - level) / max(n, 1)))


def cross_fitted_intervals(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    seed: int = 0,
    folds: int = 5,
    levels: tuple[float, ...] = LEVELS + RELIABILITY,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Every row's intervals from a calibration fitted on the other folds: an honest check of the
    coverage of a calibration that uses all the rows (``fit_calibration(x, y)``), when there are
    too few of them to hold some out."""
    rng = np.random.default_rng(seed + 1)
    fold = rng.permutation(len(x)) % folds
    groups = np.full(len(x), "") if groups is None else np.asarray(groups, str)
    lo = np.full((len(x), len(levels)), np.nan)
    hi = lo.copy()
    for k in range(folds):
        held = fold == k
        b = fit_calibration(x[~held], y[~held], groups[~held], seed, levels).intervals(x[held], groups[held])
        for i, lv in enumerate(levels):
            lo[held, i], hi[held, i] = b[lv]
    return {lv: (lo[:, i], hi[:, i]) for i, lv in enumerate(levels)}


def _cover(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok]))) if ok.any() else np.nan


def coverage_table(
    y: np.ndarray,
    pred: np.ndarray,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray,
    truth: np.ndarray | None = None,
) -> pd.DataFrame:
    """Coverage of the 68% and 95% intervals and their mean width: overall, per class and per
    decile of the prediction; against the true SFR too when ``truth`` is given (synthetic data)."""
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(y.size, bool))]
    groups += [(f"class {c}", classes == c) for c in sorted(set(classes))]
    edges = np.quantile(pred, np.linspace(0, 1, 11)) if pred.size else np.zeros(11)
    dec = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, 9)
    groups += [(f"decile {d + 1} ({edges[d]:.2f} to {edges[d + 1]:.2f})", dec == d) for d in range(10)]
    rows = []
    for name, m in groups:
        row: dict[str, Any] = {"group": name, "n": int(m.sum())}
        for lv in LEVELS:
            lo, hi = bounds[lv]
            tag = f"{round(lv * 100)}"
            row[f"coverage_{tag}"] = _cover(y[m], lo[m], hi[m])
            row[f"width_{tag}"] = float(np.mean(hi[m] - lo[m])) if m.any() else np.nan
            if truth is not None:
                row[f"coverage_{tag}_true"] = _cover(truth[m], lo[m], hi[m])
        rows.append(row)
    return pd.DataFrame(rows)


def reliability(y: np.ndarray, bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Empirical coverage at every calibrated nominal level."""
    levels = sorted(bounds)
    return pd.DataFrame({"nominal": levels, "empirical": [_cover(y, *bounds[lv]) for lv in levels]})


def pit(y: np.ndarray, bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """For each object, the smallest calibrated central level whose interval holds it (1 when none
    does): uniform on [0, 1] for calibrated intervals (a PIT of the central intervals)."""
    levels = sorted(bounds)
    out = np.ones(y.size)
    for lv in reversed(levels):
        lo, hi = bounds[lv]
        inside = (y >= lo) & (y <= hi)
        out[inside] = lv
    return out


def reliability_plot(
    panels: dict[str, tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]],
    out: str | Path,
    title: str,
) -> Path:
    """Left: empirical against nominal coverage of central intervals (one curve per comparison,
    e.g. catalogue labels and the true SFR); right: histogram of :func:`pit`."""
    from sfrdask.plots import plt, save_figure  # matplotlib: only when plotting

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    for (name, (y, bounds)), marker in zip(panels.items(), "os^", strict=False):
        rel = reliability(y, bounds)
        ax.plot(
            rel["nominal"],
            rel["empirical"],
            marker=marker,
            ms=4,
            label=f"{name} (n = {np.isfinite(y).sum()})",
        )
        ok = np.isfinite(y)
        p = pit(y[ok], {k: (lo[ok], hi[ok]) for k, (lo, hi) in bounds.items()})
        # a value covered first at level v falls in (previous level, v]: bins end at the levels
        edges = np.r_[0.0, sorted(bounds), 1.0 + 1e-9]
        counts = np.histogram(p, bins=np.r_[edges[:-1] + 1e-9, edges[-1]])[0]
        bx.stairs(counts / max(p.size, 1) / np.diff(edges), np.r_[edges[:-1], 1.0], label=name)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage (test split)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    bx.axhline(1.0, color="0.6", lw=1, ls="--", label="uniform (calibrated)")
    bx.set_xlabel("smallest central level that covers the value")
    bx.set_ylabel("density")
    bx.legend(loc="lower center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


POOLED_CHECK = "validation + test, 5-fold out of fold"


def pooled(labelled_validation: int) -> bool:
    """Whether the intervals rest on the validation and test splits together (then checked out of
    fold), not on the validation split alone: ``sfrdask.predict.calibrate-on``."""
    mode = config.get("predict.calibrate-on")
    if mode not in ("auto", "validation", "pooled"):
        raise SfrdaskError(f"sfrdask.predict.calibrate-on must be auto, validation or pooled, got {mode!r}")
    below = int(config.get("predict.pool-below"))
    return mode == "pooled" or (mode == "auto" and labelled_validation < below)


def width_notes(
    bounds: dict[float, tuple[np.ndarray, np.ndarray]], classes: np.ndarray, kinds: list[str], wide: float
) -> list[tuple[str, float]]:
    """Per class predicted for: a line on the 95% intervals' median width and the share flagged
    WIDE_INTERVAL, and that share."""
    width = bounds[0.95][1] - bounds[0.95][0]
    out = []
    for c in kinds:
        m = classes == c
        if m.any():
            share = float(np.mean(width[m] > wide))
            text = (f"class {c}: median 95% interval width {np.median(width[m]):.2f} dex over {int(m.sum())} "
                    f"objects; {share:.0%} wider than {wide:g} dex (FLAGS bit WIDE_INTERVAL)")  # fmt: skip
            out.append((text, share))
    return out


def difficulty(pred: np.ndarray, ds: xr.Dataset, table: pd.DataFrame, members: int = 1) -> np.ndarray:
    """Difficulty features of each object; with several models, their spread is one of them."""
    z = ds["Z"].values.astype(np.float64) if "Z" in ds else np.full(pred.size, np.nan)
    spread = None
    if members > 1:
        spread = table[[f"pred_{i}" for i in range(members)]].to_numpy().std(axis=1)
    return difficulty_features(pred, z, table["snr"].to_numpy(), object_classes(ds) == "QSO", spread)


def held_out_check(
    ds: xr.Dataset,
    label: str,
    pred: np.ndarray,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    kinds: list[str],
    report: pd.DataFrame,
) -> pd.DataFrame:
    """``report`` with coverage rows added for the catalogue's own FLAG != 0 galaxies and quasars
    that still carry an MPA-JHU estimate: never used in training or calibration, an out-of-sample
    check (``report`` as it was when there are none)."""
    if label not in ds or "FLAG" not in ds:
        return report
    y = ds[label].values.astype(np.float64)
    cls = object_classes(ds)
    held = (ds["FLAG"].values != 0) & np.isfinite(y) & np.isin(cls, kinds)
    if not held.any():
        return report
    b = {lv: (lo[held], hi[held]) for lv, (lo, hi) in bounds.items()}
    extra = coverage_table(y[held], pred[held], b, cls[held])
    extra = extra[~extra["group"].str.startswith("decile")]
    extra.insert(0, "model", report["model"].iloc[-1])
    extra.insert(1, "split", "FLAG != 0 (catalogue values, never fitted)")
    return pd.concat([report, extra], ignore_index=True)


def catalogue_notes(
    cal: Calibration,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray,
    kinds: list[str],
) -> tuple[list[str], list[str]]:
    """What a reader of the catalogue's intervals must know: (to say now, on the terminal; to
    write at the end of the calibration report). Classes calibrated on few objects
    (``sfrdask.predict.warn-below``) are said now; so is a class with more than a tenth of its
    intervals wider than ``sfrdask.predict.wide-interval-dex``; every class's widths go in the
    report."""
    notes = cal.warnings(kinds, int(config.get("predict.warn-below")))
    widths = width_notes(bounds, classes, kinds, float(config.get("predict.wide-interval-dex")))
    return notes + [text for text, share in widths if share > 0.1], notes + [text for text, _ in widths]

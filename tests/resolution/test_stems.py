"""Which stem the study keeps per training: the lower validation loss, never the test split."""

from __future__ import annotations

from sfrdask.resolution.record import training_of
from sfrdask.resolution.stems import choose


def _row(stem: str, seed: int, val: list[float], r2: float) -> dict:
    return {"model": "cross-attention", "image_zoom": 0, "spectrum_zoom": 0, "seed": seed, "setup": "",
            "stem": stem, "val_curve": val, "r2": r2}  # fmt: skip


def test_the_lower_validation_loss_is_kept_whatever_the_test_r2_says():
    rows = [
        _row("", 0, [0.5, 0.30, 0.31], r2=0.60),
        _row("average", 0, [0.5, 0.28, 0.29], r2=0.55),  # better on validation, worse on test: kept
        _row("", 1, [0.5, 0.27], r2=0.70),
        _row("average", 1, [0.5, 0.29], r2=0.80),  # worse on validation, better on test: not kept
        _row("", 2, [0.30], r2=0.65),  # its twin not trained yet: kept as it is
    ]
    kept = choose(rows)
    assert [(r["seed"], r["stem"]) for r in kept] == [(0, "average"), (1, ""), (2, "")]
    assert [r["r2"] for r in kept] == [0.55, 0.70, 0.65]
    assert kept[0]["stem_kept"] == "average" and kept[1]["stem_kept"] == "configured"
    assert kept[0]["stem_val_loss"] == {"configured": 0.30, "average": 0.28}
    assert kept[1]["stem_r2"] == {"configured": 0.70, "average": 0.80}
    assert len({training_of(r).choice for r in kept}) == len(kept)  # one row per training


def test_a_tie_keeps_the_configured_stem_and_rows_without_stems_pass_unchanged():
    tie = choose([_row("average", 0, [0.3], 0.5), _row("", 0, [0.3], 0.6)])
    assert [r["stem"] for r in tie] == [""]
    old = {k: v for k, v in _row("", 0, [0.3], 0.6).items() if k != "stem"}  # recorded before stems
    (kept,) = choose([old])
    assert {k: kept[k] for k in old} == old and kept["stem_kept"] == "configured"

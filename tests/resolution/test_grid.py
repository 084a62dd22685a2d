"""The study's plan: which model trains at which levels, in what order."""

from __future__ import annotations

import pytest

from sfrdask.models.registry import ModelError
from sfrdask.resolution.grid import OTHER_STEM, expand_models, level_pairs, plan, with_other_stem


def test_diagonal_pairs_train_two_modality_models_at_matched_levels_only():
    levels = [0, 1, 2, 3]
    assert len(level_pairs("intermediate-fusion", levels, levels)) == 16
    assert level_pairs("intermediate-fusion", levels, levels, diagonal=True) == [(z, z) for z in levels]
    assert level_pairs("gbt-spectrum", levels, levels, diagonal=True) == [(None, z) for z in levels]
    assert level_pairs("image-cnn", levels, levels, diagonal=True) == [(z, None) for z in levels]


def test_gbt_stands_for_the_family_on_each_modality():
    assert expand_models(["gbt", "image-cnn"]) == ["gbt-image", "gbt-spectrum", "gbt-both", "image-cnn"]


def test_plan_orders_the_longest_first_and_keeps_matched_pairs():
    todo = plan(["gbt", "early-fusion", "image-cnn"], [0, 3], [0, 3], [0, 1], pairs="diagonal")
    assert len(todo) == len(set(todo)) == (3 * 2 + 2 + 2) * 2
    assert [t.model for t in todo[:2]] == ["image-cnn", "image-cnn"]  # networks on 64 px pixels first
    assert todo[0].image_zoom == 0
    # early fusion reads PCA features: short at any level, after the networks on pixels
    first_early = min(i for i, t in enumerate(todo) if t.model == "early-fusion")
    assert all(t.model == "image-cnn" for t in todo[:first_early])
    assert {(t.image_zoom, t.spectrum_zoom) for t in todo if t.model == "early-fusion"} == {(0, 0), (3, 3)}
    costs = [t.cost for t in todo]
    assert costs == sorted(costs, reverse=True)
    assert len({t.key for t in todo}) == len(todo)  # one directory per training
    with pytest.raises(ModelError, match=r"unknown model .no-such-model."):
        plan(["no-such-model"], [0], [0], [0])


def test_every_network_with_a_stem_also_trains_on_the_averaged_input_alone():
    todo = plan(["gbt", "early-fusion", "intermediate-fusion"], [0, 3], [0, 3], [0, 1], pairs="diagonal",
                control="intermediate-fusion")  # fmt: skip
    both = with_other_stem(todo)
    twins = [t for t in both if t.stem]
    # the networks on cutouts and spectra, not the trees nor early fusion (PCA features) nor the control
    assert {t.model for t in twins} == {"intermediate-fusion"} and all(t.setup == "" for t in twins)
    assert len(twins) == 2 * 2 and {t.stem for t in twins} == {OTHER_STEM}
    assert {t.choice for t in twins} <= set(todo)  # each the twin of a planned training
    assert len({t.key for t in both}) == len(both)  # its own run directory
    assert {t.tuning_cell for t in twins} <= {t.tuning_cell for t in todo}  # tuned with the configured stem
    costs = [t.cost for t in both]
    assert costs == sorted(costs, reverse=True)
    assert with_other_stem(both) == both  # a twin has no twin

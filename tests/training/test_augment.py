"""Flips and 90-degree rotations of cutouts."""

from __future__ import annotations

import torch

from sfrdask.training.augment import dihedral


def test_dihedral_moves_pixels_without_changing_them():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4).repeat(64, 1, 1, 1)
    y = dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.sort(y.flatten(1)).values, torch.sort(x.flatten(1)).values)  # same pixels
    seen = {tuple(v.flatten().tolist()) for v in y}
    assert len(seen) == 8  # all 8 symmetries of the square turn up in 64 draws
    assert torch.equal(y, dihedral(x, torch.Generator().manual_seed(0)))  # seeded: reproducible
    assert torch.equal(y[:, 1] - y[:, 0], torch.full_like(y[:, 0], 16))  # bands move together


def test_ranks_transform_their_slice_of_the_global_batch_as_one_process_would():
    x = torch.randn(16, 5, 8, 8)
    one = dihedral(x, torch.Generator().manual_seed(3))
    halves = [dihedral(x[r * 8 : (r + 1) * 8], torch.Generator().manual_seed(3), 2, r) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), one)

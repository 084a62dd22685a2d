"""Augmentations that respect the physics of the cutouts.

A galaxy's SFR does not depend on how the camera was turned: each cutout in a training batch is
rotated by a random multiple of 90 degrees and flipped at random (the 8 symmetries of the square),
which moves no pixel off the grid and leaves fluxes, colours and the fibre aperture unchanged.
"""

from __future__ import annotations

import torch


def dihedral(images: torch.Tensor, generator: torch.Generator, world: int = 1, rank: int = 0) -> torch.Tensor:
    """``images`` (batch, bands, s, s), each turned and flipped by its own random symmetry.

    The symmetries are drawn for the whole global batch (``world`` ranks' slices) and this rank
    takes its slice, so N DDP ranks transform exactly the cutouts one process would, the same way.
    """
    n = images.shape[0]
    which = torch.randint(0, 8, (n * world,), generator=generator)[rank * n : (rank + 1) * n]
    out = images.clone()
    for t in range(1, 8):
        m = which == t
        if m.any():
            x = images[m].flip(-1) if t >= 4 else images[m]
            out[m] = torch.rot90(x, t % 4, dims=(-2, -1))
    return out

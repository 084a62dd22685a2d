"""The training settings, declared once. :class:`~sfrdask.training.spec.TrainSpec` (what a training
is) extends :class:`TrainSettings`, and the train stage's options (``sfrdask train --help``) are made
from its fields, so a new setting is one field here and one key in ``sfrdask.yaml``'s ``train``
section, which holds every default. Light: the command line reads it without loading torch.

>>> TrainSettings().lr_schedule  # sfrdask.yaml's train.lr-schedule
'plateau'
"""

from __future__ import annotations

from dataclasses import dataclass

from sfrdask.choices import DEVICES, LR_SCHEDULES, STEMS
from sfrdask.config import setting


def parse_context(text: str) -> tuple[str, ...]:
    """``redshift,class`` as a tuple; ``none`` or nothing as no context."""
    return (
        () if text.strip().lower() in ("", "none") else tuple(x.strip() for x in text.split(",") if x.strip())
    )


@dataclass(kw_only=True)
class TrainSettings:
    """How one model trains; every default is ``sfrdask.train.<name with dashes>``."""

    target: str = setting("train.target", "AVG (alias AVR, SFR), LGM_AVG (MASS) or SSFR")
    epochs: int = setting("train.epochs", "epoch cap; early stopping may end a training sooner")
    pretrain_epochs: int = setting("train.pretrain-epochs", "contrastive pre-training epochs")
    patience: int = setting("train.patience", "epochs without a better validation loss before stopping")
    batch_size: int = setting("train.batch-size", "global batch, split over the ranks")
    learning_rate: float = setting("train.learning-rate", "AdamW learning rate")
    weight_decay: float = setting("train.weight-decay", "AdamW weight decay")
    seed: int = setting("train.seed", "initialisation, shuffling and dropout")
    context: tuple[str, ...] = setting(
        "train.context", "redshift,class, one of them, or none (the thesis' inputs)", parse=parse_context
    )
    rest_frame: bool = setting("train.rest-frame", "networks: spectra resampled to the rest frame by Z")
    lr_schedule: str = setting("train.lr-schedule", "learning-rate schedule", choices=LR_SCHEDULES)
    augment: bool = setting("train.augment", "networks: random flips and 90-degree rotations of cutouts")
    stem: str = setting("train.stem", "networks on cutouts/spectra: to 8 px / 577 samples", choices=STEMS)
    device: str = setting("train.device", "auto (cuda when available), cpu or cuda", choices=DEVICES)

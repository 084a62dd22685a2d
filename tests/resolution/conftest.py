"""The preprocessed store of the training tests, for tuning (a package fixture of its own here)."""

from tests.training.conftest import store  # noqa: F401

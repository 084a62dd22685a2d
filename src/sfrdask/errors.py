"""Exceptions sfrdask raises for bad input: one family, so the CLI can report them cleanly."""

from __future__ import annotations


class SfrdaskError(Exception):
    """Base class: a problem with the user's input or environment, described in plain words."""


class HissCubeFormatError(SfrdaskError, ValueError):
    """A HiSS-Cube file is missing a group or dataset, or holds inconsistent shapes."""


class CatalogError(SfrdaskError, ValueError):
    """An MPA-JHU catalogue is unreadable, lacks a column, or does not match its sibling tables."""


class StoreError(SfrdaskError, ValueError):
    """A zarr store is missing, incomplete or does not hold what was asked for."""

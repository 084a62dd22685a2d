"""Preprocessing stages on the zarr store: quality selection and splits, the compact copy of the
selected objects, deblending, PCA."""

from sfrdask.preprocessing.compact import write_compact
from sfrdask.preprocessing.deblend import deblend_cutouts, deblend_store
from sfrdask.preprocessing.pca import fit_pca_store
from sfrdask.preprocessing.quality import label_statistics, select_objects
from sfrdask.preprocessing.split import assign_splits

__all__ = [
    "assign_splits",
    "deblend_cutouts",
    "deblend_store",
    "fit_pca_store",
    "label_statistics",
    "select_objects",
    "write_compact",
]

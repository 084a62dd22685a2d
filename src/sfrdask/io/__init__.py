"""Readers and writers: HiSS-Cube HDF5, MPA-JHU catalogues, the zarr hand-off store."""

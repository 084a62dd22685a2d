"""Every choice list of sfrdask, declared once. The modules that act on a choice and the stage
options that offer it (``choices=``) both read it here; this module imports nothing, so the
command line builds its arguments from it without loading the work (torch, sep, zarr).

>>> SPLITS.index("validation"), LEVELS
(1, (0, 1, 2, 3))
"""

LEVELS = (0, 1, 2, 3)  # HiSS-Cube's resolution levels: 64 / 32 / 16 / 8 px, 4620 / 2310 / 1155 / 577 samples
SPLITS = ("train", "validation", "test")  # in the order of their codes in the store's selection
DEBLEND_STRATEGIES = ("none", "crop", "mask", "noise")  # what replaces the neighbours of the target
PCA_SOURCES = ("auto", "clean", "raw")  # which cutouts the image PCA reads: deblended when present
LR_SCHEDULES = ("none", "plateau", "cosine")  # networks' learning-rate schedules
STEMS = ("common", "average", "none")  # how a network reaches the working resolution (models.base)
DEVICES = ("auto", "cpu", "cuda")  # where a network trains; auto: cuda when available
PAIRS = ("grid", "diagonal")  # the study's level pairs of two-modality models
COMPRESSIONS = ("gzip", "lzf")  # HDF5 filters h5py writes without plugins
CLUSTER_KINDS = ("local", "slurm", "threads", "synchronous")  # where a stage runs (or a tls:// address)
GROUPINGS = ("healpix", "fof")  # build-cube: spectra in one HEALPix cell, or friends-of-friends, are a target
PLACEMENTS = ("hisscube", "centred")  # build-cube: where a 64 px cutout starts (HiSS-Cube's rule or rounded)

"""The model registry: every model sfrdask trains, by name.

>>> from sfrdask.models import list_models, get_model
>>> [m.name for m in list_models()][:3]
['contrastive', 'cross-attention', 'early-fusion']
>>> get_model("gbt-both").inputs
('image_pca', 'spectrum_pca')
"""

from sfrdask.models import contrastive, fusion, image, physics, spectrum, trees  # noqa: F401  (registration)
from sfrdask.models.base import SfrNet
from sfrdask.models.registry import (
    INPUTS,
    MODELS,
    ModelError,
    ModelSpec,
    Registry,
    get_model,
    list_models,
    register,
)

__all__ = [
    "INPUTS",
    "MODELS",
    "ModelError",
    "ModelSpec",
    "Registry",
    "SfrNet",
    "get_model",
    "list_models",
    "register",
]

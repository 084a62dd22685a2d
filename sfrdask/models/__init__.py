"""The model registry: every model sfrdask trains, by name.

>>> from sfrdask.models import list_models, get_model
>>> [m.name for m in list_models()][:3]  # doctest: +SKIP
"""

from sfrdask.models import contrastive, fusion, image, physics, spectrum, trees  # noqa: F401  (registration)
from sfrdask.models.base import SfrNet
from sfrdask.models.registry import INPUTS, ModelError, ModelSpec, get_model, list_models, register

__all__ = ["INPUTS", "ModelError", "ModelSpec", "SfrNet", "get_model", "list_models", "register"]

# the Scene experiment's classifiers share this registry (task "classification")
from sfrdask.scene import models as _scene_models  # noqa: F401

"""The Scene experiment: the user's preliminary test of fusion on video frames + audio (MFCC).

Kaggle "Scene classification: images and audio" (birdy654): frames of 8 environments, 104 MFCC
audio features each; CLASS1 (indoors / outdoors) and CLASS2 (environment). ``sfrdask scene --data DIR``
reruns the comparison of audio, image and fused classifiers with the same model registry.

>>> from sfrdask.scene import make_scene, run_scene
>>> make_scene("scene-data", objects=400, seed=0)                   # doctest: +SKIP
>>> run_scene("scene-data", out="scene-output")["table"]            # doctest: +SKIP
"""

from sfrdask.scene import models  # noqa: F401  (registration)
from sfrdask.scene.data import SceneData, read_scene
from sfrdask.scene.run import run_scene
from sfrdask.scene.synthetic import make_scene

__all__ = ["SceneData", "make_scene", "read_scene", "run_scene"]

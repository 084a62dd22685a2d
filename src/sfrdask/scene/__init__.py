"""The Scene experiment: the user's preliminary test of fusion on video frames + audio (MFCC).

Kaggle "Scene classification: images and audio" (birdy654): frames of 8 environments, 104 MFCC
audio features each; CLASS1 (indoors / outdoors) and CLASS2 (environment). ``sfrdask scene --data DIR``
reruns the comparison of audio, image and fused classifiers with the same model registry.

>>> import tempfile
>>> from sfrdask.scene import make_scene, read_scene
>>> data = make_scene(f"{tempfile.mkdtemp()}/scene", objects=24, seed=0, size=16)
>>> scene = read_scene(data, size=8, progress=False)
>>> scene.images.shape
(24, 3, 8, 8)

``run_scene(data, out="scene-output")`` then trains and compares every Scene model
(``sfrdask scene --data DIR``).
"""

from sfrdask.scene import models  # noqa: F401  (registration)
from sfrdask.scene.data import SceneData, read_scene
from sfrdask.scene.run import run_scene
from sfrdask.scene.synthetic import make_scene

__all__ = ["SceneData", "make_scene", "read_scene", "run_scene"]

"""vertebra.drivers: Python side of the drivers (config classes, registry, simulator model, cameras).

MuJoCo picks its OpenGL backend when it is first imported; without a display we choose an
offscreen one here (OSMesa, else EGL) so cameras render on the CPU.
"""

import ctypes.util as _cu
import os as _os

if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    if _cu.find_library("OSMesa"):
        _os.environ["MUJOCO_GL"] = "osmesa"
        _os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    elif _cu.find_library("EGL"):
        _os.environ["MUJOCO_GL"] = "egl"
        _os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

"""Offscreen camera rendering of the simulated robot, on the CPU (OSMesa or EGL with Mesa).

The camera keeps its own copy of the MuJoCo model and sets it to the simulator's latest full
configuration (published by the C++ driver after every tick), so rendering never touches the
real-time thread's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import vertebra.drivers  # noqa: F401  (selects the offscreen GL backend before mujoco loads)


HIDDEN_GROUP = 3  # not drawn by MuJoCo's default visualisation options (groups 0-2 are)


def hide_collision_duplicates(model: mujoco.MjModel) -> int:
    """Robot MJCFs often carry each link's mesh twice: a visual geom and a collision geom. The
    camera draws only the visual one (the collision copy doubled the software renderer's
    triangles for the same picture). `model` is the camera's own copy. Returns how many were hidden."""
    visual = {(int(model.geom_bodyid[g]), int(model.geom_dataid[g])) for g in range(model.ngeom)
              if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and not model.geom_contype[g]
              and not model.geom_conaffinity[g]}
    hidden = 0
    for g in range(model.ngeom):
        if (model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and (model.geom_contype[g] or model.geom_conaffinity[g])
                and (int(model.geom_bodyid[g]), int(model.geom_dataid[g])) in visual):
            model.geom_group[g] = HIDDEN_GROUP
            hidden += 1
    return hidden


class OffscreenCamera:
    def __init__(self, mjcf_path: str | Path | None, camera: str, width: int = 224, height: int = 224,
                 model: mujoco.MjModel | None = None):
        """From the robot's MJCF, or (`model`) from an already compiled model (a scene around it)."""
        self.model = model if model is not None else mujoco.MjModel.from_xml_path(str(mjcf_path))
        cams = [self.model.camera(i).name for i in range(self.model.ncam)]
        if camera not in cams:
            raise ValueError(f"unknown camera '{camera}'; cameras are: {', '.join(cams) or '(none)'}")
        self.camera = camera
        self.data = mujoco.MjData(self.model)
        hide_collision_duplicates(self.model)
        self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        # Software rendering: shadows and reflections cost 10x the rest of the frame.
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX):
            self.renderer.scene.flags[flag] = False

    def render(self, qpos: np.ndarray) -> np.ndarray:
        """RGB image (height, width, 3) uint8 of the scene at configuration `qpos`."""
        if qpos.ndim != 1 or len(qpos) > self.model.nq:
            raise ValueError(f"qpos has shape {qpos.shape}; the model takes at most ({self.model.nq},)")
        self.data.qpos[: len(qpos)] = qpos
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.camera)
        return self.renderer.render().copy()

    def render_driver(self, driver: Any) -> np.ndarray:
        _t, qpos = driver.qpos()
        return self.render(np.asarray(qpos))

    def close(self) -> None:
        self.renderer.close()

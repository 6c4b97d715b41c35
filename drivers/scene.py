"""A tabletop scene for the vision-language tasks: a table in front of the robot with coloured
objects on it, seen by the robot's head camera.

The objects are visual only (no collision: "touching" means reaching them), so the physics
simulator does not need them. The table is physical: `table_box()` is the block the simulator's
robot collides with (the MuJoCo driver's `furniture`) and the whole-body controller keeps the
hands out of (a runtime's `keep_out`). The scene exists in the rendering model: the robot's MJCF
plus the table's top and mocap bodies for the objects, which can be moved between episodes without
rebuilding anything. The camera renders the simulator's latest robot configuration with the scene
around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import vertebra.drivers  # noqa: F401  (selects the offscreen GL backend before mujoco loads)
from vertebra.drivers.camera import OffscreenCamera
from vertebra.runtime.config import KeepOutBox

COLORS = {"red": [0.85, 0.1, 0.1, 1], "green": [0.1, 0.7, 0.15, 1], "blue": [0.1, 0.25, 0.9, 1],
          "yellow": [0.95, 0.85, 0.1, 1]}
SHAPES = ("cube", "ball")
OBJECT_SIZE_M = 0.025  # cube half-size / ball radius
TABLE_TOP_Z = 0.80
TABLE_CENTER = (0.33, 0.0)
TABLE_HALF = (0.10, 0.32)


def table_box() -> KeepOutBox:
    """The table as the solid block the robot must keep out of and collides with: the tabletop down
    to the floor (a hand under the table is as wrong as one through it)."""
    return KeepOutBox.from_dict({"name": "table", "center_m": [TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP_Z / 2],
                                 "half_m": [TABLE_HALF[0], TABLE_HALF[1], TABLE_TOP_Z / 2]})


def point_box_distance(p: np.ndarray, center: np.ndarray, half: np.ndarray) -> float:
    """Signed distance from a point to an axis-aligned box (negative inside: minus the depth)."""
    q = np.abs(p - center) - half
    return float(np.linalg.norm(np.maximum(q, 0.0)) + min(float(q.max()), 0.0))


def capsule_box_clearance(a: np.ndarray, b: np.ndarray, radius: float, box: KeepOutBox, samples: int = 17) -> float:
    """Signed clearance (m) between a capsule (segment a-b, radius) and a box: the least over points
    along the segment (17: on a 6 cm hand capsule, points 4 mm apart) of their distance, less the
    radius. Negative: the capsule is inside the box by that much."""
    c, h = np.asarray(box.center_m), np.asarray(box.half_m)
    return min(point_box_distance(a + (b - a) * t, c, h) for t in np.linspace(0.0, 1.0, samples)) - radius


@dataclass
class SceneObject:
    color: str
    shape: str
    pos: np.ndarray  # world, m (centre)

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


def build_scene_spec(robot_mjcf: str | Path) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(str(robot_mjcf))
    world = spec.worldbody
    world.add_light(pos=[0.5, 0, 2.5], dir=[0, 0, -1], diffuse=[0.5, 0.5, 0.5])
    table = world.add_body(name="table", pos=[TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP_Z - 0.02])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TABLE_HALF[0], TABLE_HALF[1], 0.02],
                   rgba=[0.55, 0.45, 0.35, 1], contype=0, conaffinity=0)
    for c, rgba in COLORS.items():
        for s in SHAPES:
            b = world.add_body(name=f"obj_{c}_{s}", mocap=True, pos=[0, 0, -1])
            if s == "cube":
                b.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[OBJECT_SIZE_M] * 3, rgba=rgba, contype=0, conaffinity=0)
            else:
                b.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[OBJECT_SIZE_M, 0, 0], rgba=rgba, contype=0,
                           conaffinity=0)
    return spec


class SceneCamera(OffscreenCamera):
    """A robot camera with the tabletop scene. `set_objects()` places the objects (the others are
    hidden under the floor); `render(robot_qpos)` draws the robot at that configuration."""

    def __init__(self, robot_mjcf: str | Path, camera: str, width: int, height: int):
        super().__init__(None, camera, width, height, model=build_scene_spec(robot_mjcf).compile())
        self.mocap = {}
        for c in COLORS:
            for s in SHAPES:
                bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"obj_{c}_{s}")
                self.mocap[(c, s)] = int(self.model.body_mocapid[bid])
        self.set_objects([])

    def set_objects(self, objects: list[SceneObject]) -> None:
        for mid in self.mocap.values():
            self.data.mocap_pos[mid] = [0.0, 0.0, -5.0]
        for o in objects:
            self.data.mocap_pos[self.mocap[(o.color, o.shape)]] = o.pos


def random_scene(rng: np.random.Generator, n_objects: int = 3) -> list[SceneObject]:
    """n distinct (colour, shape) objects at random places on the table, at least 10 cm apart."""
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    picks = rng.choice(len(kinds), size=n_objects, replace=False)
    out: list[SceneObject] = []
    for k in picks:
        for _ in range(100):
            x = rng.uniform(TABLE_CENTER[0] - TABLE_HALF[0] + 0.04, TABLE_CENTER[0] + TABLE_HALF[0] - 0.04)
            y = rng.uniform(-0.22, 0.22)
            p = np.array([x, y, TABLE_TOP_Z + OBJECT_SIZE_M])
            if all(np.linalg.norm(p[:2] - o.pos[:2]) > 0.10 for o in out):
                break
        out.append(SceneObject(kinds[k][0], kinds[k][1], p))
    return out

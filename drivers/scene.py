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

import math
from collections.abc import Callable
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
TABLE_RGBA = (0.55, 0.45, 0.35, 1.0)
# Where random_scene() puts objects: x within the table's depth less PLACE_MARGIN_X, |y| <= PLACE_Y.
PLACE_MARGIN_X = 0.04
PLACE_Y = 0.22


def table_box() -> KeepOutBox:
    """The table as the solid block the robot must keep out of and collides with: the tabletop down
    to the floor (a hand under the table is as wrong as one through it)."""
    return KeepOutBox.from_dict({"name": "table", "center_m": [TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP_Z / 2],
                                 "half_m": [TABLE_HALF[0], TABLE_HALF[1], TABLE_TOP_Z / 2]})


def point_box_distance(p: np.ndarray, center: np.ndarray, half: np.ndarray) -> float:
    """Signed distance from a point to an axis-aligned box (negative inside: minus the depth)."""
    q = np.abs(p - center) - half
    return float(np.linalg.norm(np.maximum(q, 0.0)) + min(float(q.max()), 0.0))


def capsule_clearance(a: np.ndarray, b: np.ndarray, radius: float, distance: Callable[[np.ndarray], float],
                      samples: int = 17) -> float:
    """Signed clearance (m) between a capsule (segment a-b, radius) and a solid whose signed distance
    from a point is `distance`: the least over points along the segment (17: on a 6 cm hand capsule,
    points 4 mm apart) of their distance, less the radius. Negative: overlapping by that much."""
    return min(distance(a + (b - a) * t) for t in np.linspace(0.0, 1.0, samples)) - radius


def capsule_box_clearance(a: np.ndarray, b: np.ndarray, radius: float, box: KeepOutBox) -> float:
    """capsule_clearance() against an axis-aligned box (KeepOutBox)."""
    c, h = np.asarray(box.center_m), np.asarray(box.half_m)
    return capsule_clearance(a, b, radius, lambda p: point_box_distance(p, c, h))


@dataclass
class SceneObject:
    color: str
    shape: str
    pos: np.ndarray  # world, m (centre)
    size_m: float = OBJECT_SIZE_M  # cube half-size / ball radius
    rgba: tuple[float, float, float, float] | None = None  # as drawn (None: the colour's COLORS value)

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def surface_distance(self, p: np.ndarray) -> float:
        """Signed distance (m) from a point to the object's surface (negative inside)."""
        if self.shape == "ball":
            return float(np.linalg.norm(p - self.pos)) - self.size_m
        return point_box_distance(p, self.pos, np.full(3, self.size_m))


def capsule_object_gap(a: np.ndarray, b: np.ndarray, radius: float, obj: SceneObject) -> float:
    """capsule_clearance() against an object's surface (negative: overlapping)."""
    return capsule_clearance(a, b, radius, obj.surface_distance)


# The colour of a light at a colour temperature, as multipliers on white (6500 K): the sRGB colour of
# a blackbody (M. Charity, "What color is a blackbody?": 2000 K #ff8912, 3000 K #ffb46b,
# 4000 K #ffd1a3, 5000 K #ffe4ce, 6500 K #fffefa taken as white, 8000 K #e3e9ff, 10000 K #ccdbff).
_BLACKBODY = ((2000, (255, 137, 18)), (3000, (255, 180, 107)), (4000, (255, 209, 163)), (5000, (255, 228, 206)),
              (6500, (255, 255, 255)), (8000, (227, 233, 255)), (10000, (204, 219, 255)))


def light_rgb(kelvin: float) -> np.ndarray:
    """Multipliers on a white light's RGB for a source at `kelvin` (2000-10000 K; linear between the
    table's points)."""
    ks = np.array([k for k, _ in _BLACKBODY], float)
    rgb = np.array([c for _, c in _BLACKBODY], float) / 255.0
    k = float(np.clip(kelvin, ks[0], ks[-1]))
    return np.array([np.interp(k, ks, rgb[:, i]) for i in range(3)])


@dataclass
class Look:
    """How a scene looks to the camera, beyond where things are: the light (intensity, colour,
    direction), the camera's mounting, the table's colour. Applied by `SceneCamera.set_look()` from
    the scene's nominal values, so looks never accumulate. The default is the nominal scene."""

    light_scale: float = 1.0
    light_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_tilt_deg: tuple[float, float] = (0.0, 0.0)  # the overhead light's direction tipped about x, y
    cam_pitch_deg: float = 0.0  # positive: looks down
    cam_yaw_deg: float = 0.0    # positive: to the robot's left
    cam_roll_deg: float = 0.0
    cam_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)  # in the camera's frame
    table_rgb: tuple[float, float, float] | None = None


def build_scene_spec(robot_mjcf: str | Path) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(str(robot_mjcf))
    world = spec.worldbody
    world.add_light(name="scene_light", pos=[0.5, 0, 2.5], dir=[0, 0, -1], diffuse=[0.5, 0.5, 0.5])
    table = world.add_body(name="table", pos=[TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP_Z - 0.02])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[TABLE_HALF[0], TABLE_HALF[1], 0.02],
                   rgba=list(TABLE_RGBA), contype=0, conaffinity=0)
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
    hidden under the floor), `set_look()` sets the light, the camera mounting and the table colour;
    `render(robot_qpos)` draws the robot at that configuration."""

    def __init__(self, robot_mjcf: str | Path, camera: str, width: int, height: int):
        super().__init__(None, camera, width, height, model=build_scene_spec(robot_mjcf).compile())
        m = self.model
        self.mocap = {}
        self.obj_geom = {}
        for c in COLORS:
            for s in SHAPES:
                bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"obj_{c}_{s}")
                self.mocap[(c, s)] = int(m.body_mocapid[bid])
                self.obj_geom[(c, s)] = int(m.body_geomadr[bid])
        self._cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        self._table = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
        self._scene_light = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, "scene_light")
        self._nominal = {"diffuse": m.light_diffuse.copy(), "ambient": m.light_ambient.copy(),
                         "specular": m.light_specular.copy(), "dir": m.light_dir.copy(),
                         "head_diffuse": np.array(m.vis.headlight.diffuse), "head_ambient": np.array(m.vis.headlight.ambient),
                         "cam_quat": m.cam_quat[self._cam].copy(), "cam_pos": m.cam_pos[self._cam].copy()}
        self.look = Look()
        self.set_objects([])

    def set_objects(self, objects: list[SceneObject]) -> None:
        for mid in self.mocap.values():
            self.data.mocap_pos[mid] = [0.0, 0.0, -5.0]
        for o in objects:
            self.data.mocap_pos[self.mocap[(o.color, o.shape)]] = o.pos
            g = self.obj_geom[(o.color, o.shape)]
            self.model.geom_size[g] = [o.size_m] * 3 if o.shape == "cube" else [o.size_m, 0.0, 0.0]
            self.model.geom_rgba[g] = o.rgba if o.rgba is not None else COLORS[o.color]

    def set_look(self, look: Look) -> None:
        """The light, the camera mounting and the table colour, from the nominal scene."""
        m, n = self.model, self._nominal
        rgb = np.asarray(look.light_rgb, float) * look.light_scale
        m.light_diffuse[:] = n["diffuse"] * rgb
        m.light_ambient[:] = n["ambient"] * rgb
        m.light_specular[:] = n["specular"] * rgb
        m.vis.headlight.diffuse[:] = n["head_diffuse"] * rgb
        m.vis.headlight.ambient[:] = n["head_ambient"] * rgb
        m.light_dir[:] = n["dir"]
        if self._scene_light >= 0 and any(look.light_tilt_deg):
            d = _rotate(_rotate(n["dir"][self._scene_light], np.array([1.0, 0, 0]), look.light_tilt_deg[0]),
                        np.array([0, 1.0, 0]), look.light_tilt_deg[1])
            m.light_dir[self._scene_light] = d
        # MuJoCo cameras look along their -z with +y up: looking down is a negative turn about +x,
        # turning left a positive turn about +y, roll a turn about -z (camera axes, after the mount's)
        q = n["cam_quat"].astype(float)
        for axis, deg in ((np.array([1.0, 0.0, 0.0]), -look.cam_pitch_deg), (np.array([0.0, 1.0, 0.0]), look.cam_yaw_deg),
                          (np.array([0.0, 0.0, -1.0]), look.cam_roll_deg)):
            if deg:
                half = math.radians(deg) / 2
                out = np.zeros(4)
                mujoco.mju_mulQuat(out, q, np.concatenate([[math.cos(half)], math.sin(half) * axis]))
                q = out
        m.cam_quat[self._cam] = q
        R = np.zeros(9)
        mujoco.mju_quat2Mat(R, n["cam_quat"])
        m.cam_pos[self._cam] = n["cam_pos"] + R.reshape(3, 3) @ np.asarray(look.cam_offset_m, float)
        m.geom_rgba[self._table] = (*look.table_rgb, 1.0) if look.table_rgb is not None else TABLE_RGBA
        self.look = look


def _rotate(v: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    """v turned by deg about a unit axis (Rodrigues)."""
    a = math.radians(deg)
    return v * math.cos(a) + np.cross(axis, v) * math.sin(a) + axis * (axis @ v) * (1 - math.cos(a))


def random_scene(rng: np.random.Generator, n_objects: int = 3, spread: float = 1.0,
                 kinds: list[tuple[str, str]] | None = None) -> list[SceneObject]:
    """n distinct (colour, shape) objects at random places on the table, at least 10 cm apart, over
    `spread` x the nominal placement range about the table's centre (kept on the table). `kinds`:
    the (colour, shape) pairs to draw from (default: all)."""
    kinds = kinds if kinds is not None else [(c, s) for c in COLORS for s in SHAPES]
    picks = rng.choice(len(kinds), size=min(n_objects, len(kinds)), replace=False)
    half_x = min(spread * (TABLE_HALF[0] - PLACE_MARGIN_X), TABLE_HALF[0] - OBJECT_SIZE_M)
    half_y = min(spread * PLACE_Y, TABLE_HALF[1] - OBJECT_SIZE_M)
    out: list[SceneObject] = []
    for k in picks:
        for _ in range(100):
            x = rng.uniform(TABLE_CENTER[0] - half_x, TABLE_CENTER[0] + half_x)
            y = rng.uniform(TABLE_CENTER[1] - half_y, TABLE_CENTER[1] + half_y)
            p = np.array([x, y, TABLE_TOP_Z + OBJECT_SIZE_M])
            if all(np.linalg.norm(p[:2] - o.pos[:2]) > 0.10 for o in out):
                break
        out.append(SceneObject(kinds[k][0], kinds[k][1], p))
    return out

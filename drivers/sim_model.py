"""Build the simulator model (MJCF) of a robot from its URDF and robot config.

The URDF from example-robot-data is loaded with MuJoCo's URDF importer (MjSpec), then completed
for simulation: a free joint on the base, a ground plane, joint armature/damping/friction loss
and effort limits from the robot YAML, collision filtering (robot against the world only), an
IMU site with orientation/gyro/accelerometer sensors, cameras, and contact friction. The result
is written once per content hash under the cache directory and loaded by the C++ driver.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mujoco
import vertebra.drivers  # noqa: F401  (offscreen GL backend choice before mujoco loads)
from vertebra.runtime.config import RobotConfig

# MuJoCo's mesh decoders: OBJ, STL and MSH; visuals in other formats (Collada) are dropped.
_DECODABLE = (".stl", ".obj", ".msh")
# Collision classes: robot geoms collide with the world (ground, props), never with each other.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
WORLD_CONTYPE, WORLD_CONAFFINITY = 1, 2 | 1


def cache_dir() -> Path:
    root = os.environ.get("VERTEBRA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vertebra")
    path = Path(root) / "mjcf"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _prepared_urdf(cfg: RobotConfig) -> str:
    text = cfg.urdf_path.read_text()
    robots_dir = cfg.urdf_path.parents[2]  # .../example-robot-data/robots
    text = text.replace("package://example-robot-data/robots/", str(robots_dir) + "/")

    def keep_visual(m: re.Match[str]) -> str:
        files = re.findall(r'filename="([^"]+)"', m.group(0))
        return m.group(0) if all(f.lower().endswith(_DECODABLE) for f in files) else ""

    text = re.sub(r"<visual>.*?</visual>", keep_visual, text, flags=re.DOTALL)
    compiler = '<mujoco><compiler discardvisual="false" fusestatic="false" strippath="false" balanceinertia="true"/></mujoco>'
    return re.sub(r"(<robot[^>]*>)", r"\1" + compiler, text, count=1)


def build_spec(cfg: RobotConfig, furniture: Sequence[Any] = ()) -> mujoco.MjSpec:
    """The robot on a ground plane; `furniture`: boxes (config.KeepOutBox) the robot collides with
    (a table), invisible to cameras (group 3: a scene draws its own)."""
    spec = mujoco.MjSpec.from_string(_prepared_urdf(cfg))
    spec.option.timestep = 1.0 / cfg.sim.sim_rate_hz
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.noslip_iterations = 0

    base = spec.body(cfg.base_frame)
    if base is None:
        raise ValueError(f"{cfg.file}: frames.base '{cfg.base_frame}' is not a body of the MuJoCo model")
    base.add_freejoint(name="floating_base")

    world = spec.worldbody
    world.add_light(pos=[0, 0, 3], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8])
    spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.25, 0.3, 0.35], rgb2=[0.35, 0.4, 0.45], width=256, height=256)
    spec.add_material(name="ground", textures=["", "grid"], texrepeat=[8, 8])
    world.add_geom(name="ground", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[20, 20, 0.1], material="ground",
                   contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY, friction=[cfg.sim.friction, 0.005, 0.0001])

    for cap in cfg.sim.collision_capsules:
        body = spec.body(cap.body)
        if body is None:
            raise ValueError(f"{cfg.file}: sim.collision_capsules: '{cap.body}' is not a body of the MuJoCo model")
        body.add_geom(name=f"{cap.body}_collision", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                      fromto=list(cap.from_m) + list(cap.to_m), size=[cap.radius_m, 0, 0], contype=1, conaffinity=1,
                      group=3, rgba=[0.5, 0.5, 0.5, 0.0], mass=0.0)
    for box in furniture:
        world.add_geom(name=f"furniture_{box.name}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(box.center_m),
                       size=list(box.half_m), contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY,
                       friction=[cfg.sim.friction, 0.005, 0.0001], group=3, rgba=[0.5, 0.5, 0.5, 0.0])
    furniture_names = {f"furniture_{b.name}" for b in furniture}
    for g in spec.geoms:
        if g.name == "ground" or g.name in furniture_names:
            continue
        if g.contype or g.conaffinity:  # collision geoms from the URDF
            g.contype, g.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
            g.friction = [cfg.sim.friction, 0.005, 0.0001]
            g.condim = 3

    by_name = {j.name: j for j in spec.joints}
    for jc in cfg.joints:
        j = by_name[jc.name]
        dyn = next(d for d in cfg.sim.joint_dynamics if re.search(d.match, jc.name))
        j.armature = dyn.armature_kg_m2
        j.damping = [dyn.damping_nm_s_rad, 0.0, 0.0]
        j.frictionloss = dyn.frictionloss_nm
        j.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
        j.actfrcrange = [-jc.tau_max_nm, jc.tau_max_nm]
        j.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        j.range = [jc.q_min_rad, jc.q_max_rad]

    imu_body = spec.body(cfg.imu_frame)
    if imu_body is None:
        raise ValueError(f"{cfg.file}: frames.imu '{cfg.imu_frame}' is not a body of the MuJoCo model")
    imu_body.add_site(name="imu", size=[0.01, 0.01, 0.01])
    spec.add_sensor(name="imu_quat", type=mujoco.mjtSensor.mjSENS_FRAMEQUAT, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="imu")
    spec.add_sensor(name="imu_gyro", type=mujoco.mjtSensor.mjSENS_GYRO, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="imu")
    spec.add_sensor(name="imu_acc", type=mujoco.mjtSensor.mjSENS_ACCELEROMETER, objtype=mujoco.mjtObj.mjOBJ_SITE,
                    objname="imu")

    for cam in cfg.sim.cameras:
        body = spec.body(cam.body)
        if body is None:
            raise ValueError(f"{cfg.file}: camera '{cam.name}' body '{cam.body}' is not a body of the MuJoCo model")
        c = body.add_camera(name=cam.name, pos=cam.pos_m, fovy=cam.fovy_deg)
        c.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES  # else the orientation stays the identity
        c.alt.xyaxes = cam.xyaxes
    spec.visual.global_.offwidth = max([640] + [c.width_px for c in cfg.sim.cameras])
    spec.visual.global_.offheight = max([480] + [c.height_px for c in cfg.sim.cameras])
    return spec


def build_mjcf(cfg: RobotConfig, furniture: Sequence[Any] = ()) -> Path:
    """Write the robot's MJCF (once per content) and return its path."""
    spec = build_spec(cfg, furniture)
    xml = spec.to_xml()
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    path = cache_dir() / f"{cfg.name}-{digest}.xml"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(xml)
        tmp.replace(path)
    return path

"""Robot configs (``configs/robots/<name>.yaml``), declared once with :mod:`vertebra.runtime.schema`.

Every field is checked on load. A bad field raises :class:`ConfigError` naming the file, the field
(dotted path), the value found and what is valid. Units are in field names. ``RobotConfig.describe()``
lists every field with its bounds and meaning.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from vertebra.runtime.errors import ConfigError, VertebraError
from vertebra.runtime.schema import Section, config_file, field, read_yaml

__all__ = ["CONFIG_DIR", "REPO_ROOT", "CameraConfig", "ConfigError", "FramesConfig", "HoistConfig", "JointConfig",
           "JointDynamics", "NoiseConfig", "RobotConfig", "SimConfig", "UrdfConfig", "VertebraError", "WbcBalanceGuard",
           "WalkGait", "WalkSettings", "WbcContacts", "WbcLimits", "WbcOutput", "WbcSettings", "WbcSolver", "WbcTaskConfig", "WbcTasks",
           "available_robots", "example_robot_data_dir", "find_config_dir", "loop_config", "robot_params"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def find_config_dir() -> Path:
    """Where ``configs/`` is: inside the installed package first (``<site-packages>/vertebra/configs``, as
    the wheel ships it), then the source checkout's ``configs/`` (next to ``runtime/``)."""
    candidates: list[Path] = []
    try:
        import vertebra

        candidates += [Path(p) / "configs" for p in vertebra.__path__]
    except ImportError:  # pragma: no cover - this module is part of the vertebra package
        pass
    candidates.append(REPO_ROOT / "configs")
    for c in candidates:
        if (c / "robots").is_dir():
            return c
    return candidates[-1]


CONFIG_DIR = find_config_dir()


# -- joints, frames, URDF --------------------------------------------------------------------------
class JointConfig(Section):
    """One joint, listed in the robot's motor-index order."""

    name = field(str, doc="joint name in the URDF")
    motor = field(int, lo=0,
                  doc="index in the robot's motor array (rt/lowcmd motor_cmd); joints are listed in this order")
    q_min_rad = field(float, lo=-2 * math.pi, hi=2 * math.pi, doc="lower position limit (the URDF's or tighter)")
    q_max_rad = field(float, lo=-2 * math.pi, hi=2 * math.pi, doc="upper position limit (the URDF's or tighter)")
    dq_max_rad_s = field(float, lo=0.0, lo_open=True, hi=100.0, doc="velocity limit (the URDF's or tighter)")
    tau_max_nm = field(float, lo=0.0, lo_open=True, hi=1000.0, doc="effort limit (the URDF's or tighter)")
    default_rad = field(float, lo=-2 * math.pi, hi=2 * math.pi, doc="standing pose, inside [q_min_rad, q_max_rad]")
    kp = field(float, lo=0.0, hi=2000.0, doc="stance stiffness of hold/interpolate (N·m/rad)")
    kd = field(float, lo=0.0, hi=200.0, doc="stance damping of hold/interpolate (N·m·s/rad)")
    kd_damping = field(float, lo=0.0, hi=200.0, doc="damping-mode gain (N·m·s/rad), <= max_gain_scale x kd")

    @property
    def motor_index(self) -> int:
        return int(self.motor)

    def check(self, context: Any) -> None:
        if self.q_max_rad <= self.q_min_rad:
            raise self.error("q_max_rad", self.q_max_rad, f"greater than q_min_rad ({self.q_min_rad})")
        if not self.q_min_rad <= self.default_rad <= self.q_max_rad:
            raise self.error("default_rad", self.default_rad,
                             f"a finite number >= {self.q_min_rad} and <= {self.q_max_rad} (q_min_rad..q_max_rad)")


class FramesConfig(Section):
    """Frames of the URDF the runtime uses."""

    base = field(str, doc="floating-base frame")
    imu = field(str, doc="frame of the IMU")
    feet = field(list, item=str, min_size=1, doc="foot frames (contacts), in the robot's foot order")
    sole_offset_m = field(float, lo=0.0, hi=0.2, doc="sole contact below the foot frame (standing height)")
    hands = field(list, item=str, default=[], doc="hand frames (whole-body hand targets)")


class UrdfConfig(Section):
    """Where the robot's URDF is."""

    package = field(str, choices=("example-robot-data", "repo"),
                    doc="example-robot-data (the installed wheel's robots) or repo (this checkout)")
    path = field(str, doc="the URDF's path under the package")

    def check(self, context: Any) -> None:
        base = example_robot_data_dir() if self.package == "example-robot-data" else REPO_ROOT
        resolved = base / self.path
        if not resolved.is_file():
            raise self.error("path", self.path, f"a URDF file under {base}")
        self.resolved_path = resolved


# -- simulator -------------------------------------------------------------------------------------
class JointDynamics(Section):
    """Simulator joint properties for the joints whose name matches ``match`` (regex search)."""

    match = field(str, doc="regular expression searched in joint names")
    armature_kg_m2 = field(float, lo=0.0, hi=1.0, doc="reflected rotor inertia")
    damping_nm_s_rad = field(float, lo=0.0, hi=10.0, doc="viscous joint damping")
    frictionloss_nm = field(float, lo=0.0, hi=10.0, doc="dry joint friction")

    def check(self, context: Any) -> None:
        self.check_regex("match")


class CameraConfig(Section):
    """A simulated camera on a body (MuJoCo convention: it looks along its -z)."""

    name = field(str, doc="camera name (policy packages name their cameras)")
    body = field(str, doc="URDF frame the camera is fixed to")
    pos_m = field(list, item=float, size=3, doc="position in the body frame")
    xyaxes = field(list, item=float, size=6, doc="camera x and y axes in the body frame")
    fovy_deg = field(float, lo=10, hi=170, doc="vertical field of view")
    width_px = field(int, default=224, lo=16, hi=4096, doc="image width")
    height_px = field(int, default=224, lo=16, hi=4096, doc="image height")


class HoistConfig(Section):
    """The simulated hoist: a spring-damper rope that holds the robot until it is lowered."""

    clearance_m = field(float, lo=0.02, hi=1.0, doc="feet this far above the ground while hanging")
    stiffness_n_m = field(float, lo=100.0, hi=1e5, doc="rope stiffness")
    damping_n_s_m = field(float, lo=0.0, hi=1e4, doc="rope damping")
    lateral_stiffness_n_m = field(float, lo=0.0, hi=1e5, doc="horizontal centring stiffness")
    rot_stiffness_nm_rad = field(float, lo=0.0, hi=1e4, doc="keeps the base upright while hanging")
    rot_damping_nms_rad = field(float, lo=0.0, hi=1e3, doc="rotational damping while hanging")
    lower_speed_m_s = field(float, lo=0.01, hi=1.0, doc="speed at which the hoist lowers the robot")


class NoiseConfig(Section):
    """Sensor noise of the simulator, applied only with ``--noise`` (a deploy config's ``driver: noise:
    true``). Every term 0 (the default) is off; the model (cpp/drivers/mujoco_driver.hpp, SimOptions):
    joint positions get white noise ``q_rad`` and are then rounded to multiples of ``q_resolution_rad``
    (the encoder count); joint velocities, gyroscope and accelerometer get white noise per sample (one
    draw per control tick); the IMU also carries a constant bias per run, drawn once per axis from a
    normal of standard deviation ``gyro_bias_rad_s`` / ``acc_bias_m_s2``, and its orientation the
    levelling error the accelerometer bias causes. The base ground truth stays exact. ``seed`` makes a
    run's noise reproducible (lockstep runs with the same seed read the same numbers bit for bit)."""

    q_rad = field(float, default=0.0, lo=0.0, hi=0.1, doc="joint position white noise (std, before rounding)")
    q_resolution_rad = field(float, default=0.0, lo=0.0, hi=0.01,
                             doc="joint encoder resolution: positions read as multiples of it (0: no rounding)")
    dq_rad_s = field(float, default=0.0, lo=0.0, hi=5.0, doc="joint velocity white noise (std per sample)")
    gyro_rad_s = field(float, default=0.0, lo=0.0, hi=5.0, doc="gyroscope white noise (std per sample)")
    gyro_bias_rad_s = field(float, default=0.0, lo=0.0, hi=0.5,
                            doc="std of the gyroscope's constant bias, drawn per axis once per run")
    acc_m_s2 = field(float, default=0.0, lo=0.0, hi=10.0, doc="accelerometer white noise (std per sample)")
    acc_bias_m_s2 = field(float, default=0.0, lo=0.0, hi=2.0,
                          doc="std of the accelerometer's constant bias, drawn per axis once per run")
    seed = field(int, default=1, lo=0, hi=2**63 - 1, doc="seed of the noise generator (same seed: same noise)")


class CollisionCapsule(Section):
    """Collision geometry the robot's URDF lacks (the G1's rubber hands have none): a capsule on a
    body, between two points in the body's frame."""

    body = field(str, doc="a body of the MuJoCo model (a URDF link)")
    from_m = field(list, item=float, size=3, lo=-1.0, hi=1.0, doc="one end, body frame")
    to_m = field(list, item=float, size=3, lo=-1.0, hi=1.0, doc="the other end, body frame")
    radius_m = field(float, lo=0.001, hi=0.5, doc="radius")


class SimConfig(Section):
    """The MuJoCo simulation of the robot."""

    sim_rate_hz = field(float, default=2000.0, lo=100.0, hi=10000.0,
                        doc="physics rate: an integer multiple of control_rate_hz, >= it")
    friction = field(float, default=1.0, lo=0.05, hi=3.0, doc="ground sliding friction")
    joint_dynamics = field(list, item=JointDynamics, min_size=1, doc="entries covering every joint (first match wins)")
    hoist = field(HoistConfig, doc="the hoist the robot starts in")
    cameras = field(list, item=CameraConfig, default=[], doc="simulated cameras")
    collision_capsules = field(list, item=CollisionCapsule, default=[],
                               doc="collision geometry added to links the URDF leaves without (named <body>_collision)")
    noise = field(NoiseConfig, default={}, doc="sensor noise")
    command_latency_ms = field(float, default=0.0, lo=0.0, hi=100.0, doc="delay of commands to the simulated motors")

    @property
    def noise_q_rad(self) -> float:
        return float(self.noise.q_rad)

    @property
    def noise_dq_rad_s(self) -> float:
        return float(self.noise.dq_rad_s)

    @property
    def noise_gyro_rad_s(self) -> float:
        return float(self.noise.gyro_rad_s)

    @property
    def noise_acc_m_s2(self) -> float:
        return float(self.noise.acc_m_s2)

    @property
    def noise_q_resolution_rad(self) -> float:
        return float(self.noise.q_resolution_rad)

    @property
    def noise_gyro_bias_rad_s(self) -> float:
        return float(self.noise.gyro_bias_rad_s)

    @property
    def noise_acc_bias_m_s2(self) -> float:
        return float(self.noise.acc_bias_m_s2)

    @property
    def noise_seed(self) -> int:
        return int(self.noise.seed)


# -- whole-body controller -------------------------------------------------------------------------
class WbcContacts(Section):
    """The feet's contacts with the ground."""

    type = field(str, choices={"flat": "6-D sole contacts", "point": "3-D foot contacts"}, doc="contact model")
    sole_offset_m = field(list, item=float, size=3, doc="contact point in the foot frame")
    sole_half_length_m = field(float, default=None, lo=0.0, hi=0.5, doc="flat feet: half the sole's length (>= 0.01)")
    sole_half_width_m = field(float, default=None, lo=0.0, hi=0.5, doc="flat feet: half the sole's width (>= 0.005)")
    friction = field(float, lo=0.05, hi=2.0, doc="friction coefficient of the contact cone")
    min_normal_force_n = field(float, lo=0.0, hi=1000.0, doc="least normal force of an active contact")
    max_normal_force_n = field(float, lo=1.0, hi=1e5, doc="largest normal force, > min_normal_force_n")
    ramp_s = field(float, default=0.1, lo=0.002, hi=5.0, doc="a contact's force limits ramp in/out over this time")

    def check(self, context: Any) -> None:
        for name, least in (("sole_half_length_m", 0.01), ("sole_half_width_m", 0.005)):
            value = getattr(self, name)
            if self.type == "flat":
                if value is None:
                    raise self.error(name, "<missing>",
                                     f"a finite number >= {least} and <= 0.5 (required for flat feet)")
                if value < least:
                    raise self.error(name, value, f"a finite number >= {least} and <= 0.5 (flat feet)")
            elif value is None:
                setattr(self, name, 0.0)
        if self.max_normal_force_n <= self.min_normal_force_n:
            raise self.error("max_normal_force_n", self.max_normal_force_n,
                             f"greater than min_normal_force_n ({self.min_normal_force_n})")


class WbcTaskConfig(Section):
    """A task's PD reference gains and per-axis weights."""

    kp = field(float, lo=0.0, hi=1e4, doc="stiffness of the task's reference acceleration")
    kd = field(float, lo=0.0, hi=1e3, doc="damping of the task's reference acceleration")
    weight = field(list, item=float, lo=0.0, min_size=1,
                   doc="per axis [x, y, z, rx, ry, rz] (3-D tasks: 3 values; posture: 1)")


WBC_TASK_SIZES = {"com": 3, "base": 6, "torso": 6, "hands": 6, "swing_foot": 6, "posture": 1}


class WbcTasks(Section):
    """The whole-body controller's tasks (com, base, posture and swing_foot always; torso with torso_frame;
    hands when frames.hands lists hands)."""

    com = field(WbcTaskConfig, default=None, doc="centre of mass position (3 weights)")
    base = field(WbcTaskConfig, default=None, doc="base pose (6 weights)")
    torso = field(WbcTaskConfig, default=None, doc="torso orientation (6 weights; the first 3 unused)")
    hands = field(WbcTaskConfig, default=None, doc="hand poses (6 weights)")
    swing_foot = field(WbcTaskConfig, default=None, doc="released feet's poses (6 weights)")
    posture = field(WbcTaskConfig, default=None, doc="joint posture (1 weight)")

    def present(self) -> dict[str, WbcTaskConfig]:
        """The tasks the file sets, by name."""
        return {n: getattr(self, n) for n in WBC_TASK_SIZES if getattr(self, n) is not None}

    def check(self, context: Any) -> None:
        for name, task in self.present().items():
            size = WBC_TASK_SIZES[name]
            if len(task.weight) != size:
                raise task.error("weight", task.weight, f"a list of {size} finite numbers >= 0")


class WbcOutput(Section):
    """The motor-board gains of the whole-body command."""

    kp_scale = field(float, lo=0.0, hi=1.0, doc="board kp = this x the joint's kp")
    kd_scale = field(float, lo=0.0, hi=1.0, doc="board kd = this x the joint's kd")


QP_BACKENDS = {"auto": 0, "primal_dual_ldlt": 1, "primal_ldlt": 2}


class WbcSolver(Section):
    """The QP solver (ProxQP dense). Defaults are the C++ WbcConfig's."""

    max_iter = field(int, default=50, lo=1, hi=10000, doc="outer iterations of the cold retry (the tick budget caps it further)")
    eps_abs = field(float, default=1e-6, lo=0.0, lo_open=True, hi=1e-2, doc="absolute tolerance (N, N·m, rad/s²)")
    reg_ddq = field(float, default=1e-6, lo=0.0, lo_open=True, hi=1.0, doc="regularisation weight of accelerations")
    reg_force = field(float, default=1e-5, lo=0.0, lo_open=True, hi=1.0, doc="regularisation weight of contact forces")
    max_consecutive_failures = field(int, default=10, lo=1, hi=1000,
                                     doc="failed solves in a row (each holds the previous command) that fault")
    # The tick budget (cpp/wbc/wbc.hpp) is new: null leaves the controller's own default in place.
    tick_iteration_budget = field(int, default=None, lo=2, hi=100000,
                                  doc="hard cap on the inner iterations of one tick's solves together (null: the "
                                      "controller's default)")
    warm_max_iter = field(int, default=None, lo=1, hi=10000,
                          doc="outer iterations of the warm-started solve; max_iter caps the cold retry (null: default)")
    inner_max_iter = field(int, default=None, lo=1, hi=10000,
                           doc="inner iterations of one outer iteration (ProxQP max_iter_in; null: default)")
    eliminate_contacts = field(bool, default=True, doc="eliminate the contact rows before the solver (exact, faster)")
    qp_backend = field(str, default="auto", choices={"auto": "0", "primal_dual_ldlt": "1, full KKT",
                                                      "primal_ldlt": "2, n x n system"}, doc="ProxQP dense backend")

    @property
    def qp_backend_id(self) -> int:
        return QP_BACKENDS[self.qp_backend]


class WbcLimits(Section):
    """Bounds on the PD references (a far target is approached at bounded acceleration)."""

    max_position_error_m = field(float, default=0.05, lo=0.0, lo_open=True, hi=1.0,
                                 doc="position error a pose task's reference sees at most")
    max_rotation_error_rad = field(float, default=0.3, lo=0.0, lo_open=True, hi=math.pi,
                                   doc="rotation error a pose task's reference sees at most")
    limit_horizon_s = field(float, default=0.05, lo=0.0, lo_open=True, hi=1.0,
                            doc="the joint-limit acceleration bounds look this far ahead")


class WbcBalanceGuard(Section):
    """Raises the horizontal centre-of-mass weight as the capture point nears the support area's edge."""

    start_m = field(float, default=0.04, lo=0.0, lo_open=True, hi=0.5, doc="x1 this far inside the edge")
    full_m = field(float, default=0.015, lo=-0.5, hi=0.5, doc="x scale this far inside the edge (< start_m)")
    scale = field(float, default=10.0, lo=1.0, hi=1000.0, doc="weight factor at full_m (1: guard off)")

    def check(self, context: Any) -> None:
        if not self.start_m > self.full_m:
            raise self.error("full_m", self.full_m, f"less than start_m ({self.start_m})")


class WbcKeepOutPoint(Section):
    """A point of the robot that stays out of the keep-out boxes: a frame's origin moved by offset_m."""

    frame = field(str, doc="a frame of the robot model (a link)")
    offset_m = field(list, item=float, size=3, default=[0.0, 0.0, 0.0], lo=-1.0, hi=1.0, doc="offset, frame axes")
    radius_m = field(float, lo=0.0, hi=0.5, doc="the link's extent around the point")


class WbcKeepOut(Section):
    """Which points of the robot the controller keeps out of declared keep-out boxes (a table, a
    fixture: the deploy config's ``keep_out:``), and the barrier that does it."""

    points = field(list, item=WbcKeepOutPoint, default=[], doc="protected points (hands, forearms)")
    margin_m = field(float, default=0.02, lo=0.0, hi=0.2, doc="clearance kept beyond each point's radius")
    kp = field(float, default=400.0, lo=1.0, hi=1e5, doc="barrier stiffness (1/s^2)")
    kd = field(float, default=40.0, lo=0.1, hi=1e4, doc="barrier damping (1/s; 2 sqrt(kp): critically damped)")
    activation_m = field(float, default=0.15, lo=0.001, hi=2.0, doc="a point's rows are idle while farther than this")


class KeepOutBox(Section):
    """A world-fixed, axis-aligned box the robot's protected points stay out of."""

    name = field(str, pattern=r"[A-Za-z0-9_.-]+", doc="what it is (reports)")
    center_m = field(list, item=float, size=3, lo=-100.0, hi=100.0, doc="centre, world frame")
    half_m = field(list, item=float, size=3, lo=0.001, hi=50.0, doc="half sizes along the world axes")


class WbcSettings(Section):
    """The whole-body controller (``vertebra sim --controller wbc``); converted to ``_rt.WbcConfig`` by
    ``vertebra.runtime.wbc.build_wbc_config``."""

    contacts = field(WbcContacts, doc="the feet's contacts")
    torso_frame = field(str, default="", doc="frame of the torso orientation task (empty: no torso task)")
    tasks = field(WbcTasks, doc="task gains and weights")
    output = field(WbcOutput, doc="motor-board gains of the command")
    solver = field(WbcSolver, default={}, doc="QP solver settings")
    limits = field(WbcLimits, default={}, doc="reference error bounds and the joint-limit horizon")
    balance_guard = field(WbcBalanceGuard, default={}, doc="centre-of-mass weight near the support edge")
    keep_out = field(WbcKeepOut, default={}, doc="the points kept out of keep-out boxes, and the barrier's gains")
    hand_aim = field(list, item=str, default=[],
                     doc="one shoulder frame per hand: a hand's orientation is held relative to the shoulder-to-"
                         "target direction ([]: held in the world)")
    hand_posture_scale = field(float, default=1.0, lo=0.0, hi=1.0,
                               doc="while a hand's target is set, its arm's posture weight times this (the posture's "
                                   "joint damping otherwise drags the arm; 1: unchanged)")

    @property
    def flat_feet(self) -> bool:
        return bool(self.contacts.type == "flat")

    @property
    def sole_offset_m(self) -> list[float]:
        return list(self.contacts.sole_offset_m)

    @property
    def sole_half_length_m(self) -> float:
        return float(self.contacts.sole_half_length_m)

    @property
    def sole_half_width_m(self) -> float:
        return float(self.contacts.sole_half_width_m)

    @property
    def friction(self) -> float:
        return float(self.contacts.friction)

    @property
    def min_normal_force_n(self) -> float:
        return float(self.contacts.min_normal_force_n)

    @property
    def max_normal_force_n(self) -> float:
        return float(self.contacts.max_normal_force_n)

    @property
    def ramp_s(self) -> float:
        return float(self.contacts.ramp_s)

    @property
    def output_kp_scale(self) -> float:
        return float(self.output.kp_scale)

    @property
    def output_kd_scale(self) -> float:
        return float(self.output.kd_scale)


# -- state estimator ------------------------------------------------------------------------------
class EstimatorSettings(Section):
    """The floating-base state estimator (cpp/estimation/estimator.hpp): a Kalman filter over base
    position/velocity and the feet, from the IMU and leg kinematics; converted by
    ``vertebra.runtime.estimation.build_estimator_config``."""

    contact_source = field(str, choices={"joint_torque": "a ground-reaction estimate from the leg's joint torques",
                                         "foot_force": "the robot's foot force sensors (Go2)"},
                           doc="how a foot's contact is detected")
    contact_on_n = field(float, lo=0.0, hi=1e4, doc="a foot is in stance above this normal force (N or sensor units)")
    contact_off_n = field(float, lo=0.0, hi=1e4, doc="and in swing again below this one (< contact_on_n)")
    accel_noise_m_s2 = field(float, default=0.5, lo=1e-4, hi=100.0, doc="process noise: IMU acceleration (std)")
    stance_foot_noise_m_s = field(float, default=0.002, lo=1e-6, hi=10.0, doc="process noise: stance foot slip")
    swing_foot_noise_m_s = field(float, default=10.0, lo=1e-3, hi=1e3, doc="process noise: a swing foot")
    kin_position_noise_m = field(float, default=0.003, lo=1e-5, hi=1.0, doc="leg kinematics: foot position (std)")
    kin_velocity_noise_m_s = field(float, default=0.08, lo=1e-4, hi=10.0, doc="leg kinematics: base velocity (std)")
    foot_height_noise_m = field(float, default=0.003, lo=1e-5, hi=1.0, doc="a stance foot on the ground plane (std)")
    no_contact_velocity_noise_m_s = field(float, default=0.1, lo=1e-3, hi=100.0,
                                          doc="no foot in contact (hoisted): a weak zero-velocity measurement (std)")

    def check(self, context: Any) -> None:
        if self.contact_off_n >= self.contact_on_n:
            raise self.error("contact_off_n", self.contact_off_n, f"less than contact_on_n ({self.contact_on_n})")


# -- walking ---------------------------------------------------------------------------------------
# Defaults are the C++ ones (cpp/locomotion: gait::GaitParams, WalkConfig); tests/locomotion checks
# they agree.
class WalkGait(Section):
    """The walking pattern (cpp/locomotion/gait.hpp: GaitParams)."""

    single_support_s = field(float, default=0.6, lo=0.2, hi=2.0, doc="one foot down, per step")
    double_support_s = field(float, default=0.1, lo=0.02, hi=1.0, doc="both feet down, between steps")
    step_width_m = field(float, default=0.2, lo=0.05, hi=0.6, doc="between the feet's centres, walking straight")
    min_step_width_m = field(float, default=0.16, lo=0.05, hi=0.6, doc="the closest a foot lands beside the other")
    max_step_length_m = field(float, default=0.4, lo=0.0, lo_open=True, hi=1.0, doc="landing ahead of the stance foot")
    max_step_back_m = field(float, default=0.2, lo=0.0, lo_open=True, hi=1.0, doc="landing behind the stance foot")
    max_step_out_m = field(float, default=0.2, lo=0.0, hi=1.0, doc="landing farther out than the step width")
    max_step_turn_rad = field(float, default=0.75, lo=0.0, hi=1.5, doc="yaw between the landing and the stance foot")
    swing_height_m = field(float, default=0.06, lo=0.0, lo_open=True, hi=0.3, doc="the swing foot's apex")
    zmp_inset_m = field(float, default=0.0, lo=0.0, hi=0.1, doc="the ZMP reference this far inside the foot's centre")

    def check(self, context: Any) -> None:
        if self.min_step_width_m > self.step_width_m:
            raise self.error("min_step_width_m", self.min_step_width_m, f"at most step_width_m ({self.step_width_m})")


class WalkSettings(Section):
    """The walking controller (``controller: walk``; cpp/locomotion/walk_mode.hpp: WalkConfig)."""

    gait = field(WalkGait, default={}, doc="the walking pattern")
    dcm_gain = field(float, default=3.0, lo=0.0, lo_open=True, hi=50.0, doc="1/s: the DCM error's decay rate")
    start_s = field(float, default=0.4, lo=0.02, hi=3.0, doc="the first weight shift onto the stance foot")
    preview_steps = field(int, default=3, lo=2, hi=8, doc="footsteps planned ahead")
    max_lin_acc_m_s2 = field(float, default=0.5, lo=0.0, lo_open=True, hi=10.0, doc="the command's rate limit")
    max_yaw_acc_rad_s2 = field(float, default=1.0, lo=0.0, lo_open=True, hi=20.0, doc="the yaw rate's rate limit")
    zmp_margin_m = field(float, default=0.01, lo=0.0, hi=0.05, doc="the commanded ZMP this far inside the support")
    com_weight_scale = field(float, default=30.0, lo=0.1, hi=1000.0,
                             doc="the horizontal CoM task's weight x this while walking")
    step_in_place = field(bool, default=False, doc="a zero command: keep stepping (true) or stand (false)")
    step_adjust = field(bool, default=True, doc="move the landing when the ZMP saturates (a push; docs/walking.md)")

    def check(self, context: Any) -> None:
        if self.start_s < self.gait.double_support_s:
            raise self.error("start_s", self.start_s, f"at least gait.double_support_s ({self.gait.double_support_s})")


class ServiceInterval(Section):
    """A joint group's service interval: the first of these limits reached makes it due."""

    match = field(str, doc="joints whose name matches this regular expression (first entry that matches wins)")
    torque_hours = field(float, default=None, lo=0.01, hi=1e6, doc="hours under torque (above 5% of tau_max)")
    travel_krad = field(float, default=None, lo=0.001, hi=1e9, doc="travel, thousands of radians")
    torque_integral_mnms = field(float, default=None, lo=0.001, hi=1e9, doc="torque-time integral, millions of N·m·s")

    def check(self, context: Any) -> None:
        self.check_regex("match")
        if self.torque_hours is None and self.travel_krad is None and self.torque_integral_mnms is None:
            raise self.error("torque_hours", None, "at least one of torque_hours, travel_krad, torque_integral_mnms")


class MaintenanceConfig(Section):
    """Service intervals (`vertebra lifecycle` shows each joint's share and what is due). Site-specific:
    set them from the robot's maintenance plan."""

    powered_hours = field(float, default=None, lo=0.01, hi=1e6, doc="the robot's interval in powered hours")
    joints = field(list, item=ServiceInterval, default=[], doc="per joint group")


# -- the robot -------------------------------------------------------------------------------------
class RobotConfig(Section):
    """A robot: its description, joints in motor-index order, limits, gains, frames, simulator, WBC."""

    name = field(str, pattern=r"[a-z0-9_]+", doc="robot name (configs/safety/<name>.yaml is its safety config)")
    description = field(str, default="", doc="one line for people")
    urdf = field(UrdfConfig, doc="the robot's URDF")
    control_rate_hz = field(float, default=500.0, lo=50, hi=2000, doc="the control loop's rate")
    max_gain_scale = field(float, default=1.5, lo=1.0, hi=10.0,
                           doc="nothing may command kp/kd above this x the joint's")
    joints = field(list, item=JointConfig, min_size=1, doc="joints in motor-index order")
    frames = field(FramesConfig, doc="frames of the URDF")
    sim = field(SimConfig, doc="the simulator")
    wbc = field(WbcSettings, default=None, doc="the whole-body controller (optional)")
    estimator = field(EstimatorSettings, default=None,
                      doc="the floating-base state estimator (required to run without base truth: a real robot)")
    walk = field(WalkSettings, default=None, doc="the walking controller (bipeds; optional: the C++ defaults)")
    maintenance = field(MaintenanceConfig, default={}, doc="service intervals (lifecycle records)")
    extra = field(dict, item=None, default={}, doc="free-form settings for tools (unchecked)")

    @property
    def urdf_path(self) -> Path:
        return Path(self.urdf.resolved_path)

    @property
    def base_frame(self) -> str:
        return str(self.frames.base)

    @property
    def imu_frame(self) -> str:
        return str(self.frames.imu)

    @property
    def foot_frames(self) -> list[str]:
        return list(self.frames.feet)

    @property
    def sole_offset_m(self) -> float:
        return float(self.frames.sole_offset_m)

    @property
    def hand_frames(self) -> list[str]:
        return list(self.frames.hands)

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def column(self, attr: str) -> list[float]:
        return [float(getattr(j, attr)) for j in self.joints]

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> RobotConfig:
        """Load ``configs/robots/<name>.yaml`` or a YAML file path and validate it."""
        path = config_file(name_or_path, CONFIG_DIR / "robots")
        return cls.from_dict(read_yaml(path), path)

    def check(self, context: Any) -> None:
        names: set[str] = set()
        for i, j in enumerate(self.joints):
            if j.name in names:
                raise j.error("name", j.name, "a joint name not already listed")
            names.add(j.name)
            if j.motor != i:
                raise j.error("motor", j.motor, f"{i}: joints are listed in motor-index order")
        self._check_sim()
        self._check_wbc_tasks()
        self._check_against_urdf()
        for j in self.joints:  # the limiter would clamp damping above the gain ceiling
            if j.kd_damping > self.max_gain_scale * j.kd + 1e-12:
                raise j.error("kd_damping", j.kd_damping,
                              f"<= max_gain_scale x kd = {self.max_gain_scale * j.kd:g} (the kd ceiling)")

    def _check_sim(self) -> None:
        names = self.joint_names
        covered: set[str] = set()
        for d in self.sim.joint_dynamics:
            hits = [n for n in names if re.search(d.match, n)]
            if not hits:
                raise d.error("match", d.match, "a regex matching at least one joint: " + ", ".join(names))
            covered.update(hits)
        missing = [n for n in names if n not in covered]
        if missing:
            raise self.sim.error("joint_dynamics", "<no entry for " + ", ".join(missing) + ">",
                                 "entries covering every joint")
        ratio = self.sim.sim_rate_hz / self.control_rate_hz
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            k = max(1, round(ratio))
            raise self.sim.error("sim_rate_hz", self.sim.sim_rate_hz,
                                 f"an integer multiple of control_rate_hz ({self.control_rate_hz:g}) and >= it, "
                                 f"e.g. {k * self.control_rate_hz:g}")

    def _check_wbc_tasks(self) -> None:
        if self.wbc is None:
            return
        required = ["com", "base", "posture", "swing_foot"]
        if self.wbc.torso_frame:
            required.append("torso")
        if self.hand_frames:
            required.append("hands")
        for name in required:
            if getattr(self.wbc.tasks, name) is None:
                raise self.wbc.tasks.error(name, "<missing>",
                                           "a task entry: com, base, posture and swing_foot are required, torso with "
                                           "torso_frame, hands when frames.hands lists hands")
        if self.wbc.hand_aim and len(self.wbc.hand_aim) != len(self.hand_frames):
            raise self.wbc.error("hand_aim", self.wbc.hand_aim,
                                 f"one shoulder frame per hand ({len(self.hand_frames)}: frames.hands), or [] for none")

    def _check_against_urdf(self) -> None:
        """The YAML may tighten the URDF's limits, never widen them; frames must exist."""
        from vertebra import _rt

        try:
            model = _rt.RobotModel(str(self.urdf_path), self.joint_names)
        except ValueError as e:
            raise self.error("joints", self.joint_names, str(e)) from None
        lim = model.limits
        tol = 1e-6
        for i, j in enumerate(self.joints):
            if j.q_min_rad < lim["lower"][i] - tol:
                raise j.error("q_min_rad", j.q_min_rad, f">= URDF lower limit {lim['lower'][i]}")
            if j.q_max_rad > lim["upper"][i] + tol:
                raise j.error("q_max_rad", j.q_max_rad, f"<= URDF upper limit {lim['upper'][i]}")
            if j.dq_max_rad_s > lim["velocity"][i] + tol:
                raise j.error("dq_max_rad_s", j.dq_max_rad_s, f"<= URDF velocity limit {lim['velocity'][i]}")
            if j.tau_max_nm > lim["effort"][i] + tol:
                raise j.error("tau_max_nm", j.tau_max_nm, f"<= URDF effort limit {lim['effort'][i]}")
        frames = set(model.frame_names)
        checks: list[tuple[str, str]] = [("frames.base", self.base_frame), ("frames.imu", self.imu_frame)]
        checks += [(f"frames.feet[{i}]", f) for i, f in enumerate(self.foot_frames)]
        checks += [(f"frames.hands[{i}]", f) for i, f in enumerate(self.hand_frames)]
        checks += [(f"sim.cameras[{i}].body", c.body) for i, c in enumerate(self.sim.cameras)]
        if self.wbc is not None and self.wbc.torso_frame:
            checks.append(("wbc.torso_frame", self.wbc.torso_frame))
        if self.wbc is not None:
            checks += [(f"wbc.hand_aim[{i}]", f) for i, f in enumerate(self.wbc.hand_aim)]
        for where, name in checks:
            if name not in frames:
                raise ConfigError(self.file, where, name, "a frame of the URDF: " + ", ".join(sorted(frames)))


def available_robots() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "robots").glob("*.yaml"))


def example_robot_data_dir() -> Path:
    """Where the example-robot-data wheel put its robots (``<site>/cmeel.prefix/share/example-robot-data``)."""
    import sys

    for entry in sys.path:
        candidate = Path(entry) / "cmeel.prefix" / "share" / "example-robot-data"
        if (candidate / "robots").is_dir():
            return candidate
    raise FileNotFoundError("example-robot-data is not installed (pip install example-robot-data; scripts/setup.sh does)")


def robot_params(cfg: RobotConfig) -> Any:
    """The C++ RobotParams (motor order) for a robot config."""
    from vertebra import _rt

    return _rt.RobotParams(
        kp=cfg.column("kp"), kd=cfg.column("kd"), kd_damping=cfg.column("kd_damping"),
        kp_max=[cfg.max_gain_scale * j.kp for j in cfg.joints], kd_max=[cfg.max_gain_scale * j.kd for j in cfg.joints],
        q_lower=cfg.column("q_min_rad"), q_upper=cfg.column("q_max_rad"), dq_max=cfg.column("dq_max_rad_s"),
        tau_max=cfg.column("tau_max_nm"), default_pose=cfg.column("default_rad"),
    )


def loop_config(rate_hz: float, lockstep: bool = False, realtime_priority: bool = True, cpu: int | None = None) -> Any:
    """The runtime's C++ loop settings: in real time the loop thread gets its own core (`cpu`, else the
    last one when there is more than one), SCHED_FIFO and the loop's default 100 µs final spin."""
    from vertebra import _rt

    cfg = _rt.LoopConfig()
    cfg.rate_hz = rate_hz
    cfg.lockstep = lockstep
    cfg.realtime_priority = realtime_priority
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpu is not None:
        cfg.cpu = cpu
    elif not lockstep and len(cpus) > 1:
        cfg.cpu = cpus[-1]
    return cfg

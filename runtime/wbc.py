"""Python side of the whole-body controller: build it from the robot YAML and set its targets by name.

    wb = WholeBody(robot_cfg, robot_model)
    wb.set_target("com", [0.0, 0.05, 0.68])                 # metres, world
    wb.set_target("left_hand", pose_4x4)                     # SE3: 4x4 matrix or (xyz, quat wxyz)
    wb.set_target("left_hand", [0.3, 0.2, 0.9])              # position only: the orientation reference stays
    wb.set_target("torso", quat_wxyz)                        # orientation: quaternion or 3x3
    wb.set_target("left_elbow_joint", 0.8)                   # one joint of the posture task
    wb.release("left_hand")                                  # stop tracking
    wb.status()["hand_pos_err"], wb.status()["contact_wrench"]

Targets travel to the tick through a lock-free buffer (whole value, latest wins); the C++ side
checks and uses them on its next tick. Nothing here runs on the tick.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from vertebra import _rt
from vertebra.runtime.config import ConfigError, RobotConfig
from vertebra.runtime.numerics import quat_from_rpy, rotation_to_quat


def _quat_from(value: Any, name: str) -> list[float]:
    a = np.asarray(value, dtype=float)
    if a.shape != (4,) or not np.all(np.isfinite(a)) or np.linalg.norm(a) < 1e-6:
        raise ValueError(f"target '{name}': expected a quaternion [w, x, y, z] (non-zero, finite), found {value!r}")
    return (a / np.linalg.norm(a)).tolist()


def _rotation(R: np.ndarray, name: str) -> list[float]:
    if not np.all(np.isfinite(R)) or not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or abs(np.linalg.det(R) - 1) > 1e-6:
        raise ValueError(f"target '{name}': expected a rotation (orthonormal, determinant 1, finite), found {R.tolist()}")
    return rotation_to_quat(R)


def _orientation(value: Any, name: str) -> list[float]:
    a = np.asarray(value, dtype=float)
    if a.shape == (3, 3):
        return _rotation(a, name)
    return _quat_from(a, name)


def _position(value: Any) -> np.ndarray | None:
    """`value` as a bare [x, y, z] (list, tuple or array), else None (a pose: _pose reads it)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return None  # (position, orientation)
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (3,) else None


def _pose(value: Any, name: str) -> tuple[list[float], list[float]]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        pos = np.asarray(value[0], dtype=float)
        quat = _orientation(value[1], name)
    else:
        a = np.asarray(value, dtype=float)
        if a.shape != (4, 4):
            raise ValueError(f"target '{name}': expected a 4x4 pose or (xyz, quaternion wxyz), found shape {a.shape}")
        if not np.allclose(a[3], [0, 0, 0, 1]):
            raise ValueError(f"target '{name}': the last row of a 4x4 pose must be [0, 0, 0, 1], found {a[3].tolist()}")
        pos, quat = a[:3, 3], _rotation(a[:3, :3], name)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        raise ValueError(f"target '{name}': expected a finite position [x, y, z], found {pos!r}")
    return pos.tolist(), quat


def build_wbc_config(robot: RobotConfig, keep_out: list[Any] | None = None) -> Any:
    """The C++ ``_rt.WbcConfig`` of a robot's ``wbc:`` section (``WbcSettings``) and its joints and
    frames; `keep_out`: the boxes (``KeepOutBox``) its ``wbc.keep_out.points`` stay out of."""
    w = robot.wbc
    if w is None:
        raise ConfigError(robot.file, "wbc", "<missing>", "a wbc section to run the whole-body controller")
    c = _rt.WbcConfig()
    c.flat_feet = w.flat_feet
    c.foot_frames = list(robot.foot_frames)
    c.sole_offset_m = list(w.sole_offset_m)
    c.friction = w.friction
    c.sole_half_length_m = w.sole_half_length_m
    c.sole_half_width_m = w.sole_half_width_m
    c.min_normal_force_n = w.min_normal_force_n
    c.max_normal_force_n = w.max_normal_force_n
    c.contact_ramp_s = w.ramp_s
    c.base_frame = robot.base_frame
    c.torso_frame = w.torso_frame
    c.hand_frames = list(robot.hand_frames)
    for name in ("com", "base", "torso", "hands", "swing_foot", "posture"):
        t = w.tasks.get(name)
        g = _rt.WbcGains()
        if t is not None:
            g.kp, g.kd = t.kp, t.kd
            g.weight = (t.weight + [0.0] * 6)[:6]
        setattr(c, name, g)
    s, lim, guard = w.solver, w.limits, w.balance_guard
    c.max_iter = s.max_iter
    c.eps_abs = s.eps_abs
    c.reg_ddq = s.reg_ddq
    c.reg_force = s.reg_force
    c.max_consecutive_failures = s.max_consecutive_failures
    if s.tick_iteration_budget is not None:
        c.tick_iteration_budget = s.tick_iteration_budget
    if s.warm_max_iter is not None:
        c.warm_max_iter = s.warm_max_iter
    if s.inner_max_iter is not None:
        c.inner_max_iter = s.inner_max_iter
    c.eliminate_contacts = s.eliminate_contacts
    c.qp_backend = s.qp_backend_id
    c.max_position_error_m = lim.max_position_error_m
    c.max_rotation_error_rad = lim.max_rotation_error_rad
    c.limit_horizon_s = lim.limit_horizon_s
    c.hand_posture_scale = w.hand_posture_scale
    c.hand_aim_frames = list(w.hand_aim)
    c.balance_guard_start_m = guard.start_m
    c.balance_guard_full_m = guard.full_m
    c.balance_guard_scale = guard.scale
    c.armature = [next(d.armature_kg_m2 for d in robot.sim.joint_dynamics if re.search(d.match, j.name))
                  for j in robot.joints]
    c.out_kp = [w.output_kp_scale * j.kp for j in robot.joints]
    c.out_kd = [w.output_kd_scale * j.kd for j in robot.joints]
    c.control_rate_hz = robot.control_rate_hz
    if keep_out:
        ko = w.keep_out
        if not ko.points:
            raise ConfigError(robot.file, "wbc.keep_out.points", "[]",
                              f"the points to keep out of {', '.join(b.name for b in keep_out)} (hands, forearms)")
        c.keep_out = [_rt.KeepOutBox(list(b.center_m), list(b.half_m)) for b in keep_out]
        c.keep_out_points = [_rt.KeepOutPoint(p.frame, list(p.offset_m), p.radius_m) for p in ko.points]
        c.keep_out_margin_m, c.keep_out_kp, c.keep_out_kd = ko.margin_m, ko.kp, ko.kd
        c.keep_out_activation_m = ko.activation_m
    return c


class WholeBody:
    """The whole-body controller of a robot and its named targets."""

    def __init__(self, robot: RobotConfig, model: Any, keep_out: list[Any] | None = None):
        self.robot = robot
        self.keep_out = list(keep_out or [])
        self.ctrl = _rt.WholeBodyController(model, build_wbc_config(robot, self.keep_out))
        self._t = _rt.WbcTargets()
        self._seq = 0
        # Hands by frame name, plus "left_hand"/"right_hand" for frames whose name says which side.
        self.hands = {f: i for i, f in enumerate(robot.hand_frames)}
        for i, f in enumerate(robot.hand_frames):
            for side in ("left", "right"):
                if side in f:
                    self.hands.setdefault(f"{side}_hand", i)
        self.feet = {f: i for i, f in enumerate(robot.foot_frames)}
        self.joints = {n: i for i, n in enumerate(robot.joint_names)}

    def valid_names(self) -> list[str]:
        names = ["com", "base", "posture"] + (["torso"] if self.robot.wbc.torso_frame else [])
        return names + list(self.hands) + list(self.feet) + list(self.joints)

    def _publish(self) -> None:
        self._seq += 1
        self._t.seq = self._seq
        self.ctrl.publish_targets(self._t)

    def reset_targets(self) -> None:
        """Forget every target: the controller keeps what it captured when it was entered.

        Call this when (re-)entering the WBC mode (SimRuntime.engage_wbc does): targets are sent as
        one cumulative value, so without it the first new target would re-send the old ones."""
        self._t = _rt.WbcTargets()
        self._publish()

    def set_target(self, name: str, value: Any) -> None:
        t = self._t
        if name == "com":
            a = np.asarray(value, dtype=float)
            if a.shape != (3,) or not np.all(np.isfinite(a)):
                raise ValueError(f"target 'com': expected a finite [x, y, z] in metres, found {value!r}")
            t.com, t.com_set = a.tolist(), True
            t.com_vel, t.com_acc = [0.0] * 3, [0.0] * 3  # a set point
        elif name == "base":
            t.base_pos, t.base_quat = _pose(value, name)
            t.base_set = True
        elif name == "torso" and self.robot.wbc.torso_frame:
            t.torso_quat, t.torso_set = _orientation(value, name), True
        elif name in self.hands:
            a = _position(value)
            if a is not None:  # a position: the orientation reference stays (wbc.hand_aim)
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"target '{name}': expected a finite position [x, y, z], found {value!r}")
                self._set_pose_slot("hand", self.hands[name], (a.tolist(), [1.0, 0.0, 0.0, 0.0]), position_only=True)
            else:
                self._set_pose_slot("hand", self.hands[name], _pose(value, name))
        elif name in self.feet:
            self._set_pose_slot("foot", self.feet[name], _pose(value, name))
        elif name == "posture":
            a = np.asarray(value, dtype=float)
            if a.shape != (len(self.joints),) or not np.all(np.isfinite(a)):
                raise ValueError(f"target 'posture': expected {len(self.joints)} finite joint angles, found {value!r}")
            lo, hi = np.array(self.robot.column("q_min_rad")), np.array(self.robot.column("q_max_rad"))
            bad = [self.robot.joint_names[i] for i in np.flatnonzero((a < lo) | (a > hi))]
            if bad:
                raise ValueError(f"target 'posture': outside the joint limits for {', '.join(bad)}")
            p = t.posture
            p[: a.size] = a.tolist()
            ps = t.posture_set
            ps[: a.size] = [True] * a.size
            t.posture, t.posture_set = p, ps
        elif name in self.joints:
            v = float(value)
            j = self.robot.joints[self.joints[name]]
            if not (j.q_min_rad <= v <= j.q_max_rad):
                raise ValueError(f"target '{name}': {v} rad is outside [{j.q_min_rad}, {j.q_max_rad}]")
            p, ps = t.posture, t.posture_set
            p[self.joints[name]], ps[self.joints[name]] = v, True
            t.posture, t.posture_set = p, ps
        else:
            raise ValueError(f"unknown target '{name}'; targets are: {', '.join(self.valid_names())}")
        self._publish()

    def set_com_trajectory(self, pos: Any, vel: Any, acc: Any) -> None:
        """A centre-of-mass target with its trajectory's velocity and acceleration (world; the task's
        reference is acc + kp (pos - c) + kd (vel - c'): tracked without the lag of a set point)."""
        vals = [np.asarray(v, dtype=float) for v in (pos, vel, acc)]
        for what, a in zip(("pos", "vel", "acc"), vals):
            if a.shape != (3,) or not np.all(np.isfinite(a)):
                raise ValueError(f"centre-of-mass trajectory {what}: expected a finite [x, y, z], found {a.tolist()!r}")
        t = self._t
        t.com, t.com_vel, t.com_acc, t.com_set = vals[0].tolist(), vals[1].tolist(), vals[2].tolist(), True
        self._publish()

    def _set_pose_slot(self, kind: str, i: int, pose: tuple[list[float], list[float]],
                       position_only: bool = False) -> None:
        """Set slot i of the hand_* or foot_* arrays (pybind11 hands out copies: write them back)."""
        t = self._t
        if kind == "hand":
            po = t.hand_position_only
            po[i] = position_only
            t.hand_position_only = po
        pos, quat, flag = getattr(t, f"{kind}_pos"), getattr(t, f"{kind}_quat"), getattr(t, f"{kind}_set")
        pos[i], quat[i], flag[i] = pose[0], pose[1], True
        setattr(t, f"{kind}_pos", pos)
        setattr(t, f"{kind}_quat", quat)
        setattr(t, f"{kind}_set", flag)

    def release(self, name: str) -> None:
        """Stop tracking a hand target."""
        if name not in self.hands:
            raise ValueError(f"'{name}' is not a hand; hands are: {', '.join(self.hands)}")
        hs = self._t.hand_set
        hs[self.hands[name]] = False
        self._t.hand_set = hs
        self._publish()

    def set_contact(self, foot: str, active: bool) -> None:
        """Release (force ramps out, then the foot follows its swing target) or re-establish a contact."""
        if foot not in self.feet:
            raise ValueError(f"unknown foot '{foot}'; feet are: {', '.join(self.feet)}")
        ca = self._t.contact_active
        ca[self.feet[foot]] = bool(active)
        self._t.contact_active = ca
        self._publish()

    def status(self) -> dict[str, Any]:
        return dict(self.ctrl.status())

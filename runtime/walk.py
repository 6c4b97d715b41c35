"""The walking controller (``controller: walk``): the C++ walk mode (cpp/locomotion/walk_mode.hpp)
wrapping the robot's whole-body controller. A velocity command (vx, vy, yaw rate) becomes
footsteps, a DCM plan and swing-foot trajectories on the tick; the hands stay the whole-body
controller's named targets (``Walker.wb``)."""

from __future__ import annotations

import math
from typing import Any

from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.wbc import WholeBody


def build_walk_config(robot: RobotConfig, bounds: Any = None) -> Any:
    """The C++ WalkConfig for a robot: its ``walk:`` section (the C++ defaults where absent), its feet by
    name, and the safety config's ``base_velocity`` bounds (`bounds`, a BaseVelocityBounds; None: no bound,
    for tests of the controller alone)."""
    feet = list(robot.foot_frames)
    if len(feet) != 2:
        raise ConfigError(robot.file, "wbc.contacts", f"{len(feet)} feet", "two feet: the walk controller is for bipeds")
    c = _rt.WalkConfig()
    sides = {"left": [i for i, f in enumerate(feet) if "left" in f], "right": [i for i, f in enumerate(feet) if "right" in f]}
    if len(sides["left"]) != 1 or len(sides["right"]) != 1:
        raise ConfigError(robot.file, "wbc.contacts", ", ".join(feet), "one foot frame named left..., one right...")
    c.left_foot, c.right_foot = sides["left"][0], sides["right"][0]
    w = robot.walk
    if w is not None:
        g = c.gait
        for name in GAIT_FIELDS:
            setattr(g, name, float(getattr(w.gait, name)))
        c.gait = g
        c.dcm_gain, c.start_s, c.preview_steps = float(w.dcm_gain), float(w.start_s), int(w.preview_steps)
        c.max_lin_acc, c.max_yaw_acc = float(w.max_lin_acc_m_s2), float(w.max_yaw_acc_rad_s2)
        c.zmp_margin_m, c.com_weight_scale = float(w.zmp_margin_m), float(w.com_weight_scale)
        c.step_in_place, c.step_adjust = bool(w.step_in_place), bool(w.step_adjust)
    if bounds is not None:
        c.max_command = (float(bounds.max_vx_m_s), float(bounds.max_vy_m_s), float(bounds.max_wz_rad_s))
    return c


GAIT_FIELDS = ("single_support_s", "double_support_s", "step_width_m", "min_step_width_m", "max_step_length_m",
               "max_step_back_m", "max_step_out_m", "max_step_turn_rad", "swing_height_m", "zmp_inset_m")


def walk_bounds(safety: Any) -> Any:
    """The safety config's ``base_velocity`` bounds; a walking controller does not start without them."""
    if safety is None or safety.base_velocity is None:
        raise ConfigError(getattr(safety, "file", "<safety config>"), "base_velocity", "<missing>",
                          "max_vx_m_s, max_vy_m_s, max_wz_rad_s: the velocity commands the walk controller accepts "
                          "(fail closed: it does not walk without them)")
    return safety.base_velocity


class Walker:
    """The walk mode of a runtime and its whole-body controller (hands, posture)."""

    def __init__(self, robot: RobotConfig, model: Any, keep_out: list[Any] | None = None, config: Any = None,
                 bounds: Any = None):
        self.robot = robot
        self.bounds = bounds
        self.wb = WholeBody(robot, model, keep_out=keep_out)
        self.config = config if config is not None else build_walk_config(robot, bounds)
        self.mode = _rt.WalkMode(self.wb.ctrl, self.config)

    def command(self, vx: float, vy: float = 0.0, wz: float = 0.0) -> None:
        """The velocity command: forward and left (m/s), yaw rate (rad/s), in the walking frame."""
        vals = (float(vx), float(vy), float(wz))
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"walk command: expected finite (vx, vy, wz), found {vals}")
        if not self.mode.set_command(*vals):  # the C++ mode holds the bounds: the command it had stays
            lim = tuple(self.config.max_command)
            why = self.bounds.refusal(*vals) if self.bounds is not None else f"beyond {lim}"
            raise ValueError(f"walk command {vals} refused (safety config base_velocity): {why}")

    def status(self) -> dict[str, Any]:
        return self.mode.status()

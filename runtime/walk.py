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


def build_walk_config(robot: RobotConfig) -> Any:
    """The C++ WalkConfig for a robot: the defaults of cpp/locomotion, with the robot's feet by name."""
    feet = list(robot.foot_frames)
    if len(feet) != 2:
        raise ConfigError(robot.file, "wbc.contacts", f"{len(feet)} feet", "two feet: the walk controller is for bipeds")
    c = _rt.WalkConfig()
    sides = {"left": [i for i, f in enumerate(feet) if "left" in f], "right": [i for i, f in enumerate(feet) if "right" in f]}
    if len(sides["left"]) != 1 or len(sides["right"]) != 1:
        raise ConfigError(robot.file, "wbc.contacts", ", ".join(feet), "one foot frame named left..., one right...")
    c.left_foot, c.right_foot = sides["left"][0], sides["right"][0]
    return c


class Walker:
    """The walk mode of a runtime and its whole-body controller (hands, posture)."""

    def __init__(self, robot: RobotConfig, model: Any, keep_out: list[Any] | None = None, config: Any = None):
        self.robot = robot
        self.wb = WholeBody(robot, model, keep_out=keep_out)
        self.config = config if config is not None else build_walk_config(robot)
        self.mode = _rt.WalkMode(self.wb.ctrl, self.config)

    def command(self, vx: float, vy: float = 0.0, wz: float = 0.0) -> None:
        """The velocity command: forward and left (m/s), yaw rate (rad/s), in the walking frame."""
        vals = (float(vx), float(vy), float(wz))
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"walk command: expected finite (vx, vy, wz), found {vals}")
        self.mode.set_command(*vals)

    def status(self) -> dict[str, Any]:
        return self.mode.status()

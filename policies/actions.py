"""Action spaces of policy packages: what a chunk's columns mean on a robot."""

from __future__ import annotations

from typing import Any


def wbc_target_names(robot: Any) -> list[str]:
    """Whole-body task targets a policy may output, one scalar each: hand positions (frame names
    with .x/.y/.z, world frame, m) and the centre of mass (com.x/.y/.z)."""
    names = [f"com.{a}" for a in "xyz"]
    for h in robot.hand_frames:
        names += [f"{h}.{a}" for a in "xyz"]
    return names


BASE_VELOCITY_TARGETS = ("base_velocity.vx", "base_velocity.vy", "base_velocity.wz")


def walk_target_names(robot: Any) -> list[str]:
    """Targets of a ``base_velocity`` policy (the walk controller's sink, cpp/locomotion/walk_mode.hpp):
    the base velocity command (forward, left m/s, yaw rate rad/s, walking frame; all three), then
    optionally the hand positions as for ``wbc_targets``. The walk owns the centre of mass."""
    return list(BASE_VELOCITY_TARGETS) + wbc_target_names(robot)[3:]


def task_target_names(robot: Any, action_space: str) -> list[str]:
    """The task targets of a task-space action space on `robot` ([] for joint targets)."""
    if action_space == "base_velocity":
        return walk_target_names(robot)
    if action_space == "wbc_targets":
        return wbc_target_names(robot)
    return []


# The controller each task-space action space streams to.
ACTION_SPACE_CONTROLLER = {"wbc_targets": "wbc", "base_velocity": "walk"}

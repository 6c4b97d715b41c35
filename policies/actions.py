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

"""`vertebra lifecycle`: each robot's totals from the lifecycle database (runtime/lifecycle.py)
against its robot config's service intervals (`maintenance:`), and its bench-rig results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vertebra.runtime.lifecycle import FILE, LifecycleStore


def due(totals: dict[str, Any], maintenance: Any) -> dict[str, Any]:
    """Each joint's share of its service interval (the robot config's maintenance section: the first
    entry whose `match` the joint's name matches) and what is due (share >= 1)."""
    out_joints = []
    for j in totals["joints"]:
        rule = next((m for m in maintenance.joints if re.search(m.match, j["joint"])), None)
        shares: dict[str, float] = {}
        if rule is not None:
            if rule.torque_hours:
                shares["torque_hours"] = j["torque_h"] / rule.torque_hours
            if rule.travel_krad:
                shares["travel_krad"] = j["travel_rad"] / 1e3 / rule.travel_krad
            if rule.torque_integral_mnms:
                shares["torque_integral_mnms"] = j["torque_integral_nms"] / 1e6 / rule.torque_integral_mnms
        share = max(shares.values()) if shares else None
        out_joints.append({**j, "interval": None if rule is None else rule.to_dict(), "shares": shares,
                           "share": share, "due": share is not None and share >= 1.0})
    robot = dict(totals["robot"])
    robot["share"] = robot["powered_h"] / maintenance.powered_hours if maintenance.powered_hours else None
    robot["due"] = robot["share"] is not None and robot["share"] >= 1.0
    return {"robot": robot, "joints": out_joints, "hil": totals.get("hil", []),
            "due": [j["joint"] for j in out_joints if j["due"]] + (["robot (powered hours)"] if robot["due"] else [])}


def report(folder: str | Path, robot_key: str | None = None) -> list[dict[str, Any]]:
    """Every robot in the folder's lifecycle database (or the one named), with its shares and dues."""
    from vertebra.runtime.config import MaintenanceConfig, RobotConfig

    path = Path(folder) / FILE
    if not path.exists():
        raise FileNotFoundError(f"no lifecycle records in {folder} (no {FILE}: nothing recorded there yet)")
    store = LifecycleStore(folder)
    try:
        keys = store.robots()
        if robot_key is not None:
            if robot_key not in keys:
                raise KeyError(f"no robot {robot_key!r} in {path}; robots: {', '.join(keys) or '(none)'}")
            keys = [robot_key]
        out = []
        for k in keys:
            t = store.totals(k)
            try:
                maintenance = RobotConfig.load(t["robot"]["robot"]).maintenance
            except Exception:  # noqa: BLE001 - a robot config that is not in configs/robots: no intervals
                maintenance = MaintenanceConfig()
            out.append(due(t, maintenance))
        return out
    finally:
        store.close()

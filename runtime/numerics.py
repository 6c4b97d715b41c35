"""Small numeric helpers shared across Vertebra (a leaf module: numpy and the standard library only).

Orientation conventions: quaternions are [w, x, y, z]; roll/pitch/yaw are the intrinsic z-y'-x''
(yaw, then pitch, then roll) angles in radians, as MuJoCo, pinocchio and Unitree's IMU report them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def tilt_deg(quat_wxyz: Sequence[float] | np.ndarray) -> float:
    """Angle between the body's z axis and the world's vertical, degrees."""
    w, x, y, z = (float(v) for v in quat_wxyz)
    n = w * w + x * x + y * y + z * z
    czz = 1.0 - 2.0 * (x * x + y * y) / (n if n > 0 else 1.0)
    return math.degrees(math.acos(max(-1.0, min(1.0, czz))))


def rpy_from_quat(quat_wxyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """[roll, pitch, yaw] (rad) of a unit quaternion [w, x, y, z]."""
    w, x, y, z = (float(v) for v in quat_wxyz)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> list[float]:
    """Unit quaternion [w, x, y, z] of roll/pitch/yaw angles (rad)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy]


def rotation_to_quat(R: Any) -> list[float]:
    """Unit quaternion [w, x, y, z] (w >= 0) of a 3x3 rotation matrix."""
    R = np.asarray(R, dtype=float)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    qa = np.asarray(q, dtype=float)
    return (qa / np.linalg.norm(qa) * (1 if qa[0] >= 0 else -1)).tolist()


def rotation_between(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> np.ndarray:
    """The smallest rotation (3x3) taking direction a to direction b; an about-face turns about an
    axis normal to a, in the plane of a and the world's y axis where it can. The whole-body
    controller's hand aim (cpp/wbc/wbc_tasks.cpp, rotation_between) does the same."""
    a = np.asarray(a, float) / np.linalg.norm(a)
    b = np.asarray(b, float) / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = float(np.linalg.norm(axis)), float(a @ b)
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, [0.0, 1.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [1.0, 0.0, 0.0])
        axis, angle = axis / np.linalg.norm(axis), math.pi
    else:
        axis, angle = axis / s, math.atan2(s, c)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


def summary(values: Iterable[float] | np.ndarray, keys: Sequence[str] = ("p50", "p99", "p999", "max", "mean"),
            digits: int = 1) -> dict[str, float]:
    """Percentile summary of a sample: any of count, p50, p90, p99, p999, max, min, mean (rounded)."""
    a = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if a.size == 0:
        return {k: (0 if k == "count" else float("nan")) for k in keys}
    out: dict[str, float] = {}
    for k in keys:
        if k == "count":
            out[k] = int(a.size)
        elif k == "max":
            out[k] = round(float(a.max()), digits)
        elif k == "min":
            out[k] = round(float(a.min()), digits)
        elif k == "mean":
            out[k] = round(float(a.mean()), digits)
        elif k.startswith("p") and k[1:].isdigit():
            # p50 -> 50, p99 -> 99, p999 -> 99.9
            digits_s = k[1:]
            q = float(digits_s) if len(digits_s) <= 2 else float(digits_s[:2] + "." + digits_s[2:])
            out[k] = round(float(np.percentile(a, q)), digits)
        else:
            raise ValueError(f"summary: unknown key '{k}'; keys are: count, min, max, mean, pNN (p50, p99, p999)")
    return out

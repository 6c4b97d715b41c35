"""The floating-base state estimator on the runtime's loop (C++: cpp/estimation/estimator.hpp).

A real robot has no base truth: the whole-body controller and the fall monitor read the
estimator's base (IMU orientation and rate, a Kalman filter over base position/velocity and feet
from leg kinematics). In simulation the estimator runs too, and its errors against truth are
reported; ``use_estimator: true`` in a deploy config (``vertebra sim --estimator``) makes the
controller use the estimate even though truth exists, so every test can run as on hardware.
"""

from __future__ import annotations

from typing import Any

from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.errors import ConfigError


def build_estimator_config(robot: RobotConfig, rate_hz: float, initial_xy_m: tuple[float, float] = (0.0, 0.0)) -> Any:
    """The C++ ``_rt.EstimatorConfig`` of a robot's ``estimator:`` section, frames and feet."""
    e = robot.estimator
    if e is None:
        raise ConfigError(robot.file, "estimator", "<missing>",
                          "an estimator section (contact_source, contact_on_n, contact_off_n) to run without base truth")
    c = _rt.EstimatorConfig()
    c.imu_frame = robot.imu_frame
    c.foot_frames = list(robot.foot_frames)
    flat = robot.wbc.flat_feet if robot.wbc is not None else True
    c.flat_feet = flat
    if flat and robot.wbc is not None:
        c.sole_offset_m = list(robot.wbc.sole_offset_m)   # the sole's centre, on the ground when standing
        c.foot_radius_m = 0.0
    elif flat:
        c.sole_offset_m = [0.0, 0.0, -robot.sole_offset_m]
        c.foot_radius_m = 0.0
    else:
        c.sole_offset_m = [0.0, 0.0, 0.0]                 # point feet: the ground is a radius below the frame
        c.foot_radius_m = robot.sole_offset_m
    c.contact_source = getattr(_rt.ContactSource, e.contact_source)
    c.contact_on_n, c.contact_off_n = e.contact_on_n, e.contact_off_n
    for name in ("accel_noise_m_s2", "stance_foot_noise_m_s", "swing_foot_noise_m_s", "kin_position_noise_m",
                 "kin_velocity_noise_m_s", "foot_height_noise_m", "no_contact_velocity_noise_m_s"):
        setattr(c, name, float(getattr(e, name)))
    c.control_rate_hz = float(rate_hz)
    c.initial_xy_m = [float(initial_xy_m[0]), float(initial_xy_m[1])]
    return c


def build_estimator(robot: RobotConfig, model: Any, rate_hz: float) -> Any:
    """A ``_rt.StateEstimator`` for `robot` on its kinematic `model` (configuration time: may raise)."""
    try:
        return _rt.StateEstimator(model, build_estimator_config(robot, rate_hz))
    except ValueError as err:
        raise ConfigError(robot.file, "estimator", "<invalid>", str(err)) from None


class EstimatorErrorTracker:
    """Errors of the estimate the loop published against the simulated world's truth, sampled by a
    scenario (in process or across the DDS bridge alike): base velocity RMSE, height error, the
    horizontal drift since the tracker started (the estimator's world frame is fixed where it
    started, so the drift is the change of the offset between estimate and truth)."""

    def __init__(self) -> None:
        self.samples = 0
        self._vel_sq = 0.0
        self.height_err_max = 0.0
        self.height_err_last = 0.0
        self.drift_max = 0.0
        self.drift_last = 0.0
        self._offset0: Any = None

    def __call__(self, snap: dict[str, Any], truth: dict[str, Any]) -> None:
        import numpy as np

        est = snap["estimate"]
        if not est["valid"]:
            return
        p, pt = np.asarray(est["base_pos"], float), np.asarray(truth["base_pos"], float)
        v, vt = np.asarray(est["base_lin_vel"], float), np.asarray(truth["base_lin_vel"], float)
        self.samples += 1
        self._vel_sq += float(np.sum((v - vt) ** 2))
        self.height_err_last = float(p[2] - pt[2])
        self.height_err_max = max(self.height_err_max, abs(self.height_err_last))
        offset = p[:2] - pt[:2]
        if self._offset0 is None:
            self._offset0 = offset
        self.drift_last = float(np.linalg.norm(offset - self._offset0))
        self.drift_max = max(self.drift_max, self.drift_last)

    def summary(self) -> dict[str, Any]:
        rmse = (self._vel_sq / self.samples) ** 0.5 if self.samples else 0.0
        return {"samples": self.samples, "vel_rmse_m_s": round(rmse, 4), "height_err_max_m": round(self.height_err_max, 4),
                "height_err_last_m": round(self.height_err_last, 4), "xy_drift_m": round(self.drift_last, 4),
                "xy_drift_max_m": round(self.drift_max, 4)}

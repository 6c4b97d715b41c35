"""Driver registry: each driver is a config class registered by name (no if/elif factory).

A config class validates its own fields and knows how to build its C++ driver for a robot.
New robot bus = one C++ Driver subclass + one config class here with ``@register_driver("name")``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vertebra import _rt
from vertebra.runtime.config import RobotConfig

_DRIVERS: dict[str, type[DriverConfig]] = {}
T = TypeVar("T", bound="type[DriverConfig]")


def register_driver(name: str) -> Callable[[T], T]:
    def wrap(cls: T) -> T:
        if name in _DRIVERS:
            raise ValueError(f"driver '{name}' is already registered by {_DRIVERS[name].__name__}")
        cls.driver_name = name
        _DRIVERS[name] = cls
        return cls

    return wrap


def available_drivers() -> list[str]:
    return sorted(_DRIVERS)


def driver_config(name: str, **fields: Any) -> DriverConfig:
    """The config of driver `name` with `fields`; an unknown name lists the registered ones."""
    if name not in _DRIVERS:
        raise ValueError(f"unknown driver '{name}'; drivers are: {', '.join(available_drivers())}")
    return _DRIVERS[name](**fields)


class DriverConfig(ABC):
    driver_name = ""

    @abstractmethod
    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        """Create and init() the C++ driver for `robot` (configuration time: may raise)."""


@register_driver("mock")
@dataclass
class MockDriverConfig(DriverConfig):
    joint_inertia_kg_m2: float = 0.05
    joint_friction_nm_s_rad: float = 0.1
    gravity_torque_nm: float = 0.0

    def __post_init__(self) -> None:
        if not self.joint_inertia_kg_m2 > 0 or self.joint_friction_nm_s_rad < 0:
            raise ValueError("mock driver: joint_inertia_kg_m2 must be > 0 and joint_friction_nm_s_rad >= 0")

    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        d = _rt.MockDriver(self.joint_inertia_kg_m2, self.joint_friction_nm_s_rad, self.gravity_torque_nm)
        d.init(robot.joint_names, control_rate_hz)
        return d


@register_driver("mujoco")
@dataclass
class MujocoDriverConfig(DriverConfig):
    """The simulated robot: starts hanging in the hoist, feet `hoist.clearance_m` above the ground."""

    standing_height_m: float
    noise: bool = False
    command_latency_ms: float | None = None  # None: the robot config's
    battery_v: float = 0.0                   # pack voltage the simulator reports (0: none)
    mjcf_path: str = field(default="", init=False)  # the model file the last build() loaded

    def __post_init__(self) -> None:
        if not self.standing_height_m > 0:
            raise ValueError(f"mujoco driver: standing_height_m must be > 0, found {self.standing_height_m}")
        if self.command_latency_ms is not None and not 0 <= self.command_latency_ms <= 100:
            raise ValueError(f"mujoco driver: command_latency_ms must be in [0, 100], found {self.command_latency_ms}")

    def hang_height_m(self, robot: RobotConfig) -> float:
        return self.standing_height_m + robot.sim.hoist.clearance_m

    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        from vertebra.drivers.sim_model import build_mjcf

        sim = robot.sim
        h = sim.hoist
        hang_z = self.hang_height_m(robot)
        o = _rt.SimOptions()
        o.mjcf_path = str(build_mjcf(robot))
        o.sim_rate_hz = sim.sim_rate_hz
        o.base_pos = [0.0, 0.0, hang_z]
        o.base_quat = [1.0, 0.0, 0.0, 0.0]
        # Hanging limp: joints at zero, or the nearest limit where zero is outside the range.
        o.initial_joint_q = [min(max(0.0, j.q_min_rad), j.q_max_rad) for j in robot.joints]
        o.hoist_engaged = True
        mass = _rt.RobotModel(str(robot.urdf_path), robot.joint_names).total_mass
        # Anchor so that the rope's static stretch carries the robot's weight at the hang height.
        o.hoist_anchor_z_m = hang_z + mass * 9.81 / h.stiffness_n_m
        o.hoist_stiffness_n_m = h.stiffness_n_m
        o.hoist_damping_n_s_m = h.damping_n_s_m
        o.hoist_lateral_stiffness_n_m = h.lateral_stiffness_n_m
        o.hoist_rot_stiffness_nm_rad = h.rot_stiffness_nm_rad
        o.hoist_rot_damping_nms_rad = h.rot_damping_nms_rad
        if self.noise:
            o.noise_q_rad = sim.noise_q_rad
            o.noise_dq_rad_s = sim.noise_dq_rad_s
            o.noise_gyro_rad_s = sim.noise_gyro_rad_s
            o.noise_acc_m_s2 = sim.noise_acc_m_s2
        latency = sim.command_latency_ms if self.command_latency_ms is None else self.command_latency_ms
        o.command_latency_s = latency / 1000.0
        o.battery_v = self.battery_v
        d = _rt.MujocoDriver(o)
        d.init(robot.joint_names, control_rate_hz)
        self.mjcf_path = o.mjcf_path
        return d

"""Driver registry: each driver is a config class registered by name (no if/elif factory).

A config class declares its fields with :mod:`vertebra.runtime.schema` (so it validates itself, and a
YAML ``driver: {type: <name>, ...}`` section parses into it: :func:`driver_types` is the registry a
``Variant`` field reads) and knows how to build its C++ driver for a robot. New robot bus = one C++
Driver subclass + one config class here (or in any module) with ``@register_driver("name")``::

    @register_driver("my_bus")
    class MyBusDriverConfig(DriverConfig):
        \"\"\"My robot's bus.\"\"\"
        interface = field(str, doc="network interface of the bus")

        def build(self, robot, control_rate_hz):
            ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from vertebra import _rt
from vertebra.runtime.config import KeepOutBox, RobotConfig
from vertebra.runtime.schema import Section, field

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


def driver_types() -> dict[str, type[DriverConfig]]:
    """The registered driver config classes by name (what ``Variant(driver_types, key="type")`` parses)."""
    return dict(_DRIVERS)


def driver_config(name: str, **fields: Any) -> DriverConfig:
    """The config of driver `name` with `fields`; an unknown name lists the registered ones."""
    if name not in _DRIVERS:
        raise ValueError(f"unknown driver '{name}'; drivers are: {', '.join(available_drivers())}")
    return _DRIVERS[name](**fields)


class DriverConfig(Section, ABC):
    """Base of driver configs: declared fields (validated on construction and on parsing) and build()."""

    driver_name = ""
    floating_base = True  # a legged robot with a free base (the runtime runs the state estimator on it)

    @abstractmethod
    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        """Create the C++ driver for `robot` and configure() it (configuration time: may raise). The
        Runtime activates it before the loop first ticks (lifecycle: cpp/drivers/driver.hpp)."""


@register_driver("mock")
class MockDriverConfig(DriverConfig):
    """Each joint a rotor with inertia and viscous friction, no floating base (tests, CI, examples)."""

    joint_inertia_kg_m2 = field(float, default=0.05, lo=0.0, lo_open=True, hi=100.0, doc="rotor inertia per joint")
    joint_friction_nm_s_rad = field(float, default=0.1, lo=0.0, hi=100.0, doc="viscous friction per joint")
    gravity_torque_nm = field(float, default=0.0, lo=-1000.0, hi=1000.0, doc="constant load torque on every joint")
    floating_base = False

    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        d = _rt.MockDriver(self.joint_inertia_kg_m2, self.joint_friction_nm_s_rad, self.gravity_torque_nm)
        d.configure(robot.joint_names, control_rate_hz, robot.column("kd_damping"))  # the Runtime activates it
        return d


@register_driver("mujoco")
class MujocoDriverConfig(DriverConfig):
    """The simulated robot: starts hanging in the hoist, feet `hoist.clearance_m` above the ground."""

    standing_height_m = field(float, default=None, lo=0.0, lo_open=True, hi=5.0,
                              doc="base height standing on the ground (null: from the model and default pose)")
    noise = field(bool, default=False, doc="add the robot config's sim.noise to the sensors")
    command_latency_ms = field(float, default=None, lo=0.0, hi=100.0, doc="command delay (null: the robot config's)")
    battery_v = field(float, default=0.0, lo=0.0, hi=200.0, doc="pack voltage the simulator reports (0: none)")
    furniture = field(list, item=KeepOutBox, default=[],
                      doc="boxes in the simulated world the robot collides with (a table; the deploy config's "
                          "keep_out is what the controller keeps the hands out of)")
    mjcf_path = ""  # the model file the last build() loaded (not a config field)

    def hang_height_m(self, robot: RobotConfig) -> float:
        if self.standing_height_m is None:
            model = _rt.RobotModel(str(robot.urdf_path), robot.joint_names)
            standing = model.standing_base_height(robot.column("default_rad"), robot.foot_frames, robot.sole_offset_m)
        else:
            standing = self.standing_height_m
        return float(standing) + robot.sim.hoist.clearance_m

    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        from vertebra.drivers.sim_model import build_mjcf

        sim = robot.sim
        h = sim.hoist
        hang_z = self.hang_height_m(robot)
        o = _rt.SimOptions()
        o.mjcf_path = str(build_mjcf(robot, self.furniture))
        o.sim_rate_hz = sim.sim_rate_hz
        o.base_pos = [0.0, 0.0, hang_z]
        o.base_quat = [1.0, 0.0, 0.0, 0.0]
        o.foot_bodies = list(robot.foot_frames)
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
        if self.noise:  # the robot config's sim.noise (model: SimOptions in cpp/drivers/mujoco_driver.hpp)
            o.noise_q_rad = sim.noise_q_rad
            o.noise_q_resolution_rad = sim.noise_q_resolution_rad
            o.noise_dq_rad_s = sim.noise_dq_rad_s
            o.noise_gyro_rad_s = sim.noise_gyro_rad_s
            o.noise_gyro_bias_rad_s = sim.noise_gyro_bias_rad_s
            o.noise_acc_m_s2 = sim.noise_acc_m_s2
            o.noise_acc_bias_m_s2 = sim.noise_acc_bias_m_s2
            o.noise_seed = sim.noise_seed
        latency = sim.command_latency_ms if self.command_latency_ms is None else self.command_latency_ms
        o.command_latency_s = latency / 1000.0
        o.battery_v = self.battery_v
        d = _rt.MujocoDriver(o)
        d.configure(robot.joint_names, control_rate_hz, robot.column("kd_damping"))  # the Runtime activates it
        self.mjcf_path = o.mjcf_path
        return d


@register_driver("unitree_dds")
class UnitreeDdsDriverConfig(DriverConfig):
    """A Unitree G1 or Go2 over Cyclone DDS (rt/lowcmd, rt/lowstate), or `vertebra sim-bridge`
    speaking the same (cpp/drivers/unitree/unitree_dds_driver.hpp). Motor slots are the robot
    config's `motor` column. Activation is refused while Unitree's built-in motion service runs
    (motion_switcher CheckMode names a mode, or rt/sportmodestate has a publisher), naming how to
    release it, unless `release_motion_service` is set."""

    messages = field(str, default=None, choices={"hg": "unitree_hg (G1)", "go": "unitree_go (Go2)"},
                     doc="message set (null: hg for a g1, go for a go2)")
    domain_id = field(int, default=0, lo=0, hi=232, doc="DDS domain (Unitree robots: 0)")
    network_interface = field(str, default="", doc="the interface on the robot's network, e.g. eth0 (192.168.123.x); "
                                                  "lo: one machine; empty: Cyclone chooses")
    lowcmd_topic = field(str, default="rt/lowcmd", doc="command topic")
    lowstate_topic = field(str, default="rt/lowstate", doc="state topic")
    mode_pr = field(int, default=0, choices={0: "PR (pitch/roll ankles)", 1: "AB"}, doc="G1 ankle control mode")
    estop_buttons = field(int, default=0x0220, lo=0, hi=0xFFFF,
                          doc="remote buttons that together e-stop on the tick (bit mask; default L2+B; 0: none)")
    lockstep = field(bool, default=False, doc="the sim bridge's lockstep: one control period per command")
    state_timeout_s = field(float, default=2.0, lo=0.01, hi=60.0, doc="how long configure waits for the first state")
    lockstep_timeout_s = field(float, default=1.0, lo=0.001, hi=60.0, doc="lockstep: wait for the answer to a command")
    motion_service_timeout_s = field(float, default=0.5, lo=0.01, hi=10.0,
                                     doc="activate: wait this long for motion_switcher's CheckMode answer "
                                         "(none: no built-in motion service, counted)")
    release_motion_service = field(bool, default=False,
                                   doc="an explicit operator choice: activate releases Unitree's built-in motion "
                                       "service (motion_switcher ReleaseMode) instead of refusing; the robot stops "
                                       "standing and goes limp, so it must be in its hoist or lying down")
    release_timeout_s = field(float, default=5.0, lo=0.1, hi=60.0,
                              doc="release_motion_service: how long the release may take to show")

    @staticmethod
    def default_messages(robot: RobotConfig) -> str:
        return {"g1": "hg", "go2": "go"}.get(robot.name, "hg")

    def options(self, robot: RobotConfig) -> Any:
        o = _rt.UnitreeDdsOptions()
        o.messages = self.messages or self.default_messages(robot)
        o.domain_id = self.domain_id
        o.network_interface = self.network_interface
        o.lowcmd_topic, o.lowstate_topic = self.lowcmd_topic, self.lowstate_topic
        o.motors = [j.motor_index for j in robot.joints]
        o.mode_pr = int(self.mode_pr)
        o.estop_buttons = int(self.estop_buttons)
        o.lockstep = self.lockstep
        o.state_timeout_s, o.lockstep_timeout_s = self.state_timeout_s, self.lockstep_timeout_s
        o.motion_service_timeout_s = self.motion_service_timeout_s
        o.release_motion_service = self.release_motion_service
        o.release_timeout_s = self.release_timeout_s
        return o

    def build(self, robot: RobotConfig, control_rate_hz: float) -> Any:
        from vertebra.runtime.errors import VertebraError

        d = _rt.UnitreeDdsDriver(self.options(robot))
        try:
            d.configure(robot.joint_names, control_rate_hz, robot.column("kd_damping"))  # the Runtime activates it
        except (RuntimeError, ValueError) as e:
            raise VertebraError(str(e)) from None
        return d

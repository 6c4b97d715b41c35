"""Hardware faults the DDS sim bridge emulates, as a validated config (the model and its exact
semantics: cpp/drivers/unitree/bridge_faults.hpp). Everything is off by default; a bench-test
harness turns faults on to check that it finds them. The mapping (YAML or a dict)::

    joints:                      # by joint name (the robot config's); absent joints are healthy
      left_knee_joint: {sign: -1, offset_rad: 0.1, friction_scale: 3.0, torque_limit_scale: 0.5, heat_scale: 2.0}
    state_drop_probability: 0.05     # each rt/lowstate sample not sent
    crc_corrupt_probability: 0.01    # each rt/lowstate sample sent with a wrong CRC
    command_latency_ms: 20           # rt/lowcmd take effect this much later
    seed: 1                          # the random faults' generator: lockstep runs reproduce bit for bit
    motor_thermal: {heating_c_per_nm2_s: 0.002, time_constant_s: 120}   # optional; absent: off

Per joint: ``sign`` -1 is a motor wired reversed and ``offset_rad`` an encoder offset (the motor
reports q = sign * theta + offset, dq = sign * dtheta, tau = sign * tau, and commands are mapped back:
the reported q tracks the command while the joint moves the other way); ``friction_scale``
multiplies the joint's simulated damping and dry friction (the robot config's sim.joint_dynamics);
``torque_limit_scale`` saturates the motor at that fraction of its effort limit; ``heat_scale``
multiplies its heating in the motor thermal model (``motor_thermal``: a first-order model, the
temperature rising with tau² and relaxing to the simulator's constant motor temperature; without
it temperatures stay constant and heat_scale does nothing).

:func:`parse_bridge_faults` checks a mapping against a robot (unknown joint names are refused with
the valid ones listed); :meth:`BridgeFaults.to_rt` gives the ``_rt.HardwareFaults`` the bridge takes
and :func:`faults_mapping` turns the bridge's faults back into the mapping, by joint name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.schema import Section, field, read_yaml

__all__ = ["BridgeFaults", "JointFaultConfig", "MotorThermalConfig", "faults_mapping", "parse_bridge_faults"]


class JointFaultConfig(Section):
    """One joint's emulated hardware faults (healthy by default)."""

    sign = field(int, default=1, choices={1: "as wired by design", -1: "the motor wired reversed"},
                 doc="motor direction: reported q = sign * joint angle + offset_rad")
    offset_rad = field(float, default=0.0, lo=-0.5, hi=0.5, doc="encoder offset")
    friction_scale = field(float, default=1.0, lo=0.1, hi=20.0,
                           doc="x the joint's simulated damping and dry friction (sim.joint_dynamics)")
    torque_limit_scale = field(float, default=1.0, lo=0.05, hi=1.0,
                               doc="the motor saturates at this fraction of its effort limit")
    heat_scale = field(float, default=1.0, lo=0.0, hi=20.0, doc="x the motor's heating (motor_thermal)")

    def to_rt(self) -> Any:
        f = _rt.JointFault()
        f.sign = self.sign
        f.offset_rad = self.offset_rad
        f.friction_scale = self.friction_scale
        f.torque_limit_scale = self.torque_limit_scale
        f.heat_scale = self.heat_scale
        return f


class MotorThermalConfig(Section):
    """First-order motor thermal model: dT/dt = heat_scale * heating * tau² - (T - ambient) / time_constant
    (cpp/drivers/mujoco_driver.hpp MotorThermal)."""

    heating_c_per_nm2_s = field(float, lo=0.0, lo_open=True, hi=1.0, doc="heating per (N·m)² of motor torque (°C/s)")
    time_constant_s = field(float, lo=0.0, lo_open=True, hi=3600.0, doc="cooling towards the ambient motor temperature")

    def to_rt(self) -> Any:
        return _rt.MotorThermal(self.heating_c_per_nm2_s, self.time_constant_s)


class BridgeFaults(Section):
    """The sim bridge's emulated hardware faults (cpp/drivers/unitree/bridge_faults.hpp); none by default.

    Parse with ``context`` = the robot (a RobotConfig or its joint names) to check the joint names."""

    joints = field(dict, item=JointFaultConfig, default={}, key_doc="a joint name",
                   doc="faults per joint, by joint name (absent joints are healthy)")
    state_drop_probability = field(float, default=0.0, lo=0.0, hi=0.5, doc="each rt/lowstate sample not sent")
    crc_corrupt_probability = field(float, default=0.0, lo=0.0, hi=0.5,
                                    doc="each rt/lowstate sample sent with a wrong CRC")
    command_latency_ms = field(float, default=0.0, lo=0.0, hi=200.0, doc="rt/lowcmd take effect this much later")
    seed = field(int, default=1, lo=0, hi=2**63 - 1, doc="the random faults' generator (reproducible lockstep runs)")
    motor_thermal = field(MotorThermalConfig, default=None, doc="the motor thermal model (absent: constant temperature)")

    def check(self, context: Any) -> None:
        if context is not None:
            self.check_joints(_joint_names(context))

    def check_joints(self, joint_names: Sequence[str]) -> None:
        """Refuse a joint name the robot does not have (ConfigError listing the valid names)."""
        for name in self.joints:
            if name not in joint_names:
                raise self.error(f"joints.{name}", name, "a joint of the robot: " + ", ".join(joint_names))

    def to_rt(self, robot: RobotConfig | Sequence[str]) -> Any:
        """The ``_rt.HardwareFaults`` the bridge takes (joints in the robot's order)."""
        names = _joint_names(robot)
        self.check_joints(names)
        f = _rt.HardwareFaults()
        if self.joints:
            f.joints = [self.joints[n].to_rt() if n in self.joints else _rt.JointFault() for n in names]
        f.state_drop_probability = self.state_drop_probability
        f.crc_corrupt_probability = self.crc_corrupt_probability
        f.command_latency_ms = self.command_latency_ms
        f.seed = self.seed
        return f

    def thermal_rt(self) -> Any:
        """The ``_rt.MotorThermal`` in force with these faults (off when ``motor_thermal`` is absent)."""
        return self.motor_thermal.to_rt() if self.motor_thermal is not None else _rt.MotorThermal()


def _joint_names(robot: Any) -> list[str]:
    if isinstance(robot, RobotConfig):
        return list(robot.joint_names)
    return [str(n) for n in robot]


def parse_bridge_faults(faults: BridgeFaults | Mapping[str, Any] | str | os.PathLike[str] | None,
                        robot: RobotConfig | Sequence[str], file: str | os.PathLike[str] = "<faults>") -> BridgeFaults:
    """Faults from a mapping, a YAML file path, a parsed BridgeFaults (re-checked against `robot`) or
    None (no faults). Raises ConfigError naming the field, what was found and what is valid."""
    if isinstance(faults, BridgeFaults):
        faults.check_joints(_joint_names(robot))
        return faults
    if faults is None:
        faults = {}
    elif isinstance(faults, (str, os.PathLike)):
        file = faults
        faults = read_yaml(faults)
        if faults is None:  # an empty file: no faults
            faults = {}
    return BridgeFaults.from_dict(faults, file, context=_joint_names(robot))


def faults_mapping(faults: Any, joint_names: Sequence[str], thermal: Any = None) -> dict[str, Any]:
    """An ``_rt.HardwareFaults`` (and the simulator's ``_rt.MotorThermal``) as the config mapping:
    faulty joints by name (healthy ones left out), so the result parses back into the same faults."""
    joints: dict[str, Any] = {}
    for name, j in zip(joint_names, faults.joints):
        if not j.healthy:
            joints[name] = {"sign": int(j.sign), "offset_rad": float(j.offset_rad),
                            "friction_scale": float(j.friction_scale),
                            "torque_limit_scale": float(j.torque_limit_scale), "heat_scale": float(j.heat_scale)}
    out: dict[str, Any] = {"joints": joints, "state_drop_probability": float(faults.state_drop_probability),
                           "crc_corrupt_probability": float(faults.crc_corrupt_probability),
                           "command_latency_ms": float(faults.command_latency_ms), "seed": int(faults.seed),
                           "motor_thermal": None}
    if thermal is not None and thermal.enabled:
        out["motor_thermal"] = {"heating_c_per_nm2_s": float(thermal.heating_c_per_nm2_s),
                                "time_constant_s": float(thermal.time_constant_s)}
    return out

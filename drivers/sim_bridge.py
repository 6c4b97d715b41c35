"""`vertebra sim-bridge`: Vertebra's simulated robot on DDS, speaking what the real Unitree robot
speaks (rt/lowstate out, rt/lowcmd in, CRC-checked both ways; cpp/drivers/unitree/unitree_sim_bridge.hpp).
A runtime in another process drives it with the `unitree_dds` driver exactly as it would the robot.

Unitree's built-in motion service is emulated (motion_switcher RPC, rt/sportmodestate, rt/lowcmd
ignored while it runs). A real robot boots with it active, and so does the `vertebra sim-bridge`
command unless `--released`. This class starts it released by default (`motion_service=False`): a
test or tool that wants the robot as it boots asks for `motion_service=True`.

Emulated hardware faults (a reversed or offset motor, friction, a weak or heating motor, lost and
corrupted states, command latency; drivers/bridge_faults.py): `faults=` at construction,
:meth:`SimBridge.set_faults` while it runs, :meth:`SimBridge.faults` to read them back by joint name.
``sim`` is the simulator itself, in the physical frame: its read() (in lockstep, between two
exchanges) gives the joints' true angles whatever the motors report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from vertebra import _rt
from vertebra.drivers.bridge_faults import BridgeFaults, faults_mapping, parse_bridge_faults
from vertebra.drivers.registry import MujocoDriverConfig, UnitreeDdsDriverConfig
from vertebra.runtime.config import RobotConfig


# The pack voltage a simulated robot reports where its LowState_ carries one (the Go2's power_v):
# the Go2's nominal 28.8 V (Unitree Go2 specifications, battery). A robot whose state reports 0 V
# would (rightly) be stopped for a critical battery.
NOMINAL_BATTERY_V = {"go2": 28.8}


class SimBridge:
    def __init__(self, robot: str | RobotConfig, *, domain_id: int = 0, network_interface: str = "lo",
                 lockstep: bool = False, noise: bool = False, messages: str | None = None,
                 motion_service: bool = False, motion_service_mode: str = "normal",
                 sportmodestate_rate_hz: float = 50.0, motion_switcher: bool = True,
                 faults: BridgeFaults | Mapping[str, Any] | str | os.PathLike[str] | None = None):
        """`motion_service`: the emulated built-in motion service starts active, as on a robot that
        has just booted (a controller must release it: motion_switcher ReleaseMode); False: released.
        `motion_service_mode`: the mode CheckMode names while it is active. `motion_switcher`: False
        leaves the motion_switcher RPC unanswered (a robot or an older bridge without one).
        `faults`: the emulated hardware faults from the start (a BridgeFaults, its mapping, or a YAML
        file; drivers/bridge_faults.py); ConfigError for a bad one."""
        self.cfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        self.sim = MujocoDriverConfig.from_dict({"noise": noise, "battery_v": NOMINAL_BATTERY_V.get(self.cfg.name, 0.0)}
                                                ).build(self.cfg, self.cfg.control_rate_hz)
        o = _rt.BridgeOptions()
        o.messages = messages or UnitreeDdsDriverConfig.default_messages(self.cfg)
        o.domain_id = domain_id
        o.network_interface = network_interface
        o.motors = [j.motor_index for j in self.cfg.joints]
        o.lockstep = lockstep
        o.rate_hz = self.cfg.control_rate_hz
        o.motion_service = motion_service
        o.motion_service_mode = motion_service_mode
        o.sportmodestate_rate_hz = sportmodestate_rate_hz
        o.motion_switcher = motion_switcher
        parsed = parse_bridge_faults(faults, self.cfg)
        o.faults = parsed.to_rt(self.cfg)
        o.motor_thermal = parsed.thermal_rt()
        self.options = o
        self.bridge = _rt.UnitreeSimBridge(self.sim, o)

    def start(self) -> SimBridge:
        self.bridge.start()
        return self

    def counters(self) -> dict[str, Any]:
        return dict(self.bridge.counters())

    def command_stream(self, reset: bool = False) -> dict[str, Any]:
        """Valid rt/lowcmd received since the last reset: samples, max_gap_ms (the largest gap between
        two consecutive ones, from any writer), last_age_ms, since_reset_s. `reset`: answer, then
        start a new stream."""
        s = dict(self.bridge.command_stream())
        if reset:
            self.bridge.reset_command_stream()
        return s

    def last_command(self) -> dict[str, Any]:
        """The newest valid command received, decoded (q, dq, kp, kd, tau_ff per joint)."""
        return dict(self.bridge.last_command())

    def set_faults(self, faults: BridgeFaults | Mapping[str, Any] | str | os.PathLike[str] | None) -> None:
        """Replace the emulated hardware faults, in force from the next control period (None or {}: a
        healthy robot; the random generator restarts from `seed`). ConfigError for a bad mapping,
        nothing changed then."""
        parsed = parse_bridge_faults(faults, self.cfg)
        rt_faults, thermal = parsed.to_rt(self.cfg), parsed.thermal_rt()
        self.bridge.set_faults(rt_faults)
        self.sim.set_motor_thermal(thermal)

    def faults(self) -> dict[str, Any]:
        """The faults in force as the config mapping (faulty joints by name; drivers/bridge_faults.py)."""
        return faults_mapping(self.bridge.faults(), self.cfg.joint_names, self.sim.motor_thermal)

    def close(self) -> None:
        self.bridge.stop()

    def __enter__(self) -> SimBridge:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

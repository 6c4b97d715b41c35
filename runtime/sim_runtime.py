"""The simulation procedure on top of the generic :class:`~vertebra.runtime.runtime.Runtime`: the
runtime on a MuJoCo-simulated robot, and the real deployment procedure

    hanging limp in the hoist (zero torque) -> interpolate to the default pose -> hold
    -> lower the hoist until the feet carry the robot -> release -> hold

Python orchestrates (mode requests, hoist, waiting); every tick runs in C++ (vertebra._rt).
The loop, the operator API and the controller registry are the Runtime's; this class adds the
simulator (driver ``mujoco`` from the driver registry, hanging in its hoist) and the procedure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.numerics import tilt_deg
from vertebra.runtime.runtime import Runtime
from vertebra.safety.config import SafetySettings

__all__ = ["ProcedureResult", "SimRuntime", "tilt_deg"]


@dataclass
class ProcedureResult:
    robot: str
    phases: list[dict[str, Any]] = field(default_factory=list)
    hold_min_height_m: float = math.inf
    hold_max_height_m: float = -math.inf
    hold_max_tilt_deg: float = 0.0
    estimator: dict[str, Any] | None = None  # the estimate's errors against truth over the hold


class SimRuntime(Runtime):
    """The runtime around a MuJoCo-simulated robot, with the hoist procedure."""

    def __init__(self, robot: str | RobotConfig, *, lockstep: bool = True, rate_hz: float | None = None,
                 noise: bool = False, command_latency_ms: float | None = None, realtime_priority: bool = True,
                 controller: str = "pd", safety: SafetySettings | None = None, fault_injection: bool = False,
                 event_log: str | os.PathLike[str] | None = None, driver: Any = None,
                 use_estimator: bool = False, world: Any = None, record: Any = None,
                 record_metadata: dict[str, Any] | None = None, keep_out: list[Any] | None = None):
        """`safety`: the supervisor's settings (default: configs/safety/<robot>.yaml).
        `fault_injection`: put a FaultInjector between the simulator and the loop (self.injector).
        `event_log`: append the safety events to this JSON-lines file (always kept in memory too).
        `driver`: a simulator driver config (a deploy config's ``driver:`` section); default: the
        registered ``mujoco`` driver with `noise` and `command_latency_ms`. A robot driver
        (``unitree_dds`` against a sim bridge) needs `world`: the simulator's hoist, pushes and truth
        (``vertebra.drivers.bridge_process.BridgeProcess``); the in-process simulator is its own.
        `use_estimator`: the controller uses the state estimator's base, not truth (as on hardware).
        `record`, `record_metadata`: record the run (Runtime; runtime/recorder.py). `keep_out`: boxes
        the whole-body controller keeps the hands and forearms out of (Runtime)."""
        from vertebra.drivers.registry import driver_config

        cfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
        self.standing_height_m = model.standing_base_height(cfg.column("default_rad"), cfg.foot_frames,
                                                            cfg.sole_offset_m)
        safety = safety if safety is not None else SafetySettings.load(cfg)
        sim = driver if driver is not None else driver_config(
            "mujoco", noise=noise, command_latency_ms=command_latency_ms)
        in_process = hasattr(sim, "standing_height_m")  # the MuJoCo driver (else a robot driver and a world)
        if in_process:
            sim.standing_height_m = self.standing_height_m
            if not sim.battery_v:  # no pack voltage configured for the simulator: the safety file's battery.sim_v
                sim.battery_v = safety.battery_sim_v
        elif world is None:
            raise ValueError(f"driver '{getattr(sim, 'driver_name', sim)}' is not the simulator: give the simulated world "
                             "(its hoist, pushes and truth), e.g. vertebra.drivers.bridge_process.BridgeProcess")
        super().__init__(cfg, sim, controller=controller, safety=safety, rate_hz=rate_hz, lockstep=lockstep,
                         realtime_priority=realtime_priority, fault_injection=fault_injection, event_log=event_log,
                         model=model, use_estimator=use_estimator, record=record, record_metadata=record_metadata,
                         keep_out=keep_out)
        self.mjcf_path = getattr(sim, "mjcf_path", "")
        self.world = world if world is not None else self.driver
        self.wb = self.handle if controller == "wbc" else (self.handle.wb if controller == "walk" else None)

    @classmethod
    def from_deploy(cls, deploy: Any, **overrides: Any) -> SimRuntime:  # type: ignore[override]
        """A simulated runtime from a deploy config whose driver is a simulator."""
        from vertebra.runtime.deploy import DeployConfig

        d = deploy if isinstance(deploy, DeployConfig) else DeployConfig.load(deploy)
        robot, kw = cls.deploy_arguments(d)
        kw["driver"] = d.driver
        kw.update(overrides)
        return cls(robot, **kw)

    def sim_time(self) -> float:
        return self.time_s()

    def truth(self, snap: dict[str, Any] | None = None) -> dict[str, Any]:
        """The base's truth (base_pos, base_quat, base_lin_vel): the driver's where it has it, else
        the simulated world's (the bridge process, over its control channel)."""
        st = (snap if snap is not None else self.loop.snapshot())["state"]
        if st["has_base_truth"]:
            return st
        return dict(self.world.base_truth())

    # -- procedure -------------------------------------------------------------------------
    def stand_up(self, hold_s: float = 10.0, progress: Callable[[str], None] | None = None,
                 limp_s: float = 1.0, interpolate_s: float = 2.0) -> ProcedureResult:
        """The deployment procedure; returns per-phase timing and the hold-phase extremes."""
        res = ProcedureResult(robot=self.cfg.name)
        say = progress or (lambda _msg: None)

        def phase(name: str, fn: Callable[[], None]) -> None:
            t0 = self.sim_time()
            say(f"[{t0:6.2f} s] {name}")
            fn()
            res.phases.append({"phase": name, "start_s": round(t0, 4), "end_s": round(self.sim_time(), 4)})

        phase("hanging limp in the hoist (zero torque)", lambda: self.wait(limp_s))

        def interpolate() -> None:
            self.enable()
            self.request(_rt.Mode.INTERPOLATE, interpolate_s, self.default_pose)
            self.wait(interpolate_s + 0.2)

        def release() -> None:
            self.world.hoist_release()
            self.wait(0.5)

        phase("interpolate to the default pose", interpolate)
        phase("hold", lambda: self.request(_rt.Mode.HOLD))

        h = self.cfg.sim.hoist
        target_z = self.standing_height_m - 0.10  # below standing: the rope goes slack on the way down
        lower_s = (self.world.hoist_anchor_z - target_z) / h.lower_speed_m_s + 0.5

        def lower() -> None:
            self.world.hoist_lower_to(target_z, h.lower_speed_m_s)
            self.wait(lower_s)

        phase("lower the hoist", lower)
        phase("release the hoist", release)

        from vertebra.runtime.estimation import EstimatorErrorTracker

        tracker = EstimatorErrorTracker() if self.estimator is not None else None

        def sample(s: dict[str, Any]) -> None:
            t = self.truth(s)
            if tracker is not None:
                tracker(s, t)
            z = float(t["base_pos"][2])
            res.hold_min_height_m = min(res.hold_min_height_m, z)
            res.hold_max_height_m = max(res.hold_max_height_m, z)
            res.hold_max_tilt_deg = max(res.hold_max_tilt_deg, tilt_deg(t["base_quat"]))

        phase(f"hold standing for {hold_s:g} s", lambda: self.wait(hold_s, on_sample=sample))
        res.estimator = tracker.summary() if tracker is not None else None
        return res

    def engage_wbc(self) -> None:
        """Hand the standing robot from joint hold to the whole-body controller."""
        if self.wb is None:
            raise RuntimeError("this runtime was built with controller='pd'; use controller='wbc'")
        self.activate_controller()

    def report(self, res: ProcedureResult | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The procedure's report (``vertebra sim --json``); without a result, the runtime's."""
        if res is None:
            return super().report()
        snap = self.loop.snapshot()
        base = super().report()
        return {
            "robot": self.cfg.name,
            "clock": base["clock"],
            "sim_time_s": round(float(snap["time_s"]), 4),
            "base_height_m": round(float(self.truth(snap)["base_pos"][2]), 4),
            "standing_height_m": round(self.standing_height_m, 4),
            "hold_base_height_range_m": [round(res.hold_min_height_m, 4), round(res.hold_max_height_m, 4)],
            "max_tilt_deg": round(res.hold_max_tilt_deg, 3),
            "mode": snap["mode"],
            "safety_mode": snap["safety_mode"],
            "faults": list(snap["faults"]),
            "hoist_engaged": bool(self.world.hoist_engaged),
            "limiter_clamps": int(snap["clamps"]),
            "phases": res.phases,
            "driver": self.driver.name,
            "base": base["base"],
            **({"estimator": res.estimator} if res.estimator is not None else {}),
            "loop": base["loop"],
        }

    def __enter__(self) -> SimRuntime:
        return self

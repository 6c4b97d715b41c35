"""The runtime on the simulated robot: build the simulator, the driver and the real-time loop from a
robot config, and run the real deployment procedure

    hanging limp in the hoist (zero torque) -> interpolate to the default pose -> hold
    -> lower the hoist until the feet carry the robot -> release -> hold

Python orchestrates (mode requests, hoist, waiting); every tick runs in C++ (vertebra._rt).
In lockstep the waits run ticks (deterministic, faster than real time); in real time a C++
thread ticks at absolute deadlines and the waits poll the loop's snapshot.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from vertebra import _rt
from vertebra.runtime.config import RobotConfig, loop_config, robot_params
from vertebra.safety.config import SafetySettings


def tilt_deg(quat_wxyz: np.ndarray) -> float:
    """Angle between the body's z axis and the world's vertical, degrees."""
    w, x, y, z = (float(v) for v in quat_wxyz)
    n = w * w + x * x + y * y + z * z
    czz = 1.0 - 2.0 * (x * x + y * y) / (n if n > 0 else 1.0)
    return math.degrees(math.acos(max(-1.0, min(1.0, czz))))


@dataclass
class ProcedureResult:
    robot: str
    phases: list[dict[str, Any]] = field(default_factory=list)
    hold_min_height_m: float = math.inf
    hold_max_height_m: float = -math.inf
    hold_max_tilt_deg: float = 0.0


class SimRuntime:
    """The runtime around a MuJoCo-simulated robot."""

    def __init__(self, robot: str | RobotConfig, *, lockstep: bool = True, rate_hz: float | None = None,
                 noise: bool = False, command_latency_ms: float | None = None, realtime_priority: bool = True,
                 controller: str = "pd", safety: SafetySettings | None = None, fault_injection: bool = False,
                 event_log: str | os.PathLike[str] | None = None):
        """`safety`: the supervisor's settings (default: configs/safety/<robot>.yaml).
        `fault_injection`: put a FaultInjector between the simulator and the loop (self.injector).
        `event_log`: append the safety events to this JSON-lines file (always kept in memory too)."""
        from vertebra.drivers.registry import driver_config

        self.cfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        cfg = self.cfg
        self.rate_hz = float(rate_hz or cfg.control_rate_hz)
        self.lockstep = lockstep
        self.model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
        self.default_pose = cfg.column("default_rad")
        self.standing_height_m = self.model.standing_base_height(self.default_pose, cfg.foot_frames, cfg.sole_offset_m)

        self.safety = safety if safety is not None else SafetySettings.load(cfg)
        sim = driver_config("mujoco", standing_height_m=self.standing_height_m, noise=noise,
                            command_latency_ms=command_latency_ms, battery_v=self.safety.battery_sim_v)
        self.driver = sim.build(cfg, self.rate_hz)
        self.mjcf_path = sim.mjcf_path
        self.injector = _rt.FaultInjector(self.driver) if fault_injection else None
        self.loop = _rt.RtLoop(self.injector or self.driver, robot_params(cfg),
                               loop_config(self.rate_hz, lockstep, realtime_priority), self.safety.to_cpp(cfg))
        self.events = _rt.EventLog(self.loop, str(event_log) if event_log else "")
        if controller not in ("pd", "wbc"):
            raise ValueError(f"unknown controller '{controller}'; controllers are: pd, wbc")
        self.controller = controller
        self.wb = None
        if controller == "wbc":
            from vertebra.runtime.wbc import WholeBody

            self.wb = WholeBody(cfg, self.model)
            _rt.set_wbc_mode(self.loop, self.wb.ctrl)
        if not lockstep:
            self.events.start()
            self.loop.start()

    # -- time ------------------------------------------------------------------------------
    def sim_time(self) -> float:
        return float(self.loop.snapshot()["time_s"])

    def wait(self, seconds: float, on_sample: Callable[[dict[str, Any]], None] | None = None,
             sample_every_s: float = 0.02) -> None:
        """Let `seconds` of robot time pass (ticks in lockstep; sleeping in real time)."""
        end = self.sim_time() + seconds
        step_ticks = max(1, int(round(sample_every_s * self.rate_hz)))
        while True:
            now = self.sim_time()
            if now >= end - 0.5 / self.rate_hz:
                break
            if self.lockstep:
                remaining = int(round((end - now) * self.rate_hz))
                self.loop.run_ticks(min(step_ticks, max(1, remaining)))
                self.events.flush()
            else:
                time.sleep(min(sample_every_s, max(0.0, end - now)))
            if on_sample is not None:
                on_sample(self.loop.snapshot())

    def request(self, mode: Any, duration_s: float = 0.0, pose: list[float] | None = None, stream: bool = False) -> None:
        """Ask the loop for a mode and wait until it answered; raise if it refused."""
        seq = self.loop.request_mode(mode, duration_s, list(pose or []), stream)
        deadline = time.monotonic() + 2.0
        while True:
            if self.lockstep:
                self.loop.run_ticks(1)
            snap = self.loop.snapshot()
            if snap["request_seq"] >= seq:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the loop did not answer mode request {mode} within 2 s")
            time.sleep(0.001)
        if snap["request_status"] != "ok":
            raise RuntimeError(f"mode request {mode} refused by the loop: {snap['request_status']}")

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
            self.driver.hoist_release()
            self.wait(0.5)

        phase("interpolate to the default pose", interpolate)
        phase("hold", lambda: self.request(_rt.Mode.HOLD))

        h = self.cfg.sim.hoist
        target_z = self.standing_height_m - 0.10  # below standing: the rope goes slack on the way down
        lower_s = (self.driver.hoist_anchor_z - target_z) / h.lower_speed_m_s + 0.5

        def lower() -> None:
            self.driver.hoist_lower_to(target_z, h.lower_speed_m_s)
            self.wait(lower_s)

        phase("lower the hoist", lower)
        phase("release the hoist", release)

        def sample(s: dict[str, Any]) -> None:
            z = float(s["state"]["base_pos"][2])
            res.hold_min_height_m = min(res.hold_min_height_m, z)
            res.hold_max_height_m = max(res.hold_max_height_m, z)
            res.hold_max_tilt_deg = max(res.hold_max_tilt_deg, tilt_deg(s["state"]["base_quat"]))

        phase(f"hold standing for {hold_s:g} s", lambda: self.wait(hold_s, on_sample=sample))
        return res

    def engage_wbc(self) -> None:
        """Hand the standing robot from joint hold to the whole-body controller."""
        if self.wb is None:
            raise RuntimeError("this runtime was built with controller='pd'; use controller='wbc'")
        self.wb.reset_targets()
        self.request(_rt.Mode.WBC)

    def report(self, res: ProcedureResult) -> dict[str, Any]:
        snap = self.loop.snapshot()
        stats = self.loop.stats()
        lat = stats["lateness_us"]
        comp = stats["compute_us"]
        return {
            "robot": self.cfg.name,
            "clock": "lockstep" if self.lockstep else "realtime",
            "sim_time_s": round(float(snap["time_s"]), 4),
            "base_height_m": round(float(snap["state"]["base_pos"][2]), 4),
            "standing_height_m": round(self.standing_height_m, 4),
            "hold_base_height_range_m": [round(res.hold_min_height_m, 4), round(res.hold_max_height_m, 4)],
            "max_tilt_deg": round(res.hold_max_tilt_deg, 3),
            "mode": snap["mode"],
            "safety_mode": snap["safety_mode"],
            "faults": list(snap["faults"]),
            "hoist_engaged": bool(self.driver.hoist_engaged),
            "limiter_clamps": int(snap["clamps"]),
            "phases": res.phases,
            "loop": {
                "rate_hz": self.rate_hz,
                "ticks": int(stats["ticks"]),
                "lateness_us": {k: round(lat[k], 1) for k in ("p50", "p99", "p999", "max")},
                "compute_us": {k: round(comp[k], 1) for k in ("p50", "p99", "p999", "max")},
                "overruns": int(stats["overruns"]),
                **({} if self.lockstep else {"os": self.loop.rt_report()}),
            },
        }

    # -- operator ----------------------------------------------------------------------------
    def enable(self, on: bool = True) -> None:
        """The operator's enable (the arming gate); disabling an armed robot stops it."""
        self.loop.set_enabled(on)
        self._tick_once()

    def estop(self) -> None:
        self.loop.estop()
        self._tick_once()

    def stop(self) -> None:
        """Operator stop: settle-then-cut when armed."""
        self.loop.request_stop()
        self._tick_once()

    def reset(self) -> None:
        self.loop.reset_faults()
        self._tick_once()

    def _tick_once(self) -> None:
        if self.lockstep:
            self.loop.run_ticks(1)
            self.events.flush()
        else:
            t = self.loop.snapshot()["tick"]
            deadline = time.monotonic() + 1.0
            while self.loop.snapshot()["tick"] == t and time.monotonic() < deadline:
                time.sleep(0.0005)

    def event_list(self) -> list[dict[str, Any]]:
        """Every event so far (oldest first), as dicts."""
        self.events.flush()
        return [json.loads(j) for _, j in self.events.recent(0)]

    def close(self) -> None:
        if not self.lockstep:
            self.loop.stop()
        self.events.stop()

    def __enter__(self) -> SimRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

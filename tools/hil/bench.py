"""The harness's own runtime on the rig: the deploy config's driver and safety, a robot config whose
speed and torque limits are tightened to the bench's caps (the limiter and the monitors enforce them
on every tick, whatever a program asks), and the bench mode (cpp/hil/bench_mode.hpp) registered as
"bench". The robot is armed the usual way (enable -> interpolate from hanging to the hold pose ->
HOLD -> ACTIVE under "bench") and every program plays with all the supervisor's monitors on.

Sim rigs run it in lockstep against a lockstep bridge (deterministic); a real rig in real time, with
the guard's heartbeat when the deploy config enables the guard (start `vertebra guard` first).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.deploy import DeployConfig
from vertebra.runtime.runtime import Runtime
from vertebra.tools.hil.context import HilStopped, ScenarioContext


def bench_robot_config(ctx: ScenarioContext) -> RobotConfig:
    """The robot config with each movable joint's dq_max and tau_max tightened to the bench's caps
    (speed: 4x the commanded cap: room for a resonance's overshoot and for what a neighbour's torque
    doublet shakes into a light joint; torque: torque_fraction x rating)."""
    d = ctx.robot.to_dict()
    for j in d["joints"]:
        b = ctx.rig.bench_joint(j["name"])
        if b is None:
            continue
        j["dq_max_rad_s"] = min(float(j["dq_max_rad_s"]), 4.0 * b.velocity_rad_s)
        j["tau_max_nm"] = float(j["tau_max_nm"]) * b.torque_fraction
    return RobotConfig.from_dict(d, ctx.robot.file)


class BenchRuntime:
    def __init__(self, ctx: ScenarioContext, *, lockstep: bool, capacity_s: float = 40.0):
        self.ctx = ctx
        self.lockstep = lockstep
        over: dict[str, Any] = {"loop": {"lockstep": lockstep}, "controller": "pd"}
        drv: dict[str, Any] = {"lockstep": lockstep, "state_timeout_s": 20.0}
        if lockstep:
            drv["lockstep_timeout_s"] = 0.05  # a state the bridge drops costs 50 ms, not a second
        over["driver"] = drv
        self.deploy = DeployConfig.load(ctx.write_deploy("bench", **over))
        self.full = ctx.robot
        self.cfg = bench_robot_config(ctx)
        self.rate_hz = float(self.deploy.loop.rate_hz)
        self.dt = 1.0 / self.rate_hz
        n = self.cfg.n_joints
        self.mode = _rt.BenchMode(n, self.cfg.column("kp"), self.cfg.column("kd"), int(capacity_s * self.rate_hz))
        robot, kw = Runtime.deploy_arguments(self.deploy)
        kw["safety"] = self.deploy.safety_settings(self.cfg)
        hb = Runtime.heartbeat_name_for(self.deploy)
        if hb is not None:
            kw["heartbeat"] = hb
        self.event_log = ctx.workdir / "bench-events.jsonl"  # the safety events of the harness's runtime
        self.rt = Runtime(self.cfg, self.deploy.driver, event_log=self.event_log,
                          configure=lambda r: r.loop.register_mode("bench", self.mode), **kw)
        self.hold = np.asarray(self.cfg.column("default_rad"))

    # -- arming ---------------------------------------------------------------------------------
    def arm(self) -> None:
        """Hanging -> the hold pose (interpolated over bench.hold_s) -> HOLD -> ACTIVE under the bench mode."""
        rt = self.rt
        rt.enable()
        rt.request(_rt.Mode.INTERPOLATE, self.ctx.rig.bench.hold_s, list(self.hold))
        self.wait(self.ctx.rig.bench.hold_s + 0.3)
        rt.request(_rt.Mode.HOLD)
        self.wait(0.2)
        rt.request("bench")
        self.hold = np.asarray(self.mode.hold_pose)
        self.check_faults()

    def to_pose(self, pose: np.ndarray, seconds: float) -> None:
        """Bench (ACTIVE) -> HOLD -> interpolate the whole robot to `pose` -> HOLD -> bench again."""
        rt = self.rt
        rt.request(_rt.Mode.HOLD)
        rt.request(_rt.Mode.INTERPOLATE, seconds, list(pose))
        self.wait(seconds + 0.2)
        rt.request(_rt.Mode.HOLD)
        rt.request("bench")
        self.check_faults()

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + max(10.0, 20 * seconds)  # lockstep: ticks; real time: sleeps
        self.rt.wait(seconds)
        if time.monotonic() > end:
            raise HilStopped(f"the robot did not answer: {seconds:g} s of robot time took over {20 * seconds:g} s")
        self.ctx.check_stop()

    def check_faults(self) -> None:
        snap = self.rt.status()
        if snap["safety_mode"] not in ("ACTIVE", "HOLD", "STANDUP"):
            faults = [e for e in self.rt.event_list() if e.get("kind") == "fault"][-3:]
            said = "; ".join(f"{e.get('fault')} on {e.get('joint_name') or e.get('joint', '-')} (value {e.get('value')})"
                             for e in faults)
            raise HilStopped(f"the robot left the bench: safety mode {snap['safety_mode']}, faults "
                             f"{list(snap['faults'])}{': ' + said if said else ''}")

    # -- programs -------------------------------------------------------------------------------
    def play(self, joint: int, kp: float, kd: float, q: np.ndarray, dq: np.ndarray, tau: np.ndarray) -> dict[str, Any]:
        """Play one program on `joint` (absolute targets), return its trace (tools/hil/bench_mode)."""
        m = self.mode
        m.load(int(joint), float(kp), float(kd), list(map(float, q)), list(map(float, dq)), list(map(float, tau)))
        m.start()
        n = len(q)
        if self.lockstep:
            done = 0
            while m.state != "done":
                if self.ctx.stop.is_set():
                    m.abort()
                self.rt.run_ticks(min(250, n - done + 2))
                done += 250
                self.check_faults()
                if done > n + 1000:
                    break
        else:
            deadline = time.monotonic() + n * self.dt * 3 + 2.0
            while m.state != "done" and time.monotonic() < deadline:
                if self.ctx.stop.is_set():
                    m.abort()
                time.sleep(0.02)
                self.check_faults()
        if m.state != "done":
            m.abort()
            raise HilStopped(f"program on joint {self.cfg.joint_names[joint]} did not finish (safety mode "
                             f"{self.rt.status()['safety_mode']})")
        tr = dict(m.trace())
        if tr["aborted"]:
            raise HilStopped("stopped by the operator")
        self.rt.events.flush()
        return tr

    def counters(self) -> dict[str, Any]:
        d = self.rt.driver
        return dict(d.counters()) if hasattr(d, "counters") else {}

    def close(self, stop: bool = True) -> None:
        """The configured stop (settle-then-cut when armed), then hand the robot back damped."""
        try:
            if stop and self.rt.status()["safety_mode"] in ("ACTIVE", "HOLD", "STANDUP"):
                self.rt.stop()
                t0 = time.monotonic()
                while self.rt.status()["safety_mode"] == "STOPPING" and time.monotonic() - t0 < 30:
                    self.rt.wait(0.1)
        finally:
            self.rt.close()

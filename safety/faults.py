"""Fault injection: every fault scenario the safety supervisor must handle, run in lockstep sim.

Each scenario builds a fresh simulated robot with a FaultInjector between the simulator and the
loop, brings it to its starting state through the real procedure (hoist, enable, STANDUP, HOLD,
then ACTIVE driven by a scripted policy stream or the whole-body controller), injects one fault
and watches every tick. It reports, per fault: whether it was detected, the ticks from injection to
detection, the response taken (read from the supervisor's mode changes), the ticks until the robot
was in the declared safe state, whether it fell, the peak downward base velocity, and pass/fail
against the declared response (configs/safety/<robot>.yaml, else the default table).

Ticks count from the first tick that saw the fault (0 = handled in that same tick).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from vertebra import _rt
from vertebra.runtime.sim_runtime import SimRuntime, tilt_deg

# A stop must bring the base down slower than this (free fall from 5 cm reaches 0.99 m/s).
MAX_IMPACT_VELOCITY_M_S = 1.0
# Tilt beyond which the robot counts as fallen (a controlled sit stays well below it).
FELL_TILT_DEG = 60.0
POLICY_PERIOD_TICKS = 10  # the scripted policy streams joint targets at 50 Hz (500 Hz loop)


@dataclass
class ScenarioResult:
    scenario: str
    robot: str
    fault: str
    declared: str
    detected: bool = False
    ticks_to_detection: int | None = None
    response: str = "none"
    ticks_to_safe: int | None = None
    seconds_to_safe: float | None = None
    fell: bool = False
    fell_expected: bool | None = False  # None: not judged (an e-stop trades standing for stopping now)
    peak_down_velocity_m_s: float = 0.0
    max_tilt_deg: float = 0.0
    final_mode: str = ""
    passed: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The joint the out-of-limit scenario commands 1 rad past its upper limit: one whose clamped target
# (its soft limit) does not by itself topple the robot, so the scenario tests the limiter alone.
OUT_OF_LIMIT_JOINT = {"g1": "left_elbow_joint", "go2": "FR_calf_joint"}


def out_of_limit_joint(robot: str, names: list[str]) -> int:
    name = OUT_OF_LIMIT_JOINT.get(robot)
    return names.index(name) if name in names else len(names) - 1


class _Policy:
    """A scripted policy stream: the default pose as joint targets at 50 Hz. `mode` corrupts it."""

    def __init__(self, rt: SimRuntime):
        self.rt = rt
        c = rt.cfg
        self.q = np.array(c.column("default_rad"))
        self.kp = np.array(c.column("kp"))
        self.kd = np.array(c.column("kd"))
        self.seq = 0
        self.mode = "normal"  # normal | stall | nan | out_of_limit | gains
        self.on = False

    def send(self) -> None:
        if not self.on or self.mode == "stall":
            return
        q, kp = self.q.copy(), self.kp.copy()
        if self.mode == "nan":
            q[0] = math.nan
        elif self.mode == "out_of_limit":
            j = out_of_limit_joint(self.rt.cfg.name, self.rt.cfg.joint_names)
            q[j] = self.rt.cfg.joints[j].q_max_rad + 1.0
        elif self.mode == "gains":
            kp = kp * 10.0
        self.seq += 1
        n = len(q)
        self.rt.loop.set_targets(q.tolist(), [0.0] * n, kp.tolist(), self.kd.tolist(), [0.0] * n, self.seq)


class Harness:
    """One scenario's robot: start it, inject, watch every tick."""

    def __init__(self, robot: str, controller: str = "pd"):
        self.rt = SimRuntime(robot, fault_injection=True, controller=controller)
        self.inj = self.rt.injector
        self.policy = _Policy(self.rt)
        self.snaps: list[dict[str, Any]] = []
        self.t0 = 0  # the first tick that sees the injected fault
        self.mode_before = ""
        self._last_z: float | None = None
        self.dt = 1.0 / self.rt.rate_hz
        self.safety = self.rt.safety

    # -- starting states ---------------------------------------------------------------------
    def start_hold(self) -> None:
        self.rt.stand_up(hold_s=0.5, limp_s=0.3, interpolate_s=1.5)

    def start_active(self) -> None:
        """ACTIVE on the joint-target stream (pd) or the whole-body controller (wbc)."""
        self.start_hold()
        if self.rt.wb is not None:
            self.rt.engage_wbc()
        else:
            self.policy.on = True
            self.policy.send()
            self.rt.request(_rt.Mode.JOINT_PD, stream=True)
        self.run(0.3)

    # -- running ------------------------------------------------------------------------------
    def tick(self) -> dict[str, Any]:
        loop = self.rt.loop
        if loop.snapshot()["tick"] % POLICY_PERIOD_TICKS == 0:
            self.policy.send()
        loop.run_ticks(1)
        s = loop.snapshot()
        # The robot's truth from the simulator (not what the runtime sees: under state loss or a
        # frozen sensor the snapshot's state is stale): base height, orientation, vertical velocity.
        t, qpos = self.rt.driver.qpos()
        z = float(qpos[2])
        s["truth"] = {"z": z, "quat": qpos[3:7].copy(),
                      "vz": (z - self._last_z) * self.rt.rate_hz if self._last_z is not None else 0.0}
        self._last_z = z
        self.snaps.append(s)
        return s

    def run(self, seconds: float) -> None:
        for _ in range(int(round(seconds * self.rt.rate_hz))):
            self.tick()

    def run_until(self, pred: Callable[[dict[str, Any]], bool], max_s: float) -> bool:
        for _ in range(int(round(max_s * self.rt.rate_hz))):
            if pred(self.tick()):
                return True
        return False

    def inject(self, action: Callable[[], None]) -> int:
        """Apply the fault now; returns (and remembers) the first tick that will see it."""
        self.snaps.clear()
        self.mode_before = self.rt.loop.snapshot()["safety_mode"]
        action()
        self.t0 = int(self.rt.loop.snapshot()["tick"]) + 1
        return self.t0

    def ticks(self, ms: float) -> int:
        """A configured duration in loop ticks."""
        return int(round(ms / 1000.0 * self.rt.rate_hz))

    def settle_s(self) -> float:
        return self.safety.settle_duration_s() + 1.0

    # -- reading the outcome ------------------------------------------------------------------
    def outcome(self, name: str, fault: str, declared: str | None = None, fell_expected: bool | None = False,
                safe: Callable[[dict[str, Any]], bool] | None = None) -> ScenarioResult:
        declared = declared or self.safety.response(fault)
        r = ScenarioResult(scenario=name, robot=self.rt.cfg.name, fault=fault, declared=declared, fell_expected=fell_expected)
        after = [s for s in self.snaps if s["tick"] >= self.t0]
        if not after:
            r.notes = "no ticks ran after the injection"
            return r
        # Detection: the first tick at or after the injection with the fault active (a fault that
        # clears and comes back is timed by its first occurrence).
        first = next((s for s in after if fault in s["active_faults"]), None)
        raised = int(first["tick"]) if first is not None else 0
        if first is not None:
            r.detected = True
            r.ticks_to_detection = int(raised - self.t0)
        # The response: the mode change made in the tick this fault was raised (responses apply at
        # once), else the first one after the injection; else what the limiter did.
        first_change = None
        if r.detected:
            idx = next(i for i, s in enumerate(after) if s["tick"] == raised)
            before = after[idx - 1]["safety_mode"] if idx > 0 else self.mode_before
            if after[idx]["safety_mode"] != before:
                first_change = after[idx]
        else:
            first_change = next((s for s in after if s["safety_mode"] != self.mode_before), None)
        if first_change is not None:
            m = first_change["safety_mode"]
            r.response = {"STOPPING": "stop", "HOLD": "hold", "ESTOP": "estop", "DAMP": "damp"}.get(
                m, "cut" if first_change["cut"] else "damp" if m == "FAULT" else m.lower())
        elif after[0]["last_clamp_flags"] and not r.detected:
            r.response = "clamp"
        elif any(s["derated_joints"] for s in after):
            r.response = "derate"
        elif r.detected:
            r.response = "warn"
        safe = safe or _safe_state(r.declared, fault)
        hit = next((s for s in after if safe(s)), None)
        if hit is not None:
            r.ticks_to_safe = int(hit["tick"] - self.t0)
            r.seconds_to_safe = round(r.ticks_to_safe * self.dt, 4)
        vz = [s["truth"]["vz"] for s in after]
        tilts = [tilt_deg(s["truth"]["quat"]) for s in after]
        r.peak_down_velocity_m_s = round(max(0.0, -min(vz)), 3)
        r.max_tilt_deg = round(max(tilts), 2)
        r.fell = r.max_tilt_deg > FELL_TILT_DEG or (not fell_expected and r.peak_down_velocity_m_s > MAX_IMPACT_VELOCITY_M_S)
        r.final_mode = after[-1]["safety_mode"]
        return r

    def close(self) -> None:
        self.rt.close()


def _safe_state(response: str, fault: str) -> Callable[[dict[str, Any]], bool]:
    if response == "stop":  # settled, cut to damping, and the fault latched
        return lambda s: s["safety_mode"] == "FAULT" and fault in s["faults"] and s["mode"] == "damping"
    if response == "hold":
        return lambda s: s["safety_mode"] == "HOLD"
    if response in ("damp", "cut"):
        return lambda s: s["safety_mode"] == "FAULT" and s["cut"] == (response == "cut") and fault in s["faults"]
    if response == "estop":
        return lambda s: s["safety_mode"] == "ESTOP"
    return lambda s: True


def _finish(r: ScenarioResult, **checks: bool) -> ScenarioResult:
    r.checks.update(checks)
    fell_ok = r.fell_expected is None or r.fell == r.fell_expected
    base = r.detected and r.response == r.declared and r.ticks_to_safe is not None and fell_ok
    r.passed = bool(base and all(r.checks.values()))
    return r


def _until_fault(h: Harness, action: Callable[[], None], after_s: float = 1.0) -> None:
    """Inject, run until the latched FAULT (the stop done), then `after_s` more."""
    h.inject(action)
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.settle_s())
    h.run(after_s)


def _bad_policy(h: Harness, mode: str) -> None:
    """The policy's next message is corrupted (`mode`); it is sent at the injection, so tick t0 has it."""
    def corrupt() -> None:
        h.policy.mode = mode
        h.policy.send()
    h.inject(corrupt)
    h.run(0.5)


def _clamp_outcome(h: Harness, name: str, flag: int) -> ScenarioResult:
    """A bad target (sent at the injection, so tick t0 takes it) the limiter must fix in that tick."""
    r = h.outcome(name, "limiter", declared="clamp", safe=lambda s: _limits_respected(h, s))
    first = next((s for s in h.snaps if s["last_clamp_flags"] & flag), None)
    r.detected = first is not None
    if first is not None:
        r.ticks_to_detection = int(first["tick"] - h.t0)
        r.ticks_to_safe = r.ticks_to_detection if _limits_respected(h, first) else None
        r.seconds_to_safe = 0.0
        r.response = "clamp" if first["safety_mode"] == h.mode_before else first["safety_mode"].lower()
    return r


def _limits_respected(h: Harness, s: dict[str, Any]) -> bool:
    """The command of one tick against every static limit (soft range, gain ceilings, feed-forward
    torque, velocity), scaled on derated joints. The rate limit is the property tests' business."""
    c = s["command"]
    lim = h.rt.loop.limiter
    cfg = h.rt.cfg
    derated = set(s["derated_joints"])
    for i, j in enumerate(cfg.joints):
        q, kp, kd, tau, dq = (float(c[k][i]) for k in ("q", "kp", "kd", "tau_ff", "dq"))
        if not all(math.isfinite(v) for v in (q, kp, kd, tau, dq)):
            return False
        d = h.safety.derate_scale if i in derated else 1.0
        if not lim.soft_lower(i) - 1e-12 <= q <= lim.soft_upper(i) + 1e-12 or abs(dq) > j.dq_max_rad_s + 1e-9:
            return False
        if (kp > j.kp * cfg.max_gain_scale * d + 1e-9 or kd > j.kd * cfg.max_gain_scale + 1e-9
                or abs(tau) > j.tau_max_nm * d + 1e-9):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Scenarios. Each takes the robot name and returns a ScenarioResult.

def state_loss(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    _until_fault(h, lambda: h.inj.set_drop_reads(True))
    r = h.outcome("state_loss", "state_loss")
    timeout_ticks = h.ticks(h.safety.state_timeout_ms)
    # The last fresh sample was the tick before t0: detection within timeout + 1 tick of it.
    ok = r.ticks_to_detection is not None and r.ticks_to_detection + 1 <= timeout_ticks + 1
    r.notes = f"timeout {h.safety.state_timeout_ms:g} ms = {timeout_ticks} ticks"
    h.close()
    return _finish(r, detected_within_timeout_plus_one_tick=ok)


def frozen_state(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    _until_fault(h, lambda: h.inj.set_freeze(True))
    r = h.outcome("frozen_state", "state_frozen")
    frozen_ticks = h.ticks(h.safety.frozen_ms)
    h.close()
    return _finish(r, detected_within_frozen_ms=r.ticks_to_detection is not None and r.ticks_to_detection <= frozen_ticks + 1)


def nan_state(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    _until_fault(h, lambda: h.inj.set_nan_state(True))
    r = h.outcome("nan_state", "non_finite_state")
    finite = all(_limits_respected(h, s) for s in h.snaps if s["tick"] >= h.t0)
    h.close()
    return _finish(r, commands_finite_and_limited=finite)


def nan_target(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    _bad_policy(h, "nan")
    r = h.outcome("nan_target", "non_finite_command")
    first = h.snaps[0]
    h.close()
    return _finish(r, same_tick=r.ticks_to_detection == 0, command_sanitised_same_tick=_limits_respected(h, first))


def _clamp_scenario(robot: str, name: str, policy_mode: str, flag: int) -> ScenarioResult:
    """A bad target the limiter fixes in the tick that carries it; the policy keeps running."""
    h = Harness(robot)
    h.start_active()
    _bad_policy(h, policy_mode)
    r = _clamp_outcome(h, name, flag)
    h.close()
    return _finish(r, same_tick=r.ticks_to_safe == 0, every_tick_within_limits=all(_limits_respected(h, s) for s in h.snaps),
                   policy_kept=r.final_mode == "ACTIVE")


def out_of_limit_target(robot: str) -> ScenarioResult:
    return _clamp_scenario(robot, "out_of_limit_target", "out_of_limit", (1 << 1) | (1 << 2))  # position | rate


def gain_escalation(robot: str) -> ScenarioResult:
    return _clamp_scenario(robot, "gain_escalation", "gains", 1 << 4)  # kp


def policy_stall(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    h.inject(lambda: setattr(h.policy, "mode", "stall"))
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.safety.starvation_stop_ms / 1000.0 + h.settle_s())
    h.run(0.5)
    r = h.outcome("policy_stall", "starvation_hold")
    raised = h.snaps[-1]["raised_tick"]
    stop_tick = raised.get("starvation_stop", 0)
    tiered = 0 < raised.get("starvation_hold", 0) < stop_tick
    t1, t2 = h.ticks(h.safety.starvation_hold_ms), h.ticks(h.safety.starvation_stop_ms)
    # the stream's last message came up to one policy period before the injection
    on_time = (r.ticks_to_detection is not None and t1 - POLICY_PERIOD_TICKS <= r.ticks_to_detection <= t1 + 1
               and t2 - POLICY_PERIOD_TICKS <= stop_tick - h.t0 <= t2 + 1)
    stopped = any(s["safety_mode"] == "STOPPING" for s in h.snaps) and r.final_mode == "FAULT"
    r.notes = (f"hold after {r.ticks_to_detection} ticks, controlled stop after "
               f"{stop_tick - h.t0 if stop_tick else None} ticks")
    h.close()
    return _finish(r, tiered_hold_then_stop=tiered, ended_stopped=stopped, at_t1_and_t2=on_time)


def solver_failure(robot: str) -> ScenarioResult:
    h = Harness(robot, controller="wbc")
    h.start_active()
    _until_fault(h, lambda: h.rt.wb.ctrl.inject_failures(100000))
    r = h.outcome("solver_failure", "controller")
    r.notes = "whole-body QP forced to fail; the controller faults after 10 consecutive failures"
    h.close()
    return _finish(r)


def over_temperature(robot: str) -> ScenarioResult:
    """A knee motor heats through the warning and derate levels; t0 is when it reaches the stop level."""
    h = Harness(robot)
    h.start_active()
    knee = next(i for i, n in enumerate(h.rt.cfg.joint_names) if "knee" in n or "calf" in n)
    s = h.safety
    levels_seen: list[str] = []
    derated = False

    def watch(snap: dict[str, Any]) -> None:
        nonlocal derated
        if knee in snap["derated_joints"]:
            j = h.rt.cfg.joints[knee]
            c = snap["command"]
            derated = (float(c["kp"][knee]) <= j.kp * h.rt.cfg.max_gain_scale * s.derate_scale + 1e-9
                       and abs(float(c["tau_ff"][knee])) <= j.tau_max_nm * s.derate_scale + 1e-9) or derated
        for f in ("temperature_warn", "temperature_derate", "temperature_stop"):
            if f in snap["active_faults"] and f not in levels_seen:
                levels_seen.append(f)

    for T in np.arange(s.temp_warn_c - 5.0, s.temp_stop_c, 0.1):  # 1 °C per 10 ticks (50 °C/s)
        h.inj.set_motor_temp(knee, float(T))
        watch(h.tick())
    h.inject(lambda: h.inj.set_motor_temp(knee, s.temp_stop_c))
    h.run_until(lambda x: x["safety_mode"] == "FAULT", h.settle_s())
    h.run(0.5)
    for snap in h.snaps:
        watch(snap)
    r = h.outcome("over_temperature", "temperature_stop")
    r.notes = (f"{h.rt.cfg.joint_names[knee]} heated at 50 °C/s through {', '.join(levels_seen)}; "
               f"ticks from reaching {s.temp_stop_c:g} °C")
    h.close()
    return _finish(r, levels_in_order=levels_seen == ["temperature_warn", "temperature_derate", "temperature_stop"],
                   derated_before_stop=derated, same_tick=r.ticks_to_detection == 0)


def motor_error(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    _until_fault(h, lambda: h.inj.set_motor_error(3, 0x1), 0.5)
    r = h.outcome("motor_error", "motor_error")
    h.close()
    return _finish(r, same_tick=r.ticks_to_detection == 0)


def low_battery(robot: str) -> ScenarioResult:
    """The pack voltage sags through the warning level; t0 is when it reaches the stop level."""
    h = Harness(robot)
    h.start_active()
    s = h.safety
    for v in np.arange(s.battery_warn_v + 1.0, s.battery_stop_v, -0.01):  # 5 V/s
        h.inj.set_battery_v(float(v))
        h.tick()
    warned = "battery_low" in h.snaps[-1]["active_faults"] and h.snaps[-1]["safety_mode"] == "ACTIVE"
    h.inject(lambda: h.inj.set_battery_v(s.battery_stop_v))
    h.run_until(lambda x: x["safety_mode"] == "FAULT", h.settle_s())
    h.run(0.5)
    r = h.outcome("low_battery", "battery_critical")
    r.notes = f"sagging at 5 V/s; warned at {s.battery_warn_v:g} V and kept going; ticks from reaching {s.battery_stop_v:g} V"
    h.close()
    return _finish(r, warned_first_and_kept_going=warned, same_tick=r.ticks_to_detection == 0)


def push_beyond_recovery(robot: str) -> ScenarioResult:
    h = Harness(robot, controller="wbc")
    h.start_active()
    force = h.rt.driver.total_mass * 9.81  # the robot's own weight, sideways, for 0.25 s
    h.inject(lambda: h.rt.driver.push(0.0, force, 0.0, 0.25))
    h.run_until(lambda s: s["safety_mode"] == "FAULT", 3.0)
    h.run(1.5)
    r = h.outcome("push_beyond_recovery", "fall", fell_expected=True)
    r.notes = f"{force:.0f} N sideways for 0.25 s; the fall is expected, the response is what is tested"
    h.close()
    return _finish(r)


def operator_estop(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    h.inject(h.rt.loop.estop)
    h.run(1.0)
    s = h.safety
    r = h.outcome("operator_estop", "estop", declared="estop")
    first = h.snaps[0]
    r.detected = first["safety_mode"] == "ESTOP"
    r.ticks_to_detection = 0 if r.detected else None
    stiff = max(float(k) for k in first["command"]["kp"])
    cat = "cut" if s.estop == "cut" else "damp"
    kd = np.asarray(first["command"]["kd"], dtype=float)
    damping = np.asarray(h.rt.cfg.column("kd_damping"), dtype=float)
    kd_ok = bool(np.all(kd == 0.0)) if cat == "cut" else bool(np.all(damping > 0) and np.allclose(kd, damping))
    r.notes = f"category {'0' if cat == 'cut' else '1'} ({cat})"
    r.fell_expected = None  # not judged: an e-stop stops the motors now, standing or not
    h.close()
    return _finish(r, same_tick=r.ticks_to_safe == 0, zero_stiffness_same_tick=stiff == 0.0, category=kd_ok)


def loop_overrun_burst(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    period_us = 1e6 / h.rt.rate_hz
    h.inject(lambda: h.inj.set_read_stall_us(1.5 * period_us))
    h.run_until(lambda s: s["safety_mode"] != "ACTIVE", 0.5)
    h.inj.set_read_stall_us(0.0)
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.settle_s())
    h.run(0.5)
    r = h.outcome("loop_overrun_burst", "loop_overrun")
    on_time = r.ticks_to_detection is not None and r.ticks_to_detection <= h.safety.overrun_max + 1
    r.notes = (f"each tick stalled {1.5 * period_us:.0f} µs (period {period_us:.0f} µs); fault at "
               f"{h.safety.overrun_max} overruns in {h.safety.overrun_window_ticks} ticks")
    h.close()
    return _finish(r, after_overrun_max_overruns=on_time)


def fault_during_stopping(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    h.rt.loop.request_stop()
    h.run(0.6)  # well into the settle
    stop_tick = h.snaps[-1]["mode_tick"]
    h.inject(lambda: h.inj.set_drop_reads(True))
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.settle_s())
    h.run(1.0)
    r = h.outcome("fault_during_stopping", "state_loss",
                  safe=lambda s: s["safety_mode"] == "FAULT")
    # A stop-level fault during STOPPING lets the stop finish (not restarted), then latches FAULT.
    r.response = "stop" if r.detected and all(
        s["safety_mode"] in ("STOPPING", "FAULT") for s in h.snaps if s["tick"] >= h.t0) else r.response
    not_restarted = all(s["mode_tick"] == stop_tick for s in h.snaps if s["safety_mode"] == "STOPPING")
    latched = "state_loss" in h.snaps[-1]["faults"]
    h.close()
    return _finish(r, stop_not_restarted=not_restarted, fault_latched=latched)


def reset_without_clearing(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    h.inj.set_motor_error(3, 0x1)
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.settle_s())
    h.inject(h.rt.loop.reset_faults)
    h.run(0.2)
    refused = h.snaps[-1]["safety_mode"] == "FAULT" and h.snaps[-1]["resets_refused"] >= 1
    stiff_never = all(max(float(k) for k in s["command"]["kp"]) == 0.0 for s in h.snaps)
    # Clear the cause: the reset is accepted and lands in DAMP (never re-arms by itself).
    h.inj.set_motor_error(3, 0)
    h.run(0.05)
    h.rt.loop.reset_faults()
    h.run(0.05)
    accepted = h.snaps[-1]["safety_mode"] == "DAMP" and not h.snaps[-1]["faults"]
    r = h.outcome("reset_without_clearing", "motor_error", declared="refused",
                  safe=lambda s: s["safety_mode"] == "FAULT")
    r.detected = refused
    r.ticks_to_detection = 0 if refused else None
    r.response = "refused" if refused else "accepted"
    h.close()
    return _finish(r, stayed_in_fault_without_stiffness=refused and stiff_never, reset_after_clearing_accepted=accepted)


def operator_stop(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    h.inject(h.rt.loop.request_stop)
    h.run_until(lambda s: s["safety_mode"] == "DAMP", h.settle_s())
    h.run(1.5)
    r = h.outcome("operator_stop", "stop", declared="stop", safe=lambda s: s["safety_mode"] == "DAMP")
    r.detected = h.snaps[0]["safety_mode"] == "STOPPING"
    r.ticks_to_detection = 0 if r.detected else None
    r.notes = f"settle-then-cut: {len(h.safety.settle)} keyframes + {h.safety.settle_hold_s:g} s hold, then damping"
    h.close()
    return _finish(r, ends_in_damp=r.final_mode == "DAMP")


SCENARIOS: dict[str, Callable[[str], ScenarioResult]] = {
    "state_loss": state_loss,
    "frozen_state": frozen_state,
    "nan_state": nan_state,
    "nan_target": nan_target,
    "out_of_limit_target": out_of_limit_target,
    "gain_escalation": gain_escalation,
    "policy_stall": policy_stall,
    "solver_failure": solver_failure,
    "over_temperature": over_temperature,
    "motor_error": motor_error,
    "low_battery": low_battery,
    "push_beyond_recovery": push_beyond_recovery,
    "operator_estop": operator_estop,
    "loop_overrun_burst": loop_overrun_burst,
    "fault_during_stopping": fault_during_stopping,
    "reset_without_clearing": reset_without_clearing,
    "operator_stop": operator_stop,
}


def run(robots: list[str], only: list[str] | None = None,
        progress: Callable[[str], None] | None = None) -> list[ScenarioResult]:
    names = only or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; scenarios are: {', '.join(SCENARIOS)}")
    out = []
    total = len(names) * len(robots)
    for robot in robots:
        for name in names:
            res = SCENARIOS[name](robot)
            out.append(res)
            if progress:
                progress(f"[{len(out)}/{total}] {robot} {name}: {'PASS' if res.passed else 'FAIL'} "
                         f"(response {res.response}, detection {res.ticks_to_detection} ticks, "
                         f"safe after {res.ticks_to_safe} ticks)")
    return out


def markdown_report(results: list[ScenarioResult], rate_hz: dict[str, float]) -> str:
    """The fault -> response -> measured reaction table (docs/safety.md's generated part)."""
    lines = [
        "| robot | scenario | fault | declared response | response taken | detected after | safe state after | "
        "fell | peak down velocity | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ticks(n: int | None, robot: str) -> str:
        if n is None:
            return "—"
        ms = n * 1000.0 / rate_hz[robot]
        return f"{n} ticks ({ms:.0f} ms)" if n else "same tick"

    for r in results:
        fell = "yes (expected)" if r.fell and r.fell_expected else ("yes" if r.fell else "no")
        if r.fell_expected is None:
            fell += " (not judged)"
        lines.append(
            f"| {r.robot} | {r.scenario} | {r.fault} | {r.declared} | {r.response} | "
            f"{ticks(r.ticks_to_detection, r.robot)} | {ticks(r.ticks_to_safe, r.robot)} | {fell} | "
            f"{r.peak_down_velocity_m_s:.2f} m/s | {'pass' if r.passed else 'FAIL'} |")
    notes = [f"- **{r.robot} {r.scenario}**: {r.notes}" for r in results if r.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


DOC_BEGIN = "<!-- BEGIN GENERATED: vertebra faults run --docs -->"
DOC_END = "<!-- END GENERATED -->"


def write_docs(path: str, table: str) -> None:
    """Replace the generated block of `path` (or append one) with `table`."""
    import os

    text = open(path).read() if os.path.exists(path) else ""
    block = f"{DOC_BEGIN}\n{table}{DOC_END}\n"
    if DOC_BEGIN in text and DOC_END in text:
        a = text.index(DOC_BEGIN)
        b = text.index(DOC_END) + len(DOC_END) + 1
        text = text[:a] + block + text[b:]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block
    with open(path, "w") as f:
        f.write(text)

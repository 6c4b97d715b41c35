"""The fault-injection harness: one scenario's simulated robot, the measurements, the scenario registry.

A scenario is a function `(robot name) -> ScenarioResult`, registered by name with
`@register_scenario("name")` (built-in ones live in `scenarios.py`; one registered from any other
module runs the same way). `run()` iterates the registry in registration order.

Inside a scenario a `Harness` builds a fresh lockstep `SimRuntime` with a FaultInjector between the
simulator and the loop, brings it to its starting state through the real procedure (`start_hold`,
`start_active`), injects one fault (`inject`) and records every tick (`tick`, `run`, `run_until`).
`Harness.outcome()` reads what happened from the snapshots: detection, the ticks from injection to
detection, the response taken (the supervisor's mode change), the ticks until the declared safe
state, whether the robot fell (the simulator's truth, not the runtime's estimate) and the peak
downward base velocity. `finish()` judges it against the declared response.

Ticks count from the first tick that saw the fault (0 = handled in that same tick).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from vertebra import _rt
from vertebra.runtime.numerics import tilt_deg
from vertebra.runtime.sim_runtime import SimRuntime

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


Scenario = Callable[[str], ScenarioResult]

# Every registered scenario by name, in registration order (the order `run()` and the report use).
SCENARIOS: dict[str, Scenario] = {}


def register_scenario(name: str) -> Callable[[Scenario], Scenario]:
    """Decorator: register `fn(robot) -> ScenarioResult` as fault scenario `name`."""
    def register(fn: Scenario) -> Scenario:
        if name in SCENARIOS:
            raise ValueError(f"fault scenario '{name}' is already registered (by {SCENARIOS[name].__module__}."
                             f"{SCENARIOS[name].__qualname__}); pick another name")
        SCENARIOS[name] = fn
        return fn
    return register


# The joint the out-of-limit scenario commands 1 rad past its upper limit: one whose clamped target
# (its soft limit) does not by itself topple the robot, so the scenario tests the limiter alone.
OUT_OF_LIMIT_JOINT = {"g1": "left_elbow_joint", "go2": "FR_calf_joint"}


def out_of_limit_joint(robot: str, names: list[str]) -> int:
    name = OUT_OF_LIMIT_JOINT.get(robot)
    return names.index(name) if name in names else len(names) - 1


class ScriptedPolicy:
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
        self.policy = ScriptedPolicy(self.rt)
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
        r = ScenarioResult(scenario=name, robot=self.rt.cfg.name, fault=fault, declared=declared,
                           fell_expected=fell_expected)
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
        r.fell = r.max_tilt_deg > FELL_TILT_DEG or (not fell_expected
                                                    and r.peak_down_velocity_m_s > MAX_IMPACT_VELOCITY_M_S)
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


def finish(r: ScenarioResult, **checks: bool) -> ScenarioResult:
    """Judge `r`: detected, the declared response taken, a safe state reached, fell as expected, and
    every scenario-specific check in `checks` true."""
    r.checks.update(checks)
    fell_ok = r.fell_expected is None or r.fell == r.fell_expected
    base = r.detected and r.response == r.declared and r.ticks_to_safe is not None and fell_ok
    r.passed = bool(base and all(r.checks.values()))
    return r


def inject_until_fault(h: Harness, action: Callable[[], None], after_s: float = 1.0) -> None:
    """Inject, run until the latched FAULT (the stop done), then `after_s` more."""
    h.inject(action)
    h.run_until(lambda s: s["safety_mode"] == "FAULT", h.settle_s())
    h.run(after_s)


def inject_bad_policy(h: Harness, mode: str) -> None:
    """The policy's next message is corrupted (`mode`); it is sent at the injection, so tick t0 has it."""
    def corrupt() -> None:
        h.policy.mode = mode
        h.policy.send()
    h.inject(corrupt)
    h.run(0.5)


def limits_respected(h: Harness, s: dict[str, Any]) -> bool:
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


def run(robots: list[str], only: list[str] | None = None,
        progress: Callable[[str], None] | None = None) -> list[ScenarioResult]:
    """Run the registered scenarios `only` (default: all, in registration order) on every robot."""
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

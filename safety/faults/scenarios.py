"""The built-in fault scenarios, each registered by name with `@register_scenario`.

Each takes the robot name, builds its own `Harness`, injects one fault and returns the judged
`ScenarioResult`. The registration order here is the order `vertebra faults run` reports them in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from vertebra.safety.faults.harness import (
    POLICY_PERIOD_TICKS,
    Harness,
    ScenarioResult,
    finish,
    inject_bad_policy,
    inject_until_fault,
    limits_respected,
    register_scenario,
)


@register_scenario("state_loss")
def state_loss(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    inject_until_fault(h, lambda: h.inj.set_drop_reads(True))
    r = h.outcome("state_loss", "state_loss")
    timeout_ticks = h.ticks(h.safety.state_timeout_ms)
    # The last fresh sample was the tick before t0: detection within timeout + 1 tick of it.
    ok = r.ticks_to_detection is not None and r.ticks_to_detection + 1 <= timeout_ticks + 1
    r.notes = f"timeout {h.safety.state_timeout_ms:g} ms = {timeout_ticks} ticks"
    h.close()
    return finish(r, detected_within_timeout_plus_one_tick=ok)


@register_scenario("frozen_state")
def frozen_state(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    inject_until_fault(h, lambda: h.inj.set_freeze(True))
    r = h.outcome("frozen_state", "state_frozen")
    frozen_ticks = h.ticks(h.safety.frozen_ms)
    h.close()
    on_time = r.ticks_to_detection is not None and r.ticks_to_detection <= frozen_ticks + 1
    return finish(r, detected_within_frozen_ms=on_time)


@register_scenario("nan_state")
def nan_state(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    inject_until_fault(h, lambda: h.inj.set_nan_state(True))
    r = h.outcome("nan_state", "non_finite_state")
    finite = all(limits_respected(h, s) for s in h.snaps if s["tick"] >= h.t0)
    h.close()
    return finish(r, commands_finite_and_limited=finite)


@register_scenario("nan_target")
def nan_target(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    inject_bad_policy(h, "nan")
    r = h.outcome("nan_target", "non_finite_command")
    first = h.snaps[0]
    h.close()
    return finish(r, same_tick=r.ticks_to_detection == 0, command_sanitised_same_tick=limits_respected(h, first))


def _clamp_outcome(h: Harness, name: str, flag: int) -> ScenarioResult:
    """A bad target (sent at the injection, so tick t0 takes it) the limiter must fix in that tick."""
    r = h.outcome(name, "limiter", declared="clamp", safe=lambda s: limits_respected(h, s))
    first = next((s for s in h.snaps if s["last_clamp_flags"] & flag), None)
    r.detected = first is not None
    if first is not None:
        r.ticks_to_detection = int(first["tick"] - h.t0)
        r.ticks_to_safe = r.ticks_to_detection if limits_respected(h, first) else None
        r.seconds_to_safe = 0.0
        r.response = "clamp" if first["safety_mode"] == h.mode_before else first["safety_mode"].lower()
    return r


def _clamp_scenario(robot: str, name: str, policy_mode: str, flag: int) -> ScenarioResult:
    """A bad target the limiter fixes in the tick that carries it; the policy keeps running."""
    h = Harness(robot)
    h.start_active()
    inject_bad_policy(h, policy_mode)
    r = _clamp_outcome(h, name, flag)
    h.close()
    within = all(limits_respected(h, s) for s in h.snaps)
    return finish(r, same_tick=r.ticks_to_safe == 0, every_tick_within_limits=within,
                  policy_kept=r.final_mode == "ACTIVE")


@register_scenario("out_of_limit_target")
def out_of_limit_target(robot: str) -> ScenarioResult:
    return _clamp_scenario(robot, "out_of_limit_target", "out_of_limit", (1 << 1) | (1 << 2))  # position | rate


@register_scenario("gain_escalation")
def gain_escalation(robot: str) -> ScenarioResult:
    return _clamp_scenario(robot, "gain_escalation", "gains", 1 << 4)  # kp


@register_scenario("policy_stall")
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
    return finish(r, tiered_hold_then_stop=tiered, ended_stopped=stopped, at_t1_and_t2=on_time)


@register_scenario("solver_failure")
def solver_failure(robot: str) -> ScenarioResult:
    h = Harness(robot, controller="wbc")
    h.start_active()
    inject_until_fault(h, lambda: h.rt.wb.ctrl.inject_failures(100000))
    r = h.outcome("solver_failure", "controller")
    r.notes = "whole-body QP forced to fail; the controller faults after 10 consecutive failures"
    h.close()
    return finish(r)


@register_scenario("over_temperature")
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
    return finish(r, levels_in_order=levels_seen == ["temperature_warn", "temperature_derate", "temperature_stop"],
                  derated_before_stop=derated, same_tick=r.ticks_to_detection == 0)


@register_scenario("motor_error")
def motor_error(robot: str) -> ScenarioResult:
    h = Harness(robot)
    h.start_active()
    inject_until_fault(h, lambda: h.inj.set_motor_error(3, 0x1), 0.5)
    r = h.outcome("motor_error", "motor_error")
    h.close()
    return finish(r, same_tick=r.ticks_to_detection == 0)


@register_scenario("low_battery")
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
    r.notes = (f"sagging at 5 V/s; warned at {s.battery_warn_v:g} V and kept going; "
               f"ticks from reaching {s.battery_stop_v:g} V")
    h.close()
    return finish(r, warned_first_and_kept_going=warned, same_tick=r.ticks_to_detection == 0)


@register_scenario("push_beyond_recovery")
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
    return finish(r)


@register_scenario("operator_estop")
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
    return finish(r, same_tick=r.ticks_to_safe == 0, zero_stiffness_same_tick=stiff == 0.0, category=kd_ok)


@register_scenario("loop_overrun_burst")
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
    return finish(r, after_overrun_max_overruns=on_time)


@register_scenario("fault_during_stopping")
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
    return finish(r, stop_not_restarted=not_restarted, fault_latched=latched)


@register_scenario("reset_without_clearing")
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
    return finish(r, stayed_in_fault_without_stiffness=refused and stiff_never, reset_after_clearing_accepted=accepted)


@register_scenario("operator_stop")
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
    return finish(r, ends_in_damp=r.final_mode == "DAMP")

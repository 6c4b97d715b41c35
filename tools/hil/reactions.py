"""The ``safety`` scenario: the reactions of the service and the guard on the bus, run on the deployed
stack (tools/hil/service_bench.py says how it is brought up and how times are taken).

The reactions (``safety.reactions``; each runs from HOLD, in the order below whatever the order
listed, the cases coming back in the listed order; after the runtime kill the service is started
again for the reactions left):

* ``estop_api``: the e-stop request on the control API. Passes when the tick that went to ESTOP came
  within ``estop_ticks_max`` ticks of the request (transport included) and, on a sim rig, the bridge
  then received the e-stop's command (damping: kp 0, kd > 0; ``estop: cut``: kp 0, kd 0).
* ``estop_remote``: the wireless remote's e-stop combination (the driver's ``estop_buttons``) in the
  robot's lowstate (sim: ``set_remote`` on the bridge; a real rig: the engineer presses it). On a sim
  rig the press is the moment the bridge holds the new remote state (its reply), and the limit is one
  tick more than the API's: the press rides in the next lowstate sample, up to a period later, as on
  the robot. On a real rig the press time is not observable: the e-stop must happen.
* ``policy_starvation``: during a policy episode (ACTIVE) the policy server (``vertebra serve``, the
  service's child) is stopped with SIGSTOP (SIGCONT afterwards). The stream goes silent only once
  the chunk scheduler has played the last chunk it was given, so the robot must be in HOLD within
  the safety config's ``starvation_hold_ms`` + ``starvation_margin_ms`` of the stream going silent
  (the silence the monitor saw, ``stream_age_ms``); the chunk played after the SIGSTOP is reported
  (``played_after_stop_ms``) and not counted.
* ``runtime_kill``: ``vertebra run`` is SIGKILLed while the robot holds; the guard must take the bus
  over: on a sim rig the largest gap in the command stream the bridge received across the kill, on a
  real rig the guard's own measure (its first command after the runtime's last), within
  ``takeover_ms_max``; the guard must report ``holding``. Then the engineer's acknowledgement
  (``vertebra guard ack``) releases it.
* ``state_loss``: lowstate stops (sim: the bridge drops every state; ``state_loss_method:
  operator``, and always on a real rig: the engineer pulls the cable). The ``state_loss`` fault's
  value is the age of the newest sample when the monitor raised it: it must be within
  ``state.timeout_ms`` + ``state_loss_margin_ticks`` control periods. It runs last (RUN_ORDER says
  why).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vertebra.tools.hil.context import ScenarioContext
from vertebra.tools.hil.procs import process_state, wait_for
from vertebra.tools.hil.results import Case
from vertebra.tools.hil.service_bench import EVENT_TIMEOUT_S, ServiceBench, rounded, run_step, stack_error

# The order the reactions run in. state_loss comes last, on the service restarted after the kill: its
# response is a controlled stop, and on a G1 hanging in its hoist the state estimator takes the legs
# folded by the settle as contact and puts the base at their height, so the next stand-up raises
# `fall`; a freshly started service has a fresh estimate.
RUN_ORDER = ("estop_api", "estop_remote", "policy_starvation", "runtime_kill", "state_loss")
REMOTE_BUTTONS = ("R1", "L1", "start", "select", "R2", "L2", "F1", "F2", "A", "B", "X", "Y", "up", "right", "down",
                  "left")  # unitree_sdk2's xKeySwitchUnion bits


def remote_combination(mask: int) -> str:
    return "+".join(n for b, n in enumerate(REMOTE_BUTTONS) if mask & (1 << b)) or "none"


def _is_estop_command(cmd: dict[str, np.ndarray], estop: str) -> bool:
    kp, kd = np.asarray(cmd["kp"]), np.asarray(cmd["kd"])
    if kp.size == 0 or not np.all(kp == 0.0):
        return False
    return bool(np.all(kd == 0.0)) if estop == "cut" else bool(np.all(kd > 0.0))


def _poll_bridge_estop(b: ServiceBench, t_send_ns: int, timeout_s: float = 2.0) -> float | None:
    """ms from the request until a poll of the bridge found the e-stop's command (None: never)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        b.ctx.check_stop()
        if _is_estop_command(b.bridge.last_command(), b.safety.estop):
            return (time.time_ns() - t_send_ns) / 1e6
        time.sleep(0.001)
    return None


def _ticks(ms: float, period_ms: float) -> int:
    return max(0, math.ceil(ms / period_ms - 1e-9))


def _estop_case(b: ServiceBench, name: str, since: int, t_send_ns: int | None, extra: dict[str, Any],
                sample_ticks: int = 0) -> Case:
    """The e-stop's event (tick, time) against the request, and the bridge's command. `sample_ticks`:
    ticks the request waits for the next lowstate sample (the remote's state rides in it)."""
    s = b.ctx.rig.safety
    ev = b.wait_event(since, lambda e: e.get("kind") == "mode" and e.get("to") == "ESTOP", "ESTOP mode change")
    measured: dict[str, Any] = {"estop_tick": int(ev["tick"]), "period_ms": rounded(b.period_ms), **extra}
    limit = s.estop_ticks_max + sample_ticks
    limits = {"estop_ticks_max": limit}
    if t_send_ns is None:  # a person pressed the combination: when is not known
        return Case("safety", name, "passed", f"the e-stop went to ESTOP at tick {ev['tick']} (cause "
                    f"{ev.get('cause')}); the time from the press is not observable on a real rig", measured, limits)
    ms = (int(ev["wall_ns"]) - t_send_ns) / 1e6
    ticks = _ticks(ms, b.period_ms)
    measured.update(reaction_ms=rounded(ms), reaction_ticks=ticks)
    damping_ms = measured.get("command_seen_ms")
    problems = []
    if ticks > limit:
        problems.append(f"ESTOP {ticks} ticks ({ms:.1f} ms) after the request, more than {limit}"
                        + (f" ({s.estop_ticks_max} + {sample_ticks} for the lowstate sample)" if sample_ticks else ""))
    if b.bridge is not None and damping_ms is None:
        problems.append(f"the bridge never received the e-stop's command ({b.safety.estop}: kp 0, "
                        f"kd {'0' if b.safety.estop == 'cut' else '> 0'})")
    seen = (f"; the bridge had the {b.safety.estop} command within {damping_ms:.1f} ms (polled)"
            if damping_ms is not None else "")
    msg = "; ".join(problems) if problems else \
        f"ESTOP at tick {ev['tick']}, {ms:.1f} ms = {ticks} ticks after the request{seen}"
    return Case("safety", name, "failed" if problems else "passed", msg, measured, limits)


# -- the reactions ------------------------------------------------------------------------------

def _estop_api(b: ServiceBench) -> Case:
    b.to_hold()
    if b.bridge is not None and not np.any(np.asarray(b.bridge.last_command()["kp"]) > 0):
        raise RuntimeError("the robot holds, but the bridge's newest command is not stiff (kp all 0)")
    since = b.mark()
    t_send = time.time_ns()
    b.op.request("estop")
    reply_ms = (time.time_ns() - t_send) / 1e6
    extra: dict[str, Any] = {"api_reply_ms": rounded(reply_ms)}
    if b.bridge is not None:
        extra["command_seen_ms"] = rounded(_poll_bridge_estop(b, t_send))
    note = next((e for e in b.events(since) if e.get("text") == "estop"), None)
    if note is not None:  # written by the service right after it handed the e-stop to the loop
        extra["service_handled_ms"] = rounded((int(note["wall_ns"]) - t_send) / 1e6)
    if b.bridge is None:
        extra["mode"] = b.status()["mode"]
    return _estop_case(b, "estop_api", since, t_send, extra)


def _estop_remote(b: ServiceBench) -> Case:
    mask = int(getattr(b.deploy.driver, "estop_buttons", 0) or 0)
    combo = remote_combination(mask)
    if mask == 0:
        return Case("safety", "estop_remote", "failed", "the driver's estop_buttons is 0: the remote has no e-stop "
                    "combination on this deploy config", {}, {"estop_buttons": 0})
    b.to_hold()
    since = b.mark()
    extra: dict[str, Any] = {"buttons": mask, "combination": combo}
    if b.bridge is None:
        b.ctx.ask(f"press {combo} on the robot's wireless remote (the e-stop combination), then let go")
        return _estop_case(b, "estop_remote", since, None, extra)
    t_call = time.time_ns()
    b.bridge.call("set_remote", buttons=mask)  # in the next lowstate samples, until released
    t_press = time.time_ns()  # the bridge has it (it answers after setting it): the press
    extra["bridge_call_ms"] = rounded((t_press - t_call) / 1e6)
    try:
        extra["command_seen_ms"] = rounded(_poll_bridge_estop(b, t_press))
        return _estop_case(b, "estop_remote", since, t_press, extra, sample_ticks=1)
    finally:
        b.bridge.call("set_remote", buttons=0)


def _state_loss(b: ServiceBench) -> Case:
    s = b.ctx.rig.safety
    timeout_ms = float(b.safety.state_timeout_ms)
    limit_ms = timeout_ms + s.state_loss_margin_ticks * b.period_ms
    limits = {"timeout_ms": timeout_ms, "state_loss_margin_ticks": s.state_loss_margin_ticks,
              "age_ms_max": rounded(limit_ms)}
    if not b.safety.state.enabled or not timeout_ms > 0:
        return Case("safety", "state_loss", "failed", f"the state-loss monitor is off in {b.deploy.safety_path}",
                    {}, limits)
    method = s.state_loss_method if b.bridge is not None else "operator"
    b.to_hold()
    since = b.mark()
    measured: dict[str, Any] = {"method": method, "period_ms": rounded(b.period_ms)}
    t_send = time.time_ns()
    if method == "bridge":
        b.bridge.drop_states(1 << 30)  # no lowstate until told otherwise
        try:
            ev = b.wait_event(since, lambda e: e.get("kind") == "fault" and e.get("fault") == "state_loss",
                              "state_loss fault", timeout_s=timeout_ms / 1000.0 + EVENT_TIMEOUT_S)
        finally:
            b.bridge.drop_states(0)
        measured["raised_after_request_ms"] = rounded((int(ev["wall_ns"]) - t_send) / 1e6)
    else:
        b.ctx.ask("pull the robot's network cable (lowstate stops)")
        try:
            ev = b.wait_event(since, lambda e: e.get("kind") == "fault" and e.get("fault") == "state_loss",
                              "state_loss fault")
        finally:
            b.ctx.ask("plug the network cable back in")
    age = float(ev["value"])
    measured.update(age_ms=rounded(age), age_ticks=_ticks(age, b.period_ms), tick=int(ev["tick"]),
                    response=ev.get("response"))
    mode = next((e for e in b.events(since) if e.get("kind") == "mode" and e.get("fault") == "state_loss"), None)
    if mode is not None:
        measured["mode_after"] = mode["to"]
    ok = age <= limit_ms + 1e-6
    msg = (f"state_loss raised with the newest sample {age:.1f} ms old ({'within' if ok else 'beyond'} "
           f"{timeout_ms:g} ms + {s.state_loss_margin_ticks} ticks = {limit_ms:.1f} ms); response {ev.get('response')}"
           + (f" -> {mode['to']}" if mode else ""))
    return Case("safety", "state_loss", "passed" if ok else "failed", msg, measured, limits)


def _policy_starvation(b: ServiceBench) -> Case:
    s = b.ctx.rig.safety
    hold_ms = float(b.safety.starvation_hold_ms)
    limit_ms = hold_ms + s.starvation_margin_ms
    limits = {"starvation_hold_ms": hold_ms, "starvation_margin_ms": s.starvation_margin_ms, "hold_ms_max": limit_ms}
    if not b.has_policy:
        return Case("safety", "policy_starvation", "skipped", f"the deploy config {b.ctx.rig.deploy} names no policy "
                    "server: there is no policy stream to starve", {}, limits)
    if not b.safety.policy.enabled or not hold_ms > 0:
        return Case("safety", "policy_starvation", "failed", f"the starvation monitor is off in {b.deploy.safety_path}",
                    {}, limits)
    if b.deploy.policy_remote is not None:
        return Case("safety", "policy_starvation", "skipped", "the policy server is remote (policy_remote): it is not "
                    "a process of this machine to stop", {}, limits)
    b.to_hold()
    instruction = b.ctx.rig.policy.instruction if b.ctx.rig.policy is not None else "hold still"
    b.op.call("episode_start", instruction=instruction, timeout_s=30.0)

    def running() -> dict[str, Any] | None:
        st = b.status()
        return st if st["safety_mode"] == "ACTIVE" and (st["policy"] or {}).get("steps", 0) >= 5 else None

    st = wait_for(running, 5.0, "the policy's chunks (ACTIVE)", b.ctx.stop)
    pid = b.services.policy_server_pid()
    if pid is None:
        raise RuntimeError("the service's policy server process was not found among its children")
    steps = int(st["policy"]["steps"])
    since = b.mark()
    t_stop = time.time_ns()
    os.kill(pid, signal.SIGSTOP)
    try:
        ev = b.wait_event(since, lambda e: e.get("kind") == "mode" and e.get("to") == "HOLD", "HOLD mode change",
                          timeout_s=limit_ms / 1000.0 + EVENT_TIMEOUT_S)
        stopped = process_state(pid) == "T"
    finally:
        os.kill(pid, signal.SIGCONT)
    ms = (int(ev["wall_ns"]) - t_stop) / 1e6
    fault = next((e for e in b.events(since) if e.get("kind") == "fault" and e.get("fault") == "starvation_hold"), None)
    measured: dict[str, Any] = {"hold_ms": rounded(ms), "hold_ticks": _ticks(ms, b.period_ms), "tick": int(ev["tick"]),
                                "cause": ev.get("cause"), "policy_steps_before": steps, "server_pid": pid}
    if fault is not None:  # the stream's silence when the monitor raised it; before it, the chunk in hand played on
        measured["stream_age_ms"] = rounded(float(fault["value"]))
        measured["played_after_stop_ms"] = rounded(ms - float(fault["value"]))
    problems = []
    # judged from the stream's end: the chunk already in hand plays out first (that is not starvation)
    silent_ms = float(fault["value"]) if fault is not None else ms
    if silent_ms > limit_ms:
        problems.append(f"HOLD {silent_ms:.1f} ms after the policy stream went silent, more than {hold_ms:g} + "
                        f"{s.starvation_margin_ms:g} ms")
    if ev.get("fault") != "starvation_hold":
        problems.append(f"HOLD came from {ev.get('cause')} {ev.get('fault') or ''}, not the starvation monitor")
    if not stopped:
        problems.append(f"the policy server (pid {pid}) was not stopped (state {process_state(pid) or 'gone'})")
    msg = "; ".join(problems) if problems else (
        f"HOLD {ms:.1f} ms after the policy server's SIGSTOP: the chunk in hand played "
        f"{measured.get('played_after_stop_ms')} ms, then the stream was silent {measured.get('stream_age_ms')} ms "
        "when starvation_hold was raised")
    return Case("safety", "policy_starvation", "failed" if problems else "passed", msg, measured, limits)


def _runtime_kill(b: ServiceBench) -> Case:
    from vertebra.safety.guard import guard_state

    s = b.ctx.rig.safety
    limits = {"takeover_ms_max": s.takeover_ms_max}
    if not b.guarded:
        return Case("safety", "runtime_kill", "failed", f"the deploy config {b.ctx.rig.deploy} runs without a guard "
                    "(guard.enabled false, or not a unitree_dds driver): nothing takes over a dead runtime", {}, limits)
    b.to_hold()
    g0 = guard_state(b.heartbeat) or {}
    takeovers = int(g0.get("takeovers", 0))
    if b.bridge is not None:
        b.bridge.command_stream(reset=True)
    pid = b.services.kill_service()
    t_kill = time.monotonic()
    b.ctx.log(f"safety: runtime_kill: SIGKILL of vertebra run (pid {pid})")

    def took_over() -> dict[str, Any] | None:
        g = guard_state(b.heartbeat) or {}
        return g if g.get("state") == "holding" and int(g.get("takeovers", 0)) > takeovers else None

    try:
        g = wait_for(took_over, 5.0, "the guard's takeover", b.ctx.stop)
    except TimeoutError:
        g = None
    time.sleep(max(0.0, 0.3 - (time.monotonic() - t_kill)))  # the guard's stream well under way
    measured: dict[str, Any] = {"runtime_pid": pid}
    stream = b.bridge.command_stream() if b.bridge is not None else None
    if stream is not None:
        measured.update(max_gap_ms=rounded(stream["max_gap_ms"]), commands_after_kill=int(stream["samples"]))
    t = (g or {}).get("last_takeover") or {}
    if t:
        measured.update(guard_takeover_ms=rounded(t.get("takeover_ms")), reason=t.get("reason"),
                        runtime_safety_mode=t.get("runtime_safety_mode"), settle=t.get("settle"))
    b.services.reap_killed()  # the killed service's policy server, as systemd would stop the unit's cgroup
    if g is None:
        state = (guard_state(b.heartbeat) or {}).get("state")
        return Case("safety", "runtime_kill", "failed", f"the guard did not take over within 5 s (state {state})",
                    measured, limits)
    # the guard settles a standing robot first (the safety config's poses), then damps it: acknowledged then
    settle = b.safety.settle
    settle_s = sum(k.duration_s for k in settle.keyframes) + settle.hold_s if t.get("settle") else 0.0
    damped = None
    if b.bridge is not None:
        def damping() -> bool:
            return _is_estop_command(b.bridge.last_command(), "damp")

        try:
            wait_for(damping, settle_s + 3.0, "the guard's damping", b.ctx.stop, 0.05)
            damped = round(time.monotonic() - t_kill, 2)
        except TimeoutError:
            pass
        measured["guard_damping_s"] = damped
    else:
        wait_for(lambda: time.monotonic() - t_kill > settle_s + 0.5, settle_s + 1.0, "the guard's settle", b.ctx.stop)
    acked = b.services.ack_guard()
    measured["acknowledged"] = acked
    measured["guard_after_ack"] = (guard_state(b.heartbeat) or {}).get("state")
    gap = measured.get("max_gap_ms") if stream is not None else measured.get("guard_takeover_ms")
    what = ("the command stream's largest gap at the robot" if stream is not None
            else "the guard's first command after the runtime's last")
    problems = []
    if gap is None:
        problems.append("no takeover time measured")
    elif gap > s.takeover_ms_max:
        problems.append(f"{what}: {gap:.1f} ms, more than {s.takeover_ms_max:g} ms")
    if b.bridge is not None and damped is None:
        problems.append(f"the guard's damping never reached the robot ({settle_s + 3.0:g} s after the kill)")
    if not acked:
        problems.append("`vertebra guard ack` did not release the guard")
    msg = "; ".join(problems) if problems else (
        f"the guard took over ({t.get('reason')}): {what} {gap:.1f} ms"
        + (f"; damping {damped:g} s after the kill" if damped is not None else "")
        + "; released by `vertebra guard ack`")
    return Case("safety", "runtime_kill", "failed" if problems else "passed", msg, measured, limits)


REACTIONS: dict[str, Callable[[ServiceBench], Case]] = {
    "estop_api": _estop_api, "estop_remote": _estop_remote, "state_loss": _state_loss,
    "policy_starvation": _policy_starvation, "runtime_kill": _runtime_kill,
}


def run_safety(ctx: ScenarioContext) -> list[Case]:
    """One case per reaction listed in ``ctx.rig.safety.reactions`` (module docstring)."""
    settings = ctx.rig.safety
    if settings is None:
        return [Case("safety", "config", "error", f"{ctx.rig.file}: no safety: section")]
    listed = list(dict.fromkeys(settings.reactions))
    cases: dict[str, Case] = {}
    bench = ServiceBench(ctx, "safety")
    try:
        try:
            bench.start()
        except Exception as e:  # noqa: BLE001 - every case says why
            return stack_error("safety", listed, e, ctx.stop.is_set())
        order = [r for r in RUN_ORDER if r in listed]
        broken = ""
        for i, name in enumerate(order):
            if ctx.stop.is_set():
                cases[name] = Case("safety", name, "skipped", "not run: stopped by the operator")
                continue
            if broken:
                cases[name] = Case("safety", name, "error", f"not run: {broken}")
                continue
            ctx.log(f"safety: {name}")
            cases[name] = run_step(ctx, "safety", name, lambda name=name: REACTIONS[name](bench))
            svc = bench.services.service
            if svc is not None and not svc.alive():
                broken = f"the service died (exit code {svc.proc.returncode}) during {name}"
            elif svc is None and i + 1 < len(order):  # killed: acknowledged, back for the reactions left
                try:
                    restart_s = bench.restart_service()
                    cases[name].measured["service_restart_s"] = restart_s
                    ctx.log(f"safety: the service is back ({restart_s:g} s after the acknowledgement)")
                except HilStopped:
                    pass
                except Exception as e:  # noqa: BLE001 - the reactions left say why
                    broken = f"the service did not come back after the kill: {type(e).__name__}: {e}"
            if broken:
                ctx.log(f"safety: {broken}; the reactions left cannot run")
    finally:
        bench.close()
    return [cases[n] for n in listed]

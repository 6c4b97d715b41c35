"""`vertebra guard [run|status|ack] --config <deploy>`: the guard process (vertebra.safety.guard), its
state, and the operator's acknowledgement that releases a hold."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _load(args: argparse.Namespace) -> Any:
    from vertebra.runtime.deploy import DeployConfig

    return DeployConfig.load(args.config)


def _say_event(e: dict[str, Any]) -> None:
    kind = e.get("event")
    if kind == "ready":
        text = (f"watching {e['heartbeat']} (DDS domain {e['domain_id']}; timeout {e['timeout_ms']:g} ms, damping at "
                f"{e['rate_hz']:g} Hz, settle {'on' if e['settle'] else 'off'}; SCHED_FIFO "
                f"{'granted' if e['sched_fifo'] else 'not granted: ' + e['notes']})")
    elif kind == "takeover":
        text = (f"TAKEOVER ({e['reason']}): runtime pid {e['runtime_pid']} in {e['runtime_safety_mode']}; first "
                f"guard command {e['takeover_ms']} ms after its last; "
                f"{'settle-then-cut, then damping' if e['settle'] else 'damping'} until `vertebra guard ack`")
    elif kind == "armed":
        text = f"armed on runtime pid {e['runtime_pid']} ({'pidfd' if e['pidfd'] else 'polling its pid'})"
    elif kind == "released":
        text = f"released by the operator's acknowledgement ({e['commands']} commands published); watching"
    else:
        text = ", ".join(f"{k}={v}" for k, v in e.items())
    print(f"vertebra guard: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.safety.guard import GuardError, check_guardable, run_guard

    try:
        d = _load(args)
        check_guardable(d)
    except (VertebraError, ValueError) as e:
        print(f"vertebra guard: {e}", file=sys.stderr)
        return 2

    def on_event(e: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(e), flush=True)
        if not args.quiet:
            _say_event(e)

    try:
        return run_guard(d, on_event)
    except (GuardError, VertebraError, RuntimeError, ValueError) as e:
        print(f"vertebra guard: {e}", file=sys.stderr)
        return 1


def status(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.safety.guard import guard_state

    try:
        d = _load(args)
        g = guard_state(d.heartbeat_name)
    except (VertebraError, ValueError) as e:
        print(f"vertebra guard status: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"heartbeat": d.heartbeat_name, "guard": g}))
        return 0
    if g is None:
        print(f"no heartbeat /dev/shm/{d.heartbeat_name}: neither the guard nor a runtime has run")
        return 0
    r = g["runtime"]
    print(f"guard: {g['state']}" + (f" (pid {g['guard_pid']}{', armed' if g['armed'] else ''})" if g["guard_alive"]
                                    else " (no guard runs)"))
    age = r["heartbeat_age_ms"]
    print(f"runtime: " + (f"pid {r['pid']} {'alive' if r['alive'] else 'gone'}, tick {r['tick']}, "
                          f"{r['safety_mode']}, heartbeat {age:.1f} ms old" if r["pid"] and age is not None
                          else "none attached"))
    t = g["last_takeover"]
    print(f"takeovers: {g['takeovers']}" + (f"; last: {t['reason']} of pid {t['runtime_pid']} in "
                                            f"{t['runtime_safety_mode']}, first command after {t['takeover_ms']} ms"
                                            if t else ""))
    return 0


def ack(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.safety.guard import acknowledge, guard_state

    try:
        d = _load(args)
        before = guard_state(d.heartbeat_name)
        ok = acknowledge(d.heartbeat_name, args.timeout)
    except (VertebraError, ValueError) as e:
        print(f"vertebra guard ack: {e}", file=sys.stderr)
        return 2
    held = before is not None and before["state"] == "holding"
    if args.json:
        print(json.dumps({"acknowledged": ok, "was_holding": held}))
    elif ok:
        print("acknowledged: " + ("the guard released the robot and watches again" if held
                                  else "the guard was not holding; it watches"))
    else:
        print("not acknowledged: " + ("no guard runs" if before is None or not before["guard_alive"]
                                      else f"no answer within {args.timeout:g} s"), file=sys.stderr)
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = subparsers.add_parser(
        "guard", help="the guard: takes the robot over with damping when the runtime dies",
        description="An independent process (its own systemd unit) that watches the runtime's heartbeat (shared "
                    "memory, written every tick) and process. When the heartbeat stops for longer than "
                    "guard.timeout_ms, or the process ends, it publishes damping LowCmd_ on rt/lowcmd (valid CRC) at "
                    "guard.rate_hz -- after the settle-then-cut poses when the robot was standing -- until an operator "
                    "acknowledges (`vertebra guard ack`). `status` shows its state; runs until SIGTERM or Ctrl-C.")
    g.add_argument("action", nargs="?", choices=("run", "status", "ack"), default="run",
                   help="run (default): the guard process; status: its state; ack: the operator's acknowledgement")
    g.add_argument("--config", required=True, help="deploy config: a name in configs/deploy/ or a YAML path")
    g.add_argument("--json", action="store_true", help="JSON: one object per event (run) or one object")
    g.add_argument("--quiet", action="store_true", help="run: no event lines on stderr")
    g.add_argument("--timeout", type=float, default=5.0, help="ack: seconds to wait for the guard's answer (default 5)")
    g.set_defaults(func=lambda a: {"run": run, "status": status, "ack": ack}[a.action](a))

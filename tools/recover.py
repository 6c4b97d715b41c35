"""`vertebra recover`: guided recovery of a robot after a fault, an e-stop or a dead runtime.

The procedure (each step printed; with a TTY and without ``--yes`` each move is confirmed):
1. The guard: if it holds the robot (the runtime died), say so — acknowledging it lets a restarted
   service take the bus (``--ack-guard`` does it here).
2. The faults: every latched fault with its cause (joint, value, response) and whether its
   condition is still present. A reset is refused while one is (the supervisor refuses it too):
   the tool says what to fix and stops.
3. A fallen robot (tilt beyond ``FALLEN_TILT_DEG`` or a latched fall) is damped and the operator
   is told to hoist it: standing up from the floor is not something to do by software alone.
4. Otherwise: reset (ESTOP/FAULT -> DAMP), then stand up from the damped/settle pose (STANDUP to
   the default pose) -> HOLD, and give the lease back with the robot holding.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

FALLEN_TILT_DEG = 45.0
STAND_TIMEOUT_S = 15.0


class RecoveryStopped(Exception):
    """The procedure stopped: `code` is the exit code, the message what the operator must do."""

    def __init__(self, message: str, code: int = 1):
        self.code = code
        super().__init__(message)


def describe_fault(f: dict[str, Any]) -> str:
    cause = []
    if f.get("joint", -1) not in (-1, None):
        cause.append(f"joint {f['joint']}")
    if "value" in f:
        cause.append(f"value {f['value']}")
    if f.get("response"):
        cause.append(f"response {f['response']}")
    state = "STILL PRESENT" if f.get("present") else "cleared"
    return f"{f['fault']}: {state}" + (f" ({', '.join(cause)})" if cause else "")


def recover(c: Any, say: Callable[[str], None], confirm: Callable[[str], bool], deploy: Any = None,
            ack_guard: bool = False) -> dict[str, Any]:
    """Run the procedure against a ControlClient `c` that already holds the lease."""
    s = c.request("status")
    say(f"robot {s['robot']} ({s['deploy']}): {s['safety_mode']} ({s['mode']})")
    g = s.get("guard")
    if g and g.get("state") == "holding":
        raise RecoveryStopped("the guard holds the robot damped: acknowledge it (`vertebra guard ack`) once the "
                              "runtime is back")
    faults = s.get("faults", [])
    for f in faults:
        say("  fault " + describe_fault(f))
    present = [f["fault"] for f in faults if f.get("present") and f.get("latched")]
    if present:
        raise RecoveryStopped(f"cannot reset: {', '.join(present)} still present; fix the cause first (vertebra "
                              "status shows it live), then run vertebra recover again")
    tilt = float(s.get("base", {}).get("tilt_deg", 0.0))
    fallen = tilt > FALLEN_TILT_DEG or any(f["fault"] == "fall" and f.get("latched") for f in faults)
    if s["safety_mode"] in ("ESTOP", "FAULT"):
        if not confirm(f"reset {s['safety_mode']} (the robot goes to DAMP)?"):
            raise RecoveryStopped("stopped by the operator", 3)
        c.call("estop_release" if s["safety_mode"] == "ESTOP" else "reset_faults")
        say("reset: the robot is damped")
    if fallen:
        if c.request("status")["safety_mode"] != "DAMP":
            c.call("damp")
        raise RecoveryStopped(f"the robot has fallen (tilt {tilt:.0f} deg): it is damped; hoist it (feet off the "
                              "ground), then run vertebra recover again", 1)
    s = c.request("status")
    if s["safety_mode"] in ("HOLD", "ACTIVE"):
        say(f"the robot is standing ({s['safety_mode']}); nothing to recover")
        return {"safety_mode": s["safety_mode"], "recovered": True}
    if s["safety_mode"] == "PASSIVE":
        c.call("damp")
    if not confirm("stand the robot up (STANDUP to the default pose, then HOLD)?"):
        raise RecoveryStopped("stopped by the operator; the robot stays damped", 3)
    c.call("enable")
    c.call("stand")
    say("standing up ...")
    end = time.monotonic() + STAND_TIMEOUT_S
    while time.monotonic() < end:
        s = c.request("status")
        job = s.get("job") or {}
        if s["safety_mode"] == "HOLD":
            say("the robot holds its pose (HOLD)")
            return {"safety_mode": "HOLD", "recovered": True}
        if job.get("state") == "failed":
            raise RecoveryStopped(f"the stand-up failed: {job.get('error')}")
        if s["safety_mode"] not in ("STANDUP", "DAMP"):
            raise RecoveryStopped(f"the stand-up ended in {s['safety_mode']} "
                                  f"({', '.join(f['fault'] for f in s['faults']) or 'no fault'})")
        time.sleep(0.1)
    raise RecoveryStopped(f"the robot did not reach HOLD within {STAND_TIMEOUT_S:g} s")


def tty_confirm(assume_yes: bool) -> Callable[[str], bool]:
    def ask(question: str) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise RecoveryStopped("no terminal to confirm on: run with --yes to proceed without questions", 2)
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    return ask

"""`vertebra bench guard`: the guard's takeover when the runtime is SIGKILLed while the G1 stands.

Per kill, on one machine over loopback DDS:

    a real-time sim bridge (BridgeProcess: the robot, its hoist and truth)
    the guard process (`vertebra guard --config <deploy>`), started once per phase
    a runtime child process (real time, unitree_dds driver, heartbeat), which stands the robot up
        (limp in the hoist -> interpolate to the default pose -> hold -> lower the hoist until the
        feet carry it -> release) -> SIGKILL

and it reports the takeover latency two ways: at the guard (the heartbeat's timestamps: the first
guard rt/lowcmd write minus the runtime's last driver write, both CLOCK_MONOTONIC) and as the robot
sees it (the bridge's largest gap between consecutive valid rt/lowcmd samples across the kill),
with the robot's peak downward base velocity and height drop after the kill (bridge truth), for a
guard that settles first (guard.settle) and one that damps at once. Then it acknowledges and
restarts the bridge for the next kill.

The runtime child (``python -m vertebra.runtime.benchmarks.guard --child <deploy.yaml>``) is also
what tests/safety/test_guard.py kills: :class:`RuntimeChild` speaks its JSON-lines protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GOALS_MS = {"goal": 50.0, "moonshot": 10.0}


# -- deploy configs ---------------------------------------------------------------------------------

def write_deploy(folder: str | os.PathLike[str], name: str, *, robot: str = "g1", domain_id: int,
                 heartbeat: str, timeout_ms: float = 20.0, settle: bool = True, rate_hz: float = 500.0,
                 safety: str | None = None, realtime_priority: bool = True) -> Path:
    """A deploy config for a real-time runtime on the sim bridge (unitree_dds over loopback) with a guard."""
    import yaml

    body: dict[str, Any] = {
        "robot": robot,
        "driver": {"type": "unitree_dds", "network_interface": "lo", "domain_id": int(domain_id), "lockstep": False,
                   "state_timeout_s": 30.0},
        "controller": "pd",
        "loop": {"lockstep": False, "realtime_priority": realtime_priority},
        "guard": {"enabled": True, "heartbeat": heartbeat, "timeout_ms": float(timeout_ms), "rate_hz": float(rate_hz),
                  "settle": bool(settle)},
    }
    if safety is not None:
        body["safety"] = safety
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


# -- the runtime child ------------------------------------------------------------------------------

def child_main(deploy: str) -> int:
    """The runtime child: Runtime.from_deploy(deploy) (real time, heartbeat), then JSON-lines ops on
    stdin: arm {duration_s} (enable, interpolate to the default pose, hold), status, quit."""
    from vertebra import _rt
    from vertebra.runtime.runtime import Runtime

    out = sys.stdout
    try:
        rt = Runtime.from_deploy(deploy)
    except Exception as e:  # noqa: BLE001 -- reported to the parent, which decides
        out.write(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        out.flush()
        return 3
    out.write(json.dumps({"ready": True, "pid": os.getpid(),
                          "heartbeat": rt.heartbeat.name if rt.heartbeat is not None else None}) + "\n")
    out.flush()

    def status() -> dict[str, Any]:
        s = rt.loop.snapshot()
        c = rt.driver.counters()
        stats = rt.loop.stats()
        return {"ok": True, "tick": int(s["tick"]), "safety_mode": s["safety_mode"], "faults": list(s["faults"]),
                "lowcmd_conflict": bool(c["lowcmd_conflict"]), "lowcmd_writers": int(c["lowcmd_writers"]),
                "state_lowcmd_conflict": bool(s["state"]["lowcmd_conflict"]), "commands": int(c["commands"]),
                "overruns": int(stats["overruns"]), "lateness_max_us": round(float(stats["lateness_us"]["max"]), 1),
                "compute_max_us": round(float(stats["compute_us"]["max"]), 1)}

    try:
        for line in sys.stdin:
            req = json.loads(line)
            op = req.get("op")
            try:
                if op == "arm":
                    d = float(req.get("duration_s", 1.0))
                    rt.enable()
                    rt.request(_rt.Mode.INTERPOLATE, d, rt.default_pose)
                    rt.wait(d + 0.2)
                    rt.request(_rt.Mode.HOLD)
                    reply = status()
                elif op == "status":
                    reply = status()
                elif op == "quit":
                    out.write(json.dumps({"ok": True}) + "\n")
                    out.flush()
                    break
                else:
                    reply = {"ok": False, "error": f"unknown op {op!r}; ops are: arm, status, quit"}
            except Exception as e:  # noqa: BLE001
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        rt.close()
    return 0


class RuntimeChild:
    """A runtime in a child process (to be killed): built from `deploy`; ``ready`` False with ``error``
    when the runtime refused to build (e.g. the guard holds the robot)."""

    def __init__(self, deploy: str | os.PathLike[str], start_timeout_s: float = 60.0):
        self.proc = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.benchmarks.guard", "--child", str(deploy)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.pid = self.proc.pid
        first = self._line(start_timeout_s)
        self.ready = bool(first.get("ready"))
        self.error = first.get("error")

    def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not r:
            raise RuntimeError(f"the runtime child (pid {self.pid}) did not answer within {timeout_s:g} s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            return {"ready": False, "ok": False, "error": f"exited (code {self.proc.wait()}): {err.strip()[-1500:]}"}
        return dict(json.loads(line))

    def call(self, op: str, timeout_s: float = 30.0, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        reply = self._line(timeout_s)
        if not reply.get("ok"):
            raise RuntimeError(f"runtime child: {op}: {reply.get('error')}")
        return reply

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout_s=10.0)
                self.proc.wait(timeout=10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        else:
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


class GuardProcess:
    """`vertebra guard --config <deploy> --json` as a child process; ``events`` collects its lines.
    `env`: extra environment (``NOTIFY_SOCKET`` for a test's sd_notify listener)."""

    def __init__(self, deploy: str | os.PathLike[str], start_timeout_s: float = 60.0,
                 env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "guard", "--config", str(deploy),
                                      "--json", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})})
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        end = time.monotonic() + start_timeout_s
        while not any(e.get("event") == "ready" for e in self.events):
            if time.monotonic() > end or self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.poll() is not None and self.proc.stderr else ""
                raise RuntimeError(f"the guard did not start: {err.strip()[-1500:]}")
            self.pump(0.1)

    def pump(self, timeout_s: float = 0.0) -> None:
        """Collect the event lines printed so far."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()  # raw reads: a buffered reader would hide lines from select()
        while True:
            r, _, _ = select.select([fd], [], [], timeout_s)
            if not r:
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\n")
            self.events.extend(json.loads(x) for x in lines if x.strip())
            timeout_s = 0.0

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pump(0.0)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return int(self.proc.returncode)


def wait_until(pred: Callable[[], Any], what: str, timeout_s: float = 20.0, poll_s: float = 0.005) -> Any:
    """Poll `pred` until it returns something truthy (bounded; not a timing measurement)."""
    end = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(poll_s)


# -- the benchmark ----------------------------------------------------------------------------------

def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "max": round(float(a.max()), 3), "min": round(float(a.min()), 3), "mean": round(float(a.mean()), 3)}


def _stand(bridge: Any, child: RuntimeChild, standing_m: float, anchor_z: float, lower_speed: float) -> None:
    child.call("arm", duration_s=2.0, timeout_s=30.0)
    target = standing_m - 0.10  # below standing: the rope goes slack on the way down
    bridge.hoist_lower_to(target, lower_speed)
    time.sleep((anchor_z - target) / lower_speed + 0.4)
    bridge.hoist_release()
    time.sleep(1.0)


def _one_kill(k: int, deploy: Path, name: str, domain: int, settle_s: float, after_s: float,
              lower_speed: float, say: Callable[[str], None]) -> dict[str, Any]:
    from vertebra.drivers.bridge_process import BridgeProcess
    from vertebra.safety.guard import acknowledge, guard_state

    bridge = BridgeProcess("g1", domain_id=domain, lockstep=False)
    child: RuntimeChild | None = None
    try:
        info = bridge.call("info")
        standing, anchor = float(info["standing_height_m"]), float(info["hoist_anchor_z"])
        child = RuntimeChild(deploy)
        if not child.ready:
            raise RuntimeError(f"the runtime did not start: {child.error}")
        wait_until(lambda: (guard_state(name) or {}).get("armed"), "the guard arming on the runtime")
        _stand(bridge, child, standing, anchor, lower_speed)
        before = bridge.base_truth()
        z0 = float(before["base_pos"][2])
        g0 = guard_state(name) or {}
        st = child.call("status")
        result: dict[str, Any] = {"kill": k, "standing_height_m": round(z0, 4), "runtime_mode": st["safety_mode"],
                                  "runtime_faults": st["faults"]}
        result.update({k: st[k] for k in ("overruns", "lateness_max_us", "compute_max_us")})
        if g0.get("state") != "watching" or not g0.get("armed") or st["safety_mode"] != "HOLD" or z0 < standing - 0.08:
            result["skipped"] = (f"not standing armed before the kill (guard {g0.get('state')}, armed {g0.get('armed')}, "
                                 f"runtime {st['safety_mode']} {st['faults']}, base at {z0:.3f} m)")
            if g0.get("state") == "holding":  # the guard took over a live runtime: a late heartbeat
                t = g0.get("last_takeover") or {}
                result["early_takeover"] = {"reason": t.get("reason"), "detect_ms": t.get("detect_ms"),
                                            "runtime_safety_mode": t.get("runtime_safety_mode")}
                acknowledge(name, 5.0)
            return result
        takeovers0 = int(g0["takeovers"])
        bridge.command_stream(reset=True)
        child.kill(signal.SIGKILL)
        t_kill = time.monotonic()
        zs, vzs = [z0], [float(before["base_lin_vel"][2])]
        end = t_kill + settle_s + after_s
        # The takeover as the robot sees it: the command stream read once, 20 ms after the guard's
        # first write (its largest gap is then the kill's, not a later one of the hold's).
        early: dict[str, Any] | None = None
        first_write_ns = 0
        from vertebra import _rt

        while time.monotonic() < end:
            t = bridge.base_truth()
            zs.append(float(t["base_pos"][2]))
            vzs.append(float(t["base_lin_vel"][2]))
            if early is None:
                if not first_write_ns:
                    s = guard_state(name) or {}
                    if int(s.get("takeovers", 0)) > takeovers0:
                        first_write_ns = int((s.get("last_takeover") or {}).get("guard_first_write_ns") or 0)
                if first_write_ns and _rt.heartbeat_clock_ns() > first_write_ns + 20_000_000:
                    early = bridge.command_stream()
            time.sleep(0.004)
        g = wait_until(lambda: (s := guard_state(name)) and int(s["takeovers"]) > takeovers0 and s, "the takeover", 5.0)
        stream = bridge.command_stream()
        last = bridge.last_command()
        t = g["last_takeover"]
        result.update({
            "reason": t["reason"], "settle": bool(t["settle"]),
            "takeover_ms_guard": round(float(t["takeover_ms"]), 3) if t["takeover_ms"] is not None else None,
            "detect_ms_guard": round(float(t["detect_ms"]), 3) if t["detect_ms"] is not None else None,
            "takeover_gap_ms_robot": round(float(early["max_gap_ms"]), 3) if early else None,
            "takeover_gap_end_after_first_write_ms": (
                round((int(early["max_gap_end_ns"]) - first_write_ns) * 1e-6, 3) if early and first_write_ns else None),
            "command_gap_ms_robot": round(float(stream["max_gap_ms"]), 3),
            # Where the largest gap ended, from the guard's first write (both CLOCK_MONOTONIC): about 0
            # when the gap is the takeover itself, larger when it came later, while the guard held.
            "gap_end_after_first_write_ms": (round((int(stream["max_gap_end_ns"]) - int(t["guard_first_write_ns"])) * 1e-6, 3)
                                             if stream.get("max_gap_end_ns") and t.get("guard_first_write_ns") else None),
            "commands_after_kill": int(stream["samples"]),
            "last_command_kp_max": round(float(np.max(last["kp"])), 3),
            "peak_down_velocity_m_s": round(max(0.0, -min(vzs)), 3),
            "height_drop_m": round(z0 - min(zs), 4),
            "final_height_m": round(zs[-1], 4),
        })
        ok = acknowledge(name, 5.0)
        result["acknowledged"] = bool(ok)
        if not ok:
            raise RuntimeError(f"kill {k}: the guard did not answer the acknowledgement: {guard_state(name)}")
        say(f"  kill {k}: {result['reason']}, guard {result['takeover_ms_guard']} ms, robot takeover gap "
            f"{result['takeover_gap_ms_robot']} ms (ending {result['takeover_gap_end_after_first_write_ms']} ms after "
            f"the guard's first write), robot gap over the hold "
            f"{result['command_gap_ms_robot']} ms (ending {result['gap_end_after_first_write_ms']} ms after the guard's first "
            f"write), peak sink {result['peak_down_velocity_m_s']} m/s, "
            f"drop {result['height_drop_m']} m")
        return result
    finally:
        if child is not None:
            child.close()
        bridge.close()


def _run_phases(phases: dict[str, Any], kills: int, no_settle_kills: int, dom: int, name: str, timeout_ms: float,
                lower_speed_m_s: float, say: Callable[[str], None]) -> None:
    from vertebra.runtime.deploy import DeployConfig
    from vertebra.safety.guard import acknowledge

    with tempfile.TemporaryDirectory(prefix="vertebra-bench-guard-") as tmp:
        for phase, settle, n in (("settle", True, kills), ("no_settle", False, no_settle_kills)):
            if n <= 0:
                continue
            deploy = write_deploy(tmp, f"g1_guard_{phase}", domain_id=dom, heartbeat=name, timeout_ms=timeout_ms,
                                  settle=settle)
            d = DeployConfig.load(deploy)
            settle_s = sum(k.duration_s for k in d.safety_settings().settle.keyframes) + \
                d.safety_settings().settle.hold_s if settle else 0.0
            say(f"[guard bench] phase {phase}: guard settle {'on' if settle else 'off'}, {n} kills (domain {dom})")
            guard = GuardProcess(deploy)
            rows: list[dict[str, Any]] = []
            try:
                k = 0
                attempts = 0
                while k < n and attempts < n + 5:
                    attempts += 1
                    try:
                        r = _one_kill(k + 1, deploy, name, dom, settle_s, 1.5, lower_speed_m_s, say)
                    except RuntimeError as e:  # a runtime that did not start or stand: counted, retried
                        r = {"kill": k + 1, "skipped": str(e)}
                        acknowledge(name, 5.0)
                    guard.pump()
                    if "skipped" in r:
                        say(f"  kill {k + 1}: skipped ({r['skipped']}); retrying")
                        rows.append(r)
                        continue
                    rows.append(r)
                    k += 1
            finally:
                guard.pump()
                guard.close()
            done = [r for r in rows if "skipped" not in r]
            phases[phase] = {
                "kills": len(done), "skipped": len(rows) - len(done),
                "early_takeovers": [r["early_takeover"] for r in rows if "early_takeover" in r],
                "takeover_ms_guard": _stats([r["takeover_ms_guard"] for r in done if r["takeover_ms_guard"] is not None]),
                "detect_ms_guard": _stats([r["detect_ms_guard"] for r in done if r["detect_ms_guard"] is not None]),
                "command_gap_ms_robot": _stats([r["command_gap_ms_robot"] for r in done]),
                "takeover_gap_ms_robot": _stats([r["takeover_gap_ms_robot"] for r in done
                                                 if r.get("takeover_gap_ms_robot") is not None]),
                "peak_down_velocity_m_s": _stats([r["peak_down_velocity_m_s"] for r in done]),
                "height_drop_m": _stats([r["height_drop_m"] for r in done]),
                "reasons": sorted({r["reason"] for r in done}),
                "all_acknowledged": all(r["acknowledged"] for r in done),
                "guard_events": [e for e in guard.events if e.get("event") in ("ready", "stopped")],
                "rows": rows,
            }


def bench_guard(robot: str = "g1", kills: int = 20, no_settle_kills: int = 5, domain: int | None = None,
                timeout_ms: float = 20.0, progress: Callable[[str], None] | None = None,
                lower_speed_m_s: float = 0.15) -> dict[str, Any]:
    """SIGKILL the runtime `kills` times with a settling guard and `no_settle_kills` times with one
    that damps at once; takeover latency (guard and robot side), sink velocity and height drop."""
    if robot != "g1":
        raise ValueError(f"robot: found {robot!r}; valid: g1 (the standing-robot procedure is the G1's)")
    say = progress or (lambda _m: None)
    dom = domain if domain is not None else 220 + os.getpid() % 13
    name = f"vertebra-bench-guard-{os.getpid()}"
    phases: dict[str, Any] = {}
    try:
        _run_phases(phases, kills, no_settle_kills, dom, name, timeout_ms, lower_speed_m_s, say)
    finally:
        from vertebra import _rt

        _rt.Heartbeat.unlink(name)  # this run's segment (the runtime children and the guard are gone)
    every = [r for p in phases.values() for r in p["rows"] if "skipped" not in r]
    guard_ms = [r["takeover_ms_guard"] for r in every if r["takeover_ms_guard"] is not None]
    hold_ms = [r["command_gap_ms_robot"] for r in every]
    # The goal is the takeover as the motors see it: the gap across the kill (last runtime frame ->
    # first guard frame). The largest gap over the whole hold is reported too (the guard's stream).
    robot_ms = [r["takeover_gap_ms_robot"] for r in every if r.get("takeover_gap_ms_robot") is not None]
    out = {
        "robot": robot, "domain": dom, "timeout_ms": timeout_ms, "kills": len(every),
        "takeover_ms_guard": _stats(guard_ms), "command_gap_ms_robot": _stats(hold_ms),
        "takeover_gap_ms_robot": _stats(robot_ms),
        "phases": phases,
        "writer": "created at the guard's start (user_data names it; silent until a takeover)",
        "goals": {
            "p50_le_50ms_robot": bool(robot_ms) and float(np.percentile(robot_ms, 50)) <= GOALS_MS["goal"],
            "max_le_50ms_robot": bool(robot_ms) and max(robot_ms) <= GOALS_MS["goal"],
            "max_le_10ms_robot_moonshot": bool(robot_ms) and max(robot_ms) <= GOALS_MS["moonshot"],
            "max_le_10ms_guard_moonshot": bool(guard_ms) and max(guard_ms) <= GOALS_MS["moonshot"],
            "hold_max_le_50ms_robot": bool(hold_ms) and max(hold_ms) <= GOALS_MS["goal"],
        },
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vertebra.runtime.benchmarks.guard")
    p.add_argument("--child", metavar="DEPLOY", help="run as the runtime child of this deploy config")
    a = p.parse_args(argv)
    if a.child:
        return child_main(a.child)
    print(json.dumps(bench_guard(progress=lambda m: print(m, file=sys.stderr, flush=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

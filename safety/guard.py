"""The guard: the last line when the runtime itself dies (``vertebra guard --config <deploy>``).

An independent process (its own systemd unit) that watches the heartbeat the runtime's real-time
thread writes into shared memory every tick (``/dev/shm/<deploy.heartbeat_name>``, layout in
cpp/safety/heartbeat.hpp) and the runtime's process (a pidfd). When the process ends, or its
heartbeat is older than ``guard.timeout_ms`` while it lives (a frozen runtime), the guard takes the
robot's command channel over: damping ``LowCmd_`` on ``rt/lowcmd`` (kp 0, kd the robot's
``kd_damping``, valid CRC) at ``guard.rate_hz`` -- after the safety config's settle-then-cut poses
when the last heartbeat showed the robot standing and ``guard.settle`` is set -- and keeps it damped
until an operator acknowledges (``vertebra guard ack``). The C++ side is
``cpp/drivers/unitree/dds_guard.hpp``; this module builds it from a deploy config and runs it.

The guard's ``rt/lowcmd`` writer exists from its start (so a takeover needs no DDS discovery),
silent while it watches, its QoS user_data ``vertebra-guard/1 <heartbeat name>``: the ``unitree_dds``
driver does not count it as another controller. While the guard holds, a restarted runtime does not
take the robot: the driver's activation opens the heartbeat that user_data names and refuses, and a
running runtime's tick reads the segment's holding state as ``lowcmd_conflict`` and withholds its
writes. The service waits first: ``guard_state(name)["state"] == "holding"`` means "wait for the ack".

Functions for the service and tools::

    guard_state(name) -> dict | None      # None: no segment (no guard and no runtime ever ran)
    acknowledge(name, timeout_s) -> bool  # the operator's acknowledgement; True once the guard answered

Only a robot driver is guarded: an in-process simulator dies with its runtime, and a lockstep loop
has no steady heartbeat.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertebra import _rt
from vertebra.runtime.errors import VertebraError

__all__ = ["Guard", "GuardError", "acknowledge", "guard_state", "run_guard"]

GUARDED_DRIVERS = ("unitree_dds",)


class GuardError(VertebraError):
    """The guard cannot run for this deploy config, or cannot reach its heartbeat."""


def check_guardable(d: Any) -> None:
    """Raise :class:`GuardError` when the deploy config `d` has nothing a guard can guard."""
    name = getattr(d.driver, "driver_name", type(d.driver).__name__)
    if name not in GUARDED_DRIVERS:
        raise GuardError(
            f"{d.file}: driver '{name}': the guard watches a robot driver ({', '.join(GUARDED_DRIVERS)}) and takes "
            "its command channel over when the runtime dies; an in-process simulator dies with its runtime, so there "
            "is nothing to guard. Valid: a deploy config with driver type unitree_dds (a robot, or `vertebra "
            "sim-bridge`), or guard.enabled: false")
    if not d.guard.enabled:
        raise GuardError(f"{d.file}: guard.enabled is false: this deploy runs without a guard; valid: guard.enabled: "
                         "true to guard it")
    if d.loop.lockstep or getattr(d.driver, "lockstep", False):
        raise GuardError(f"{d.file}: the loop (or the driver) runs in lockstep: it ticks only when asked, so there is "
                         "no steady heartbeat to watch; valid: a real-time deploy (loop.lockstep: false, driver "
                         "lockstep: false)")


def guard_options(d: Any) -> Any:
    """The C++ ``GuardOptions`` for the deploy config `d` (checked with :func:`check_guardable`)."""
    check_guardable(d)
    robot = d.robot_config()
    drv = d.driver
    o = _rt.GuardOptions()
    o.messages = drv.messages or drv.default_messages(robot)
    o.domain_id = drv.domain_id
    o.network_interface = drv.network_interface
    o.lowcmd_topic, o.lowstate_topic = drv.lowcmd_topic, drv.lowstate_topic
    o.motors = [j.motor_index for j in robot.joints]
    o.mode_pr = int(drv.mode_pr)
    o.heartbeat = d.heartbeat_name
    o.timeout_ms = float(d.guard.timeout_ms)
    o.idle_timeout_ms = float(d.guard.idle_timeout_ms or 0.0)
    o.rate_hz = float(d.guard.rate_hz)
    o.settle = bool(d.guard.settle)
    o.realtime_priority = bool(d.loop.realtime_priority)
    return o


class Guard:
    """The C++ guard for one deploy config: joins the robot's DDS domain and opens the heartbeat on
    construction (so configuration errors surface here), watches after :meth:`start`."""

    def __init__(self, deploy: Any):
        from vertebra.runtime.config import robot_params
        from vertebra.runtime.deploy import DeployConfig

        d = deploy if isinstance(deploy, DeployConfig) else DeployConfig.load(deploy)
        self.deploy = d
        self.options = guard_options(d)
        robot = d.robot_config()
        safety = d.safety_settings(robot).to_cpp(robot)
        try:
            self.guard = _rt.DdsGuard(self.options, robot_params(robot), safety)
        except (RuntimeError, ValueError) as e:
            raise GuardError(f"{d.file}: {e}") from None
        self.name = d.heartbeat_name

    def start(self) -> Guard:
        self.guard.start()
        return self

    def stop(self) -> None:
        self.guard.stop()

    def status(self) -> dict[str, Any]:
        """The guard's own status (state, phase, counters) with the segment's view (``segment``)."""
        s = dict(self.guard.status())
        s["segment"] = self.guard.heartbeat.read()
        return s

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- what the service and the tools call -----------------------------------------------------------

def _segment(name: str) -> Any | None:
    try:
        if not _rt.Heartbeat.exists(name):
            return None
        return _rt.Heartbeat(name, False)
    except (RuntimeError, ValueError) as e:
        raise GuardError(str(e)) from None


def guard_state(name: str) -> dict[str, Any] | None:
    """The guard's side of heartbeat `name` (``/dev/shm/<name>``), None when there is no segment.

    Keys: ``state`` ('watching' | 'holding' | 'off': 'off' also when the segment names a guard that no
    longer runs or is frozen), ``guard_pid``, ``guard_alive``, ``armed`` (it has seen the runtime's
    heartbeat fresh), ``takeovers``, ``commands``, ``last_takeover`` (None before the first: reason
    heartbeat_timeout | process_exit, runtime_pid, runtime_last_write_ns, guard_first_write_ns,
    takeover_ms, settle, released_ns, ...), ``runtime`` (pid, alive, tick, heartbeat_age_ms,
    safety_mode, standing), ``ack`` (requested, done), ``path``."""
    hb = _segment(name)
    if hb is None:
        return None
    v = hb.read()
    g = v["guard"]
    alive = bool(g["alive"])
    return {
        "name": name,
        "path": v["path"],
        "state": g["state"] if alive else "off",
        "segment_state": g["state"],
        "guard_pid": int(g["pid"]),
        "guard_alive": alive,
        "armed": bool(g["armed"]) and alive,
        "takeovers": int(g["takeovers"]),
        "commands": int(g["commands"]),
        "last_takeover": v["last_takeover"],
        "runtime": v["runtime"],
        "ack": v["ack"],
    }


def acknowledge(name: str, timeout_s: float = 5.0) -> bool:
    """The operator's acknowledgement: the guard releases a hold (stops publishing) and goes back to
    watching. True once the guard has answered within `timeout_s`; False when there is no segment, no
    live guard, or no answer in time (nothing is held by a guard that does not run)."""
    hb = _segment(name)
    if hb is None:
        return False
    if not hb.read()["guard"]["alive"]:
        return False
    n = int(hb.request_ack())
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = hb.read()
        if int(v["ack"]["done"]) >= n and v["guard"]["state"] != "holding":
            return True
        if not v["guard"]["alive"]:
            return False
        time.sleep(0.005)
    return False


# -- the process ----------------------------------------------------------------------------------

class _Notify:
    """sd_notify through the service's Notifier (vertebra.runtime.service.notify)."""

    def __init__(self) -> None:
        from vertebra.runtime.service.notify import Notifier

        self.n = Notifier()

    @property
    def watchdog_interval_s(self) -> float | None:
        return self.n.watchdog_interval_s

    def send(self, **fields: Any) -> None:
        self.n.send(**fields)


def _takeover_event(v: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    t = v.get("last_takeover") or {}
    return {"event": "takeover", "reason": t.get("reason"), "runtime_pid": t.get("runtime_pid"),
            "runtime_safety_mode": t.get("runtime_safety_mode"), "settle": t.get("settle"),
            "takeover_ms": None if t.get("takeover_ms") is None else round(float(t["takeover_ms"]), 3),
            "detect_ms": None if t.get("detect_ms") is None else round(float(t["detect_ms"]), 3),
            "writer_create_us": round(float(status["writer_create_us"]), 1),
            "takeovers": int(v["guard"]["takeovers"])}


def run_guard(deploy: Any, on_event: Callable[[dict[str, Any]], None], stop: threading.Event | None = None,
              poll_s: float = 0.01) -> int:
    """The guard process: build, start, report events (``on_event(dict)``: ready, armed, disarmed,
    takeover, damping, released, stopped) until `stop` is set (SIGTERM/SIGINT set it when this runs on
    the main thread). sd_notify READY=1 once watching, WATCHDOG=1 while the guard thread's watch cycle
    advances, STOPPING=1 at the end. Returns the exit code."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    notify = _Notify()
    g = Guard(deploy).start()
    try:
        st = g.status()
        seg = st["segment"]
        on_event({"event": "ready", "pid": os.getpid(), "heartbeat": seg["path"], "deploy": str(g.deploy.file),
                  "domain_id": g.options.domain_id, "timeout_ms": g.options.timeout_ms, "rate_hz": g.options.rate_hz,
                  "settle": g.options.settle, "sched_fifo": st["sched_fifo"], "notes": st["notes"]})
        notify.send(READY=1, STATUS=f"watching {seg['path']}")
        wd = notify.watchdog_interval_s
        next_wd = 0.0
        last_beat = -1
        takeovers = int(seg["guard"]["takeovers"])
        armed, phase, state = False, "", "watching"
        while not stop.wait(poll_s):
            st = g.status()
            v = st["segment"]
            if int(v["guard"]["takeovers"]) != takeovers:
                takeovers = int(v["guard"]["takeovers"])
                on_event(_takeover_event(v, st))
                notify.send(STATUS=f"holding: took over ({(v['last_takeover'] or {}).get('reason')}); "
                                   "vertebra guard ack to release")
            if st["armed"] != armed:
                armed = bool(st["armed"])
                on_event({"event": "armed" if armed else "disarmed", "runtime_pid": st["runtime_pid"],
                          "pidfd": st["pidfd"]})
            if st["phase"] != phase:
                if phase == "settle" and st["phase"] == "damping":
                    on_event({"event": "damping", "settle_commands": st["settle_commands"]})
                phase = st["phase"]
            if st["state"] != state:
                if state == "holding" and st["state"] == "watching":
                    on_event({"event": "released", "commands": st["commands"]})
                    notify.send(STATUS=f"watching {v['path']}")
                state = st["state"]
            now = time.monotonic()
            beat = int(v["guard"]["beat_ns"])
            if wd is not None and now >= next_wd and beat != last_beat:  # the guard thread makes progress
                notify.send(WATCHDOG=1)
                last_beat = beat
                next_wd = now + wd / 2.0
    finally:
        notify.send(STOPPING=1)
        g.stop()
        on_event({"event": "stopped", "takeovers": int(g.guard.heartbeat.read()["guard"]["takeovers"])})
    return 0


def deploy_path(value: str) -> Path:
    """A deploy config argument as a path (a name: configs/deploy/<name>.yaml)."""
    p = Path(value)
    if p.suffix:
        return p
    from vertebra.runtime.deploy import DEPLOY_DIR

    return DEPLOY_DIR / f"{value}.yaml"

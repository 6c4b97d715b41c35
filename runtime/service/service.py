"""`vertebra run`: the long-running runtime of one robot, as a system service.

Lifecycle (docs/deploy.md has the operator's side):

  starting  the previous run's end is read from the state file and logged; if the guard holds the
            robot (it took over when the last run died) the service waits for an operator's
            acknowledgement (`vertebra guard ack`) before it takes the bus; the policy is checked
            against the robot; the runtime is built (real time, heartbeat for the guard); the
            policy server is started; READY=1 once the loop ticks with fresh state.
  running   PASSIVE until an operator holding the lease enables and stands the robot. The control
            API serves requests and the status stream; WATCHDOG=1 goes out at half the watchdog
            interval only while the loop's tick and its state advance; the lease is watched (a
            stale lease: ACTIVE -> HOLD, then a controlled stop).
  stopping  SIGTERM or SIGINT: STOPPING=1, the configured controlled stop (settle-then-cut) when
            armed, then the driver hands the motors back damped; a second SIGTERM e-stops at once.

The service never arms itself: enabling, standing and activating are operator requests. This module
holds the lifecycle, the monitor and the motion requests; the status is service_status.py, the policy,
episode and intervention requests episodes.py.
Everything here is off the tick: requests reach the loop through its lock-free buffers.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vertebra import _rt
from vertebra.runtime.errors import VertebraError
from vertebra.runtime.service.episodes import PolicyRequests
from vertebra.runtime.service.leases import LeaseManager
from vertebra.runtime.service.protocol import API_VERSION, LEASE_FREE, ProtocolError, refused
from vertebra.runtime.service.service_status import ServiceStatus

ARMED = ("STANDUP", "HOLD", "ACTIVE")
# Off the API thread: a policy load may take seconds; an episode start or an intervention's end waits
# for the policy's first chunk.
SLOW = frozenset({"policy_swap", "reload", "episode_start", "intervention"})
WALK_DEADMAN_S = 0.5  # a walk command lapses to zero unless renewed within this


class ServiceError(VertebraError):
    """The service cannot start (configuration, guard, bus)."""


def state_dir() -> Path:
    """Where the service keeps its run records: systemd's $STATE_DIRECTORY, else the event log's folder."""
    sd = os.environ.get("STATE_DIRECTORY")
    if sd:
        return Path(sd.split(":")[0])
    from vertebra.safety.events import default_log_dir

    d = default_log_dir()
    d.mkdir(parents=True, exist_ok=True)
    return d


class Service(ServiceStatus, PolicyRequests):
    """One robot's service. ``start()`` brings it up; ``run()`` serves until signalled; ``stop()``."""

    def __init__(self, deploy: Any, *, notifier: Any = None, say: Callable[[str], None] | None = None,
                 event_log: str | os.PathLike[str] | None = None, runtime_overrides: dict[str, Any] | None = None,
                 guard_wait_s: float | None = None):
        """`deploy`: a DeployConfig. `notifier`: a vertebra.runtime.service.notify.Notifier (default:
        from the environment). `runtime_overrides`: Runtime keyword arguments (tests: fault_injection).
        `guard_wait_s`: how long to wait for the guard's acknowledgement (None: forever)."""
        from vertebra.runtime.service.notify import Notifier

        self.deploy = deploy
        self.robot = deploy.robot_config()
        self.notifier = notifier if notifier is not None else Notifier()
        self.say = say or (lambda _m: None)
        self.event_log = event_log
        self.overrides = dict(runtime_overrides or {})
        self.guard_wait_s = guard_wait_s
        self.leases = LeaseManager(deploy.control.lease_timeout_s)
        self.state = "starting"
        self.rt: Any = None
        self.policy: Any = None
        self.server: Any = None
        self.pinger: Any = None
        self.episode: dict[str, Any] | None = None
        self.episodes = 0
        self.intervening = False
        self.job: dict[str, Any] | None = None
        self.previous_run: dict[str, Any] | None = None
        self.fault_details: dict[str, dict[str, Any]] = {}
        self._events_seen = 0
        self._pending_events: list[tuple[str, dict[str, Any]]] = []
        self._hands: dict[str, list[float]] = {}
        self._walk_at: float | None = None  # when the last non-zero walk command came (its deadman)
        self._hold_pending_by: str | None = None  # a hold left pending while walking: by whom
        self._lock = threading.RLock()  # operator requests (the API thread, jobs, the monitor)
        self._stop = threading.Event()
        self._terms = 0
        self._started = time.time()
        self._monitor: threading.Thread | None = None
        self._rt_report: dict[str, Any] = {}
        self._file_active_policy = deploy.active_policy
        from concurrent.futures import ThreadPoolExecutor

        self._slow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vertebra-slow")
        self._run_file = state_dir() / f"{deploy.name}.run.json"
        self.uses_guard = bool(deploy.guard.enabled and getattr(deploy.driver, "driver_name", "") == "unitree_dds")
        if deploy.loop.lockstep:
            raise ServiceError(f"{deploy.file}: loop.lockstep is true; `vertebra run` runs the loop in real time "
                               "(lockstep is for simulations a test steps itself)")

    # -- events -------------------------------------------------------------------------------
    def event(self, text: str, **fields: Any) -> None:
        """A service event into the safety event log (buffered until the runtime exists)."""
        if self.rt is None:
            self._pending_events.append((text, fields))
            return
        body = json.dumps(fields, default=str)[1:-1]
        self.rt.events.note(text, body, int(float(self.rt.loop.snapshot()["time_s"]) * 1e9))

    # -- start --------------------------------------------------------------------------------
    def start(self) -> None:
        d = self.deploy
        self._read_previous_run()
        self._write_run_file({"pid": os.getpid(), "started": time.time(), "clean": False})
        if self.uses_guard:
            self._wait_for_guard()
        if d.policy_path is not None or d.policy_remote is not None:
            from vertebra.runtime.service.policy_host import PolicyHost

            self.policy = PolicyHost(d, self.robot, self.event, self.say)  # checked before the bus is touched
            self.policy.on_cannot_comply = self._cannot_comply
        self.notifier.status("starting: building the runtime")
        from vertebra.runtime.runtime import Runtime

        kw = dict(self.overrides)
        if self.event_log is not None:
            kw.setdefault("event_log", self.event_log)
        if self.policy is not None:
            kw["configure"] = self.policy.configure
        self.rt = Runtime.from_deploy(d, **kw)
        for text, fields in self._pending_events:
            self.event(text, **fields)
        self._pending_events.clear()
        self.event("service_start", deploy=d.name, robot=self.robot.name, pid=os.getpid(),
                   policy=self.policy.active if self.policy else None, api=API_VERSION)
        if self.policy is not None:
            self.notifier.status("starting: the policy server")
            self.policy.start()
        self._wait_fresh_state()
        rep = self.rt.loop.rt_report()
        self._rt_report = {k: rep[k] for k in ("sched_fifo", "mlockall", "affinity", "notes") if k in rep}
        if not rep.get("sched_fifo"):
            self.say(f"vertebra run: the loop runs without SCHED_FIFO ({rep.get('notes')}); see docs/deploy.md "
                     "(LimitRTPRIO)")
        from vertebra.runtime.service.server import ControlServer, service_socket_path

        c = d.control
        self.server = ControlServer(self.handle, self.status, service_socket_path(d), group=c.group, tcp=c.tcp,
                                    curve=c.curve, status_rate_hz=c.status_rate_hz,
                                    max_message_bytes=c.max_message_bytes)
        self.server.start()
        self.state = "running"
        self._monitor = threading.Thread(target=self._watch, name="vertebra-service-monitor", daemon=True)
        self._monitor.start()
        self.notifier.ready(self.status_text())
        self._start_watchdog()
        self.say(f"vertebra run: {d.name} ready ({self.robot.name}, PASSIVE); control API on "
                 f"{self.server.endpoints['ipc']}")

    def _read_previous_run(self) -> None:
        try:
            prev = json.loads(self._run_file.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(prev, dict):
            return
        end = prev.get("end") if prev.get("clean") else "killed or crashed (no clean stop recorded)"
        self.previous_run = {"pid": prev.get("pid"), "started": prev.get("started"), "ended": prev.get("ended"),
                             "end": end, "clean": bool(prev.get("clean"))}
        from vertebra.runtime.service.systemd import read_exit_record

        unit = read_exit_record(self.deploy.name)  # systemd's word on how it ended (ExecStopPost)
        if unit is not None:
            self.previous_run["systemd"] = unit
        self.event("previous_run", **self.previous_run)

    def _write_run_file(self, data: dict[str, Any]) -> None:
        tmp = self._run_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self._run_file)
        except OSError as e:
            self.say(f"vertebra run: cannot write the run record {self._run_file}: {e.strerror}")

    def _wait_for_guard(self) -> None:
        from vertebra.safety.guard import guard_state

        name = self.deploy.heartbeat_name
        t0 = time.monotonic()
        said = False
        while True:
            g = guard_state(name)
            if g is None or g.get("state") != "holding":
                break
            if not said:
                self.event("guard_holding", takeovers=g.get("takeovers"), last_takeover=g.get("last_takeover"))
                self.say(f"vertebra run: the guard holds the robot damped since the last run died; acknowledge with "
                         f"`vertebra guard ack --config {self.deploy.file}` to let this run take the bus")
                said = True
            self.notifier.status("waiting: the guard holds the robot damped (vertebra guard ack)")
            self.notifier.extend_timeout(5.0)
            if self._stop.wait(0.5):
                raise ServiceError("stopped while waiting for the guard's acknowledgement")
            if self.guard_wait_s is not None and time.monotonic() - t0 > self.guard_wait_s:
                raise ServiceError("the guard still holds the robot (no operator acknowledgement)")
        if said:
            self.event("guard_released", waited_s=round(time.monotonic() - t0, 2))

    def _wait_fresh_state(self, timeout_s: float = 10.0) -> None:
        snap = self.rt.loop.snapshot()
        tick0, seq0 = snap["tick"], snap["state"]["seq"]
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            time.sleep(0.02)
            s = self.rt.loop.snapshot()
            if s["tick"] > tick0 + 5 and s["state"]["seq"] > seq0 + 5 and s["last_read"] == "ok":
                return
        raise ServiceError(f"the loop did not tick with fresh state within {timeout_s:g} s (driver "
                           f"{self.rt.driver.name}: last read {self.rt.loop.snapshot()['last_read']})")

    def _start_watchdog(self) -> None:
        from vertebra.runtime.service.notify import WatchdogPinger

        last = {"tick": -1, "seq": -1}

        def healthy() -> bool:
            s = self.rt.loop.snapshot()
            ok = s["tick"] > last["tick"] and s["state"]["seq"] > last["seq"]
            last["tick"], last["seq"] = s["tick"], s["state"]["seq"]
            return bool(ok)

        if self.notifier.watchdog_interval_s:
            self.pinger = WatchdogPinger(self.notifier, healthy, self.status_text)
            self.pinger.start()

    # -- the monitor (lease, episode, events) -------------------------------------------------
    def _remote_enable(self, held_since: list[float | None]) -> None:
        """The configured remote combination, held for remote_enable_s, is the operator's enable (an
        event). It never moves the robot: standing still needs a request with the lease."""
        c = self.deploy.control
        mask = int(c.remote_enable_buttons)
        r = self._remote() if mask else None
        if r is None:
            return
        if (r["buttons"] & mask) != mask:
            held_since[0] = None
            return
        now = time.monotonic()
        if held_since[0] is None:
            held_since[0] = now
        elif now - held_since[0] >= c.remote_enable_s and held_since[0] > 0:
            held_since[0] = -1.0  # once per press
            try:
                self._guard_ok()
            except ProtocolError as e:
                self.event("enable_refused", by="remote", reason=str(e))
                return
            self.rt.enable(True)
            self.event("enable", by="remote", buttons=mask)

    def _watch(self) -> None:
        reacted = ""
        held: list[float | None] = [None]
        while not self._stop.wait(0.02):
            try:
                self._remote_enable(held)
                self._scan_events()
                state = self.leases.state()
                s = self.rt.loop.snapshot()
                mode = s["safety_mode"]
                with self._lock:
                    self._walk_deadman()
                    self._pending_hold()
                if state == "stale":
                    if mode == "ACTIVE" and reacted == "":
                        reacted = "hold"
                        self.event("lease_stale", holder=self.leases.lease.holder if self.leases.lease else None,
                                   action="hold")
                        with self._lock:
                            self._end_policy("aborted", "the lease went stale")
                            if not self._stop_walking_then_hold("lease_stale"):
                                self._try(lambda: self.rt.request(_rt.Mode.HOLD))
                    if self.leases.stale_for_s() > self.leases.timeout_s and mode in ARMED and reacted != "stop":
                        reacted = "stop"
                        self.event("lease_stale", action="controlled stop")
                        self.rt.stop()
                else:
                    reacted = ""
                if self.episode is not None and (s["faults"] or mode not in ARMED):
                    with self._lock:
                        self._end_policy("aborted", f"{mode}: " + (",".join(s["faults"]) or "left the armed modes"))
            except Exception as e:  # noqa: BLE001 - the monitor outlives any one failure
                self.say(f"vertebra run: monitor: {type(e).__name__}: {e}")

    def _try(self, fn: Callable[[], Any]) -> bool:
        try:
            fn()
            return True
        except VertebraError:
            return False

    # -- requests -----------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any], transport: str) -> dict[str, Any]:
        t = msg["type"]
        client = msg.get("client") or f"anonymous@{transport}"
        if t not in LEASE_FREE:
            if self.state != "running":
                raise ProtocolError("busy", f"the service is {self.state}")
            self._check_lease(t, msg["lease"])
        fn = getattr(self, f"_req_{t}")
        if t == "estop":  # never waits for another request's lock
            return {"type": "estop_reply", **fn(msg, client)}
        if t in SLOW:  # answered when done; the API keeps serving (e-stops above all) meanwhile
            def slow() -> dict[str, Any]:
                self._check_lease(t, msg["lease"])  # still the holder when its turn comes
                return {"type": f"{t}_reply", **(fn(msg, client) or {})}

            return self._slow.submit(slow)
        with self._lock:
            out = fn(msg, client)
        return {"type": f"{t}_reply", **(out or {})}

    def _check_lease(self, t: str, token: str) -> None:
        """The current lease, and fresh: a stale holder may retain or return it, nothing else."""
        self.leases.check(token)
        if t not in ("lease_retain", "lease_return") and self.leases.state() == "stale":
            raise ProtocolError("lease_stale", "the lease went stale (not retained within "
                                               f"{self.leases.timeout_s:g} s): retain it again before moving the robot")

    def _req_hello(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        from vertebra.policies.actions import wbc_target_names

        return {"api": API_VERSION, "deploy": self.deploy.name, "robot": self.robot.name,
                "joints": list(self.robot.joint_names), "hands": list(self.robot.hand_frames),
                "targets": wbc_target_names(self.robot), "controller": self.deploy.controller,
                "base_velocity": self._walk_bounds(),
                "status_endpoints": dict(self.server.endpoints) if self.server else {},
                "lease_timeout_s": self.leases.timeout_s}

    def _walk_bounds(self) -> dict[str, float] | None:
        """The walk controller's command bounds (the safety config's base_velocity), None under another."""
        if self.deploy.controller != "walk" or self.rt is None or self.rt.safety.base_velocity is None:
            return None
        b = self.rt.safety.base_velocity
        return {"max_vx_m_s": b.max_vx_m_s, "max_vy_m_s": b.max_vy_m_s, "max_wz_rad_s": b.max_wz_rad_s}

    def _req_status(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        return self.status()

    def _req_events(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        lines = self.rt.events.recent(int(msg.get("since", 0)))
        limit = int(msg.get("limit", 200))
        lines = lines[-limit:] if limit else lines
        return {"events": [json.loads(j) for _, j in lines], "last": lines[-1][0] if lines else int(msg.get("since", 0))}

    def _req_lease_acquire(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        force = bool(msg.get("force", False))
        before = self.leases.takeovers
        lease, old = self.leases.acquire(client, force)
        if self.leases.takeovers > before:  # a held, fresh lease taken by force
            self.event("lease_taken", holder=client, previous=old.holder if old else None)
        elif old is not None:  # a stale one
            self.event("lease_acquired", holder=client, previous=old.holder, previous_state="stale")
        else:
            self.event("lease_acquired", holder=client)
        return {"lease": lease.token, "holder": client, "timeout_s": self.leases.timeout_s,
                "previous": old.holder if old else None}

    def _req_lease_retain(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self.leases.retain(msg["lease"])
        return {}

    def _req_lease_return(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        lease = self.leases.give_back(msg["lease"])
        self.event("lease_returned", holder=lease.holder)
        if self.rt.loop.snapshot()["safety_mode"] == "ACTIVE":
            self._end_policy("aborted", "the lease was returned")
            self._try(lambda: self.rt.request(_rt.Mode.HOLD))
        return {}

    def _req_estop(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self.rt.loop.estop()  # taken by the next tick: nothing here waits for Python
        self._end_policy("aborted", f"e-stop by {client}")
        self.event("estop", by=client, transport=msg.get("_transport", ""))
        return {"safety_mode": "ESTOP"}

    def _req_estop_release(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        s = self.rt.loop.snapshot()
        if s["safety_mode"] != "ESTOP":
            raise refused(f"the robot is not e-stopped ({s['safety_mode']})")
        self._reset(client, "estop_release")
        return {"safety_mode": self.rt.loop.snapshot()["safety_mode"]}

    def _reset(self, client: str, what: str) -> None:
        before = self.rt.loop.snapshot()["resets_refused"]
        self.rt.reset()
        s = self.rt.loop.snapshot()
        if s["resets_refused"] > before:
            present = ", ".join(s["active_faults"]) or "a fault"
            raise refused(f"reset refused: {present} still present")
        self.event(what, by=client, safety_mode=s["safety_mode"])

    def _req_reset_faults(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self._reset(client, "reset_faults")
        return {"safety_mode": self.rt.loop.snapshot()["safety_mode"]}

    def _guard_ok(self) -> None:
        if not self.uses_guard:
            return
        g = self._guard_status()
        if not g or not g["watching"]:
            raise refused(f"the guard is not watching this runtime (guard: {g['state'] if g else 'none'}); start "
                           "`vertebra guard` (its unit) before arming — guard.enabled: false turns this off")

    def _req_enable(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self._guard_ok()
        self.rt.enable(True)
        self.event("enable", by=client)
        return {"enabled": bool(self.rt.loop.snapshot()["enabled"])}

    def _req_disable(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self._end_policy("aborted", f"disabled by {client}")
        self.rt.enable(False)
        self.event("disable", by=client)
        return {"enabled": False}

    def _request(self, mode: Any, *args: Any, **kw: Any) -> None:
        from vertebra.runtime.runtime import ModeRequestRefused

        try:
            self.rt.request(mode, *args, **kw)
        except ModeRequestRefused as e:
            raise refused(str(e)) from None

    def _req_stand(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        """enable (if needed) -> STANDUP to the default pose -> HOLD when reached (a job: the reply
        comes at once; `status.job` and the mode show the progress)."""
        self._guard_ok()
        s = self.rt.loop.snapshot()
        if s["safety_mode"] in ("HOLD", "ACTIVE"):
            return {"job": None, "safety_mode": s["safety_mode"]}
        if self.job is not None and self.job["state"] == "running":
            raise ProtocolError("busy", f"a {self.job['kind']} is in progress")
        duration = float(msg.get("duration_s", 2.0))
        if not s["enabled"]:
            self.rt.enable(True)
        self._request(_rt.Mode.INTERPOLATE, duration, list(self.rt.default_pose))
        self.event("stand", by=client, duration_s=duration)

        def finish() -> None:
            end = time.monotonic() + duration + 3.0
            while time.monotonic() < end and not self._stop.is_set():
                s = self.rt.loop.snapshot()
                if s["safety_mode"] != "STANDUP":
                    raise VertebraError(f"the stand-up ended in {s['safety_mode']} ({','.join(s['faults']) or 'no fault'})")
                if s["pose_interpolated"]:
                    with self._lock:
                        self._request(_rt.Mode.HOLD)
                    return
                time.sleep(0.01)
            raise VertebraError("the stand-up did not reach its pose in time")

        return {"job": self._start_job("stand", finish)}

    def _start_job(self, kind: str, fn: Callable[[], Any]) -> dict[str, Any]:
        if self.job is not None and self.job["state"] == "running":
            raise ProtocolError("busy", f"a {self.job['kind']} is in progress")
        job = {"kind": kind, "state": "running", "error": None, "started": time.time()}
        self.job = job

        def run() -> None:
            try:
                fn()
                job["state"] = "done"
            except Exception as e:  # noqa: BLE001 - reported in the status
                job["state"], job["error"] = "failed", str(e)
                self.event("job_failed", kind=kind, error=str(e))

        threading.Thread(target=run, name=f"vertebra-{kind}", daemon=True).start()
        return job

    def _req_hold(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        if not self.intervening:
            self._end_policy("aborted", f"hold by {client}")
        if self._stop_walking_then_hold(client):
            return {"safety_mode": "ACTIVE", "hold": "pending: the robot stops walking, then holds"}
        self._request(_rt.Mode.HOLD)
        return {"safety_mode": "HOLD"}

    def _stop_walking_then_hold(self, by: str) -> bool:
        """While walking, a HOLD is left pending: HOLD freezes the joints, and mid-step the G1 falls
        (docs/walking.md). The walk stops first; the monitor holds once the robot stands on both feet
        (_pending_hold). False when not walking (hold now)."""
        walker = self._walker()
        if walker is None or walker.status()["phase"] != "walking":
            return False
        self._walk_at = None
        walker.command(0.0, 0.0, 0.0)
        self._hold_pending_by = by
        self.event("hold_pending", by=by, reason="walking: stopping first")
        return True

    def _pending_hold(self) -> None:
        """The HOLD _stop_walking_then_hold left pending: once the robot stands."""
        by = self._hold_pending_by
        walker = self._walker()
        if by is None or walker is None or walker.status()["phase"] == "walking":
            return
        self._hold_pending_by = None
        if self.rt.loop.snapshot()["safety_mode"] == "ACTIVE":
            self._try(lambda: self.rt.request(_rt.Mode.HOLD))
            self.event("hold", by=by, after="the walk stopped")

    def _req_damp(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self._end_policy("aborted", f"damp by {client}")
        self._request(_rt.Mode.DAMP)
        self.event("damp", by=client)
        return {"safety_mode": "DAMP"}

    def _req_stop(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        self._end_policy("aborted", f"stop by {client}")
        self.rt.stop()
        self.event("stop", by=client)
        return {"safety_mode": self.rt.loop.snapshot()["safety_mode"]}

    def _activate_controller(self) -> None:
        """HOLD -> ACTIVE under the deploy config's controller (its target sink takes teleop targets)."""
        s = self.rt.loop.snapshot()
        if s["safety_mode"] == "ACTIVE" and s["mode"] == self.rt.active_mode:
            self._capture_hands()  # teleop starts from where the hands are now
            return
        self._feet_loaded(s)
        if s["safety_mode"] == "ACTIVE":
            self._request(_rt.Mode.HOLD)
        if self.rt._controller is not None:
            self.rt._controller.before_activate(self.rt.handle)
        self._request(self.rt.active_mode)
        self._capture_hands()

    def _feet_loaded(self, s: dict[str, Any]) -> None:
        """The whole-body controller balances on the feet: refuse it for a robot whose feet carry
        nothing (hanging in the hoist), where its contact forces would fling the legs."""
        if self.deploy.controller not in ("wbc", "walk") or self.rt.estimator is None or not s["estimate"]["valid"]:
            return
        contact = [bool(c) for c in s["estimate"]["contact"][:len(self.robot.foot_frames)]]
        if not any(contact):
            raise refused("the whole-body controller balances on the feet, and no foot carries the robot "
                           f"(estimated contacts {contact}): lower the hoist until the feet carry it")

    def _req_activate(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        if self.episode is not None and not self.intervening:
            raise refused("a policy episode runs; stop it, or mark an intervention")
        self._activate_controller()
        self.event("activate", by=client, controller=self.deploy.controller)
        return {"safety_mode": "ACTIVE", "mode": self.rt.active_mode}

    def _capture_hands(self) -> None:
        """The hands' current positions (a target given as a position keeps the controller's orientation
        reference: as the hand was when the controller was entered, turned with the arm under wbc.hand_aim)."""
        s = self.rt.loop.snapshot()
        b = s["base"]
        q = self.rt.model.full_configuration(b["pos"], b["quat"], s["state"]["q"])
        for h in self.robot.hand_frames:
            self._hands[h] = [round(float(v), 4) for v in self.rt.model.frame_translation(q, h)]

    def _walker(self) -> Any:
        """The walk controller's handle, or None under another controller."""
        h = self.rt.handle if self.rt is not None else None
        return h if self.deploy.controller == "walk" and h is not None else None

    def _req_walk(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        walker = self._walker()
        if walker is None:
            raise refused(f"controller {self.deploy.controller} takes no base velocity (use controller: walk)")
        if self.episode is not None and not self.intervening:
            self._intervention(True, client, "teleop walking during the episode")
        s = self.rt.loop.snapshot()
        if s["safety_mode"] != "ACTIVE" or s["mode"] != self.rt.active_mode:
            raise refused(f"walking needs ACTIVE under walk (now {s['safety_mode']}/{s['mode']}): activate first")
        cmd = (float(msg["vx"]), float(msg["vy"]), float(msg["wz"]))
        try:
            walker.command(*cmd)
        except ValueError as e:  # beyond the safety config's base_velocity: the command it had stays
            raise refused(str(e)) from None
        self._walk_at = time.monotonic() if any(cmd) else None
        return {"command": list(cmd), "deadman_s": WALK_DEADMAN_S}

    def _walk_deadman(self) -> None:
        """A non-zero walk command not renewed within WALK_DEADMAN_S lapses to zero (the robot stops
        walking and stands): a client that crashed or lost its link does not leave the robot walking."""
        at = self._walk_at
        walker = self._walker()
        if at is None or walker is None or time.monotonic() - at <= WALK_DEADMAN_S:
            return
        self._walk_at = None
        walker.command(0.0, 0.0, 0.0)
        self.event("walk_deadman", after_s=WALK_DEADMAN_S, action="zero velocity")

    def _req_targets(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        if self.rt.handle is None:
            raise refused(f"controller {self.deploy.controller} takes no task targets (use controller: wbc)")
        if self.episode is not None and not self.intervening:
            self._intervention(True, client, "teleop input during the episode")
        s = self.rt.loop.snapshot()
        if s["safety_mode"] != "ACTIVE" or s["mode"] != self.rt.active_mode:
            raise refused(f"targets need ACTIVE under {self.deploy.controller} (now {s['safety_mode']}/{s['mode']}): "
                           "activate first")
        wb = self.rt.handle
        if self._walker() is not None:  # walking: the hands are the whole-body controller's; the walk owns the rest
            wb = self.rt.handle.wb
            bad = [n for n in msg["targets"] if n not in self.robot.hand_frames and n not in ("left_hand", "right_hand")]
            if bad:
                raise refused(f"while walking only hand targets are taken; {', '.join(bad)} belong to the walk "
                              "controller (use the walk request for the base)")
        for name, value in msg["targets"].items():
            vals = value if isinstance(value, list) else [value]
            try:
                if name in self.robot.hand_frames or name in ("left_hand", "right_hand"):
                    frame = name if name in self.robot.hand_frames else self.robot.hand_frames[wb.hands[name]]
                    if len(vals) == 3:
                        wb.set_target(name, np.asarray(vals, float))  # position only
                    elif len(vals) == 7:
                        wb.set_target(name, (vals[:3], vals[3:]))
                    else:
                        raise ValueError(f"target '{name}': 3 values (position, m) or 7 (position + quaternion wxyz)")
                    self._hands[frame] = [float(v) for v in vals[:3]]
                elif name == "base" and len(vals) == 7:
                    wb.set_target(name, (vals[:3], vals[3:]))
                else:
                    wb.set_target(name, vals[0] if len(vals) == 1 else vals)
            except ValueError as e:
                raise ProtocolError("schema", str(e)) from None
        return {"applied": list(msg["targets"])}

    # -- run and stop -------------------------------------------------------------------------
    def install_signals(self) -> None:
        def on_term(signum: int, _frame: Any) -> None:
            self._terms += 1
            if self._terms >= 2:
                # A second signal: damping at once, no controlled stop.
                if self.rt is not None:
                    self.rt.loop.estop()
                self._cut = True
            self._stop.set()

        self._cut = False
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (install_signals) or stop_event set, then stop."""
        while not self._stop.wait(0.2):
            pass
        self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """The controlled stop (settle-then-cut when armed), then everything closed."""
        if self.state == "stopped":
            return
        self.state = "stopping"
        self._stop.set()
        self.notifier.stopping(self.status_text())
        reason = "signal" if self._terms else "stop"
        end_mode = None
        if self.rt is not None:
            with self._lock:
                self._end_policy("aborted", "the service is stopping")
            s = self.rt.loop.snapshot()
            if s["safety_mode"] in ARMED and not getattr(self, "_cut", False):
                self.event("service_stopping", action="controlled stop", safety_mode=s["safety_mode"])
                self.rt.stop()
                settle = self.rt.safety
                budget = sum(k.duration_s for k in settle.settle.keyframes) + settle.settle_hold_s + 3.0
                end = time.monotonic() + budget
                while time.monotonic() < end and not getattr(self, "_cut", False):
                    if self.rt.loop.snapshot()["safety_mode"] not in ARMED + ("STOPPING",):
                        break
                    self.notifier.extend_timeout(5.0)
                    time.sleep(0.02)
            end_mode = self.rt.loop.snapshot()["safety_mode"]
        self._slow.shutdown(wait=False, cancel_futures=True)  # a load in progress finishes on its own
        if self._monitor is not None:
            self._monitor.join(2.0)
        if self.pinger is not None:
            self.pinger.stop()
        if self.server is not None:
            self.server.close()
        if self.policy is not None:
            self.policy.close()
        if self.rt is not None:
            self.event("service_stop", reason=reason, safety_mode=end_mode, cut=bool(getattr(self, "_cut", False)))
            self.rt.close()
        self._write_run_file({"pid": os.getpid(), "started": self._started, "ended": time.time(), "clean": True,
                              "end": f"{reason}: {end_mode}"})
        self.state = "stopped"

"""The deployed stack the service-based HIL scenarios run on (tools/hil/reactions.py: the safety
reactions; tools/hil/policy_smoke.py: the policy smoke). Both run the deployed stack in separate processes, as the robot runs it: on a sim rig a real-time
sim bridge (the robot, hanging in its hoist for the whole run), then ``vertebra guard run`` and
``vertebra run`` on a deploy config written for this run (the rig's, on the run's DDS domain, with a
guard heartbeat and a control socket of its own, the loop in real time). The harness is the
operator: it holds the lease and drives the service through its control API
(:class:`~vertebra.runtime.service.client.ControlClient`). The robot never leaves the hoist: it
stands up to its hold pose (STANDUP -> HOLD, which needs no foot contact, unlike the whole-body
controller, so ``activate`` is never used), and policy episodes run a joint-target policy (joint PD
streaming, no contact needed either).

Times are taken on this machine: the harness stamps a request (CLOCK_REALTIME) just before it sends
it, and the loop stamps its events (the same clock) in the tick that reacted; ``*_ms`` below are
differences of the two, so they include everything between the harness and the loop (the control
API's socket and the service's handler, or the bridge's control pipe and one lowstate sample over
DDS). Ticks are those milliseconds over the control period, rounded up: the tick that reacted was
at most that many control periods after the request left. What the bridge received is polled
(BridgeProcess.last_command, one pipe round trip a poll, about a millisecond): a poll time is an
upper bound.

A reaction that did not happen or missed its limit is ``failed``; a step that could not be done (the
service died, a reset was refused, a stand-up failed) is ``error``; a step that needs a person at a
rig run without one, or was stopped, is ``skipped``. At the end the robot is left damped in its
hoist, the guard released, every child stopped and the heartbeat and sockets removed. Ctrl-C
(``ctx.stop``): the step in progress stops, the robot is e-stopped (damping, in the hoist), the
service and the guard are stopped, and the cases not run are ``skipped``.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertebra.tools.hil.context import HilStopped, ScenarioContext
from vertebra.tools.hil.procs import ServiceStack, socket_dir, wait_for
from vertebra.tools.hil.results import Case

EVENT_TIMEOUT_S = 3.0  # a reaction's event must be in the log within this (the writer drains every few ms)


class ReactionFailed(Exception):
    """A reaction did not happen (no event, no command): the case fails with this message."""


def rounded(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


class ServiceBench:
    """The deployed stack of one scenario on the rig: the bridge (sim rigs), the guard, the service,
    and the harness's lease. ``start()`` brings it up; ``close()`` always takes everything down."""

    def __init__(self, ctx: ScenarioContext, name: str):
        self.ctx, self.name = ctx, name
        self.bridge: Any = None
        self.stack: ServiceStack | None = None
        self.op: Any = None
        self._sock_dir: Path | None = None
        self._sock_tmp = False
        self.startup: dict[str, float] = {}

    # -- up -----------------------------------------------------------------------------------
    def start(self) -> ServiceBench:
        from vertebra.runtime.deploy import DeployConfig

        ctx = self.ctx
        ctx.check_stop()
        self.heartbeat = f"vertebra-hil-{os.getpid()}-{ctx.domain_id}-{self.name}"
        self._sock_dir, self._sock_tmp = socket_dir(ctx.workdir, f"{self.name}-control")
        sock = self._sock_dir / f"{self.name}-control.sock"
        d = ctx.deploy_dict()
        overrides: dict[str, Any] = {"guard": {"heartbeat": self.heartbeat}, "control": {"socket": str(sock)},
                                     "loop": {"lockstep": False}}
        if isinstance(d.get("driver"), dict) and "lockstep" in d["driver"]:
            overrides["driver"] = {"lockstep": False}
        self.deploy_path = ctx.write_deploy(f"{self.name}-deploy", **overrides)
        self.deploy = DeployConfig.load(self.deploy_path)
        self.safety = self.deploy.safety_settings()
        self.period_ms = 1000.0 / float(self.deploy.loop.rate_hz)
        driver = getattr(self.deploy.driver, "driver_name", "")
        self.guarded = bool(self.deploy.guard.enabled and driver == "unitree_dds")
        self.has_policy = self.deploy.policy_path is not None or self.deploy.policy_remote is not None
        t0 = time.monotonic()
        if ctx.sim:
            ctx.log(f"{self.name}: starting the sim bridge ({ctx.robot.name}, real time, DDS domain {ctx.domain_id})")
            self.bridge = ctx.start_bridge(lockstep=False)
            self.startup["bridge_s"] = round(time.monotonic() - t0, 2)
        ctx.check_stop()
        self.stack = ServiceStack(self.deploy_path, self.heartbeat, sock, ctx.workdir / self.name,
                                  say=ctx.log, stop=ctx.stop)
        if self.guarded:
            ctx.log(f"{self.name}: starting the guard (heartbeat {self.heartbeat})")
            self.startup["guard_s"] = round(self.stack.start_guard(), 2)
        ctx.log(f"{self.name}: starting the service ({self.deploy_path.name})")
        self.startup["service_s"] = round(self.stack.start_service(), 2)
        self.op = self.stack.client(f"hil-{self.name}@{socket.gethostname()}")
        self.op.acquire()
        ctx.log(f"{self.name}: the stack is up (" + ", ".join(f"{k[:-2]} {v:g} s" for k, v in self.startup.items())
                + ")")
        return self

    def restart_service(self) -> float:
        """A new `vertebra run` (after a kill and the guard's acknowledgement) and a new lease; seconds
        until its control API answered."""
        if self.op is not None:
            self.op.close()  # the old service's lease went with it
        t = self.services.start_service()
        self.op = self.services.client(f"hil-{self.name}@{socket.gethostname()}")
        self.op.acquire()
        return round(t, 2)

    # -- the service --------------------------------------------------------------------------
    @property
    def services(self) -> ServiceStack:
        if self.stack is None:
            raise RuntimeError("the bench is not started")
        return self.stack

    def status(self) -> dict[str, Any]:
        return self.op.request("status")

    def mark(self) -> int:
        """The event log's newest line number: events after it are the next step's."""
        return int(self.op.request("events", since=0, limit=1)["last"])

    def events(self, since: int) -> list[dict[str, Any]]:
        return list(self.op.request("events", since=since, limit=0)["events"])

    def wait_event(self, since: int, pred: Callable[[dict[str, Any]], bool], what: str,
                   timeout_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            self.services.check_service()
            return next((e for e in self.events(since) if pred(e)), None)

        try:
            return wait_for(find, timeout_s, what, self.ctx.stop, 0.02)
        except TimeoutError:
            raise ReactionFailed(f"no {what} in the event log within {timeout_s:g} s") from None

    def wait_mode(self, modes: tuple[str, ...], timeout_s: float, what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            self.services.check_service()
            s = self.status()
            return s if s["safety_mode"] in modes else None

        return wait_for(check, timeout_s, what, self.ctx.stop, 0.05)

    def to_hold(self) -> None:
        """Whatever the last reaction left (ESTOP, FAULT, a stop in progress, an episode): reset, then
        stand up to the hold pose in the hoist (STANDUP -> HOLD)."""
        self.services.check_service()
        s = self.status()
        if s.get("episode"):
            self.op.call("episode_stop", outcome="aborted", reason="the HIL's next step")
        if s["safety_mode"] == "STOPPING":  # a controlled stop finishes first
            s = self.wait_mode(("FAULT", "DAMP", "PASSIVE", "ESTOP"), 30.0, "the controlled stop's end")
        if s["safety_mode"] in ("ESTOP", "FAULT") or any(f.get("latched") for f in s.get("faults", [])):
            try:
                wait_for(lambda: not any(f.get("present") and f.get("latched") for f in self.status()["faults"]),
                         5.0, "the latched faults' conditions to clear", self.ctx.stop, 0.05)
            except TimeoutError:
                present = [f["fault"] for f in self.status()["faults"] if f.get("present")]
                raise RuntimeError(f"cannot reset: {', '.join(present)} still present") from None
            self.op.call("estop_release" if self.status()["safety_mode"] == "ESTOP" else "reset_faults")
        s = self.status()
        if s["safety_mode"] == "HOLD":
            return
        if s["safety_mode"] == "ACTIVE":
            self.op.call("hold")
            return
        self.op.call("enable")
        self.op.call("stand", duration_s=float(self.ctx.rig.bench.hold_s))

        def standing() -> bool:
            self.services.check_service()
            s = self.status()
            job = s.get("job") or {}
            if job.get("kind") == "stand" and job.get("state") == "failed":
                raise RuntimeError(f"the stand-up to the hold pose failed: {job.get('error')}")
            if s["safety_mode"] not in ("STANDUP", "HOLD") and job.get("state") != "running":
                faults = ", ".join(f"{f['fault']} ({f.get('value')})" for f in s["faults"]) or "no fault"
                raise RuntimeError(f"the stand-up to the hold pose ended in {s['safety_mode']}: {faults}")
            return s["safety_mode"] == "HOLD"

        wait_for(standing, float(self.ctx.rig.bench.hold_s) + 10.0, "HOLD after the stand-up", self.ctx.stop, 0.05)

    # -- down ---------------------------------------------------------------------------------
    def close(self) -> None:
        """E-stop on Ctrl-C (else damping), the service's stop, the guard, the bridge, the files."""
        ctx = self.ctx
        try:
            if self.op is not None and self.stack is not None and self.stack.service is not None \
                    and self.stack.service.alive():
                try:
                    if ctx.stop.is_set():
                        self.op.request("estop")
                        ctx.log(f"{self.name}: stopped: the robot is e-stopped (damping)")
                    elif self.status()["safety_mode"] in ("STANDUP", "HOLD", "ACTIVE"):
                        self.op.call("damp")  # the robot hangs in the hoist: damping is its rest
                except Exception:  # noqa: BLE001 - the service's own stop follows anyway
                    pass
            if self.op is not None:
                try:
                    self.op.close()
                except Exception:  # noqa: BLE001
                    pass
        finally:
            try:
                if self.stack is not None:
                    self.stack.close()
            finally:
                if self.bridge is not None:
                    try:
                        self.bridge.close()
                    except Exception:  # noqa: BLE001
                        pass
                    if self.bridge in ctx.bridges:
                        ctx.bridges.remove(self.bridge)
                if self._sock_tmp and self._sock_dir is not None:
                    shutil.rmtree(self._sock_dir, ignore_errors=True)


def run_step(ctx: ScenarioContext, scenario: str, name: str, fn: Callable[[], Case]) -> Case:
    """One case: a ReactionFailed fails it, a person not at the rig skips it, anything else is an error."""
    t0 = time.monotonic()
    try:
        case = fn()
    except ReactionFailed as e:
        case = Case(scenario, name, "failed", str(e))
    except HilStopped as e:
        case = Case(scenario, name, "skipped", str(e))
    except Exception as e:  # noqa: BLE001 - reported, the next case runs
        case = Case(scenario, name, "error", f"{type(e).__name__}: {e}")
    case.duration_s = round(time.monotonic() - t0, 2)
    ctx.log(f"{scenario}: {name}: {case.verdict}: {case.message}")
    return case


def stack_error(scenario: str, names: list[str], e: BaseException, stopped: bool) -> list[Case]:
    if stopped:
        return [Case(scenario, n, "skipped", "not run: stopped by the operator") for n in names]
    return [Case(scenario, n, "error", f"the service stack did not start: {type(e).__name__}: {e}") for n in names]

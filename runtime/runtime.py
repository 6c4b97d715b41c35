"""The generic runtime: one robot, one driver, the safety supervisor and the real-time loop, behind
the operator API every front end uses (the simulator procedure, the service, the HIL harness).

    rt = Runtime.from_deploy("g1_sim")                 # or Runtime(robot_cfg, driver_cfg, ...)
    rt.enable(); rt.request("interpolate", 2.0, pose); rt.wait(2.2); rt.request("hold")
    rt.status()["safety_mode"], rt.report(), rt.event_list()
    rt.close()

What it is built from: a robot config (``configs/robots``), a driver config (any class registered
with ``@register_driver``; the runtime never names one), a safety config, a controller (by name:
``pd`` or any ``@register_controller`` class) and the loop options. Lifecycle: the driver is
configured and activated before the loop first ticks, and handed back (``deactivate``: damped) by
``close()``.

Clock modes: in lockstep ``wait()`` runs ticks on the calling thread (deterministic, faster than
real time); in real time a C++ thread ticks at absolute deadlines and ``wait()`` sleeps. Python is
never on the tick: every call here goes through the loop's lock-free buffers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from vertebra import _rt
from vertebra.runtime.config import RobotConfig, loop_config, robot_params
from vertebra.runtime.controllers import BUILTIN_CONTROLLERS, controller_class
from vertebra.runtime.errors import VertebraError
from vertebra.safety.config import SafetySettings


class ModeRequestRefused(VertebraError):
    """The loop refused a mode request; ``status`` is the code, ``reason`` which gate failed."""

    def __init__(self, mode: Any, status: str, reason: str):
        self.mode, self.status, self.reason = mode, status, reason
        super().__init__(f"mode request {mode} refused by the loop: {status}" + (f": {reason}" if reason else ""))


class Runtime:
    """The operator API over one robot's real-time loop."""

    def __init__(self, robot: str | RobotConfig, driver: Any, *, controller: str = "pd",
                 safety: SafetySettings | None = None, rate_hz: float | None = None, lockstep: bool = False,
                 realtime_priority: bool = True, cpu: int | None = None, fault_injection: bool = False,
                 event_log: str | os.PathLike[str] | None = None, model: Any = None,
                 use_estimator: bool = False, configure: Callable[[Runtime], None] | None = None,
                 heartbeat: str | None = None, record: Any = None, record_metadata: dict[str, Any] | None = None,
                 keep_out: list[Any] | None = None):
        """`driver`: a registered driver config (its ``build(robot, rate_hz)`` makes the C++ driver) or
        a C++ driver already built. `controller`: ``pd`` or a registered controller name.
        `fault_injection`: a FaultInjector between the driver and the loop (``self.injector``).
        `event_log`: append the safety events to this JSON-lines file (always kept in memory too).
        `use_estimator`: the controller and monitors use the state estimator's base even where the
        driver has truth (simulation as on hardware); a driver without truth always gets it.
        `configure`: called with this runtime after everything is built and before the loop first
        ticks (configuration-time additions: a chunk scheduler, a registered mode).
        `heartbeat`: write the guard's heartbeat (``/dev/shm/<heartbeat>``, cpp/safety/heartbeat.hpp)
        after every tick's driver write, for ``vertebra guard``; real time only (lockstep has no
        steady heartbeat). Opened before the driver is built, so a bad segment touches nothing.
        `record`: a RecordOptions (runtime/recorder.py) to record the run (``self.recorder``), with
        `record_metadata` (serial, config hashes, ...) in every segment; None or disabled: no recording.
        `keep_out`: boxes (config.KeepOutBox) the whole-body controller keeps the robot's
        ``wbc.keep_out.points`` out of (the deploy config's ``keep_out:``); refused by a controller
        that cannot keep them."""
        self.cfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        cfg = self.cfg
        self.rate_hz = float(rate_hz or cfg.control_rate_hz)
        self.lockstep = lockstep
        self.model = model if model is not None else _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
        self.default_pose = cfg.column("default_rad")
        self.safety = safety if safety is not None else SafetySettings.load(cfg)
        self.heartbeat: Any = None
        if heartbeat is not None:
            if lockstep:
                from vertebra.runtime.errors import ConfigError

                raise ConfigError(cfg.file, "heartbeat", heartbeat, "no heartbeat with lockstep: true (a lockstep loop "
                                  "ticks only when asked, so a guard would take over between calls)")
            try:
                self.heartbeat = _rt.Heartbeat(heartbeat)
            except (RuntimeError, ValueError) as e:
                raise VertebraError(str(e)) from None
        self.driver_config = driver if hasattr(driver, "build") else None
        self.driver = driver.build(cfg, self.rate_hz) if self.driver_config is not None else driver
        if self.driver.lifecycle_state == "unconfigured":
            self.driver.configure(cfg.joint_names, self.rate_hz, cfg.column("kd_damping"))
        if self.driver.lifecycle_state == "inactive":
            self.driver.activate()
        self.injector = _rt.FaultInjector(self.driver) if fault_injection else None
        self.loop = _rt.RtLoop(self.injector or self.driver, robot_params(cfg),
                               loop_config(self.rate_hz, lockstep, realtime_priority, cpu), self.safety.to_cpp(cfg))
        self.events = _rt.EventLog(self.loop, str(event_log) if event_log else "")
        if self.heartbeat is not None:
            self.loop.set_heartbeat(self.heartbeat)  # attached when the loop starts, detached by close()
        # The state estimator, for every legged robot with a floating base (not the mock's rotors).
        self.use_estimator = use_estimator
        self.estimator: Any = None
        floating = getattr(self.driver_config, "floating_base", self.driver.name != "mock")
        if floating and cfg.estimator is not None:
            from vertebra.runtime.estimation import build_estimator

            self.estimator = build_estimator(cfg, self.model, self.rate_hz)
            self.loop.set_estimator(self.estimator, use_estimator)
        elif use_estimator:
            from vertebra.runtime.errors import ConfigError

            raise ConfigError(cfg.file, "estimator", "<missing>" if floating else f"driver {self.driver.name}",
                              "an estimator section on a robot with a floating base (use_estimator needs one)")
        self.controller = controller
        self.keep_out = list(keep_out or [])
        if self.keep_out and controller != "wbc":
            from vertebra.runtime.errors import ConfigError

            raise ConfigError(cfg.file, "keep_out", ", ".join(b.name for b in self.keep_out),
                              f"the wbc controller (controller '{controller}' cannot keep the robot out of them)")
        # The name ACTIVE is requested under, and the controller's handle (WholeBody for wbc).
        self.active_mode = BUILTIN_CONTROLLERS.get(controller, controller)
        self._controller = None if controller in BUILTIN_CONTROLLERS else controller_class(controller)()
        self.handle: Any = self._controller.attach(self) if self._controller is not None else None
        self._targets_seq = 0
        self._closed = False
        self.recorder: Any = None
        self.camera_feeds: list[Any] = []
        try:
            if record is not None and record.enabled:
                from vertebra.runtime.recorder import Recorder
                from vertebra.runtime.recorder_cameras import CameraFeed

                record.check_robot(cfg)
                self.recorder = Recorder(record, cfg, rate_hz=self.rate_hz, lockstep=lockstep,
                                         metadata={"driver": self.driver.name, "controller": controller,
                                                   **(record_metadata or {})}, events=self.events)
                self.recorder.attach(self.loop)
                self.camera_feeds = [CameraFeed(self.recorder, self, cam) for cam in record.cameras]
            if configure is not None:
                configure(self)
        except BaseException:  # nothing half-built is left behind: the robot is handed back damped
            for feed in self.camera_feeds:
                feed.stop()
            if self.recorder is not None:
                self.recorder.discard()
            self.events.stop()
            if self.driver.lifecycle_state == "active":
                self.driver.deactivate()
            raise
        if self.recorder is not None:
            self.recorder.start(self.time_s)
        if not lockstep:
            self.events.start()
            self.loop.start()
            for feed in self.camera_feeds:
                feed.start()

    @classmethod
    def from_deploy(cls, deploy: Any, **overrides: Any) -> Runtime:
        """Build from a deploy config (a DeployConfig, or a name/path for ``DeployConfig.load``)."""
        from vertebra.runtime.deploy import DeployConfig

        d = deploy if isinstance(deploy, DeployConfig) else DeployConfig.load(deploy)
        robot, kw = cls.deploy_arguments(d)
        kw["cpu"] = d.loop.cpu
        hb = cls.heartbeat_name_for(d)
        if hb is not None:
            kw["heartbeat"] = hb
        kw.update(overrides)
        return cls(robot, d.driver, **kw)

    @staticmethod
    def heartbeat_name_for(d: Any) -> str | None:
        """The guard heartbeat a deploy config's runtime writes: ``d.heartbeat_name`` when its guard is
        enabled, its driver is a robot driver (unitree_dds) and its loop runs in real time; else None
        (an in-process simulator dies with its runtime; lockstep has no steady heartbeat)."""
        driver = getattr(d.driver, "driver_name", "")
        if not d.guard.enabled or driver != "unitree_dds" or d.loop.lockstep or getattr(d.driver, "lockstep", False):
            return None
        return str(d.heartbeat_name)

    @staticmethod
    def deploy_arguments(d: Any) -> tuple[RobotConfig, dict[str, Any]]:
        """(robot config, keyword arguments) a deploy config gives every runtime class."""
        robot = d.robot_config()
        return robot, dict(controller=d.controller, safety=d.safety_settings(robot), rate_hz=d.loop.rate_hz,
                           lockstep=d.loop.lockstep, realtime_priority=d.loop.realtime_priority,
                           use_estimator=d.use_estimator, record=d.record, record_metadata=d.provenance(),
                           keep_out=list(d.keep_out))

    # -- time ------------------------------------------------------------------------------
    def time_s(self) -> float:
        """Robot time (the driver's clock), s."""
        return float(self.loop.snapshot()["time_s"])

    def wait(self, seconds: float, on_sample: Callable[[dict[str, Any]], None] | None = None,
             sample_every_s: float = 0.02) -> None:
        """Let `seconds` of robot time pass (ticks in lockstep; sleeping in real time)."""
        end = self.time_s() + seconds
        step_ticks = max(1, int(round(sample_every_s * self.rate_hz)))
        while True:
            now = self.time_s()
            if now >= end - 0.5 / self.rate_hz:
                break
            if self.lockstep:
                remaining = int(round((end - now) * self.rate_hz))
                self.run_ticks(min(step_ticks, max(1, remaining)))
            else:
                time.sleep(min(sample_every_s, max(0.0, end - now)))
            if on_sample is not None:
                on_sample(self.loop.snapshot())

    def run_ticks(self, n: int) -> None:
        """Lockstep: run n ticks now, then flush the events and let the recorder catch up (the caller
        waits for the writer, so a lockstep recording loses nothing)."""
        left = int(n)
        while left > 0:
            k = left
            if self.camera_feeds:  # stop at the next frame's robot time, capture it, go on
                due = min(f.next_s for f in self.camera_feeds) - self.time_s()
                k = max(1, min(left, int(round(due * self.rate_hz))))
            self.loop.run_ticks(k)
            left -= k
            for feed in self.camera_feeds:
                feed.poll(self.time_s())
        self.events.flush()
        if self.recorder is not None:
            self.recorder.wait_room()

    # -- modes and targets -------------------------------------------------------------------
    def request(self, mode: Any, duration_s: float = 0.0, pose: list[float] | None = None, stream: bool = False) -> None:
        """Ask the loop for a mode (a ``_rt.Mode`` or a name) and wait until it answered; raise
        :class:`ModeRequestRefused` (naming the gate that failed) if it refused."""
        seq = self.loop.request_mode(mode, duration_s, list(pose or []), stream)
        deadline = time.monotonic() + 2.0
        while True:
            if self.lockstep:
                self.loop.run_ticks(1)
            snap = self.loop.snapshot()
            if snap["request_seq"] >= seq:
                break
            if time.monotonic() > deadline:
                raise VertebraError(f"the loop did not answer mode request {mode} within 2 s")
            time.sleep(0.001)
        if snap["request_status"] != "ok":
            raise ModeRequestRefused(mode, snap["request_status"], snap["request_reason"])

    def activate_controller(self, stream: bool = False) -> None:
        """HOLD -> ACTIVE under this runtime's controller (``pd``: joint targets; else its mode)."""
        if self._controller is not None:
            self._controller.before_activate(self.handle)
        self.request(self.active_mode, stream=stream)

    def set_targets(self, q: list[float], dq: list[float] | None = None, kp: list[float] | None = None,
                    kd: list[float] | None = None, tau_ff: list[float] | None = None, seq: int | None = None) -> None:
        """Joint targets (motor order) for the joint-target PD; gains default to the robot's."""
        n = self.cfg.n_joints
        self._targets_seq = self._targets_seq + 1 if seq is None else seq
        self.loop.set_targets(list(q), list(dq or [0.0] * n), list(kp or self.cfg.column("kp")),
                              list(kd or self.cfg.column("kd")), list(tau_ff or [0.0] * n), self._targets_seq)

    # -- operator ----------------------------------------------------------------------------
    def enable(self, on: bool = True) -> None:
        """The operator's enable (the arming gate); disabling an armed robot stops it."""
        self.loop.set_enabled(on)
        self._tick_once()

    def disable(self) -> None:
        self.enable(False)

    def estop(self) -> None:
        self.loop.estop()
        self._tick_once()

    def stop(self) -> None:
        """Operator stop: settle-then-cut when armed."""
        self.loop.request_stop()
        self._tick_once()

    def reset(self) -> None:
        self.loop.reset_faults()
        self._tick_once()

    def _tick_once(self) -> None:
        if self.lockstep:
            self.loop.run_ticks(1)
            self.events.flush()
        else:
            # two ticks on: the tick in flight when the request was posted may have read its requests
            # already, and published after it (a status read then still showed ESTOP after a release)
            t = self.loop.snapshot()["tick"]
            deadline = time.monotonic() + 1.0
            while self.loop.snapshot()["tick"] < t + 2 and time.monotonic() < deadline:
                time.sleep(0.0005)

    # -- what happened ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The loop's latest snapshot (modes, faults, state, command, counters)."""
        return self.loop.snapshot()

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary: robot, clock, modes, faults, loop timing."""
        snap = self.loop.snapshot()
        stats = self.loop.stats()
        lat, comp = stats["lateness_us"], stats["compute_us"]
        return {
            "robot": self.cfg.name,
            "driver": self.driver.name,
            "controller": self.controller,
            "clock": "lockstep" if self.lockstep else "realtime",
            "time_s": round(float(snap["time_s"]), 4),
            "mode": snap["mode"],
            "safety_mode": snap["safety_mode"],
            "faults": list(snap["faults"]),
            "limiter_clamps": int(snap["clamps"]),
            "base": snap["base"]["source"],
            "loop": {
                "rate_hz": self.rate_hz,
                "ticks": int(stats["ticks"]),
                "lateness_us": {k: round(lat[k], 1) for k in ("p50", "p99", "p999", "max")},
                "compute_us": {k: round(comp[k], 1) for k in ("p50", "p99", "p999", "max")},
                "overruns": int(stats["overruns"]),
                **({} if self.lockstep else {"os": self.loop.rt_report()}),
            },
        }

    def event_list(self) -> list[dict[str, Any]]:
        """Every event so far (oldest first), as dicts."""
        self.events.flush()
        return [json.loads(j) for _, j in self.events.recent(0)]

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the loop, flush the events and hand the robot back (driver deactivated: damped)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.lockstep:
                self.loop.stop()
            self.events.stop()
            for feed in self.camera_feeds:
                feed.stop()
            if self.recorder is not None:
                self.recorder.close()
        finally:
            if self.driver.lifecycle_state == "active":
                self.driver.deactivate()
            # A bus driver keeps its DDS entities, its rt/lowcmd writer among them, until cleaned up.
            # Left to the garbage collector, a closed runtime's writer can stay matched for a while,
            # and the next controller on the bus (a service started after a bench run) sees a second
            # writer: lowcmd_conflict. A closed runtime leaves the bus.
            if getattr(self.driver_config, "driver_name", "") == "unitree_dds" \
                    and self.driver.lifecycle_state == "inactive":
                self.driver.cleanup()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

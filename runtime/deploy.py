"""Deploy configs (``configs/deploy/<name>.yaml``): everything one robot process runs, in one file.

    robot: g1                      # configs/robots/g1.yaml (or a path to a robot YAML)
    driver: {type: mujoco}         # a registered driver (vertebra.drivers.registry) and its fields
    safety: g1                     # configs/safety/g1.yaml (the default: configs/safety/<robot>.yaml)
    controller: pd                 # a controller mode by name
    policy: noop                   # optional: configs/policies/noop.yaml
    loop: {rate_hz: 500, lockstep: false, realtime_priority: true, cpu: null}

``DeployConfig.load("g1_sim")`` validates the file and what it names: the robot and safety configs are
loaded (their own errors name their own files), the policy server config must exist, the driver
section is parsed into the driver's registered config class. Relative paths are relative to the
deploy file's folder. Every front end (sim, service, HIL) builds its runtime from one of these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertebra.drivers.registry import driver_types
from vertebra.runtime.config import CONFIG_DIR, KeepOutBox, RobotConfig, available_robots, loop_config
from vertebra.policies.server_config import CurveSettings
from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.schema import Section, Variant, config_file, field, read_yaml

DEPLOY_DIR = CONFIG_DIR / "deploy"


def available_deploys() -> list[str]:
    return sorted(p.stem for p in DEPLOY_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class DeployContext:
    """What the checks of a deploy config need besides the file: where relative paths start, and the
    controller modes the caller accepts (None: any identifier)."""

    base_dir: Path
    controllers: Sequence[str] | None = None


class LoopOptions(Section):
    """The control loop."""

    rate_hz = field(float, default=None, lo=50.0, hi=2000.0, doc="control rate (null: the robot's control_rate_hz)")
    lockstep = field(bool, default=False, doc="tick only when asked (simulation, tests); false: real time")
    realtime_priority = field(bool, default=True, doc="SCHED_FIFO for the loop thread (real time)")
    cpu = field(int, default=None, lo=0, hi=4095, doc="the loop thread's core (null: the last one, in real time)")


class GuardOptions(Section):
    """The guard (`vertebra guard`): an independent process that takes the robot over with damping when
    the runtime's real-time thread stops writing its heartbeat (shared memory, every tick)."""

    enabled = field(bool, default=True,
                    doc="watch this runtime (a robot driver); the service refuses to arm while an enabled guard "
                        "is not watching. false: no guard (a simulator in-process dies with its runtime)")
    heartbeat = field(str, default=None, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}",
                      doc="the heartbeat's shared-memory name (/dev/shm/<name>; null: vertebra-<deploy name>)")
    timeout_ms = field(float, default=20.0, lo=2.0, hi=1000.0,
                       doc="a heartbeat older than this while the robot stands (STANDUP/HOLD/ACTIVE) is a frozen "
                           "runtime; a runtime whose process ends is taken over at once, whatever this says")
    idle_timeout_ms = field(float, default=None, lo=2.0, hi=10000.0,
                            doc="the same for a runtime that holds nothing up (PASSIVE, DAMP, FAULT...); null: "
                                "10 x timeout_ms, at least 250 ms")
    rate_hz = field(float, default=500.0, lo=50.0, hi=2000.0, doc="the guard's damping command rate")
    settle = field(bool, default=True,
                   doc="when the last heartbeat shows the robot standing (HOLD/ACTIVE), run the safety config's "
                       "settle-then-cut poses before damping; false: damping at once")


class ControlOptions(Section):
    """The control API of `vertebra run` (docs/deploy.md): ZMQ on a Unix socket; TCP + CURVE optional."""

    socket = field(str, default=None, doc="the Unix socket (null: control-<deploy name>.sock in $RUNTIME_DIRECTORY "
                                          "when systemd gives one, else the per-user runtime directory)")
    group = field(str, default=None, doc="the group given access to the socket (mode 0660; null: the service's own)")
    tcp = field(str, default=None, pattern=r"tcp://[^\s]+:[0-9]+",
                doc="also serve tcp://HOST:PORT, CURVE-encrypted with a client allowlist (curve: required)")
    curve = field(CurveSettings, default={}, doc="the TCP endpoint's encryption and client allowlist")
    status_rate_hz = field(float, default=20.0, lo=10.0, hi=50.0, doc="the status stream's rate")
    lease_timeout_s = field(float, default=1.0, lo=0.1, hi=30.0,
                            doc="a lease not retained for this long goes stale: an ACTIVE robot goes to HOLD, "
                                "then (after as long again) a controlled stop")
    max_message_bytes = field(int, default=1 << 20, lo=1024, hi=1 << 26,
                              doc="larger requests get an error reply before they are decoded")
    remote_enable_buttons = field(int, default=0, lo=0, hi=0xFFFF,
                                  doc="the Unitree wireless remote's buttons that, held together for remote_enable_s, "
                                      "give the operator's enable (a mask of unitree_sdk2's xKeySwitchUnion bits: R1 0, "
                                      "L1 1, start 2, select 3, R2 4, L2 5, A 8, B 9, X 10, Y 11; e.g. 0x0104 = "
                                      "start + A); 0: enable only through the control API")
    remote_enable_s = field(float, default=1.0, lo=0.2, hi=10.0, doc="how long the enable combination is held")

    def check(self, context: Any) -> None:
        if self.tcp is not None and not self.curve.enabled:
            raise self.error("tcp", self.tcp, "a TCP endpoint only with curve.enabled (encryption + allowlist)")


class ServiceOptions(Section):
    """The systemd units `vertebra service install` writes (docs/deploy.md)."""

    user = field(str, default="vertebra", doc="the user the units run as")
    group = field(str, default=None, doc="the units' group (null: the user's)")
    watchdog_s = field(float, default=1.0, lo=0.1, hi=60.0, doc="WatchdogSec: pinged at half of it while the loop ticks")
    rtprio = field(int, default=95, lo=1, hi=99, doc="LimitRTPRIO (the loop asks SCHED_FIFO below it)")
    cpu_affinity = field(list, item=int, default=None, doc="CPUAffinity of the runtime (null: the loop's cpu, if set)")
    restart_s = field(float, default=2.0, lo=0.1, hi=600.0, doc="RestartSec after a failure")
    start_limit_burst = field(int, default=5, lo=1, hi=100, doc="restarts allowed within start_limit_interval_s")
    start_limit_interval_s = field(float, default=120.0, lo=1.0, hi=86400.0, doc="StartLimitIntervalSec")
    stop_margin_s = field(float, default=30.0, lo=5.0, hi=3600.0,
                          doc="TimeoutStopSec = the settle-then-cut time + this (the recorder's close)")


class PolicyRemote(Section):
    """A policy server this service does not start: elsewhere (an off-board GPU box over tcp:// with
    CURVE), or one run by its own unit on this machine (ipc://)."""

    endpoint = field(str, pattern=r"(tcp|ipc)://\S+", doc="the server's endpoint")
    server_public_key = field(str, default=None, doc="tcp://: the server's public key file (zmq.auth)")
    client_secret_key = field(str, default=None,
                              doc="tcp://: this runtime's key pair file (its public key in the server's allowlist)")
    timeout_s = field(float, default=10.0, lo=0.1, hi=600.0, doc="how long start-up waits for the server's answer")

    def check(self, context: Any) -> None:
        if self.endpoint.startswith("tcp://"):
            for name in ("server_public_key", "client_secret_key"):
                if getattr(self, name) is None:
                    raise self.error(name, "<missing>", "a key file: a tcp:// policy server is reached with CURVE")


class DeployConfig(Section):
    """A deployment: robot, driver, safety, controller, policy and loop options."""

    robot = field(str, doc="robot name (configs/robots/<name>.yaml) or path to a robot YAML")
    driver = field(Variant(driver_types, key="type", what="driver"), doc="the driver: {type: <registered name>, ...}")
    safety = field(str, default=None,
                   doc="safety config: a name in configs/safety/ or a path (null: configs/safety/<robot>.yaml)")
    controller = field(str, default="pd", pattern=r"[a-z][a-z0-9_]*", doc="the controller mode to run (pd, wbc, ...)")
    policy = field(str, default=None, pattern=r"[A-Za-z0-9_./~][A-Za-z0-9_./~-]*",
                   doc="a policy server config: a name in configs/policies/ or a YAML path (optional); "
                       "`vertebra run` starts and supervises `vertebra serve` with it")
    loop = field(LoopOptions, default={}, doc="control loop options")
    active_policy = field(str, default=None, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                          doc="which of the policy server's policies `vertebra run` runs (null: the server's default); "
                              "edit it and `vertebra reload` to swap")
    policy_remote = field(PolicyRemote, default=None,
                          doc="run the policies of a server `vertebra run` does not start (instead of `policy`)")
    guard = field(GuardOptions, default={}, doc="the guard process that takes over when the runtime dies")
    control = field(ControlOptions, default={}, doc="the control API of `vertebra run`")
    service = field(ServiceOptions, default={}, doc="the systemd units (vertebra service install)")
    use_estimator = field(bool, default=False,
                          doc="the controller uses the state estimator's base even where the driver has truth "
                              "(simulation as on hardware); without truth (a real robot) it always does")
    serial = field(str, default=None, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                   doc="the robot's serial number (in every recording's metadata and run name)")
    record = field(RecordOptions, default={}, doc="recording every run (runtime/recorder.py, docs/data.md)")
    keep_out = field(list, item=KeepOutBox, default=[],
                     doc="boxes at the workstation (a table, a fixture) the wbc controller keeps the robot's hands "
                         "and forearms out of (the robot config's wbc.keep_out.points)")

    # Derived by check(): the resolved paths (and the loaded configs, see robot_config()/safety_settings()).
    safety_path: Path
    policy_path: Path | None
    _robot: RobotConfig
    _safety: Any  # vertebra.safety.config.SafetySettings

    def provenance(self) -> dict[str, str]:
        """What a recording of this deployment carries: the serial, the deploy name, the software, and
        the sha256 of each config file it ran under (deploy, robot, safety, policy server)."""
        from vertebra.runtime.provenance import recording_metadata

        return {"serial": self.serial or "", "deploy": Path(self.file).stem,
                **recording_metadata({"deploy": self.file, "robot": self._robot.file, "safety": self.safety_path,
                                      "policy_server": self.policy_path})}

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], controllers: Sequence[str] | None = None) -> DeployConfig:
        """Load ``configs/deploy/<name>.yaml`` or a YAML path. `controllers`: the mode names the caller
        can run (the controller field must be one of them)."""
        path = config_file(name_or_path, DEPLOY_DIR)
        return cls.from_dict(read_yaml(path), path, context=DeployContext(path.resolve().parent, controllers))

    def check(self, context: Any) -> None:
        ctx = context if isinstance(context, DeployContext) else DeployContext(Path.cwd())
        self._robot = self._load_robot(ctx)
        self.record.check_robot(self._robot)
        self._load_safety(ctx)
        if ctx.controllers is not None and self.controller not in ctx.controllers:
            raise self.error("controller", self.controller, "one of: " + ", ".join(ctx.controllers))
        self.policy_path = None
        if self.policy is not None:
            p = (self._resolve(self.policy, ctx) if Path(self.policy).suffix
                 else CONFIG_DIR / "policies" / f"{self.policy}.yaml")
            if not p.is_file():
                have = sorted(x.stem for x in (CONFIG_DIR / "policies").glob("*.yaml"))
                raise self.error("policy", self.policy,
                                 "a policy server config in configs/policies/: " + ", ".join(have))
            from vertebra.policies.server_config import ServerConfig

            server = ServerConfig.load(p)
            served = server.robot
            if served is not None and served != self._robot.name:
                raise self.error("policy", self.policy, f"a policy server for {self._robot.name} ({p.name} serves {served})")
            if self.active_policy is not None and self.active_policy not in server.policies:
                raise self.error("active_policy", self.active_policy, f"a policy of {p.name}: " + ", ".join(server.policies))
            self.policy_path = p
        elif self.active_policy is not None and self.policy_remote is None:
            raise self.error("active_policy", self.active_policy,
                             "null unless `policy` or `policy_remote` names a policy server")
        if self.policy is not None and self.policy_remote is not None:
            raise self.error("policy_remote", self.policy_remote.endpoint,
                             "either policy (a server this service starts) or policy_remote, not both")

        if self.loop.rate_hz is None:
            self.loop.rate_hz = self._robot.control_rate_hz

    @property
    def name(self) -> str:
        """The deploy config's name: its file's stem (``g1_dds``), or ``deploy`` when built in memory."""
        f = Path(self.file)
        return f.stem if f.suffix in (".yaml", ".yml") else "deploy"

    @property
    def heartbeat_name(self) -> str:
        """The guard heartbeat's shared-memory name."""
        return self.guard.heartbeat or f"vertebra-{self.name}"

    def robot_config(self) -> RobotConfig:
        """The robot config the file names (loaded and validated by load())."""
        return self._robot

    def safety_settings(self, robot: RobotConfig | None = None) -> Any:
        """The safety settings the file names (``SafetySettings``, validated by load()); for another
        `robot` config than robot_config(), the same file loaded for that one."""
        if robot is None or robot is self._robot:
            return self._safety
        from vertebra.safety.config import SafetySettings

        return SafetySettings.load(robot, self.safety_path)

    def _resolve(self, value: str, ctx: DeployContext) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else ctx.base_dir / p

    def _load_robot(self, ctx: DeployContext) -> RobotConfig:
        if Path(self.robot).suffix:
            path = self._resolve(self.robot, ctx)
            if not path.is_file():
                raise self.error("robot", self.robot, f"a robot YAML file ({path} does not exist) or one of: "
                                 + ", ".join(available_robots()))
            return RobotConfig.load(path)
        if self.robot not in available_robots():
            raise self.error("robot", self.robot,
                             "one of: " + ", ".join(available_robots()) + " (or a robot YAML path)")
        return RobotConfig.load(self.robot)

    def _load_safety(self, ctx: DeployContext) -> None:
        from vertebra.safety.config import SAFETY_DIR, SafetySettings

        if self.safety is None:
            path = SAFETY_DIR / f"{self._robot.name}.yaml"
        elif not Path(self.safety).suffix:
            path = SAFETY_DIR / f"{self.safety}.yaml"
        else:
            path = self._resolve(self.safety, ctx)
        if not path.is_file():
            have = sorted(x.stem for x in SAFETY_DIR.glob("*.yaml"))
            raise self.error("safety", self.safety if self.safety is not None else str(path),
                             "a safety config: a name in configs/safety/ (" + ", ".join(have) + ") or a YAML path")
        self.safety_path = path
        self._safety = SafetySettings.load(self._robot, path)

    # -- conversion ------------------------------------------------------------------------------
    @property
    def rate_hz(self) -> float:
        return float(self.loop.rate_hz)

    def loop_config(self) -> Any:
        """The C++ ``LoopConfig`` of the loop options."""
        o = self.loop
        return loop_config(self.rate_hz, o.lockstep, o.realtime_priority, o.cpu)

    def build_driver(self) -> Any:
        """Create and init() the configured driver for the robot (configuration time: may raise)."""
        return self.driver.build(self._robot, self.rate_hz)

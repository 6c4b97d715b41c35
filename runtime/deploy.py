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
from vertebra.runtime.config import CONFIG_DIR, RobotConfig, available_robots, loop_config
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.schema import Section, Variant, field, read_yaml

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


class DeployConfig(Section):
    """A deployment: robot, driver, safety, controller, policy and loop options."""

    robot = field(str, doc="robot name (configs/robots/<name>.yaml) or path to a robot YAML")
    driver = field(Variant(driver_types, key="type", what="driver"), doc="the driver: {type: <registered name>, ...}")
    safety = field(str, default=None,
                   doc="safety config: a name in configs/safety/ or a path (null: configs/safety/<robot>.yaml)")
    controller = field(str, default="pd", pattern=r"[a-z][a-z0-9_]*", doc="the controller mode to run (pd, wbc, ...)")
    policy = field(str, default=None, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                   doc="a policy server config in configs/policies/, by name (optional)")
    loop = field(LoopOptions, default={}, doc="control loop options")
    use_estimator = field(bool, default=False,
                          doc="the controller uses the state estimator's base even where the driver has truth "
                              "(simulation as on hardware); without truth (a real robot) it always does")

    # Derived by check(): the resolved paths (and the loaded configs, see robot_config()/safety_settings()).
    safety_path: Path
    policy_path: Path | None
    _robot: RobotConfig
    _safety: Any  # vertebra.safety.config.SafetySettings

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], controllers: Sequence[str] | None = None) -> DeployConfig:
        """Load ``configs/deploy/<name>.yaml`` or a YAML path. `controllers`: the mode names the caller
        can run (the controller field must be one of them)."""
        path = Path(name_or_path)
        if not path.suffix:
            path = DEPLOY_DIR / f"{name_or_path}.yaml"
            if not path.is_file():
                raise ConfigError(path, "<file>", str(name_or_path), "one of: " + ", ".join(available_deploys()))
        if not path.is_file():
            raise ConfigError(path, "<file>", str(path), "an existing YAML file")
        return cls.from_dict(read_yaml(path), path, context=DeployContext(path.resolve().parent, controllers))

    def check(self, context: Any) -> None:
        ctx = context if isinstance(context, DeployContext) else DeployContext(Path.cwd())
        self._robot = self._load_robot(ctx)
        self._load_safety(ctx)
        if ctx.controllers is not None and self.controller not in ctx.controllers:
            raise self.error("controller", self.controller, "one of: " + ", ".join(ctx.controllers))
        self.policy_path = None
        if self.policy is not None:
            p = CONFIG_DIR / "policies" / f"{self.policy}.yaml"
            if not p.is_file():
                have = sorted(x.stem for x in (CONFIG_DIR / "policies").glob("*.yaml"))
                raise self.error("policy", self.policy,
                                 "a policy server config in configs/policies/: " + ", ".join(have))
            from vertebra.policies.server_config import ServerConfig

            served = ServerConfig.load(p).robot
            if served is not None and served != self._robot.name:
                raise self.error("policy", self.policy, f"a policy server for {self._robot.name} ({p.name} serves {served})")
            self.policy_path = p
        if self.loop.rate_hz is None:
            self.loop.rate_hz = self._robot.control_rate_hz

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

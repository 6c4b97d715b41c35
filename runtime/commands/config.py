"""`vertebra config check`: load and validate a robot config and its safety config."""

from __future__ import annotations

import argparse
import sys

from vertebra.runtime.commands import robot_names


def run_check(args: argparse.Namespace) -> int:
    from vertebra.runtime.config import ConfigError, RobotConfig
    from vertebra.safety.config import SafetySettings

    deploy = None
    try:
        target = str(args.robot)
        if args.deploy or "/deploy/" in target.replace("\\", "/"):
            from vertebra.runtime.controllers import available_controllers
            from vertebra.runtime.deploy import DeployConfig

            deploy = DeployConfig.load(target, controllers=available_controllers())
            cfg = deploy.robot_config()
            safety = deploy.safety_settings(cfg) if args.safety is None else SafetySettings.load(cfg, args.safety)
        else:
            cfg = RobotConfig.load(target)
            safety = SafetySettings.load(cfg, args.safety)
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    if deploy is not None:
        print(f"ok: deploy {deploy.file}: driver {deploy.driver.driver_name}, controller {deploy.controller}, "
              f"policy {deploy.policy or 'none'}, {deploy.rate_hz:g} Hz, "
              f"{'lockstep' if deploy.loop.lockstep else 'real time'}")
        if deploy.driver.driver_name == "unitree_dds":
            g = deploy.guard
            print(f"ok: guard on heartbeat {deploy.heartbeat_name}: takes over after {g.timeout_ms:g} ms, "
                  f"{'settle-then-cut, then ' if g.settle else ''}damping at {g.rate_hz:g} Hz" if g.enabled else
                  "guard OFF (guard.enabled: false): nothing takes over if the runtime dies")
        c = deploy.control
        print(f"ok: control API: lease timeout {c.lease_timeout_s:g} s, status {c.status_rate_hz:g} Hz"
              + (f", TCP {c.tcp} with CURVE" if c.tcp else ", Unix socket only"))
    print(f"ok: {cfg.name} ({cfg.description}), {cfg.n_joints} joints, URDF {cfg.urdf_path}")
    print(f"ok: safety {safety.file}: {len(safety.settle)} settle keyframes "
          f"({safety.settle_duration_s():g} s), e-stop {safety.estop}")
    off = safety.disabled_monitors()
    if off:
        print(f"monitors OFF (enabled: false in {safety.file}): {', '.join(off)}")
    else:
        print("ok: every monitor is on")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    c = subparsers.add_parser("config", help="configuration tools", description="Configuration tools.")
    csub = c.add_subparsers(dest="config", metavar="<action>")
    csub.required = True
    cc = csub.add_parser("check", help="validate a robot or deploy config",
                         description="Load and validate a robot config and its safety config (or a deploy config and "
                                     "everything it names); list every safety monitor that is turned off.")
    cc.add_argument("robot", help=f"robot name ({', '.join(robots)}), a path to a robot YAML, or with --deploy a deploy "
                                  "config name (configs/deploy/) or path")
    cc.add_argument("--deploy", action="store_true", help="the argument is a deploy config (configs/deploy/<name>.yaml)")
    cc.add_argument("--safety", default=None, help="safety YAML to check (default: configs/safety/<robot>.yaml)")
    cc.set_defaults(func=run_check)

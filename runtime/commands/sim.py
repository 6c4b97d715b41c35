"""`vertebra sim`: the runtime on a simulated robot through the deployment procedure (and the whole-body
controller's scenarios)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from vertebra.runtime.commands import progress, robot_names


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.config import ConfigError
    from vertebra.runtime.sim_runtime import SimRuntime

    if args.duration <= 0:
        print("vertebra sim: --duration must be > 0 seconds", file=sys.stderr)
        return 2
    if args.view and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("vertebra sim: --view needs a display (DISPLAY is not set); run without --view, or under X "
              "(e.g. xvfb-run -a vertebra sim ... --view)", file=sys.stderr)
        return 2
    try:
        if args.push_search:
            from vertebra.runtime.scenarios import find_max_push

            out = find_max_push(args.robot, say=progress(True), start_n=args.push_n)
            out["robot"] = args.robot
            print(json.dumps(out) if args.json else out)
            return 0
        args.controller_given = args.controller is not None
        args.controller = args.controller or "pd"
        if args.scenario and args.controller != "wbc" and not args.config:
            print("vertebra sim: --scenario needs --controller wbc", file=sys.stderr)
            return 2
        from vertebra.safety.events import default_log_path

        log = args.event_log or str(default_log_path())
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        if args.config:
            # The deploy config names robot, driver, safety, controller and loop; flags given override it.
            from vertebra.runtime.deploy import DeployConfig

            d = DeployConfig.load(args.config)
            over: dict = {"event_log": log}
            if args.lockstep:
                over["lockstep"] = True
            if args.rate:
                over["rate_hz"] = args.rate
            if args.controller_given:
                over["controller"] = args.controller
            rt = SimRuntime.from_deploy(d, **over)
            args.robot, args.controller = rt.cfg.name, rt.controller
        else:
            if not args.robot:
                print("vertebra sim: give --robot or --config (a deploy config)", file=sys.stderr)
                return 2
            rt = SimRuntime(args.robot, lockstep=args.lockstep, rate_hz=args.rate, noise=args.noise,
                            command_latency_ms=args.latency_ms, controller=args.controller, event_log=log)
        rt.events.note(f"vertebra sim --robot {args.robot} started", "", 0)
    except ConfigError as e:
        print(f"vertebra sim: bad configuration: {e}", file=sys.stderr)
        return 2
    viewer = None
    try:
        if args.view:
            from vertebra.drivers.viewer import SimViewer

            viewer = SimViewer(rt)
        say = progress(not args.json or args.verbose)
        if args.controller == "wbc":
            from vertebra.runtime.scenarios import run_scenario

            result = rt.stand_up(hold_s=0.5, progress=say)
            scenario = run_scenario(rt, args.scenario or "stand", args.duration, say or (lambda _m: None),
                                    push_force_n=args.push_n)
        else:
            result = rt.stand_up(hold_s=args.duration, progress=say)
        report = rt.report(result)
        if args.controller == "wbc":
            report["controller"] = "wbc"
            report["scenario"] = args.scenario or "stand"
            report.update(scenario)
            report["max_tilt_deg"] = scenario["max_tilt_deg"]
    finally:
        rt.close()
        if viewer is not None:
            viewer.close()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['robot']}: mode={report['mode']} base height {report['base_height_m']:.3f} m "
              f"(standing {report['standing_height_m']:.3f} m), max tilt {report['max_tilt_deg']:.2f} deg, "
              f"faults={report['faults'] or 'none'}, sim time {report['sim_time_s']:.2f} s")
        lat = report["loop"]["lateness_us"]
        print(f"loop {report['loop']['rate_hz']:g} Hz ({report['clock']}): lateness p50 {lat['p50']} us, "
              f"p99 {lat['p99']} us, p99.9 {lat['p999']} us, max {lat['max']} us, "
              f"overruns {report['loop']['overruns']}")
    return 0 if not report["faults"] and not report.get("fell", False) else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    s = subparsers.add_parser("sim", help="run the runtime on a simulated robot through the deployment procedure",
                              description="Run the runtime on the MuJoCo-simulated robot following the real "
                                          "deployment procedure: hanging limp in the hoist (zero torque) -> "
                                          "interpolate to the default pose -> lower the hoist -> release -> hold for "
                                          "--duration seconds.")
    s.add_argument("--robot", choices=robots, help="robot config from configs/robots/ (or give --config)")
    s.add_argument("--config", default=None, metavar="DEPLOY",
                   help="a deploy config (configs/deploy/<name>.yaml, or a path): robot, driver, safety, controller "
                        "and loop options; the flags given here override it")
    s.add_argument("--duration", type=float, default=10.0, help="seconds to hold standing after release (default 10)")
    s.add_argument("--lockstep", action="store_true",
                   help="step the simulator from the loop as fast as possible (deterministic) instead of real time")
    s.add_argument("--json", action="store_true", help="print one JSON object with the result")
    s.add_argument("--verbose", action="store_true", help="show phase progress even with --json")
    s.add_argument("--rate", type=float, default=None, help="control rate in Hz (default: the robot config's)")
    s.add_argument("--noise", action="store_true", help="enable the sensor noise configured for the robot")
    s.add_argument("--latency-ms", type=float, default=None, help="command latency to emulate, ms (default: config)")
    s.add_argument("--view", action="store_true", help="open the MuJoCo viewer (needs a display)")
    s.add_argument("--controller", choices=["pd", "wbc"], default=None,
                   help="pd: stand on joint hold (default); wbc: stand, then hand over to the whole-body controller")
    s.add_argument("--scenario", choices=["stand", "push", "reach", "pose"], default=None,
                   help="with --controller wbc: stand (--duration s), push (8 directions), reach (hand targets, "
                        "humanoid), pose (CoM shifts on a humanoid, base roll/pitch/yaw/height on a quadruped)")
    s.add_argument("--push-n", type=float, default=30.0,
                   help="push scenario: force in N, applied for 0.2 s (default 30)")
    s.add_argument("--push-search", action="store_true",
                   help="find the largest push (0.2 s, 8 directions, from --push-n up in 10 N steps) the robot "
                        "survives on the whole-body controller without stepping")
    s.add_argument("--event-log", default=None, metavar="PATH",
                   help="append safety events here (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                        "~/.local/state/vertebra/events.jsonl); read them with 'vertebra events'")
    s.set_defaults(func=run)

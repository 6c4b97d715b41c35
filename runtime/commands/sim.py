"""`vertebra sim`: the runtime on a simulated robot through the deployment procedure (and the whole-body
controller's scenarios)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from vertebra.runtime.commands import progress, robot_names


def _argument_error(flag: str, e: Any) -> str:
    """One line for a refused flag, from the ConfigError of the class that declares its bounds."""
    return f"{flag}: found {e.found!r}; valid: {e.valid}"


def _check_numbers(args: argparse.Namespace) -> str | None:
    """--duration and --push-n (declared by SimArguments) and --rate (declared by the deploy config's
    loop options, the field --rate overrides)."""
    from vertebra.runtime.deploy import LoopOptions
    from vertebra.runtime.errors import ConfigError
    from vertebra.runtime.schema import Section, field

    class SimArguments(Section):
        """What `vertebra sim` checks before it builds anything."""

        duration = field(float, lo=0.0, lo_open=True, doc="seconds to hold standing after release")
        push_n = field(float, lo=0.0, lo_open=True, doc="push force, N")

    try:
        SimArguments(duration=args.duration, push_n=args.push_n)
    except ConfigError as e:
        return _argument_error("--" + e.field.replace("_", "-"), e) + " " + (
            "seconds" if e.field == "duration" else "N")
    if args.rate is not None:
        try:
            LoopOptions(rate_hz=args.rate)
        except ConfigError as e:
            return _argument_error("--rate", e) + " Hz (the control rate)"
    return None


def _check_rate(rate: float, robot: Any, flag: str) -> str | None:
    """The robot config, validated again with `rate` as its control rate (the simulator steps an
    integer number of times per tick): None when it accepts it, else what is wrong and what is valid."""
    from vertebra.runtime.config import RobotConfig
    from vertebra.runtime.deploy import LoopOptions
    from vertebra.runtime.errors import ConfigError
    from vertebra.runtime.schema import read_yaml

    if rate == robot.control_rate_hz:
        return None
    data = read_yaml(robot.file)
    data["control_rate_hz"] = rate
    try:
        RobotConfig.from_dict(data, robot.file)
    except ConfigError as e:
        if e.field != "sim.sim_rate_hz":
            return f"{flag}: found {rate:g}; {e}"
        sim = robot.sim.sim_rate_hz
        bounds = LoopOptions.declared_fields["rate_hz"]
        ok = []
        k = 1
        while sim / k >= (bounds.lo or 1.0):
            r = sim / k
            if r == int(r) and (bounds.hi is None or r <= bounds.hi):
                ok.append(f"{r:g}")
            k += 1
        return (f"{flag}: found {rate:g}; valid: a rate the simulator's {sim:g} Hz (sim.sim_rate_hz in {robot.file}) "
                f"is an integer multiple of: {', '.join(ok) or f'{sim:g} / k for an integer k'}")
    return None


def _check_event_log(log: str, given: bool) -> str | None:
    """The event log must be a file this process can append to (created, with its folder, if missing)."""
    flag = "--event-log" if given else "--event-log (default)"
    p = Path(log)
    if p.is_dir():
        return f"{flag} {log} is a directory; valid: a file to append to, e.g. {p / 'events.jsonl'}"
    folder = p.absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{flag} {log}: cannot create its folder {folder} ({e.strerror}); valid: a file in a writable folder"
    try:  # O_NONBLOCK: a pipe nobody reads is refused instead of blocking here
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as e:
        return f"{flag} {log}: cannot open it for appending ({e.strerror}); valid: a writable file"
    os.close(fd)
    return None


def _start_bridge(robot: str, domain: int, interface: str, lockstep: bool, noise: bool) -> Any:
    """The DDS sim bridge in a process of its own, standing in for the robot."""
    from vertebra.drivers.bridge_process import BridgeProcess

    print(f"vertebra sim: starting the DDS sim bridge for {robot} on domain {domain}, interface {interface}"
          f"{' (lockstep)' if lockstep else ''}", file=sys.stderr)
    return BridgeProcess(robot, domain_id=domain, interface=interface, lockstep=lockstep, noise=noise)


def _record_options(args: argparse.Namespace, configured: Any) -> Any:
    """The recording: the deploy config's `record:` (or the defaults), with --record DIR / --no-record."""
    from vertebra.runtime.recorder import RecordOptions

    if args.no_record:
        return None
    opts = configured if configured is not None else RecordOptions.from_dict({})
    if args.record:
        opts.dir = args.record
    return opts if opts.enabled else None


def _close_world(world: Any) -> None:
    if world is not None:
        world.close()


def _fail(message: str) -> int:
    print(f"vertebra sim: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.config import ConfigError, RobotConfig
    from vertebra.runtime.provenance import recording_metadata
    from vertebra.runtime.sim_runtime import SimRuntime

    if args.push_n is None:  # a standing push (wbc) or one while walking (walk: push-walk)
        args.push_n = 60.0 if args.controller == "walk" else 30.0
    bad = _check_numbers(args)
    if bad:
        return _fail(bad)
    world = None
    if args.driver == "unitree_dds" and args.view:
        return _fail("--view shows the in-process simulator; with --driver unitree_dds the robot runs in the bridge "
                     "process (run without --view)")
    if args.view and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return _fail("--view needs a display (DISPLAY is not set); run without --view, or under X "
                     "(e.g. xvfb-run -a vertebra sim ... --view)")
    try:
        if args.push_search:
            from vertebra.runtime.scenarios import find_max_push

            out = find_max_push(args.robot, say=progress(True), start_n=args.push_n)
            out["robot"] = args.robot
            print(json.dumps(out) if args.json else out)
            return 0
        args.controller_given = args.controller is not None
        args.controller = args.controller or "pd"
        from vertebra.runtime.walk_scenarios import WALK_SCENARIOS

        if args.controller == "walk":
            args.scenario = args.scenario or "forward"
            if args.scenario not in WALK_SCENARIOS:
                return _fail(f"--controller walk: --scenario is one of {', '.join(WALK_SCENARIOS)}")
            if not (math.isfinite(args.speed) and args.speed > 0):
                return _fail(f"--speed: expected a positive scale, found {args.speed}")
        elif args.scenario in WALK_SCENARIOS:
            return _fail(f"--scenario {args.scenario} needs --controller walk")
        if args.scenario and args.controller not in ("wbc", "walk") and not args.config:
            return _fail("--scenario needs --controller wbc (or walk)")
        from vertebra.safety.events import default_log_path

        log = args.event_log or str(default_log_path())
        bad = _check_event_log(log, args.event_log is not None)
        if bad:
            return _fail(bad)
        if args.config:
            # The deploy config names robot, driver, safety, controller and loop; flags given override it.
            from vertebra.runtime.deploy import DeployConfig

            d = DeployConfig.load(args.config)
            over: dict = {"event_log": log, "record": _record_options(args, d.record)}
            if args.lockstep:
                over["lockstep"] = True
            rate = d.rate_hz if args.rate is None else args.rate
            flag = "--rate" if args.rate is not None else f"{args.config}: loop.rate_hz"
            bad = _check_rate(rate, d.robot_config(), flag)
            if bad:
                return _fail(bad)
            if args.rate is not None:
                over["rate_hz"] = args.rate
            if args.controller_given:
                over["controller"] = args.controller
            if args.estimator:
                over["use_estimator"] = True
            if d.driver.driver_name == "unitree_dds":  # the robot over DDS: a sim bridge stands in for it
                world = _start_bridge(d.robot_config().name, d.driver.domain_id, d.driver.network_interface or "lo",
                                      d.driver.lockstep or args.lockstep, args.noise)
                if args.lockstep and not d.driver.lockstep:
                    d.driver.lockstep = True
                over["world"] = world
            rt = SimRuntime.from_deploy(d, **over)
            args.robot, args.controller = rt.cfg.name, rt.controller
        else:
            if not args.robot:
                return _fail("give --robot or --config (a deploy config)")
            robot = RobotConfig.load(args.robot)
            if args.rate is not None:
                bad = _check_rate(args.rate, robot, "--rate")
                if bad:
                    return _fail(bad)
            if args.driver == "unitree_dds":
                from vertebra.drivers.registry import UnitreeDdsDriverConfig

                world = _start_bridge(robot.name, args.domain, args.interface, args.lockstep, args.noise)
                drv = UnitreeDdsDriverConfig.from_dict({"network_interface": args.interface, "domain_id": args.domain,
                                                        "lockstep": args.lockstep})
                rt = SimRuntime(robot, lockstep=args.lockstep, rate_hz=args.rate, controller=args.controller,
                                event_log=log, driver=drv, world=world, record=_record_options(args, None),
                                record_metadata=recording_metadata({"robot": robot.file}))
            else:
                rt = SimRuntime(robot, lockstep=args.lockstep, rate_hz=args.rate, noise=args.noise,
                                command_latency_ms=args.latency_ms, controller=args.controller, event_log=log,
                                use_estimator=args.estimator, record=_record_options(args, None),
                                record_metadata=recording_metadata({"robot": robot.file}))
        rt.events.note(f"vertebra sim --robot {args.robot} started", "", 0)
    except ConfigError as e:
        _close_world(world)
        return _fail(f"bad configuration: {e}".replace("\n", " "))
    except (ValueError, RuntimeError, OSError) as e:  # the C++ core refusing its configuration
        _close_world(world)
        return _fail(f"cannot build the runtime: {e}".replace("\n", " "))
    if args.controller == "walk":
        from vertebra.runtime.walk_scenarios import scenario_refusal

        why = scenario_refusal(rt.handle, args.scenario, args.speed)
        if why:
            rt.close()
            _close_world(world)
            return _fail(why)
    viewer = None
    try:
        if args.view:
            from vertebra.drivers.viewer import SimViewer

            viewer = SimViewer(rt)
        say = progress(not args.json or args.verbose)
        if args.controller == "walk":
            from vertebra.runtime.walk_scenarios import run_walk_scenario

            result = rt.stand_up(hold_s=0.5, progress=say)
            scenario = run_walk_scenario(rt, args.scenario, args.duration, say or (lambda _m: None), speed=args.speed,
                                         push_n=args.push_n)
        elif args.controller == "wbc":
            from vertebra.runtime.scenarios import run_scenario

            result = rt.stand_up(hold_s=0.5, progress=say)
            scenario = run_scenario(rt, args.scenario or "stand", args.duration, say or (lambda _m: None),
                                    push_force_n=args.push_n)
        else:
            result = rt.stand_up(hold_s=args.duration, progress=say)
        report = rt.report(result)
        if args.controller in ("wbc", "walk"):
            report["controller"] = args.controller
            report["scenario"] = args.scenario or "stand"
            report.update(scenario)
            report["max_tilt_deg"] = scenario["max_tilt_deg"]
    finally:
        rt.close()  # the last events are flushed here: the event log's counters are final after it
        if viewer is not None:
            viewer.close()
        _close_world(world)
    snap = rt.status()
    report["active_faults"] = list(snap["active_faults"])
    if rt.recorder is not None:
        rec = rt.recorder.summary()
        report["recording"] = {"run": rec["run"], "dir": rec["dir"], "records": rec["records"], "lost": rec["lost"]}
    report["event_log"] = {"path": log, "events": int(rt.events.written), "io_errors": int(rt.events.io_errors),
                           "dropped": int(snap["events_dropped"])}  # events: logged (in memory; on disk unless failed)
    log_ok = report["event_log"]["io_errors"] == 0 and report["event_log"]["dropped"] == 0
    if not log_ok:
        el = report["event_log"]
        raised = "; fault event_log_write was raised" if "event_log_write" in snap["raised_tick"] else ""
        print(f"vertebra sim: the event log {log} is incomplete: {el['io_errors']} I/O error(s) (failed writes or "
              f"fsyncs), {el['dropped']} event(s) dropped (ring full){raised}", file=sys.stderr)
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
        if "recording" in report:
            r = report["recording"]
            print(f"recorded {r['records']} ticks ({r['lost']} lost) to {r['dir']} (vertebra data list {r['dir']})")
    return 0 if not report["faults"] and not report.get("fell", False) and log_ok else 1


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
    s.add_argument("--rate", type=float, default=None,
                   help="control rate in Hz, 50..2000 and a divisor of the robot's simulator rate (default: the "
                        "robot config's, or the deploy config's loop.rate_hz)")
    s.add_argument("--noise", action="store_true", help="enable the sensor noise configured for the robot")
    s.add_argument("--latency-ms", type=float, default=None, help="command latency to emulate, ms (default: config)")
    s.add_argument("--view", action="store_true", help="open the MuJoCo viewer (needs a display)")
    s.add_argument("--driver", choices=["mujoco", "unitree_dds"], default="mujoco",
                   help="mujoco: the simulator in this process (default); unitree_dds: the robot's own DDS driver "
                        "against a sim bridge started in another process (vertebra sim-bridge), as on the robot: no "
                        "base truth, the controller runs on the state estimator")
    s.add_argument("--domain", type=int, default=0, help="--driver unitree_dds: DDS domain id (default 0)")
    s.add_argument("--interface", default="lo", help="--driver unitree_dds: network interface (default lo)")
    s.add_argument("--estimator", action="store_true",
                   help="the controller uses the state estimator's base instead of the simulator's truth (as on "
                        "hardware; always so with --driver unitree_dds); the report gives its errors against truth")
    s.add_argument("--controller", choices=["pd", "wbc", "walk"], default=None,
                   help="pd: stand on joint hold (default); wbc: stand, then hand over to the whole-body controller; "
                        "walk: stand, then walk on it (a biped: the G1)")
    s.add_argument("--scenario", choices=["stand", "push", "reach", "pose", "forward", "backward", "lateral", "turn",
                                          "random", "push-walk"],
                   default=None,
                   help="with --controller wbc: stand (--duration s), push (8 directions), reach (hand targets, "
                        "humanoid), pose (CoM shifts on a humanoid, base roll/pitch/yaw/height on a quadruped); with "
                        "--controller walk: forward (0.3 m/s), backward (0.15 m/s), lateral (0.08 m/s left), turn "
                        "(0.2 rad/s left), each held --duration s (times --speed), random (a new random command every 3 s, "
                        "seeded), push-walk (0.3 m/s forward, a 0.1 s push of --push-n N every 2.5 s from 8 directions "
                        "in turn); then a stop to standing")
    s.add_argument("--speed", type=float, default=1.0,
                   help="--controller walk: the scenario's command times this (default 1)")
    s.add_argument("--push-n", type=float, default=None,
                   help="push scenario: force in N, applied for 0.2 s (default 30); push-walk: applied for 0.1 s "
                        "(default 60)")
    s.add_argument("--push-search", action="store_true",
                   help="find the largest push (0.2 s, 8 directions, from --push-n up in 10 N steps) the robot "
                        "survives on the whole-body controller without stepping")
    s.add_argument("--record", default=None, metavar="DIR",
                   help="record the run into DIR (default: the deploy config's record.dir, else $VERTEBRA_DATA_DIR, "
                        "else ~/.local/share/vertebra/runs); see 'vertebra data list'")
    s.add_argument("--no-record", action="store_true", help="do not record this run")
    s.add_argument("--event-log", default=None, metavar="PATH",
                   help="append safety events here (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                        "~/.local/state/vertebra/events.jsonl); read them with 'vertebra events'. Write failures "
                        "are reported (stderr, the JSON's event_log) and raise the warning fault event_log_write")
    s.set_defaults(func=run)

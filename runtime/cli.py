"""`vertebra`: one command line for the runtime, its simulator, benchmarks and tools."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _progress(enabled: bool) -> Any:
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if enabled else None


def cmd_sim(args: argparse.Namespace) -> int:
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

            out = find_max_push(args.robot, say=_progress(True), start_n=args.push_n)
            out["robot"] = args.robot
            print(json.dumps(out) if args.json else out)
            return 0
        if args.scenario and args.controller != "wbc":
            print("vertebra sim: --scenario needs --controller wbc", file=sys.stderr)
            return 2
        from vertebra.safety.events import default_log_path

        log = args.event_log or str(default_log_path())
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
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
        say = _progress(not args.json or args.verbose)
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
              f"p99 {lat['p99']} us, p99.9 {lat['p999']} us, max {lat['max']} us, overruns {report['loop']['overruns']}")
    return 0 if not report["faults"] and not report.get("fell", False) else 1


def cmd_bench_loop(args: argparse.Namespace) -> int:
    from vertebra.runtime.bench import bench_loop

    if args.rate <= 0 or args.seconds <= 0:
        print("vertebra bench loop: --rate and --seconds must be > 0", file=sys.stderr)
        return 2
    out = bench_loop(args.rate, args.seconds, progress=_progress(True), spin_us=args.spin_us)
    if args.json:
        print(json.dumps(out))
    else:
        c, p = out["cpp"]["lateness_us"], out["python_sleep"]["lateness_us"]
        print(f"{'lateness (us)':<16}{'p50':>10}{'p99':>10}{'p99.9':>10}{'max':>10}")
        print(f"{'C++ loop':<16}{c['p50']:>10}{c['p99']:>10}{c['p999']:>10}{c['max']:>10}")
        print(f"{'Python sleep':<16}{p['p50']:>10}{p['p99']:>10}{p['p999']:>10}{p['max']:>10}")
        print("ratios python/C++:", out["ratios"], "goals met:", out["goals_met"])
        print("OS grants:", out["cpp"]["os"])
    return 0


def cmd_bench_wbc(args: argparse.Namespace) -> int:
    from vertebra.runtime.bench_wbc import bench_wbc

    if args.ticks < 10:
        print("vertebra bench wbc: --ticks must be >= 10", file=sys.stderr)
        return 2
    out = bench_wbc(args.robot, ticks=args.ticks, say=_progress(True), python_ticks=args.python_ticks)
    if args.json:
        print(json.dumps(out))
    else:
        c, p = out["cpp_us"], out["python_us"]
        print(f"{out['robot']}: QP {out['qp']['variables']} variables, {out['qp']['equalities']} equalities, "
              f"{out['qp']['inequalities']} inequalities + bounds; {out['ticks']} ticks")
        print(f"{'per tick (us)':<22}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>8}")
        print(f"{'C++ (model + QP)':<22}{c['p50']:>8}{c['p99']:>8}{c['p999']:>8}{c['max']:>8}")
        print(f"{'Python (pin+proxsuite)':<22}{p['p50']:>8}{p['p99']:>8}{p['p999']:>8}{p['max']:>8}")
        print(f"python/C++ at p50: {out['ratio_p50_python_over_cpp']}x; same solution (p99 max |ddq| diff): "
              f"{out['same_solution_max_ddq_diff']}; failures: {out['solve_failures']}; goals: {out['goals_met']}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from vertebra.runtime.config import ConfigError, RobotConfig
    from vertebra.safety.config import SafetySettings

    try:
        cfg = RobotConfig.load(args.robot)
        safety = SafetySettings.load(cfg, args.safety)
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    print(f"ok: {cfg.name} ({cfg.description}), {cfg.n_joints} joints, URDF {cfg.urdf_path}")
    print(f"ok: safety {safety.file}: {len(safety.settle)} settle keyframes "
          f"({safety.settle_duration_s():g} s), e-stop {safety.estop}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from vertebra.policies.package import PackageError
    from vertebra.policies.server import PolicyServer, ServerConfig
    from vertebra.runtime.config import ConfigError

    try:
        cfg = ServerConfig.load(args.config)
        server = PolicyServer(cfg, bind=args.bind)
    except (ConfigError, PackageError, ValueError) as e:
        print(f"vertebra serve: {e}", file=sys.stderr)
        return 2
    try:
        server.serve_forever(progress=None if args.quiet else _progress(True))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from vertebra.policies.package import PackageError, PolicyPackage, check_against_robot
    from vertebra.runtime.config import ConfigError, RobotConfig

    try:
        pkg = PolicyPackage.load(args.package)
        robot = RobotConfig.load(args.robot)
    except (PackageError, ConfigError) as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    wbc_names = None
    if pkg.spec.action_space == "wbc_targets":
        from vertebra.policies.actions import wbc_target_names

        wbc_names = wbc_target_names(robot)
    problems = check_against_robot(pkg.spec, robot, wbc_targets=wbc_names)
    if args.json:
        print(json.dumps({"package": str(pkg.path), "robot": robot.name, "compatible": not problems, "problems": problems}))
    elif problems:
        print(f"incompatible: {pkg.spec.name} on {robot.name}:", file=sys.stderr)
        for p_ in problems:
            print(f"  - {p_}", file=sys.stderr)
    else:
        s = pkg.spec
        print(f"ok: {s.name} v{s.version} on {robot.name}: {s.action_space} x{s.action_dim}, chunk {s.chunk_length} "
              f"at {s.rate_hz:g} Hz, cameras {', '.join(c.name for c in s.cameras) or 'none'}, sha256 verified")
    return 0 if not problems else 1


def cmd_policy_swap(args: argparse.Namespace) -> int:
    from vertebra.policies.client import PolicyClient, PolicyError

    c = PolicyClient(args.server)
    try:
        c.call({"type": "load", "name": args.name}, timeout_s=args.timeout)  # load first: no stall at the swap
        reply = c.call({"type": "swap", "name": args.name}, timeout_s=args.timeout)
    except (PolicyError, TimeoutError) as e:
        print(f"vertebra policy swap: {e}", file=sys.stderr)
        return 1
    finally:
        c.close()
    print(json.dumps(reply["policy"]) if args.json else f"active: {reply['active']}")
    return 0


def cmd_bench_transport(args: argparse.Namespace) -> int:
    from vertebra.policies.bench_transport import bench_transport

    if args.iterations < 10:
        print("vertebra bench transport: --iterations must be >= 10", file=sys.stderr)
        return 2
    out = bench_transport(args.iterations, progress=_progress(True))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'round trip (us)':<14}{'zmq p50':>9}{'p99':>8}{'shm p50':>9}{'p99':>8}{'websocket p50':>15}{'p99':>8}"
              f"{'ratio zmq':>11}{'ratio shm':>11}")
        for case, r in out["cases"].items():
            print(f"{case:<14}{r['vertebra_us']['p50']:>9}{r['vertebra_us']['p99']:>8}{r['vertebra_shm_us']['p50']:>9}"
                  f"{r['vertebra_shm_us']['p99']:>8}{r['websocket_us']['p50']:>15}{r['websocket_us']['p99']:>8}"
                  f"{r['ratio_p50']:>10}x{r['ratio_p50_shm']:>10}x")
        print("goals:", out["goals"])
    return 0


def cmd_train_pose(args: argparse.Namespace) -> int:
    from vertebra.policies.train_pose import train_pose

    if args.commands < 10 or args.epochs < 1:
        print("vertebra train pose: --commands must be >= 10 and --epochs >= 1", file=sys.stderr)
        return 2
    out = train_pose(args.robot, args.out, args.commands, args.epochs, args.seed, say=_progress(True))
    print(json.dumps(out) if args.json else f"wrote {out['package']} ({out['samples']} samples, "
          f"validation mse {out['val_mse']:.4f}, {out['minutes']} min)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from vertebra.policies.evaluate import evaluate
    from vertebra.policies.package import PackageError

    if args.episodes < 1 or args.replan_steps < 1:
        print("vertebra eval: --episodes and --replan-steps must be >= 1", file=sys.stderr)
        return 2
    try:
        out = evaluate(args.policy, args.robot, args.episodes, args.seed, say=_progress(not args.json or args.verbose),
                       replan_steps=args.replan_steps, shared_memory=args.transport == "shm")
    except (PackageError, ValueError) as e:
        print(f"vertebra eval: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['policy']} on {out['robot']}: success {out['success_rate']}, mean time to success "
              f"{out['mean_time_to_success_s']}, inference p50/p99 {out['inference_latency_us']['p50']}/"
              f"{out['inference_latency_us']['p99']} us, starvation ticks {out['starvation_ticks']}")
    return 0


def cmd_train_vla(args: argparse.Namespace) -> int:
    from vertebra.policies.vla import train_vla

    if args.episodes < 4 or args.epochs < 1 or not 1 <= args.workers <= args.episodes:
        print("vertebra train vla: --episodes must be >= 4, --epochs >= 1 and 1 <= --workers <= --episodes",
              file=sys.stderr)
        return 2
    out = train_vla(args.robot, args.out, args.episodes, args.epochs, args.seed, say=_progress(True),
                    data_path=args.data, workers=args.workers)
    print(json.dumps(out) if args.json else f"wrote {out['package']} ({out['samples']} samples, "
          f"validation mse {out['val_mse']:.4f}, {out['minutes']} min)")
    return 0


def cmd_faults_run(args: argparse.Namespace) -> int:
    from vertebra.safety import faults

    robots = [args.robot] if args.robot != "all" else ["g1", "go2"]
    try:
        results = faults.run(robots, args.only, progress=_progress(not args.json or args.verbose))
    except ValueError as e:
        print(f"vertebra faults run: {e}", file=sys.stderr)
        return 2
    passed = sum(r.passed for r in results)
    if args.docs:
        from vertebra.runtime.config import RobotConfig

        rates = {r: RobotConfig.load(r).control_rate_hz for r in robots}
        faults.write_docs(args.docs, faults.markdown_report(results, rates))
    if args.json:
        print(json.dumps({"passed": passed, "total": len(results), "all_passed": passed == len(results),
                          "results": [r.to_dict() for r in results]}))
    else:
        print(f"{'robot':<6}{'scenario':<24}{'declared':<10}{'taken':<10}{'detect':>8}{'safe':>8}{'fell':>6}"
              f"{'v_down':>8}  result")
        for r in results:
            print(f"{r.robot:<6}{r.scenario:<24}{r.declared:<10}{r.response:<10}{str(r.ticks_to_detection):>8}"
                  f"{str(r.ticks_to_safe):>8}{('yes' if r.fell else 'no'):>6}{r.peak_down_velocity_m_s:>8.2f}  "
                  f"{'pass' if r.passed else 'FAIL ' + str({k: v for k, v in r.checks.items() if not v})}")
        print(f"{passed}/{len(results)} scenarios passed (ticks counted from the first tick that saw the fault)")
    return 0 if passed == len(results) else 1


def cmd_events(args: argparse.Namespace) -> int:
    from vertebra.safety.events import default_log_path, event_time, format_event, parse_since, read_events

    path = args.log or str(default_log_path())
    if not os.path.exists(path):
        print(f"vertebra events: no event log at {path} (the runtime writes one when it runs; --log PATH reads "
              "another)", file=sys.stderr)
        return 1
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as e:
        print(f"vertebra events: {e}", file=sys.stderr)
        return 2
    log = read_events(path)
    evs = [e for e in log.events if (since is None or event_time(e) >= since) and (not args.kind or e.get("kind") in args.kind)]
    if args.tail:
        evs = evs[-args.tail:]
    if args.json:
        print(json.dumps({"log": path, "events": evs, "bad_lines": log.bad_lines}))
    else:
        for e in evs:
            print(format_event(e))
        if log.bad_lines:
            print(f"{len(log.bad_lines)} line(s) failed their checksum (torn or corrupted): lines "
                  f"{', '.join(map(str, log.bad_lines[:10]))}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vertebra.runtime.config import available_robots

    robots = available_robots()
    p = argparse.ArgumentParser(
        prog="vertebra",
        description="Vertebra: on-robot control runtime for humanoid and quadruped robots. A C++ real-time loop "
                    "(driver -> controller mode -> limiter -> driver) run from Python, here on a simulated robot.",
        epilog="Run 'vertebra <command> --help' for a command's options.")
    sub = p.add_subparsers(dest="command", metavar="<command>")
    sub.required = True

    s = sub.add_parser("sim", help="run the runtime on a simulated robot through the deployment procedure",
                       description="Run the runtime on the MuJoCo-simulated robot following the real deployment "
                                   "procedure: hanging limp in the hoist (zero torque) -> interpolate to the default "
                                   "pose -> lower the hoist -> release -> hold for --duration seconds.")
    s.add_argument("--robot", required=True, choices=robots, help="robot config from configs/robots/")
    s.add_argument("--duration", type=float, default=10.0, help="seconds to hold standing after release (default 10)")
    s.add_argument("--lockstep", action="store_true",
                   help="step the simulator from the loop as fast as possible (deterministic) instead of real time")
    s.add_argument("--json", action="store_true", help="print one JSON object with the result")
    s.add_argument("--verbose", action="store_true", help="show phase progress even with --json")
    s.add_argument("--rate", type=float, default=None, help="control rate in Hz (default: the robot config's)")
    s.add_argument("--noise", action="store_true", help="enable the sensor noise configured for the robot")
    s.add_argument("--latency-ms", type=float, default=None, help="command latency to emulate, ms (default: config)")
    s.add_argument("--view", action="store_true", help="open the MuJoCo viewer (needs a display)")
    s.add_argument("--controller", choices=["pd", "wbc"], default="pd",
                   help="pd: stand on joint hold (default); wbc: stand, then hand over to the whole-body controller")
    s.add_argument("--scenario", choices=["stand", "push", "reach", "pose"], default=None,
                   help="with --controller wbc: stand (--duration s), push (8 directions), reach (hand targets, "
                        "humanoid), pose (CoM shifts on a humanoid, base roll/pitch/yaw/height on a quadruped)")
    s.add_argument("--push-n", type=float, default=30.0, help="push scenario: force in N, applied for 0.2 s (default 30)")
    s.add_argument("--push-search", action="store_true",
                   help="find the largest push (0.2 s, 8 directions, from --push-n up in 10 N steps) the robot survives "
                        "on the whole-body controller without stepping")
    s.add_argument("--event-log", default=None, metavar="PATH",
                   help="append safety events here (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                        "~/.local/state/vertebra/events.jsonl); read them with 'vertebra events'")
    s.set_defaults(func=cmd_sim)

    b = sub.add_parser("bench", help="benchmarks that print JSON and compare against an in-run baseline",
                       description="Benchmarks. Each measures Vertebra and, in the same run, a baseline.")
    bsub = b.add_subparsers(dest="bench", metavar="<benchmark>")
    bsub.required = True
    bl = bsub.add_parser("loop", help="lateness of the C++ loop vs a Python time.sleep loop at the same rate",
                         description="Wake-up lateness (actual wake time minus deadline) of the C++ real-time loop "
                                     "and of a plain Python time.sleep loop at the same rate, with their ratios.")
    bl.add_argument("--rate", type=float, default=500.0, help="loop rate in Hz (default 500)")
    bl.add_argument("--seconds", type=float, default=10.0, help="seconds per loop (default 10)")
    bl.add_argument("--spin-us", type=float, default=None,
                    help="C++ loop: wake this many microseconds early and spin to the deadline "
                         "(default: the runtime's, 100)")
    bl.add_argument("--json", action="store_true", help="print one JSON object")
    bl.set_defaults(func=cmd_bench_loop)

    bw = bsub.add_parser("wbc", help="per-tick time of the C++ whole-body controller vs the same QP in Python",
                         description="Records a simulated robot moving under the whole-body controller, then times "
                                     "the C++ controller (model update + QP, measured inside C++; ticks run back to back "
                                     "in C++ as the real-time loop runs them, and again called once per tick from "
                                     "Python) and a straightforward Python implementation of the same QP (pinocchio + "
                                     "proxsuite bindings) on the same states; prints both, their ratio, the QP size "
                                     "(as formulated and as the solver sees it) and any solve failures.")
    bw.add_argument("--robot", choices=robots, default="g1", help="robot (default g1)")
    bw.add_argument("--ticks", type=int, default=10_000, help="ticks of the recorded trajectory (default 10000)")
    bw.add_argument("--python-ticks", type=int, default=None,
                    help="run the Python implementation on only the first N ticks (default: all)")
    bw.add_argument("--json", action="store_true", help="print one JSON object")
    bw.set_defaults(func=cmd_bench_wbc)

    bt = bsub.add_parser("transport", help="policy protocol round trip vs an openpi-style websocket server",
                         description="Round-trip time of the policy protocol (ZMQ + msgpack) with a no-op model for "
                                     "(a) state only, (b) one 224x224x3 image + 29-D state, (c) three cameras; and, in "
                                     "the same run, of an openpi-style websocket + msgpack server and client.")
    bt.add_argument("--iterations", type=int, default=2000, help="round trips per case and side (default 2000)")
    bt.add_argument("--json", action="store_true", help="print one JSON object")
    bt.set_defaults(func=cmd_bench_transport)

    c = sub.add_parser("config", help="configuration tools", description="Configuration tools.")
    csub = c.add_subparsers(dest="config", metavar="<action>")
    csub.required = True
    cc = csub.add_parser("check", help="validate a robot config", description="Load and validate a robot config.")
    cc.add_argument("robot", help=f"robot name ({', '.join(robots)}) or path to a robot YAML")
    cc.add_argument("--safety", default=None, help="safety YAML to check (default: configs/safety/<robot>.yaml)")
    cc.set_defaults(func=cmd_config_check)

    sv = sub.add_parser("serve", help="serve policies over ZMQ (msgpack protocol)",
                        description="The policy server: ONNX policies behind a ZMQ ROUTER socket. Requests: hello, "
                                    "infer, reset, health, list, load, swap. See vertebra/policies/server.py.")
    sv.add_argument("--config", required=True, help="server config (configs/policies/<name>.yaml)")
    sv.add_argument("--bind", default=None, help="endpoint to bind (default: the config's), e.g. tcp://0.0.0.0:5555")
    sv.add_argument("--quiet", action="store_true", help="no start-up message")
    sv.set_defaults(func=cmd_serve)

    po = sub.add_parser("policy", help="policy packages", description="Policy package tools.")
    posub = po.add_subparsers(dest="policy", metavar="<action>")
    posub.required = True
    pc = posub.add_parser("check", help="validate a policy package against a robot",
                          description="Load a policy package (policy.yaml + model.onnx, sha256 checked) and compare "
                                      "it with a robot config; names every field that disagrees.")
    pc.add_argument("package", help="package directory")
    pc.add_argument("--robot", required=True, choices=robots, help="robot config")
    pc.add_argument("--json", action="store_true", help="print one JSON object")
    pc.set_defaults(func=cmd_policy_check)

    tr = sub.add_parser("train", help="reproducible training pipelines for the shipped policies",
                        description="Training pipelines: collect demonstrations in sim, train in torch (CPU), "
                                    "export ONNX and a policy package.")
    trsub = tr.add_subparsers(dest="train", metavar="<policy>")
    trsub.required = True
    tp = trsub.add_parser("pose", help="joint-target body-pose policy distilled from the whole-body controller",
                          description="Distil the whole-body controller's base-pose tracking into a joint-target "
                                      "policy (50 Hz chunks of 10) and write its package.")
    tp.add_argument("--robot", choices=["go2"], default="go2", help="robot (default go2)")
    tp.add_argument("--out", default=None, help="package directory (default policies/packages/<robot>_pose)")
    tp.add_argument("--commands", type=int, default=1200, help="random pose commands demonstrated (default 1200)")
    tp.add_argument("--epochs", type=int, default=150, help="training epochs (default 150)")
    tp.add_argument("--seed", type=int, default=0, help="seed for commands and training (default 0)")
    tp.add_argument("--json", action="store_true", help="print one JSON object")
    tp.set_defaults(func=cmd_train_pose)
    tv = trsub.add_parser("vla", help="tabletop vision-language-action policy for the G1",
                          description="Collect demonstrations (scripted expert on the whole-body controller, head "
                                      "camera renders, instructions), train a FiLM CNN + words + proprioception model "
                                      "in torch on CPU, export ONNX and the policy package.")
    tv.add_argument("--robot", choices=["g1"], default="g1", help="robot (default g1)")
    tv.add_argument("--out", default=None, help="package directory (default policies/packages/<robot>_vla)")
    tv.add_argument("--episodes", type=int, default=560, help="demonstration episodes (default 560)")
    tv.add_argument("--epochs", type=int, default=24, help="training epochs (default 24)")
    tv.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tv.add_argument("--data", default=None, help="cache the demonstrations in this .npz (reused when it exists)")
    tv.add_argument("--workers", type=int, default=2,
                    help="processes collecting demonstrations, one core each (default 2); the data depends on it")
    tv.add_argument("--json", action="store_true", help="print one JSON object")
    tv.set_defaults(func=cmd_train_vla)

    ev = sub.add_parser("eval", help="closed-loop rollouts of a policy package through the whole stack",
                        description="Run a policy package closed-loop: server process, thin client, C++ chunk "
                                    "scheduler, supervisor, controller and simulator (lockstep), on held-out "
                                    "episodes; reports success rate per task, mean time to success, inference "
                                    "latency p50/p99 and starvation ticks.")
    ev.add_argument("--policy", required=True, help="policy package directory")
    ev.add_argument("--robot", required=True, choices=robots, help="robot")
    ev.add_argument("--episodes", type=int, default=20, help="episodes (default 20)")
    ev.add_argument("--seed", type=int, default=0, help="episode seed (held out from training) (default 0)")
    ev.add_argument("--transport", choices=["shm", "zmq"], default="shm",
                    help="observations and chunks over the same-host shared-memory channel (default) or the ZMQ "
                         "socket")
    ev.add_argument("--replan-steps", type=int, default=1,
                    help="VLA: policy steps executed from each chunk before the next inference (default 1)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--verbose", action="store_true", help="show progress even with --json")
    ev.set_defaults(func=cmd_eval)

    ps = posub.add_parser("swap", help="switch the server's active policy (the runtime blends it in)",
                          description="Load, then activate, a policy on a running server. The runtime's chunk "
                                      "scheduler keeps executing the current chunk and cross-fades into the new "
                                      "policy's first chunk, so no tick is left without a target.")
    ps.add_argument("name", help="policy name from the server config")
    ps.add_argument("--server", default="ipc:///tmp/vertebra-policy.sock", help="server endpoint")
    ps.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the load (default 30)")
    ps.add_argument("--json", action="store_true", help="print the new policy's metadata as JSON")
    ps.set_defaults(func=cmd_policy_swap)

    f = sub.add_parser("faults", help="fault injection: prove the safety supervisor's response to every fault",
                       description="Fault-injection suite. Each scenario runs the robot in lockstep simulation through "
                                   "the real procedure, injects one fault and reports detection, response, time to a "
                                   "safe state, falls and pass/fail against the declared response.")
    fsub = f.add_subparsers(dest="faults", metavar="<action>")
    fsub.required = True
    fr = fsub.add_parser("run", help="run the fault scenarios", description="Run the fault scenarios (lockstep sim).")
    fr.add_argument("--robot", choices=robots + ["all"], default="all", help="robot (default: all)")
    fr.add_argument("--only", nargs="+", metavar="NAME", default=None, help="run only these scenarios")
    fr.add_argument("--json", action="store_true", help="print one JSON object")
    fr.add_argument("--verbose", action="store_true", help="show progress even with --json")
    fr.add_argument("--docs", default=None, metavar="PATH",
                    help="write the fault -> response -> measured reaction table into this markdown file")
    fr.set_defaults(func=cmd_faults_run)

    e = sub.add_parser("events", help="read the safety event log",
                       description="Print the safety event log: mode changes, faults, operator actions, clamp bursts. "
                                   "Lines that fail their checksum (a torn last line) are reported, not shown.")
    e.add_argument("--log", default=None, help="event log file (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                                               "~/.local/state/vertebra/events.jsonl)")
    e.add_argument("--since", default=None, help="only events since: 30s, 10m, 2h, 1d or an ISO 8601 time")
    e.add_argument("--kind", nargs="+", default=None,
                   choices=["mode", "fault", "fault_cleared", "operator", "clamp", "note", "dropped"],
                   help="only these kinds of event")
    e.add_argument("--tail", type=int, default=None, help="only the last N events")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_events)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""`vertebra bench loop|wbc|transport|dds`: benchmarks that print JSON and compare against a baseline measured
in the same run (the measurements live in vertebra.runtime.benchmarks)."""

from __future__ import annotations

import argparse
import json
import sys

from vertebra.runtime.commands import progress, robot_names


def run_loop(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.loop import bench_loop

    if args.rate <= 0 or args.seconds <= 0:
        print("vertebra bench loop: --rate and --seconds must be > 0", file=sys.stderr)
        return 2
    out = bench_loop(args.rate, args.seconds, progress=progress(True), spin_us=args.spin_us, recorder=args.recorder)
    if args.json:
        print(json.dumps(out))
    else:
        c, p = out["cpp"]["lateness_us"], out["python_sleep"]["lateness_us"]
        print(f"{'lateness (us)':<16}{'p50':>10}{'p99':>10}{'p99.9':>10}{'max':>10}")
        print(f"{'C++ loop':<16}{c['p50']:>10}{c['p99']:>10}{c['p999']:>10}{c['max']:>10}")
        print(f"{'Python sleep':<16}{p['p50']:>10}{p['p99']:>10}{p['p999']:>10}{p['max']:>10}")
        print("ratios python/C++:", out["ratios"], "goals met:", out["goals_met"])
        print("OS grants:", out["cpp"]["os"])
        if "recorder" in out:
            r = out["recorder"]
            print(f"recorder: tick compute p99 {r['compute_us_without']['p99']} -> {r['compute_us_with']['p99']} us, "
                  f"record step p50/p99/max {r['record_cost_us']['p50']}/{r['record_cost_us']['p99']}/"
                  f"{r['record_cost_us']['max']} us, {r['records_lost']} lost")
    return 0


def run_wbc(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.wbc import bench_wbc

    if args.ticks < 10:
        print("vertebra bench wbc: --ticks must be >= 10", file=sys.stderr)
        return 2
    if args.controller == "walk":
        return _run_walk_bench(args)
    out = bench_wbc(args.robot, ticks=args.ticks, say=progress(True), python_ticks=args.python_ticks)
    if args.json:
        print(json.dumps(out))
    else:
        c, p = out["cpp_us"], out["python_us"]
        print(f"{out['robot']}: QP {out['qp']['variables']} variables, {out['qp']['equalities']} equalities, "
              f"{out['qp']['inequalities']} inequalities + bounds; {out['ticks']} ticks")
        print(f"{'per tick (us)':<22}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>8}")
        print(f"{'C++ (model + QP)':<22}{c['p50']:>8}{c['p99']:>8}{c['p999']:>8}{c['max']:>8}")
        print(f"{'Python (pin+proxsuite)':<22}{p['p50']:>8}{p['p99']:>8}{p['p999']:>8}{p['max']:>8}")
        e, ew = out["estimator_us"], out["estimator_plus_cpp_us"]
        print(f"{'state estimator':<22}{e['p50']:>8}{e['p99']:>8}{e['p999']:>8}{e['max']:>8}")
        print(f"{'estimator + C++ WBC':<22}{ew['p50']:>8}{ew['p99']:>8}{ew['p999']:>8}{ew['max']:>8}")
        print(f"python/C++ at p50: {out['ratio_p50_python_over_cpp']}x; same solution (p99 max |ddq| diff): "
              f"{out['same_solution_max_ddq_diff']}; failures: {out['solve_failures']}; goals: {out['goals_met']}")
        w = out["worst_tick"]
        print(f"worst tick: {w['worst_tick_us']} us against the {w['period_us']} us period "
              f"(joint-limit cases p99 {w['joint_limit_cases']['tick_us']['p99']} us, whole budget spent p99 "
              f"{w['whole_budget']['tick_us']['p99']} us; at most {w['tick_iteration_budget']} iterations a tick: "
              f"{'held' if w['iterations_within_budget'] else 'EXCEEDED'})")
    return 0


def _run_walk_bench(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.walk import bench_walk
    from vertebra.runtime.errors import ConfigError

    if args.robot != "g1":
        print(f"vertebra bench wbc --controller walk: the walk controller is for bipeds; --robot {args.robot} is not "
              "one (use --robot g1)", file=sys.stderr)
        return 2
    try:
        out = bench_walk(args.robot, standing_ticks=min(args.ticks, 2500), say=progress(True))
    except ConfigError as e:
        print(f"vertebra bench wbc --controller walk: bad configuration: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['robot']} walk mode on the {out['base']}: {out['standing_ticks']} ticks standing, then "
              f"{out['walking_ticks']} walking ({out['steps']} steps; fell: {out['fell']})")
        print(f"{'per tick (us)':<28}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>8}")
        for name, key in (("standing (baseline)", "standing_us"), ("walking", "walking_us"),
                          ("walking + estimator", "walking_plus_estimator_us")):
            c = out[key]
            print(f"{name:<28}{c['p50']:>8}{c['p99']:>8}{c['p999']:>8}{c['max']:>8}")
        print(f"walking/standing at p50: {out['ratio_p50_walking_over_standing']}x; worst tick "
              f"{out['worst_tick_share_of_period']:.0%} of the {out['period_us']:g} us period")
    return 0 if not out["fell"] else 1


def run_transport(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.transport import bench_transport

    if args.iterations < 10:
        print("vertebra bench transport: --iterations must be >= 10", file=sys.stderr)
        return 2
    out = bench_transport(args.iterations, progress=progress(True))
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


def run_dds(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.dds import bench_dds
    from vertebra.runtime.errors import VertebraError

    if args.samples < 1:
        print("vertebra bench dds: --samples must be >= 1", file=sys.stderr)
        return 2
    try:
        out = bench_dds(args.robot, samples=args.samples, progress=progress(True), domain=args.domain,
                        sdk=not args.no_sdk)
    except (VertebraError, RuntimeError, ValueError) as e:
        print(f"vertebra bench dds: {e}", file=sys.stderr)
        return 1
    sdk = out["round_trip_us"]["unitree_sdk_python"]
    if args.json:
        print(json.dumps(out))
    else:
        t = out["tick_read_write_us"]
        print(f"{out['robot']} ({out['messages']}): LowCmd_ write -> answer -> LowState_ taken, "
              f"{out['samples']} samples")
        print(f"{'round trip (us)':<44}{'p50':>9}{'p99':>9}{'mean':>9}{'max':>9}")
        for key, label in (("round_trip_us", "sim bridge"), ("round_trip_echo_us", "echo robot")):
            part = out[key]
            for side, name in (("vertebra_cpp", "Vertebra C++ driver"), ("unitree_sdk_python", "Unitree SDK (Python)")):
                r = part[side]
                row = f"{name + ', ' + label:<44}"
                if "p50" in r:
                    print(f"{row}{r['p50']:>9}{r['p99']:>9}{r['mean']:>9}{r['max']:>9}")
                else:
                    print(f"{row}{r.get('skipped') or 'error: ' + str(r.get('error'))}")
            ratio = part["ratio_p50_sdk_over_vertebra"]
            print(f"{'  SDK/Vertebra at p50':<44}{'-' if ratio is None else str(ratio) + 'x':>9}")
        print(f"{'read()+write() per tick (us)':<44}{t['p50']:>9}{t['p99']:>9}{t['mean']:>9}{t['max']:>9}")
        print(f"  ({t['rate_hz']:g} Hz against the real-time bridge; read p99 {t['read_us']['p99']}, write p99 "
              f"{t['write_us']['p99']}; SCHED_FIFO {'granted' if t['sched_fifo'] else 'not granted'})")
        print("goals:", out["goals"])
    failed = "error" in sdk or "error" in out["round_trip_echo_us"]["unitree_sdk_python"]
    return 1 if failed else 0


def run_record(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.record import bench_record

    if args.seconds <= 0 or args.fps <= 0 or (args.baseline_seconds is not None and args.baseline_seconds <= 0):
        print("vertebra bench record: --seconds, --baseline-seconds and --fps must be > 0", file=sys.stderr)
        return 2
    try:
        out = bench_record(args.robot, args.seconds, camera=args.camera, fps=args.fps, keep=args.keep,
                           progress=progress(True), baseline_s=args.baseline_seconds)
    except (RuntimeError, ValueError) as e:
        print(f"vertebra bench record: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
        return 0 if out["ok"] else 1
    c, b, r = out["record_cost_us"], out["baseline"], out["recording"]
    print(f"{out['robot']}: {out['seconds']:g} s recording, {out['baseline_seconds']:g} s baseline (real time)"
          f"{', camera ' + out['camera'] if out['camera'] else ''}")
    print(f"{'(us)':<34}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}")
    print(f"{'record step (in C++)':<34}{c['p50']:>9}{c['p99']:>9}{c['p999']:>9}{c['max']:>9}")
    for label, ph in (("tick compute, no recorder", b), ("tick compute, recording", r)):
        x = ph["compute_us"]
        print(f"{label:<34}{x['p50']:>9}{x['p99']:>9}{x['p999']:>9}{x['max']:>9}")
    w = r["writer"]
    print(f"writer: {w['records']} records, {w['lost']} lost, {w['frames']} frames, {w['bytes'] / 1e6:.1f} MB, "
          f"{w['syncs']} fsyncs; budget {out['budget']}: {'ok' if out['ok'] else 'NOT MET'}")
    return 0 if out["ok"] else 1


def run_guard(args: argparse.Namespace) -> int:
    from vertebra.runtime.benchmarks.guard import bench_guard
    from vertebra.runtime.errors import VertebraError

    if args.kills < 1 or args.no_settle_kills < 0:
        print("vertebra bench guard: --kills must be >= 1 and --no-settle-kills >= 0", file=sys.stderr)
        return 2
    try:
        out = bench_guard(args.robot, kills=args.kills, no_settle_kills=args.no_settle_kills, domain=args.domain,
                          timeout_ms=args.timeout_ms, progress=progress(True))
    except (VertebraError, RuntimeError, ValueError) as e:
        print(f"vertebra bench guard: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['robot']}: SIGKILL of the standing runtime, {out['kills']} kills, heartbeat timeout "
          f"{out['timeout_ms']:g} ms; rt/lowcmd writer {out['writer']}")
    print(f"{'takeover (ms)':<44}{'p50':>9}{'p90':>9}{'max':>9}")
    for key, label in (("takeover_ms_guard", "guard: first write - runtime's last write"),
                       ("takeover_gap_ms_robot", "robot: the command gap across the kill"),
                       ("command_gap_ms_robot", "robot: largest command gap, whole hold")):
        r = out[key]
        print(f"{label:<44}{r.get('p50', '-'):>9}{r.get('p90', '-'):>9}{r.get('max', '-'):>9}")
    for phase, p in out["phases"].items():
        v, h = p["peak_down_velocity_m_s"], p["height_drop_m"]
        print(f"{phase:<10} {p['kills']} kills ({', '.join(p['reasons'])}): peak sink p50 {v.get('p50')} max "
              f"{v.get('max')} m/s, height drop p50 {h.get('p50')} max {h.get('max')} m")
    print("goals:", out["goals"])
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    b = subparsers.add_parser("bench", help="benchmarks that print JSON and compare against an in-run baseline",
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
    bl.add_argument("--recorder", action="store_true",
                    help="also run the C++ loop recording every tick (the recorder's ring, drained by a thread) and "
                         "report the record step's cost and the tick's compute time with and without it")
    bl.set_defaults(func=run_loop)

    bw = bsub.add_parser("wbc", help="per-tick time of the C++ whole-body controller vs the same QP in Python",
                         description="Records a simulated robot moving under the whole-body controller, then times "
                                     "the C++ controller (model update + QP, measured inside C++; ticks run back to "
                                     "back in C++ as the real-time loop runs them, and again called once per tick from "
                                     "Python) and a straightforward Python implementation of the same QP (pinocchio + "
                                     "proxsuite bindings) on the same states; prints both, their ratio, the QP size "
                                     "(as formulated and as the solver sees it) and any solve failures.")
    bw.add_argument("--robot", choices=robots, default="g1", help="robot (default g1)")
    bw.add_argument("--ticks", type=int, default=10_000, help="ticks of the recorded trajectory (default 10000)")
    bw.add_argument("--controller", choices=["wbc", "walk"], default="wbc",
                    help="wbc: the whole-body controller against the same QP in Python (default); walk: the walk "
                         "mode on the G1 in lockstep on the state estimator, standing (the baseline, at most 2500 "
                         "--ticks) then walking forward, turning and sideways")
    bw.add_argument("--python-ticks", type=int, default=None,
                    help="run the Python implementation on only the first N ticks (default: all)")
    bw.add_argument("--json", action="store_true", help="print one JSON object")
    bw.set_defaults(func=run_wbc)

    br = bsub.add_parser("record", help="what recording costs the tick, and whether the writer keeps up",
                         description="The simulated robot standing in real time, first without a recorder (the "
                                     "baseline), then recording: the record step's cost per tick (timed in C++), the "
                                     "tick's compute time in both phases, and the writer's records, losses (0 is the "
                                     "budget), frames, bytes and fsyncs. --camera also renders and records a camera.")
    br.add_argument("--robot", choices=robots, default="g1", help="robot (default g1)")
    br.add_argument("--seconds", type=float, default=10.0, help="seconds recording (default 10)")
    br.add_argument("--baseline-seconds", type=float, default=None,
                    help="seconds of the baseline without a recorder (default: --seconds)")
    br.add_argument("--camera", default=None, help="also record this simulated camera (e.g. head), rendered at --fps")
    br.add_argument("--fps", type=float, default=30.0, help="camera frame rate (default 30)")
    br.add_argument("--keep", default=None, metavar="DIR", help="keep the recording in DIR (default: a temporary folder)")
    br.add_argument("--json", action="store_true", help="print one JSON object")
    br.set_defaults(func=run_record)

    bt = bsub.add_parser("transport", help="policy protocol round trip vs an openpi-style websocket server",
                         description="Round-trip time of the policy protocol (ZMQ + msgpack) with a no-op model for "
                                     "(a) state only, (b) one 224x224x3 image + 29-D state, (c) three cameras; and, in "
                                     "the same run, of an openpi-style websocket + msgpack server and client.")
    bt.add_argument("--iterations", type=int, default=2000, help="round trips per case and side (default 2000)")
    bt.add_argument("--json", action="store_true", help="print one JSON object")
    bt.set_defaults(func=run_transport)

    bd = bsub.add_parser("dds", help="Unitree DDS round trip: the C++ driver vs Unitree's Python SDK; per-tick cost",
                         description="Against `vertebra sim-bridge` in another process (loopback): the round trip of "
                                     "one LowCmd_ write -> the bridge's answer -> LowState_ taken (lockstep bridge; "
                                     "then again against an echo robot that answers without simulating), "
                                     "for Vertebra's C++ driver (timed in C++) and, in the same run, through Unitree's "
                                     "official Python SDK (ChannelPublisher/ChannelSubscriber, run from "
                                     ".venv-unitree-sdk: bash scripts/setup_unitree_sdk.sh); and the per-tick cost of "
                                     "the driver's read() + write() on a real-time bridge. p50/p99/mean of each and "
                                     "the ratio; the SDK part says `skipped` and why where its virtualenv is missing.")
    bd.add_argument("--robot", choices=["g1", "go2"], default="g1", help="robot (default g1; message set hg / go)")
    bd.add_argument("--samples", type=int, default=2000, help="round trips per side and ticks timed (default 2000)")
    bd.add_argument("--domain", type=int, default=None, help="DDS domain id (default: one of 220-232 for this run)")
    bd.add_argument("--no-sdk", action="store_true", help="leave out the Unitree SDK part")
    bd.add_argument("--json", action="store_true", help="print one JSON object")
    bd.set_defaults(func=run_dds)

    bg = bsub.add_parser("guard", help="the guard's takeover after a SIGKILL of the standing runtime (DDS, sim bridge)",
                         description="A real-time sim bridge, the guard process and, per kill, a runtime child process "
                                     "(real time, unitree_dds driver, heartbeat) that stands the G1 on the ground "
                                     "(hoist procedure) and is then SIGKILLed. Reports the takeover time at the guard "
                                     "(its first rt/lowcmd write minus the runtime's last driver write) and as the "
                                     "robot sees it (the bridge's largest gap between consecutive commands), p50/max, "
                                     "and the robot's peak downward velocity and height drop after the kill, with a "
                                     "guard that settles first and one that damps at once.")
    bg.add_argument("--robot", choices=["g1"], default="g1", help="robot (g1)")
    bg.add_argument("--kills", type=int, default=20, help="kills with guard.settle on (default 20)")
    bg.add_argument("--no-settle-kills", type=int, default=5, help="kills with guard.settle off (default 5)")
    bg.add_argument("--timeout-ms", type=float, default=20.0, help="the guard's heartbeat timeout (default 20)")
    bg.add_argument("--domain", type=int, default=None, help="DDS domain id (default: one of 220-232 for this run)")
    bg.add_argument("--json", action="store_true", help="print one JSON object")
    bg.set_defaults(func=run_guard)

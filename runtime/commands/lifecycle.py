"""`vertebra lifecycle`: each robot's wear across its runs (runtime/lifecycle.py), per joint against
its service interval (the robot config's `maintenance:`), what is due, and its bench-rig results."""

from __future__ import annotations

import argparse
import json
import sys


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.recorder import default_data_dir
    from vertebra.tools.data.lifecycle_report import report

    folder = args.dir or default_data_dir()
    try:
        robots = report(folder, args.robot)
    except (FileNotFoundError, KeyError) as e:
        print(f"vertebra lifecycle: {str(e).strip(chr(39))}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"dir": str(folder), "robots": robots}))
        return 0
    for r in robots:
        _print_wear(r)
        _print_hil(r["hil"])
    return 0


def _print_wear(r: dict) -> None:
    rb = r["robot"]
    if not rb["runs"]:  # only bench-rig checks so far
        print(f"{rb['robot_key']} ({rb['robot']}): no recorded runs")
        return
    share = f", {100 * rb['share']:.1f}% of its interval" if rb["share"] is not None else ""
    print(f"{rb['robot_key']} ({rb['robot']}): {rb['runs']} runs, {rb['powered_h']:.3f} h powered{share}, "
          f"{rb['armed_h']:.3f} h armed, {rb['policy_h']:.3f} h on a policy; {rb['falls']} falls, "
          f"{rb['estops']} e-stops, {rb['faults']} faults, stops {rb['stops'] or 'none'}")
    print(f"  {'joint':<28}{'torque h':>10}{'travel rad':>12}{'∫|τ| N·m·s':>13}{'peak N·m':>10}{'peak °C':>9}"
          f"{'limits':>8}{'faults':>8}{'interval':>10}")
    for j in r["joints"]:
        temp = "-" if j["peak_temp_c"] is None else f"{j['peak_temp_c']:.1f}"
        sh = "-" if j["share"] is None else f"{100 * j['share']:.2f}%"
        print(f"  {j['joint']:<28}{j['torque_h']:>10.4f}{j['travel_rad']:>12.2f}{j['torque_integral_nms']:>13.1f}"
              f"{j['peak_torque_nm']:>10.2f}{temp:>9}{j['limit_hits']:>8}{j['faults']:>8}{sh:>10}"
              f"{'  DUE' if j['due'] else ''}")
    print(f"  due: {', '.join(r['due']) if r['due'] else 'nothing'}")


def _print_hil(hil: list[dict]) -> None:
    """The robot's bench-rig results: how many, the last five with what failed in each."""
    if not hil:
        return
    print(f"  bench-rig checks (vertebra hil run): {len(hil)}" + (", the last 5:" if len(hil) > 5 else ""))
    for h in hil[-5:]:
        n = h["counts"]
        verdict = "FIT TO RUN" if h["fit_to_run"] else "NOT FIT TO RUN"
        print(f"    {h['started']}  {h['rig']} ({h['profile']}), vertebra {h['software'].get('vertebra', '?')}: "
              f"{verdict}, {n['passed']} passed, {n['failed']} failed, {n['error']} errors"
              + (f"; stopped: {h['stopped']}" if h["stopped"] else ""))
        for f in h["failed"][:5]:
            print(f"      {f['case']}: {f['message']}")
        if len(h["failed"]) > 5:
            print(f"      ... and {len(h['failed']) - 5} more")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("lifecycle", help="each robot's wear per joint across its runs, and what service is due",
                              description="Lifecycle records (written by the recorder at every run): per joint, hours "
                                          "under torque, travel, torque-time integral, peak torque and temperature, "
                                          "time at temperature, limit hits and faults; per robot, powered and armed "
                                          "hours, falls, e-stops, stops by kind; each joint's share of its service "
                                          "interval (robot config `maintenance:`) and what is due; and the robot's "
                                          "bench-rig results (appended by `vertebra hil run`).")
    p.add_argument("--dir", default=None, help="the data folder (default: $VERTEBRA_DATA_DIR, else "
                                                "~/.local/share/vertebra/runs)")
    p.add_argument("--robot", default=None, metavar="SERIAL", help="one robot (its serial, or its robot name when "
                                                                   "it has none)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=run)

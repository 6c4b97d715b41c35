"""`vertebra faults run`: the fault-injection suite (vertebra.safety.faults)."""

from __future__ import annotations

import argparse
import json
import sys

from vertebra.runtime.commands import progress, robot_names


def run(args: argparse.Namespace) -> int:
    from vertebra.safety import faults

    robots = [args.robot] if args.robot != "all" else ["g1", "go2"]
    try:
        results = faults.run(robots, args.only, progress=progress(not args.json or args.verbose))
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    f = subparsers.add_parser("faults", help="fault injection: prove the safety supervisor's response to every fault",
                              description="Fault-injection suite. Each scenario runs the robot in lockstep "
                                          "simulation through the real procedure, injects one fault and reports "
                                          "detection, response, time to a safe state, falls and pass/fail against "
                                          "the declared response.")
    fsub = f.add_subparsers(dest="faults", metavar="<action>")
    fsub.required = True
    fr = fsub.add_parser("run", help="run the fault scenarios", description="Run the fault scenarios (lockstep sim).")
    fr.add_argument("--robot", choices=robots + ["all"], default="all", help="robot (default: all)")
    fr.add_argument("--only", nargs="+", metavar="NAME", default=None, help="run only these scenarios")
    fr.add_argument("--json", action="store_true", help="print one JSON object")
    fr.add_argument("--verbose", action="store_true", help="show progress even with --json")
    fr.add_argument("--docs", default=None, metavar="PATH",
                    help="write the fault -> response -> measured reaction table into this markdown file")
    fr.set_defaults(func=run)

"""`vertebra hil run configs/hil/<rig>.yaml` and `vertebra hil compare A.json B.json`: the bench-rig
harness (vertebra.tools.hil) -- is this robot, on this software, fit to run, and why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.tools.hil import harness
    from vertebra.tools.hil.report import ReportError, write_reports
    from vertebra.tools.hil.rig import SCENARIOS, RigConfig

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    try:
        rig = RigConfig.load(args.rig, quick=args.quick)
        if only:
            bad = [s for s in only if s not in SCENARIOS]
            if bad:
                raise ValueError(f"--only {', '.join(bad)}: scenarios are {', '.join(SCENARIOS)}")
    except (VertebraError, ValueError) as e:
        print(f"vertebra hil run: {e}", file=sys.stderr)
        return 2

    def confirm(plan: str) -> bool:
        print(plan, file=sys.stderr)
        if args.yes:
            print("--yes: going on without asking", file=sys.stderr)
            return True
        if not sys.stdin.isatty():
            print("vertebra hil run: the robot will move; confirm at a terminal, or pass --yes", file=sys.stderr)
            return False
        print("Is the robot in its hoist, feet clear, people clear? Type 'yes' to start: ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() == "yes"

    try:
        result = harness.run(rig, only=only, joints=args.joints, domain_id=args.domain, workdir=args.workdir,
                             confirm=confirm, interactive=not args.yes)
    except (VertebraError, ValueError) as e:
        print(f"vertebra hil run: {e}", file=sys.stderr)
        return 2
    try:
        written = write_reports(result, junit=args.junit, html=args.html, json_path=args.json_out)
    except ReportError as e:
        print(f"vertebra hil run: {e}", file=sys.stderr)
        written = {}
    lifecycle = None if args.no_lifecycle or result.stopped.startswith("not confirmed") else _append_lifecycle(result, args.data_dir)
    counts = result.counts()
    if args.json:
        print(json.dumps({"fit_to_run": result.passed, "stopped": result.stopped, "counts": counts,
                          "duration_s": result.duration_s, "reports": {k: str(v) for k, v in written.items()},
                          "lifecycle": str(lifecycle) if lifecycle else None,
                          "failed": [{"case": c.id, "message": c.message} for c in result.failed()]}))
    else:
        for c in result.cases:
            if c.verdict != "passed" or args.verbose:
                print(f"{c.verdict.upper():8s} {c.id}: {c.message}")
        print(f"{'FIT TO RUN' if result.passed else 'NOT FIT TO RUN'}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['error']} errors, {counts['skipped']} skipped in {result.duration_s:.1f} s"
              + (f"; stopped: {result.stopped}" if result.stopped else ""))
        for k, v in written.items():
            print(f"{k}: {v}")
        if lifecycle:
            print(f"lifecycle records: {lifecycle}")
    if lifecycle is False:
        return 1
    return 0 if result.passed else 1


def _append_lifecycle(result: Any, data_dir: str | None) -> Path | bool:
    """Append the result to the robot's lifecycle records (the data folder's lifecycle.sqlite): the
    database's path, or False (said on stderr) when it could not be written."""
    from vertebra.runtime.lifecycle import LifecycleStore
    from vertebra.runtime.recorder import default_data_dir

    folder = data_dir or default_data_dir()
    try:
        store = LifecycleStore(folder)
        try:
            store.write_hil(result)
        finally:
            store.close()
        return store.path
    except Exception as e:  # noqa: BLE001 - a disk or database error is reported, and fails the command
        print(f"vertebra hil run: the result was not appended to the lifecycle records in {folder}: "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        return False


def compare(args: argparse.Namespace) -> int:
    from vertebra.tools.hil.compare import CompareError, compare as diff, format_compare
    from vertebra.tools.hil.results import RunResult

    try:
        a, b = RunResult.load(args.a), RunResult.load(args.b)
        d = diff(a, b, rel_tol=args.tolerance, force=args.force)
    except (ValueError, CompareError) as e:
        print(f"vertebra hil compare: {e}", file=sys.stderr)
        return 2
    print(json.dumps(d) if args.json else format_compare(d))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = subparsers.add_parser(
        "hil", help="bench-rig harness: characterise every motor, prove every safety reaction, write reports",
        description="Hardware-in-the-loop on a bench rig (the robot hung in its hoist, feet off the ground). "
                    "docs/hil.md: setting up a rig, what each scenario moves, reading the report.")
    sub = h.add_subparsers(dest="hil_command", metavar="{run,compare}")
    sub.required = True
    r = sub.add_parser("run", help="run a rig's scenarios and write JUnit / HTML / JSON reports",
                       description="Prints what will move and how far, asks for confirmation (--yes for automation), "
                                   "then runs the rig config's scenarios. Ctrl-C stops everything with the configured "
                                   "stop. Exit code 0: fit to run; 1: a case failed or the run stopped; 2: bad input.")
    r.add_argument("rig", help="a rig config: a name in configs/hil/ or a YAML path")
    r.add_argument("--only", help="comma-separated scenarios to run (bus, identify, wiring, limits, thermal, safety, policy)")
    r.add_argument("--joints", help="a regex: the per-joint scenarios only on the joints it matches")
    r.add_argument("--quick", action="store_true", help="the rig's quick: profile (shorter programs; CI)")
    r.add_argument("--junit", help="write a JUnit XML report here")
    r.add_argument("--html", help="write a self-contained HTML report here")
    r.add_argument("--json-out", dest="json_out", help="write the full result (JSON) here, for `vertebra hil compare`")
    r.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    r.add_argument("--data-dir", dest="data_dir", default=None,
                   help="append the result to the lifecycle records here (default: $VERTEBRA_DATA_DIR, else "
                        "~/.local/share/vertebra/runs; `vertebra lifecycle` shows them)")
    r.add_argument("--no-lifecycle", dest="no_lifecycle", action="store_true",
                   help="do not append the result to the robot's lifecycle records")
    r.add_argument("--yes", action="store_true", help="do not ask before moving the robot (automation)")
    r.add_argument("--domain", type=int, default=None, help="DDS domain instead of the deploy config's (sim rigs)")
    r.add_argument("--workdir", help="the run's scratch folder (default: a new temporary one)")
    r.add_argument("-v", "--verbose", action="store_true", help="list passed cases too")
    r.set_defaults(func=run)
    c = sub.add_parser("compare", help="what changed between two runs of the same robot (e.g. before/after a repair)",
                       description="Compares two results written by `vertebra hil run --json-out`.")
    c.add_argument("a", help="the earlier result (JSON)")
    c.add_argument("b", help="the later result (JSON)")
    c.add_argument("--tolerance", type=float, default=0.10, help="relative change that counts (default 0.10)")
    c.add_argument("--force", action="store_true", help="compare runs of two different robots (serials)")
    c.add_argument("--json", action="store_true", help="print the differences as JSON")
    c.set_defaults(func=compare)

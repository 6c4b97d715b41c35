"""`vertebra usage`: usage metering from the hash-chained usage log (runtime/usage.py), per run and
per day; a broken chain (an edited, inserted or removed line) is reported and fails the command."""

from __future__ import annotations

import argparse
import csv
import json
import sys


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.recorder import default_data_dir
    from vertebra.tools.data.usage_report import SUMMED, parse_since, summarize

    folder = args.dir or default_data_dir()
    try:
        since = parse_since(args.since)
    except ValueError as e:
        print(f"vertebra usage: {e}", file=sys.stderr)
        return 2
    out = summarize(folder, since)
    for p in out["problems"]:
        print(f"vertebra usage: {out['log']}: {p}", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    elif args.csv:
        w = csv.writer(sys.stdout)
        cols = ["run", "robot", "serial", "day", "complete", *SUMMED]
        w.writerow(cols)
        for r in out["runs"]:
            w.writerow([r[c] for c in cols])
    else:
        if not out["runs"]:
            print(f"no usage recorded in {out['log']}" + (f" since {args.since}" if args.since else ""))
        for d in out["days"]:
            tasks = ", ".join(f"{t} {c['succeeded']}/{c['attempted']}" for t, c in d["tasks"].items()) or "no episodes"
            up = "-" if d["uptime"] is None else f"{100 * d['uptime']:.1f}%"
            print(f"{d['day']}: {d['runs']} runs, powered {d['powered_s'] / 3600:.3f} h, armed {d['armed_s'] / 3600:.3f} h, "
                  f"policy {d['policy_s'] / 3600:.3f} h, uptime {up}; episodes {tasks}; {d['interventions']} interventions, "
                  f"{d['fault_count']} faults, {d['falls']} falls, {d['estops']} e-stops")
    return 1 if out["problems"] else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("usage", help="usage metering per run and per day (hash-chained, edits detected)",
                              description="Per run and per UTC day: powered, armed and policy-active time, episodes "
                                          "attempted and succeeded per task, interventions, faults, falls, e-stops and "
                                          "uptime (the share of powered time outside FAULT, ESTOP and STOPPING). The "
                                          "log is verified first: an edited, inserted or removed line is reported and "
                                          "the exit status is 1.")
    p.add_argument("--dir", default=None, help="the data folder (default: $VERTEBRA_DATA_DIR, else "
                                                "~/.local/share/vertebra/runs)")
    p.add_argument("--since", default=None, help="runs started since: 7d, 12h, 30m, 90s, or an ISO date/time")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object (runs, days, total, problems)")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per run")
    p.set_defaults(func=run)

"""`vertebra report RUNS... --html out.html`: per task success rate, mean time to success,
interventions and faults per hour, mean time between faults and uptime over recorded runs
(tools/data/report.py), as a self-contained HTML page with its plots, or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from vertebra.tools.data.reader import run_dirs
    from vertebra.tools.data.report import build, write_html

    dirs: list[Path] = []
    for r in args.runs:
        found = run_dirs(r) if Path(r).is_dir() else []
        if not found:
            print(f"vertebra report: {r}: no recorded run there (a run folder, or a folder of runs)", file=sys.stderr)
            return 2
        dirs.extend(found)
    rep = build(dirs)
    if args.html:
        path = write_html(rep, args.html)
        if not args.json:
            rate = rep["success_rate"]
            print(f"{path}: {len(rep['runs'])} runs, {rep['episodes']} episodes, success "
                  + ("-" if rate is None else f"{100 * rate:.1f}%"))
    if args.json:
        print(json.dumps({k: v for k, v in rep.items() if k != "plots"}))
    elif not args.html:
        print(json.dumps({k: v for k, v in rep.items() if k != "plots"}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("report", help="a verification report over recorded runs (success, interventions, "
                                             "faults, uptime) as HTML",
                              description="From recorded runs: per task success rate and mean time to success, "
                                          "interventions per episode hour, faults per powered hour, mean time between "
                                          "stopping faults, uptime; cumulative faults and interventions and the time "
                                          "to success plotted. Definitions: docs/data.md.")
    p.add_argument("runs", nargs="+", help="run folders, or folders of runs")
    p.add_argument("--html", default=None, metavar="FILE", help="write the report page here (self-contained)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(func=run)

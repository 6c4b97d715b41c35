"""`vertebra events`: read the safety event log."""

from __future__ import annotations

import argparse
import json
import os
import sys


def run(args: argparse.Namespace) -> int:
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
    evs = [e for e in log.events
           if (since is None or event_time(e) >= since) and (not args.kind or e.get("kind") in args.kind)]
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = subparsers.add_parser("events", help="read the safety event log",
                              description="Print the safety event log: mode changes, faults, operator actions, "
                                          "clamp bursts. Lines that fail their checksum (a torn last line) are "
                                          "reported, not shown.")
    e.add_argument("--log", default=None, help="event log file (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                                               "~/.local/state/vertebra/events.jsonl)")
    e.add_argument("--since", default=None, help="only events since: 30s, 10m, 2h, 1d or an ISO 8601 time")
    e.add_argument("--kind", nargs="+", default=None,
                   choices=["mode", "fault", "fault_cleared", "operator", "clamp", "note", "dropped"],
                   help="only these kinds of event")
    e.add_argument("--tail", type=int, default=None, help="only the last N events")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run)

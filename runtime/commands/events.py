"""`vertebra events`: read the safety event log.

It streams: events are printed as they are read, never all held at once, and ``--tail N`` reads the
file backwards from its end, so the cost does not grow with the log. ``--all`` also reads the rotated
files the runtime kept (``events.jsonl.N`` .. ``events.jsonl.1``, oldest first), else only the current
one. Lines that fail their checksum, or are longer than 1 MiB, are reported (on stderr, or in the
JSON's ``bad_lines``), never shown; with ``--tail`` their numbers count from the end of the file
(-1: the last line). An event whose ``wall_ns`` is missing or not a time is left out by ``--since``
and counted (``since_skipped``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def tail_count(text: str) -> int:
    """argparse type of --tail: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"found '{text}'; valid: an integer >= 1 (the number of events)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"found {n}; valid: an integer >= 1 (the number of events)")
    return n


def _bad_summary(bad: dict[str, Any], backwards: bool) -> list[str]:
    lines = []
    for path, b in bad.items():
        if not b.count:
            continue
        shown = ", ".join(map(str, b.lines[:10])) + (", ..." if b.count > 10 else "")
        where = " (counted from the end of the file: -1 is the last line)" if backwards else ""
        lines.append(f"vertebra events: {path}: {b.count} line(s) failed their checksum or were too long (torn "
                     f"or corrupted), not shown: lines {shown}{where}")
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `vertebra events | head`: the reader has what it wanted
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (so the interpreter's final flush stays quiet)
        except OSError:
            pass
        return 0


def _run(args: argparse.Namespace) -> int:
    from vertebra.safety.events import (
        BadLines,
        EventLogError,
        check_log_file,
        default_log_path,
        event_time,
        format_event,
        iter_events,
        log_files,
        parse_since,
        tail_events,
    )

    path = args.log or str(default_log_path())
    if not os.path.lexists(path):
        print(f"vertebra events: no event log at {path} (the runtime writes one when it runs; --log PATH reads "
              "another)", file=sys.stderr)
        return 1
    try:
        check_log_file(path)
    except EventLogError as e:
        print(f"vertebra events: --log {e}", file=sys.stderr)
        return 2
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as e:
        print(f"vertebra events: {e}", file=sys.stderr)
        return 2
    files = log_files(path, include_rotated=args.all)
    since_skipped = 0

    def accept(ev: dict[str, Any]) -> bool:
        nonlocal since_skipped
        if args.kind and ev.get("kind") not in args.kind:
            return False
        if since is not None:
            t = event_time(ev)
            if t is None:
                since_skipped += 1
                return False
            return t >= since
        return True

    bad: dict[str, BadLines] = {}

    def events() -> Any:
        if args.tail:
            res = tail_events(files, args.tail, accept)
            bad.update(res.bad)
            yield from res.events
            return
        for f in files:
            b = bad.setdefault(str(f), BadLines())
            for ev in iter_events(f, b):
                if accept(ev):
                    yield ev

    out = sys.stdout
    try:
        if args.json:
            out.write('{"log": ' + json.dumps(path) + ', "events": [')
            for i, ev in enumerate(events()):
                out.write((", " if i else "") + json.dumps(ev))
            current = str(files[-1])
            own = bad.get(current, BadLines())
            tail: dict[str, Any] = {"bad_lines": own.lines, "bad_line_count": own.count, "since_skipped": since_skipped}
            if args.all:
                tail["files"] = [str(f) for f in files]
                tail["rotated_bad_lines"] = {p: b.lines for p, b in bad.items() if p != current and b.count}
            out.write("], " + json.dumps(tail)[1:] + "\n")
        else:
            for ev in events():
                out.write(format_event(ev) + "\n")
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            raise
        print(f"vertebra events: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    out.flush()
    if not args.json:
        for line in _bad_summary(bad, backwards=bool(args.tail)):
            print(line, file=sys.stderr)
    if since_skipped:
        print(f"vertebra events: {since_skipped} event(s) have no valid wall_ns (the time --since compares): "
              "left out", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = subparsers.add_parser("events", help="read the safety event log",
                              description="Print the safety event log: mode changes, faults, operator actions, "
                                          "clamp bursts, each with its run id. Lines that fail their checksum (a "
                                          "torn last line) or are longer than 1 MiB are reported, not shown. The "
                                          "runtime rotates the log by size (events.jsonl.1 is the newest rotated "
                                          "file); only the current file is read unless --all is given.")
    e.add_argument("--log", default=None, help="event log file (default: $VERTEBRA_LOG_DIR/events.jsonl, else "
                                               "~/.local/state/vertebra/events.jsonl); a regular file")
    e.add_argument("--all", action="store_true",
                   help="also read the rotated files (LOG.N .. LOG.1, oldest first) before LOG")
    e.add_argument("--since", default=None, help="only events since: 30s, 10m, 2h, 1d or an ISO 8601 time")
    e.add_argument("--kind", nargs="+", default=None,
                   choices=["mode", "fault", "fault_cleared", "operator", "clamp", "note", "dropped"],
                   help="only these kinds of event")
    e.add_argument("--tail", type=tail_count, default=None, metavar="N",
                   help="only the last N events (N >= 1), read from the end of the file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run)

"""Reading the safety event log (written by the C++ EventLog, cpp/safety/events.hpp).

The log is JSON lines, one event per line, each ending in a CRC-32 of its text. A line whose CRC
does not match (the torn last line of a runtime killed mid-write, or a corrupted one) is reported,
never silently used.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CRC_TAIL = re.compile(r',"crc":"([0-9a-f]{8})"\}$')


def default_log_dir() -> Path:
    """$VERTEBRA_LOG_DIR, else $XDG_STATE_HOME/vertebra, else ~/.local/state/vertebra."""
    env = os.environ.get("VERTEBRA_LOG_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "vertebra"


def default_log_path() -> Path:
    return default_log_dir() / "events.jsonl"


@dataclass
class EventFile:
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers that failed their CRC


def parse_line(line: str) -> dict[str, Any] | None:
    """The event on one line, or None when the line is torn or corrupted (CRC mismatch)."""
    line = line.rstrip("\n")
    m = _CRC_TAIL.search(line)
    if not m:
        return None
    body = line[: m.start()]
    if f"{zlib.crc32(body.encode()):08x}" != m.group(1):
        return None
    try:
        ev = json.loads(body + "}")
    except json.JSONDecodeError:
        return None
    return ev if isinstance(ev, dict) else None


def read_events(path: str | os.PathLike[str]) -> EventFile:
    out = EventFile()
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            ev = parse_line(line)
            if ev is None:
                out.bad_lines.append(i)
            else:
                out.events.append(ev)
    return out


_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """'30s', '10m', '2h', '1d' (that long ago) or an ISO 8601 time (UTC when no zone is given)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    m = _REL.match(text.strip())
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now - dt.timedelta(seconds=float(m.group(1)) * mult)
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: '{text}' is neither a duration (30s, 10m, 2h, 1d) nor an ISO 8601 time "
                         "(2026-11-21T08:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def event_time(ev: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ev.get("wall_ns", 0)) / 1e9, tz=dt.timezone.utc)


def format_event(ev: dict[str, Any]) -> str:
    """One human-readable line."""
    t = ev.get("time", "?")
    head = f"{t}  tick {ev.get('tick', 0):>8}  {ev.get('kind', '?'):<14}"
    k = ev.get("kind")
    if k == "mode":
        extra = f" ({ev['fault']})" if "fault" in ev else ""
        body = f"{ev['from']} -> {ev['to']}  [{ev['cause']}{extra}]"
    elif k == "fault":
        j = f" joint {ev['joint']}" if "joint" in ev else ""
        body = f"{ev['fault']}{j} value {ev.get('value')}  -> {ev['response']}  (in {ev.get('mode')})"
    elif k == "fault_cleared":
        body = f"{ev['fault']} cleared"
    elif k == "operator":
        body = f"{ev['action']}"
        if "requested" in ev:
            body += f" {ev['requested']} ({ev.get('controller')})"
        if "status" in ev:
            body += f": {ev['status']}"
        if ev.get("still_active"):
            body += f": still active {', '.join(ev['still_active'])}"
        body += f"  (in {ev.get('mode')})"
    elif k == "clamp":
        body = f"burst {ev['burst']}: {', '.join(ev.get('clamped', []))}"
        if ev["burst"] == "end":
            body += f" ({ev.get('clamps')} clamped ticks over {ev.get('ticks')} ticks)"
    elif k == "note":
        body = ev.get("text", "")
    elif k == "dropped":
        body = f"{ev.get('lost')} events lost (ring full)"
    else:
        body = json.dumps(ev)
    return head + body

"""Reading the safety event log (written by the C++ EventLog, cpp/safety/events.hpp).

The log is JSON lines, one event per line, each ending in a CRC-32 of its text. A line whose CRC
does not match (the torn last line of a runtime killed mid-write, or a corrupted one) is reported,
never silently used. So is a line longer than :data:`MAX_LINE_BYTES`: it is skipped without being
held in memory (a real event line is a few hundred bytes).

Rotation: the writer renames ``events.jsonl`` to ``events.jsonl.1`` (older ones shift to ``.2`` ..
``.<keep_files>``) once it reaches the safety config's ``event_log.rotate_bytes``. Readers take the
current file, or with ``include_rotated`` the kept ones too, oldest first (:func:`log_files`).

Memory: :func:`iter_events` streams (one line at a time, bounded by :data:`MAX_LINE_BYTES`);
:func:`tail_events` reads blocks backwards from the end, so the last N events of a file of any size
cost O(N events + one block + one line). Only regular files are read (:func:`check_log_file`): a
device or a pipe (``/dev/zero``) would never end.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vertebra.runtime.errors import VertebraError

_CRC_TAIL = re.compile(r',"crc":"([0-9a-f]{8})"\}$')
MAX_LINE_BYTES = 1 << 20      # a longer line is reported as bad, never buffered whole
BLOCK_BYTES = 64 * 1024       # what the backwards reader reads at a time
MAX_ROTATED_FILES = 99        # the most rotated files the writer keeps (bounds event_log.keep_files; C++ too)
MAX_BAD_LINES_LISTED = 1000   # per file; the count goes on


class EventLogError(VertebraError):
    """An event log that cannot be read (missing, not a regular file, unreadable)."""


def default_log_dir() -> Path:
    """$VERTEBRA_LOG_DIR, else $XDG_STATE_HOME/vertebra, else ~/.local/state/vertebra."""
    env = os.environ.get("VERTEBRA_LOG_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "vertebra"


def default_log_path() -> Path:
    return default_log_dir() / "events.jsonl"


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"))


def check_log_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`EventLogError` unless `path` is an existing regular file (symlinks are followed)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise EventLogError(f"{path}: cannot read it ({e.strerror}); valid: an event log file the runtime "
                            "wrote") from None
    if not stat.S_ISREG(st.st_mode):
        what = next((text for test, text in _FILE_KINDS if test(st.st_mode)), "not a regular file")
        raise EventLogError(f"{path} is {what}; valid: a regular file (an event log the runtime wrote)")


def log_files(path: str | os.PathLike[str], include_rotated: bool = False) -> list[Path]:
    """The files to read, oldest first: the rotated ones (``<path>.N`` .. ``<path>.1``, regular files
    only) when `include_rotated`, then `path` itself."""
    p = Path(path)
    rotated = []
    if include_rotated:
        for k in range(MAX_ROTATED_FILES, 0, -1):
            r = Path(f"{p}.{k}")
            if r.is_file():
                rotated.append(r)
    return rotated + [p]


@dataclass
class BadLines:
    """Lines of one file that failed their checksum or were too long: how many, and the first
    :data:`MAX_BAD_LINES_LISTED` line numbers (1-based; negative, counted from the end of the file,
    when read backwards by :func:`tail_events`: -1 is the last line)."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_BAD_LINES_LISTED:
            self.lines.append(line)


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


def _parse_raw(raw: bytes) -> dict[str, Any] | None:
    return parse_line(raw.decode("utf-8", errors="replace"))


def _lines_forward(f: IO[bytes], max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, the line) from the start; None for a line longer than `max_line` bytes, which is
    skipped in bounded reads."""
    n = 0
    while True:
        line = f.readline(max_line + 1)
        if not line:
            return
        n += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            while True:  # the rest of the overlong line, a block at a time
                rest = f.readline(BLOCK_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None
            continue
        yield n, line


def iter_events(path: str | os.PathLike[str], bad: BadLines | None = None,
                max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[dict[str, Any]]:
    """Stream the events of one file, oldest first; bad lines go to `bad` (line numbers from 1)."""
    with open(path, "rb") as f:
        for n, raw in _lines_forward(f, max_line_bytes):
            if raw is not None and not raw.strip():
                continue
            ev = _parse_raw(raw) if raw is not None else None
            if ev is None:
                if bad is not None:
                    bad.add(n)
            else:
                yield ev


def read_events(path: str | os.PathLike[str]) -> EventFile:
    """Every event of one file in memory (small files and tests; the CLI streams)."""
    bad = BadLines()
    events = list(iter_events(path, bad))
    return EventFile(events, bad.lines)


def _lines_backwards(f: IO[bytes], block: int, max_line: int, counter: list[int]) -> Iterator[tuple[int, bytes | None]]:
    """(k, the line) from the end: k = 1 for the last line (a final newline starts no line), None for
    a line longer than `max_line`. ``counter[0]`` accumulates the bytes read."""
    pos = f.seek(0, os.SEEK_END)
    carry = b""        # the end of a line whose start lies further left
    skipping = False   # inside an overlong line: drop bytes up to its start
    first = True       # the next line yielded is the file's last
    k = 0
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        counter[0] += len(chunk)
        if skipping:
            i = chunk.rfind(b"\n")
            if i < 0:
                continue
            k += 1
            first = False
            yield k, None
            skipping = False
            data = chunk[:i]
        else:
            data = chunk + carry
        pieces = data.split(b"\n")
        carry = pieces[0]
        for piece in reversed(pieces[1:]):
            if first:
                first = False
                if not piece:
                    continue  # the file ends in a newline
            k += 1
            yield k, (None if len(piece) > max_line else piece)
        if len(carry) > max_line:
            carry = b""
            skipping = True
    if skipping:
        yield k + 1, None
    elif carry or not first:
        yield k + 1, carry


@dataclass
class TailResult:
    events: list[dict[str, Any]]       # oldest first
    bad: dict[str, BadLines]           # file -> its bad lines met on the way (negative line numbers)
    bytes_read: int


def tail_events(paths: list[Path], n: int, accept: Callable[[dict[str, Any]], bool] | None = None, *,
                block_bytes: int = BLOCK_BYTES, max_line_bytes: int = MAX_LINE_BYTES) -> TailResult:
    """The last `n` events that `accept` takes, from `paths` (oldest file first, as :func:`log_files`
    gives them), read backwards block by block: only as much of the files as those events need."""
    if n < 1:
        raise ValueError(f"tail_events: n must be >= 1, found {n}")
    found: list[dict[str, Any]] = []
    bad: dict[str, BadLines] = {}
    counter = [0]
    for path in reversed(paths):
        with open(path, "rb") as f:
            for k, raw in _lines_backwards(f, block_bytes, max_line_bytes, counter):
                if raw is not None and not raw.strip():
                    continue
                ev = _parse_raw(raw) if raw is not None else None
                if ev is None:
                    bad.setdefault(str(path), BadLines()).add(-k)
                elif accept is None or accept(ev):
                    found.append(ev)
                    if len(found) == n:
                        break
        if len(found) == n:
            break
    found.reverse()
    return TailResult(found, bad, counter[0])


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


def event_time(ev: dict[str, Any]) -> dt.datetime | None:
    """The event's wall-clock time (its ``wall_ns``), or None when that is missing or not a time."""
    v = ev.get("wall_ns")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    try:
        return dt.datetime.fromtimestamp(v / 1e9, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _text(v: Any, missing: str = "?") -> str:
    """A field as text, whatever JSON type it has (lists joined by ', ')."""
    if v is None:
        return missing
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)


def format_event(ev: dict[str, Any]) -> str:
    """One human-readable line: time, run id, tick, kind, then what happened. Fields that are
    missing or of an unexpected type show as '?' (or as their JSON) instead of failing."""
    def g(key: str, missing: str = "?") -> str:
        return _text(ev.get(key), missing)

    t = ev.get("time")
    if not isinstance(t, str):
        when = event_time(ev)
        t = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when is not None else "?"
    k = ev.get("kind")
    head = f"{t}  run {g('run'):<19}  tick {g('tick'):>8}  {_text(k):<14}"
    if k == "mode":
        extra = f" ({g('fault')})" if "fault" in ev else ""
        body = f"{g('from')} -> {g('to')}  [{g('cause')}{extra}]"
    elif k == "fault":
        j = f" joint {g('joint')}" if "joint" in ev else ""
        body = f"{g('fault')}{j} value {g('value')}  -> {g('response')}  (in {g('mode')})"
    elif k == "fault_cleared":
        body = f"{g('fault')} cleared"
    elif k == "operator":
        body = g("action")
        if "requested" in ev:
            body += f" {g('requested')} ({g('controller')})"
        if "status" in ev:
            body += f": {g('status')}"
        if ev.get("still_active"):
            body += f": still active {g('still_active')}"
        body += f"  (in {g('mode')})"
    elif k == "clamp":
        body = f"burst {g('burst')}: {g('clamped', '')}"
        if ev.get("burst") == "end":
            body += f" ({g('clamps')} clamped ticks over {g('ticks')} ticks)"
    elif k == "note":
        body = g("text", "")
    elif k == "dropped":
        body = f"{g('lost')} events lost (ring full)"
    else:
        body = json.dumps(ev)
    return head + body

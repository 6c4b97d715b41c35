"""Usage metering (robots as a service): one append-only JSON-lines log per data folder
(usage.jsonl), each line a hash-chained record of one run's usage so far, so an edited, inserted
or removed line is detected.

    {"seq": 7, "prev": "<hash of line 6>", "record": {...}, "hash": sha256(prev + canonical(record))}

canonical(record) is its JSON with sorted keys and no spaces; the first line's prev is 64 zeros.
The recorder's writer appends a `checkpoint` record of its run every minute and a `run` record
when the run ends (a crashed run keeps its last checkpoint); `vertebra usage` verifies the chain,
takes each run's last record, and sums them per run and per day. Appends hold an exclusive lock
on the file (several runtimes may share a folder) and are fsynced.

What the chain does not show: lines cut from the end of the file (the last good hash is not
anchored anywhere yet; a signed manifest would anchor it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

FILE = "usage.jsonl"
GENESIS = "0" * 64


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(prev: str, record: dict[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + _canonical(record)).hexdigest()


def _last_line(f: Any) -> bytes:
    """The file's last non-empty line (read backwards from the end)."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    pos, buf = end, b""
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        lines = buf.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            return lines[-1]
    return b""


def append(folder: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append `record` to the folder's usage log (chained to the last line); returns the line."""
    path = Path(folder) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            last = _last_line(f)
            prev, seq = GENESIS, 0
            if last.strip():
                head = json.loads(last)
                prev, seq = head["hash"], int(head["seq"]) + 1
            line = {"seq": seq, "prev": prev, "record": record, "hash": chain_hash(prev, record)}
            f.seek(0, os.SEEK_END)
            f.write(json.dumps(line, separators=(",", ":"), default=str).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return line


def read(folder: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(records in order, problems): every line whose chain breaks (edited, inserted, removed or
    reordered) is a problem naming its line number; records after a break are still returned."""
    path = Path(folder) / FILE
    if not path.exists():
        return [], []
    records, problems = [], []
    prev, want_seq = GENESIS, 0
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                rec, h = line["record"], line["hash"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"line {no}: not a usage record (torn or edited)")
                continue
            if line.get("prev") != prev or line.get("seq") != want_seq:
                problems.append(f"line {no}: the chain breaks here (a line before it was removed, inserted or reordered)")
            if chain_hash(line.get("prev", ""), rec) != h:
                problems.append(f"line {no}: its hash does not match its record (the record was edited)")
            prev, want_seq = h, int(line.get("seq", want_seq)) + 1
            records.append(rec)
    return records, problems

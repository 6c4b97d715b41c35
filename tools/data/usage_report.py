"""`vertebra usage`: the usage log (runtime/usage.py) verified and summed per run and per day."""

from __future__ import annotations

import datetime as _dt
import re
import time
from pathlib import Path
from typing import Any

from vertebra.runtime import usage

SUMMED = ("powered_s", "armed_s", "active_s", "policy_s", "available_s", "episodes", "successes", "interventions",
          "fault_count", "falls", "estops", "lost_records")


def parse_since(text: str | None) -> float | None:
    """'7d', '12h', '30m', '90s', or an ISO date/time (UTC when no zone) -> a Unix time; None: all."""
    if not text:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        return time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: a duration (7d, 12h, 30m, 90s) or an ISO date/time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def _day(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d")


def summarize(folder: str | Path, since: float | None = None) -> dict[str, Any]:
    """{runs: [...], days: [...], total, problems}: each run's last record (a crashed run: its last
    checkpoint, `complete: false`), runs started before `since` left out; days by the UTC day a run started."""
    records, problems = usage.read(folder)
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        last[str(r.get("run"))] = r
    runs = []
    for run_id, r in last.items():
        if since is not None and float(r.get("started", 0)) < since:
            continue
        runs.append({"run": run_id, "robot": r.get("robot"), "serial": r.get("serial"), "day": _day(float(r["started"])),
                     "complete": r.get("type") == "run", **{k: r.get(k, 0) for k in SUMMED},
                     "tasks": r.get("tasks", {}), "faults": r.get("faults", {})})
    runs.sort(key=lambda x: (x["day"], x["run"]))
    days: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {k: 0 for k in SUMMED} | {"runs": 0, "tasks": {}}
    for r in runs:
        for acc in (days.setdefault(r["day"], {"day": r["day"], "runs": 0, **{k: 0 for k in SUMMED}, "tasks": {}}), total):
            acc["runs"] += 1
            for k in SUMMED:
                acc[k] += r[k]
            for task, c in r["tasks"].items():
                t = acc["tasks"].setdefault(task, {"attempted": 0, "succeeded": 0})
                t["attempted"] += c.get("attempted", 0)
                t["succeeded"] += c.get("succeeded", 0)
    for acc in [*days.values(), total]:
        acc["uptime"] = round(acc["available_s"] / acc["powered_s"], 4) if acc["powered_s"] else None
    return {"runs": runs, "days": list(days.values()), "total": total, "problems": problems,
            "log": str(Path(folder) / usage.FILE)}

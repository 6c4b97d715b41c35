"""Reading Vertebra recordings (runtime/recorder.py writes them; runtime/record_schema.py lists the
channels): runs, their segments, ticks, events and episodes.

A segment is read by a linear scan of its records (mcap's StreamReader, chunk CRCs checked), so a
file the writer never finished (SIGKILL, power cut) is read up to its last whole chunk: the scan
stops at the torn end and the segment says so (`truncated`, `error`) instead of failing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import CRCValidationError, StreamReader

from vertebra.runtime import record_schema as rs

try:  # a torn zstd frame
    from zstandard import ZstdError
except ImportError:  # pragma: no cover - zstandard is a dependency
    ZstdError = ValueError  # type: ignore[misc,assignment]


@dataclass
class Msg:
    topic: str
    schema: str
    log_time: int
    data: bytes
    schema_data: bytes = b""

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class Segment:
    path: Path
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    messages: int = 0
    truncated: bool = False
    error: str = ""

    def scan(self, topics: set[str] | None = None) -> Iterator[Msg]:
        """Every message (of `topics`) in file order; a torn end stops the scan (sets truncated)."""
        self.messages, self.truncated, self.error = 0, False, ""
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        with open(self.path, "rb") as f:
            try:
                for rec in StreamReader(f, validate_crcs=True).records:
                    if isinstance(rec, Schema):
                        schemas[rec.id] = rec
                    elif isinstance(rec, Channel):
                        channels[rec.id] = rec
                    elif isinstance(rec, Metadata):
                        self.metadata[rec.name] = dict(rec.metadata)
                    elif isinstance(rec, Message):
                        self.messages += 1
                        ch = channels.get(rec.channel_id)
                        if ch is None or (topics is not None and ch.topic not in topics):
                            continue
                        sc = schemas.get(ch.schema_id)
                        yield Msg(ch.topic, sc.name if sc else "", rec.log_time, rec.data, sc.data if sc else b"")
            except (McapError, CRCValidationError, ZstdError, struct.error, EOFError, ValueError) as e:
                self.truncated = True
                self.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


@dataclass
class Episode:
    number: int
    instruction: str = ""
    task: str = ""
    policy: str = ""
    start_s: float = 0.0
    end_s: float | None = None
    outcome: str = "aborted"
    reason: str = ""
    time_to_success_s: float | None = None
    interventions: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.number, "instruction": self.instruction, "task": self.task, "policy": self.policy,
                "start_s": round(self.start_s, 4), "end_s": None if self.end_s is None else round(self.end_s, 4),
                "outcome": self.outcome, "reason": self.reason, "time_to_success_s": self.time_to_success_s,
                "interventions": self.interventions,
                "faults": [{"fault": f.get("fault"), "joint": f.get("joint_name"), "t_s": f.get("robot_time_s")}
                           for f in self.faults]}


@dataclass
class Run:
    dir: Path
    segments: list[Segment]
    metadata: dict[str, str] = field(default_factory=dict)
    ticks: int = 0
    lost: int = 0
    start_s: float | None = None
    end_s: float | None = None
    episodes: list[Episode] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    interventions: list[dict[str, Any]] = field(default_factory=list)
    clock_offset_ns: int = 0  # MCAP log time minus robot time (runtime/record_schema.py: one time base)

    @property
    def id(self) -> str:
        return self.metadata.get("run") or self.dir.name

    @property
    def truncated(self) -> bool:
        return any(s.truncated for s in self.segments)

    @property
    def faults(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") == "fault"]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.id, "dir": str(self.dir), "robot": self.metadata.get("robot", ""),
                "serial": self.metadata.get("serial", ""), "operator": self.metadata.get("operator", ""),
                "segments": [{"path": str(s.path), "messages": s.messages, "truncated": s.truncated, "error": s.error}
                             for s in self.segments],
                "ticks": self.ticks, "lost": self.lost, "start_s": self.start_s, "end_s": self.end_s,
                "duration_s": None if self.start_s is None or self.end_s is None else round(self.end_s - self.start_s, 4),
                "truncated": self.truncated, "faults": len(self.faults), "interventions": len(self.interventions),
                "episodes": [e.to_dict() for e in self.episodes]}


def run_dirs(root: str | Path) -> list[Path]:
    """The run folders under `root` (a folder of runs, or one run's folder), oldest first."""
    root = Path(root)
    if any(root.glob("*.mcap")):
        return [root]
    return sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("*.mcap"))), key=lambda p: p.name) \
        if root.is_dir() else []


def segments_of(run_dir: str | Path) -> list[Segment]:
    return [Segment(p) for p in sorted(Path(run_dir).glob("*.mcap"))]


def load_run(run_dir: str | Path) -> Run:
    """A run's metadata, tick count and robot-time span, lost records, events and episodes (one scan)."""
    run = Run(Path(run_dir), segments_of(run_dir))
    episodes: dict[int, Episode] = {}
    open_interventions: dict[int, dict[str, Any]] = {}
    topics = {rs.TICKS, rs.EVENTS, rs.EPISODES, rs.DROPOUTS}
    for seg in run.segments:
        for m in seg.scan(topics):
            if m.topic == rs.TICKS:
                dt = rs.dtype_from_table(json.loads(m.schema_data))
                recs = np.frombuffer(m.data, dt)
                if run.ticks == 0:
                    run.clock_offset_ns = int(m.log_time) - int(recs["driver_ns"][0])
                run.ticks += len(recs)
                t0, t1 = float(recs["driver_ns"][0]) * 1e-9, float(recs["driver_ns"][-1]) * 1e-9
                run.start_s = t0 if run.start_s is None else min(run.start_s, t0)
                run.end_s = t1 if run.end_s is None else max(run.end_s, t1)
            elif m.topic == rs.DROPOUTS:
                run.lost += int(m.json().get("lost", 0))
            elif m.topic == rs.EVENTS:
                run.events.append(m.json())
            elif m.topic == rs.EPISODES:
                rec = m.json()
                t = float(rec.get("robot_time_ns", 0)) * 1e-9
                ev = rec.get("event")
                if ev == "episode_start":
                    episodes[rec["episode"]] = Episode(rec["episode"], rec.get("instruction", ""), rec.get("task", ""),
                                                       rec.get("policy", ""), t)
                elif ev == "episode_end" and rec.get("episode") in episodes:
                    e = episodes[rec["episode"]]
                    e.end_s, e.outcome, e.reason = t, rec.get("outcome", "aborted"), rec.get("reason", "")
                    e.time_to_success_s = rec.get("time_to_success_s")
                elif ev == "intervention_start":
                    iv = {"intervention": rec.get("intervention"), "by": rec.get("by", ""), "start_s": t, "end_s": None,
                          "episode": rec.get("episode", 0)}
                    open_interventions[rec.get("intervention", 0)] = iv
                    run.interventions.append(iv)
                elif ev == "intervention_end":
                    iv = open_interventions.pop(rec.get("intervention", 0), None)
                    if iv is not None:
                        iv["end_s"] = t
        if not run.metadata:
            run.metadata = dict(seg.metadata.get("vertebra", {}))
    for e in episodes.values():
        if e.end_s is None:
            e.reason = "the recording ended before the episode did (the runtime was killed or lost power)"
        end = e.end_s if e.end_s is not None else float("inf")
        e.faults = [f for f in run.events if f.get("kind") == "fault" and e.start_s <= f.get("robot_time_s", -1) <= end]
        e.interventions = [iv for iv in run.interventions if iv.get("episode") == e.number]
    run.episodes = sorted(episodes.values(), key=lambda e: e.number)
    return run


def load_ticks(run_dir: str | Path) -> np.ndarray:
    """Every recorded tick of a run (a structured array in the recording's own layout), in order."""
    parts = []
    for seg in segments_of(run_dir):
        for m in seg.scan({rs.TICKS}):
            parts.append(np.frombuffer(m.data, rs.dtype_from_table(json.loads(m.schema_data))))
    if not parts:
        return np.zeros(0, dtype=rs.tick_dtype())
    return np.concatenate(parts)


def joint_names(run: Run) -> list[str]:
    return [x for x in run.metadata.get("joints", "").split(",") if x]

"""The recorder's writer: drains the tick's record ring (cpp/loop/record_ring.hpp) on its own thread
and writes MCAP files (runtime/record_schema.py lists the channels), never on the tick.

    rec = Recorder(RecordOptions.from_dict({"dir": "runs"}), robot_cfg, rate_hz=500, metadata={...})
    rec.attach(loop)            # configuration time: the loop fills one record per recorded tick
    rec.start(time_source)      # the writer thread; time_source() -> robot time (s) for Python's events
    rec.episode_start("wave", policy="g1_vla"); ...; rec.episode_end("success")
    rec.close()                 # after the loop stopped: drains everything, finishes the file

Crash safety: every `fsync_s` (at most 1 s) the writer ends the MCAP chunk in progress, flushes and
fsyncs, so a SIGKILL or a power cut loses at most that much plus what waits in the ring (the writer
drains it every few ms). The metadata goes first, so even a file cut mid-chunk names its robot and
run; tools/data/reader.py recovers such a file by a linear scan.

Segments: a run is one folder `<dir>/<run id>/` of MCAP files `<run id>-NNNN.mcap`, a new one when
the current one passes `segment_mb` or `segment_s`. Each segment is a complete MCAP file (schemas,
channels and metadata repeated) once finished.

Lockstep: the ticks run on the caller's thread as fast as it can, so there the caller waits for the
writer (wait_room(), called by Runtime.wait) instead of the ring losing records: a lockstep recording
is complete and deterministic. In real time the tick never waits: a full ring loses records, counted
in `lost` and written as a /vertebra/dropouts message with the gap's length.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mcap.writer import CompressionType, Writer

from vertebra import _rt
from vertebra.runtime import record_schema as rs
from vertebra.runtime import usage
from vertebra.runtime.errors import VertebraError
from vertebra.runtime.lifecycle import LifecycleStore
from vertebra.runtime.run_stats import RunStats
from vertebra.runtime.schema import Section, field

FAULT_NAMES: list[str] = list(_rt.fault_names())
SAFETY_MODES: list[str] = list(_rt.safety_mode_names())
LIFECYCLE_EVERY_S = 10.0  # a crash loses at most this much of the lifecycle counters
USAGE_EVERY_S = 60.0      # a usage checkpoint line (the run's record so far)


def default_data_dir() -> Path:
    """$VERTEBRA_DATA_DIR, else $XDG_DATA_HOME/vertebra/runs (~/.local/share/vertebra/runs)."""
    env = os.environ.get("VERTEBRA_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vertebra" / "runs"


class RecordCamera(Section):
    """A camera recorded at its own rate (JPEG frames on /camera/<name>)."""

    name = field(str, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}",
                 doc="the robot config's camera (sim.cameras: the simulated one; its size is the config's)")
    fps = field(float, default=30.0, lo=1.0, hi=120.0, doc="frames per second")
    quality = field(int, default=90, lo=10, hi=100, doc="JPEG quality")


class RecordOptions(Section):
    """Recording every run (runtime/recorder.py; docs/data.md)."""

    enabled = field(bool, default=True, doc="record the run (false: nothing is recorded)")
    dir = field(str, default=None, doc="where runs go (null: $VERTEBRA_DATA_DIR, else ~/.local/share/vertebra/runs)")
    every_ticks = field(int, default=1, lo=1, hi=1000, doc="record every Nth tick (1: every tick, lossless)")
    ring_s = field(float, default=2.0, lo=0.05, hi=60.0,
                   doc="the ring between the tick and the writer holds this much (how far the writer may fall behind)")
    joint_states_hz = field(float, default=50.0, lo=0.0, hi=2000.0,
                            doc="/joint_states and /joint_commands (Foxglove) rate; 0: off (the ticks keep everything)")
    controller_hz = field(float, default=50.0, lo=0.0, hi=2000.0, doc="/controller rate; 0: off")
    safety_hz = field(float, default=10.0, lo=0.0, hi=2000.0, doc="/safety rate (and on every change); 0: changes only")
    segment_mb = field(float, default=512.0, lo=0.1, hi=65536.0, doc="start a new segment past this size")
    segment_s = field(float, default=600.0, lo=1.0, hi=86400.0, doc="start a new segment after this long (robot time)")
    fsync_s = field(float, default=0.5, lo=0.02, hi=1.0,
                    doc="end the chunk, flush and fsync at least this often: a crash loses at most this much")
    operator = field(str, default=None, doc="who runs the robot (written into the metadata; dropped by --redact operator)")
    cameras = field(list, item=RecordCamera, default=[],
                    doc="cameras to record at their own rate (the simulated ones of the robot config)")

    def check_robot(self, robot: Any) -> None:
        """Every camera named is one of the robot's (configuration time; DeployConfig.check calls it)."""
        have = [c.name for c in robot.sim.cameras]
        for k, cam in enumerate(self.cameras):
            if cam.name not in have:
                raise cam.error("name", cam.name, f"a camera of {robot.name}: {', '.join(have) or '(it has none)'}")


class Recorder:
    """One run's recording: the ring the loop fills, the writer thread, the MCAP segments."""

    def __init__(self, options: RecordOptions, robot: Any, *, rate_hz: float, lockstep: bool,
                 metadata: dict[str, Any] | None = None, events: Any = None, run_id: str | None = None):
        if not options.enabled:
            raise VertebraError("Recorder: recording is disabled in this config (record.enabled: false)")
        self.options = options
        self.robot = robot
        self.rate_hz = float(rate_hz)
        self.lockstep = lockstep
        self.joint_names = list(robot.joint_names)
        self.n = len(self.joint_names)
        rec_hz = self.rate_hz / options.every_ticks
        self.ring = _rt.RecordRing(max(64, int(options.ring_s * rec_hz)))
        self.table = rs.tick_table()
        self.dtype = rs.dtype_from_table(self.table)
        self._buf = np.zeros(min(self.ring.capacity, 256), dtype=self.dtype)
        now = _dt.datetime.now(_dt.timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
        serial = str((metadata or {}).get("serial") or "")
        self.dir = Path(options.dir).expanduser() if options.dir else default_data_dir()
        base = run_id or "-".join(x for x in (robot.name, serial, stamp, str(os.getpid())) if x)
        self.run_id, k = base, 1
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:  # the run's own folder, made here: never two runs in one folder (nor one written over)
            try:
                (self.dir / self.run_id).mkdir()
                break
            except FileExistsError:
                k += 1
                self.run_id = f"{base}-{k}"
        self.run_dir = self.dir / self.run_id
        self.metadata = {"run": self.run_id, "robot": robot.name, "joints": ",".join(self.joint_names),
                         "rate_hz": f"{self.rate_hz:g}", "every_ticks": str(options.every_ticks),
                         "clock": "lockstep" if lockstep else "realtime",
                         "operator": options.operator or "", **{k: str(v) for k, v in (metadata or {}).items()}}
        self.events = events  # an _rt.EventLog: its lines become /events and /vertebra/events
        self._events_since = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._time_source: Callable[[], float] | None = None
        self._error: BaseException | None = None
        # clocks: robot time (driver ns) onto the wall clock at the first record
        self._driver0: int | None = None
        self._wall0 = 0
        # segment state (writer thread)
        self._writer: Writer | None = None
        self._file: Any = None
        self._segment = -1
        self._segment_t0 = 0
        self._channels: dict[str, int] = {}
        self._last_sync = 0.0
        self.segments: list[Path] = []
        # decimation state
        self._next_js = self._next_ctl = self._next_safety = 0
        self._last_safety: tuple[Any, ...] | None = None
        # counters
        self.records = 0
        self._lost_reported = 0  # records lost that a Dropout message has said so
        self._last_driver_ns = 0
        self.messages = 0
        self.syncs = 0
        self._episode = 0
        self._episode_open = False
        self._intervention = 0
        self._intervention_open = False
        self._lock = threading.Lock()
        # wear and usage (runtime/run_stats.py): the lifecycle database and the usage log in `dir`
        tau_max = robot.column("tau_max_nm") if hasattr(robot, "column") else [1.0] * self.n
        self.stats = RunStats(self.joint_names, tau_max, options.every_ticks / self.rate_hz, SAFETY_MODES)
        self.serial = serial
        self.started_wall = time.time()
        self._lifecycle: LifecycleStore | None = None
        self._last_lifecycle = self._last_usage = 0.0
        self.problems: list[str] = []  # lifecycle / usage writes that failed (the recording goes on)

    # -- configuration ---------------------------------------------------------------------
    def attach(self, loop: Any) -> None:
        """Configuration time: the loop records every `every_ticks`-th tick into this recorder's ring."""
        loop.set_record_ring(self.ring, self.options.every_ticks)

    def start(self, time_source: Callable[[], float] | None = None) -> None:
        """Open the first segment and start the writer thread. `time_source()`: robot time (s) now,
        for the episodes and notes Python writes."""
        if not self.ring.claim():
            raise VertebraError("Recorder: the record ring already has a writer")
        self._time_source = time_source
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="vertebra-recorder", daemon=True)
        self._thread.start()

    # -- Python's records (any thread) -------------------------------------------------------
    def _now_ns(self) -> int:
        return int(round(self._time_source() * 1e9)) if self._time_source else 0

    def episode_start(self, instruction: str, *, policy: str = "", task: str | None = None,
                      policy_sha256: str = "") -> int:
        """Begin an episode (ends an open one as aborted first); returns its number."""
        with self._lock:
            if self._episode_open:
                self._put_episode({"event": "episode_end", "episode": self._episode, "outcome": "aborted",
                                   "reason": "a new episode started"})
            self._episode += 1
            self._episode_open = True
            self._put_episode({"event": "episode_start", "episode": self._episode, "instruction": instruction,
                               "task": task or instruction, "policy": policy, "policy_sha256": policy_sha256})
            return self._episode

    def episode_end(self, outcome: str, reason: str = "", time_to_success_s: float | None = None) -> None:
        """End the open episode: outcome success, failure or aborted (and why); `time_to_success_s`:
        when the task was first achieved, from the episode's start (else its end is)."""
        if outcome not in ("success", "failure", "aborted"):
            raise ValueError(f"episode outcome {outcome!r}; valid: success, failure, aborted")
        with self._lock:
            if not self._episode_open:
                raise VertebraError("Recorder.episode_end: no episode is open")
            if self._intervention_open:
                self._intervention_end_locked()
            self._episode_open = False
            rec: dict[str, Any] = {"event": "episode_end", "episode": self._episode, "outcome": outcome, "reason": reason}
            if time_to_success_s is not None:
                rec["time_to_success_s"] = float(time_to_success_s)
            self._put_episode(rec)

    def intervention_start(self, by: str = "operator") -> int:
        """An operator took over (teleop) from the policy; returns the intervention's number."""
        with self._lock:
            if self._intervention_open:
                return self._intervention
            self._intervention += 1
            self._intervention_open = True
            self._put_episode({"event": "intervention_start", "intervention": self._intervention, "by": by,
                               "episode": self._episode if self._episode_open else 0})
            return self._intervention

    def intervention_end(self) -> None:
        with self._lock:
            if self._intervention_open:
                self._intervention_end_locked()

    def _intervention_end_locked(self) -> None:
        self._intervention_open = False
        self._put_episode({"event": "intervention_end", "intervention": self._intervention,
                           "episode": self._episode if self._episode_open else 0})

    def _put_episode(self, rec: dict[str, Any]) -> None:
        now = self._now_ns()
        self._queue.put(("episode", (now, {**rec, "robot_time_ns": now})))

    def note(self, text: str, **fields: Any) -> None:
        """A line in /events (and /vertebra/events) at robot time now."""
        self._queue.put(("note", (self._now_ns(), text, fields)))

    def frame(self, camera: str, image: Any, driver_ns: int | None = None, fmt: str = "jpeg", quality: int = 90) -> None:
        """A camera frame: encoded bytes (`fmt`), or an HxWx3 uint8 array (JPEG-encoded on the writer thread)."""
        self._queue.put(("frame", (self._now_ns() if driver_ns is None else int(driver_ns), camera, image, fmt,
                                   quality)))

    @property
    def episode_open(self) -> bool:
        return self._episode_open

    # -- the caller's side in lockstep -------------------------------------------------------
    def wait_room(self, fraction: float = 0.5, timeout_s: float = 30.0) -> None:
        """Block the caller (never the tick) until the ring is under `fraction` full: a lockstep run
        ticks on its caller's thread, so it waits for the writer instead of losing records."""
        deadline = time.monotonic() + timeout_s
        cap = self.ring.capacity
        while self.ring.size > fraction * cap:
            self._check_writer()
            if time.monotonic() > deadline:
                raise VertebraError(f"Recorder: the writer has not drained the ring for {timeout_s:g} s")
            time.sleep(0.0005)

    def _check_writer(self) -> None:
        if self._error is not None:
            raise VertebraError(f"Recorder: the writer failed: {self._error}") from self._error

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                k = self.ring.pop_into(self._buf)
                if k:
                    self._write_records(self._buf[:k])
                self._drain_queue()
                self._drain_events()
                now = time.monotonic()
                if now - self._last_sync >= self.options.fsync_s:
                    self._sync()
                if now - self._last_lifecycle >= LIFECYCLE_EVERY_S:
                    self._store_lifecycle()
                if now - self._last_usage >= USAGE_EVERY_S:
                    self._store_usage("checkpoint")
                if stopping and k == 0 and self.ring.size == 0 and self._queue.empty():
                    self._report_trailing_loss()
                    break
                if k < len(self._buf) and not stopping:
                    time.sleep(0.002)
        except BaseException as e:  # noqa: BLE001 - reported to the caller (wait_room, close)
            self._error = e
        finally:
            try:
                self._finish_segment()
            except Exception as e:  # noqa: BLE001
                self._error = self._error or e
            self._store_lifecycle()
            self._store_usage("run")
            if self._lifecycle is not None:
                self._lifecycle.close()

    def _log_time(self, driver_ns: int) -> int:
        if self._driver0 is None:
            return time.time_ns()
        return max(0, self._wall0 + (int(driver_ns) - self._driver0))

    def _report_trailing_loss(self) -> None:
        """Records lost after the last one that fitted are reported by no record (the next one would
        carry them): at the end the ring's own count says how many; their start is unknown (0)."""
        left = int(self.ring.lost) - self._lost_reported
        if left > 0:
            self._add(rs.DROPOUTS, "vertebra.Dropout", self._last_driver_ns,
                      {"lost": left, "since_ns": 0, "duration_s": 0.0, "before_tick": -1})
            self._lost_reported += left

    def _write_records(self, recs: np.ndarray) -> None:
        if self._driver0 is None:
            self._driver0, self._wall0 = int(recs["driver_ns"][0]), int(recs["wall_ns"][0])
        lost = np.nonzero(recs["lost_before"])[0]
        for i in lost:
            r = recs[i]
            dur = (int(r["mono_ns"]) - int(r["lost_since_ns"])) * 1e-9
            self._add(rs.DROPOUTS, "vertebra.Dropout", int(r["driver_ns"]),
                      {"lost": int(r["lost_before"]), "since_ns": int(r["lost_since_ns"]), "duration_s": dur,
                       "before_tick": int(r["tick"])})
            self._lost_reported += int(r["lost_before"])
        self._last_driver_ns = int(recs["driver_ns"][-1])
        t0 = self._log_time(int(recs["driver_ns"][0]))
        self._add_raw(rs.TICKS, t0, recs.tobytes())
        self.records += len(recs)
        self.stats.add_ticks(recs)
        n = self.n
        names = self.joint_names
        per_ns = 1e9
        for r in recs:
            dn = int(r["driver_ns"])
            if self.options.joint_states_hz > 0 and dn >= self._next_js:
                self._next_js = dn + int(per_ns / self.options.joint_states_hz)
                ts = rs.stamp(self._log_time(dn))
                q, dq, tau = r["q"][:n].tolist(), r["dq"][:n].tolist(), r["tau"][:n].tolist()
                self._add(rs.JOINT_STATES, "foxglove.JointStates", dn, {"timestamp": ts, "joints": [
                    {"name": names[i], "position": q[i], "velocity": dq[i], "effort": tau[i]} for i in range(n)]})
                cq, cdq, ct = r["cmd_q"][:n].tolist(), r["cmd_dq"][:n].tolist(), r["cmd_tau_ff"][:n].tolist()
                self._add(rs.JOINT_COMMANDS, "foxglove.JointStates", dn, {"timestamp": ts, "joints": [
                    {"name": names[i], "position": cq[i], "velocity": cdq[i], "effort": ct[i]} for i in range(n)]})
            if self.options.controller_hz > 0 and dn >= self._next_ctl and int(r["flags"]) & rs.FLAG_DIAGNOSTICS:
                self._next_ctl = dn + int(per_ns / self.options.controller_hz)
                self._add(rs.CONTROLLER, "vertebra.Controller", dn, {
                    "tick": int(r["tick"]), "controller": mode_label(int(r["controller"])),
                    "com_err": r["com_err"].tolist(), "base_pos_err": float(r["base_pos_err"]),
                    "base_rot_err": float(r["base_rot_err"]), "torso_rot_err": float(r["torso_rot_err"]),
                    "hand_pos_err": r["hand_pos_err"].tolist(), "hand_rot_err": r["hand_rot_err"].tolist(),
                    "contact_wrench": r["contact_wrench"].tolist(), "contact_weight": r["contact_weight"].tolist(),
                    "solve_us": float(r["solve_us"]), "qp_iterations": int(r["qp_iterations"])})
            key = (int(r["safety_mode"]), int(r["controller"]), int(r["faults_active"]), int(r["faults_latched"]),
                   bool(int(r["flags"]) & rs.FLAG_ENABLED))
            periodic = self.options.safety_hz > 0 and dn >= self._next_safety
            if key != self._last_safety or periodic:
                if periodic:
                    self._next_safety = dn + int(per_ns / self.options.safety_hz)
                self._last_safety = key
                self._add(rs.SAFETY, "vertebra.Safety", dn, {
                    "tick": int(r["tick"]), "safety_mode": safety_mode_name(key[0]), "controller": mode_label(key[1]),
                    "enabled": key[4], "faults_active": fault_list(key[2]), "faults_latched": fault_list(key[3]),
                    "clamp_flags": int(r["clamp_flags"]), "stream_age_ms": float(r["stream_age_ms"])})
        self._maybe_rotate(int(recs["driver_ns"][-1]))

    def _drain_queue(self) -> None:
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "episode":
                dn, rec = item
                self._add(rs.EPISODES, "vertebra.Episode", dn, rec)
                self.stats.add_episode(rec)
                self._log_line(dn, rs.INFO, "episode", _episode_text(rec))
            elif kind == "note":
                dn, text, fields = item
                self._add(rs.EVENTS, "vertebra.Event", dn, {"kind": "note", "text": text, "robot_time_ns": dn, **fields})
                self._log_line(dn, rs.INFO, "note", text)
            elif kind == "frame":
                dn, camera, image, fmt, quality = item
                data, fmt = _encode(image, fmt, quality)
                self._add(rs.CAMERA_PREFIX + camera, "foxglove.CompressedImage", dn, {
                    "timestamp": rs.stamp(self._log_time(dn)), "frame_id": camera,
                    "data": base64.b64encode(data).decode(), "format": fmt})

    def _drain_events(self) -> None:
        if self.events is None:
            return
        for line_no, text in self.events.recent(self._events_since):
            self._events_since = line_no
            e = json.loads(text)
            j = e.get("joint")
            if isinstance(j, int) and 0 <= j < self.n and e.get("kind") == "fault":
                e["joint_name"] = self.joint_names[j]
            dn = int(e.get("robot_time_ns", 0))
            self._add(rs.EVENTS, "vertebra.Event", dn, e)
            self.stats.add_event(e)
            level, msg = _event_line(e)
            self._log_line(dn, level, "safety", msg)

    def _log_line(self, driver_ns: int, level: int, name: str, message: str) -> None:
        self._add(rs.LOG, "foxglove.Log", driver_ns, {"timestamp": rs.stamp(self._log_time(driver_ns)), "level": level,
                                                     "message": message, "name": name, "file": "", "line": 0})

    # -- lifecycle and usage -------------------------------------------------------------------
    def _store_lifecycle(self) -> None:
        self._last_lifecycle = time.monotonic()
        if self.stats.start_s is None:
            return
        try:
            if self._lifecycle is None:
                self._lifecycle = LifecycleStore(self.dir)
            self._lifecycle.write_run(self.run_id, self.robot.name, self.serial, self.started_wall, self.stats)
        except (sqlite3.Error, OSError) as e:
            self.problems.append(f"lifecycle {self.dir / 'lifecycle.sqlite'}: {e}")

    def _store_usage(self, kind: str) -> None:
        self._last_usage = time.monotonic()
        if self.stats.start_s is None:
            return
        try:
            usage.append(self.dir, {"type": kind, "run": self.run_id, "robot": self.robot.name, "serial": self.serial,
                                    "started": self.started_wall, "at": time.time(), **self.stats.usage()})
        except OSError as e:
            self.problems.append(f"usage {self.dir / usage.FILE}: {e}")

    # -- MCAP --------------------------------------------------------------------------------
    def _open_segment(self) -> None:
        self._segment += 1
        path = self.run_dir / f"{self.run_id}-{self._segment:04d}.mcap"
        self._file = open(path, "xb")  # a new file: an existing recording is never written over
        w = Writer(self._file, chunk_size=4 << 20, compression=CompressionType.ZSTD)
        w.start(profile=rs.PROFILE, library="vertebra")
        self._writer = w
        self._channels = {}
        self.segments.append(path)
        w.add_metadata("vertebra", {**self.metadata, "segment": str(self._segment)})
        w.add_metadata("vertebra.ticks", {"layout": json.dumps(self.table, separators=(",", ":"))})
        self._segment_t0 = -1
        self._sync()

    def _channel(self, topic: str, schema: str) -> int:
        cid = self._channels.get(topic)
        if cid is None:
            assert self._writer is not None
            if topic == rs.TICKS:
                sid = self._writer.register_schema("vertebra.TickBatch", rs.TICK_ENCODING,
                                                   json.dumps(self.table, separators=(",", ":")).encode())
                cid = self._writer.register_channel(topic, rs.TICK_ENCODING, sid)
            else:
                sid = self._writer.register_schema(schema, "jsonschema", rs.schema_bytes(schema))
                cid = self._writer.register_channel(topic, "json", sid)
            self._channels[topic] = cid
        return cid

    def _add(self, topic: str, schema: str, driver_ns: int, payload: dict[str, Any]) -> None:
        t = self._log_time(driver_ns)
        self._add_raw(topic, t, json.dumps(payload, separators=(",", ":")).encode(), schema)

    def _add_raw(self, topic: str, log_time: int, data: bytes, schema: str = "vertebra.TickBatch") -> None:
        assert self._writer is not None
        cid = self._channel(topic, schema)
        self._writer.add_message(cid, log_time=log_time, data=data, publish_time=log_time)
        self.messages += 1

    def _sync(self) -> None:
        """End the chunk in progress, flush, fsync: everything so far survives a crash."""
        if self._writer is None:
            return
        self._writer.flush()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()
        self.syncs += 1

    def _maybe_rotate(self, driver_ns: int) -> None:
        if self._segment_t0 < 0:
            self._segment_t0 = driver_ns
        big = self._file.tell() > self.options.segment_mb * (1 << 20)
        long = driver_ns - self._segment_t0 > self.options.segment_s * 1e9
        if big or long:
            self._finish_segment()
            self._open_segment()

    def _finish_segment(self) -> None:
        if self._writer is None:
            return
        w, f = self._writer, self._file
        self._writer = None
        w.finish()
        f.flush()
        os.fsync(f.fileno())
        f.close()

    def discard(self) -> None:
        """A recorder that never started (the runtime failed to build): remove its empty run folder."""
        if self._thread is None and not self.segments:
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    # -- the end -----------------------------------------------------------------------------
    def close(self) -> dict[str, Any]:
        """Drain the ring and the queue, finish the segment, release the ring; the run's counters."""
        with self._lock:
            if self._episode_open:
                self._episode_open = False
                self._put_episode({"event": "episode_end", "episode": self._episode, "outcome": "aborted",
                                   "reason": "the recording stopped"})
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.ring.release()
        self._check_writer()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {"run": self.run_id, "dir": str(self.run_dir), "segments": [str(p) for p in self.segments],
                "records": self.records, "lost": int(self.ring.lost), "messages": self.messages, "syncs": self.syncs,
                "episodes": self._episode, "interventions": self._intervention, "problems": list(self.problems)}


# -- names for the JSON channels ---------------------------------------------------------------
def safety_mode_name(m: int) -> str:
    return SAFETY_MODES[m] if 0 <= m < len(SAFETY_MODES) else str(m)


def mode_label(m: int) -> str:
    try:
        return str(_rt.mode_name(m))
    except Exception:  # noqa: BLE001 - an id without a name
        return str(m)


def fault_list(bits: int) -> list[str]:
    return [FAULT_NAMES[i] for i in range(len(FAULT_NAMES)) if bits >> i & 1]


def _episode_text(rec: dict[str, Any]) -> str:
    ev = rec["event"]
    if ev == "episode_start":
        return f"episode {rec['episode']} starts: {rec.get('instruction', '')!r} ({rec.get('policy', '')})"
    if ev == "episode_end":
        return f"episode {rec['episode']} ends: {rec['outcome']}" + (f" ({rec['reason']})" if rec.get("reason") else "")
    if ev == "intervention_start":
        return f"intervention {rec['intervention']}: {rec.get('by', 'operator')} takes over"
    return f"intervention {rec['intervention']} ends: the policy has the robot again"


def _event_line(e: dict[str, Any]) -> tuple[int, str]:
    kind = e.get("kind", "")
    if kind == "fault":
        joint = f" on {e['joint_name']}" if e.get("joint_name") else ""
        return rs.ERROR, f"fault {e.get('fault')}{joint} (value {e.get('value')}): {e.get('response', '')}"
    if kind == "fault_cleared":
        return rs.INFO, f"fault {e.get('fault')} cleared"
    if kind == "mode":
        level = rs.WARNING if e.get("to") in ("FAULT", "ESTOP", "STOPPING") else rs.INFO
        return level, f"{e.get('from')} -> {e.get('to')} ({e.get('cause')}{', ' + e['fault'] if e.get('fault') else ''})"
    if kind == "clamp":
        return rs.WARNING, "limiter clamping" if e.get("code", 0) == 0 else "limiter clamping ended"
    if kind == "operator":
        level = rs.WARNING if e.get("action") in ("estop", "reset_refused", "request_refused") else rs.INFO
        return level, f"operator {e.get('action')}"
    if kind == "dropped":
        return rs.WARNING, f"{e.get('value')} safety events lost (the event ring was full)"
    return rs.INFO, str(e.get("text") or kind)


def _encode(image: Any, fmt: str, quality: int = 90) -> tuple[bytes, str]:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), fmt
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"camera frame: an HxWx3 uint8 image expected, found {a.dtype} {a.shape}")
    out = io.BytesIO()
    Image.fromarray(a[..., :3]).save(out, format="JPEG", quality=quality)
    return out.getvalue(), "jpeg"

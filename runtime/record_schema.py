"""What a Vertebra recording holds: its MCAP channels, their schemas and the tick record's layout.
The writer (runtime/recorder.py) and every reader (tools/data/) take them from here.

Channels (topic: schema, encoding)
  /vertebra/ticks       vertebra.TickBatch (raw little-endian records): every recorded tick, lossless.
                        A message is a batch of TickRecords (cpp/loop/record_ring.hpp) back to back; the
                        schema's data is the field table as JSON ({"itemsize", "fields": [[name, dtype,
                        shape, offset], ...]}), so numpy alone decodes it: np.frombuffer(data, dtype).
  /joint_states         foxglove.JointStates (JSON): measured position, velocity and torque, decimated
  /joint_commands       foxglove.JointStates (JSON): the command written (position, velocity, feed-forward torque)
  /safety               vertebra.Safety (JSON): safety mode, controller, faults; on every change and at a few Hz
  /controller           vertebra.Controller (JSON): the active controller's task errors and contact wrenches
  /events               foxglove.Log (JSON): every safety event, note, episode and intervention, as a line
  /vertebra/events      vertebra.Event (JSON): the same events as structured records (the event log's fields)
  /vertebra/episodes    vertebra.Episode (JSON): episode start/end (instruction, policy, outcome, why) and
                        intervention start/end
  /camera/<name>        foxglove.CompressedImage (JSON, data base64): camera frames, JPEG
  /vertebra/dropouts    vertebra.Dropout (JSON): records the ring lost (start, count, duration)

Foxglove's schemas are used by name where one exists (JointStates, Log, CompressedImage: the names
its panels recognise, https://docs.foxglove.dev/docs/sdk/schemas); Foxglove has no message schema
for events, so faults, mode changes and interventions are foxglove.Log lines plus vertebra.Event.
Log times (MCAP log_time) are the robot's clock mapped onto the wall clock at the recording's start:
wall_start + (driver time - driver time at start), so a lockstep simulation plays back at robot
speed and every channel shares one time base.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

PROFILE = "vertebra"
TICKS = "/vertebra/ticks"
JOINT_STATES = "/joint_states"
JOINT_COMMANDS = "/joint_commands"
SAFETY = "/safety"
CONTROLLER = "/controller"
LOG = "/events"
EVENTS = "/vertebra/events"
EPISODES = "/vertebra/episodes"
DROPOUTS = "/vertebra/dropouts"
CAMERA_PREFIX = "/camera/"
TICK_ENCODING = "vertebra.tickrecord"  # raw records, little-endian; layout in the schema

# TickRecord.flags bits (cpp/loop/record_ring.hpp, TickRecordFlags)
FLAG_ENABLED, FLAG_BASE_TRUTH, FLAG_ESTIMATE_USED, FLAG_ESTIMATE_VALID = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FLAG_CHUNKS_STARVED, FLAG_DIAGNOSTICS, FLAG_MOTOR_TEMP, FLAG_FOOT_FORCE = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FLAG_REMOTE_ESTOP, FLAG_STREAM_EXPECTED = 1 << 8, 1 << 9

# Foxglove log levels (foxglove.Log.level)
DEBUG, INFO, WARNING, ERROR, FATAL = 1, 2, 3, 4, 5

_TIME = {"type": "object", "properties": {"sec": {"type": "integer", "minimum": 0},
                                          "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999}}}

FOXGLOVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "foxglove.JointStates": {
        "title": "foxglove.JointStates", "description": "The state of a set of joints at a given time",
        "type": "object",
        "properties": {
            "timestamp": _TIME,
            "joints": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "position": {"type": "number"},
                               "velocity": {"type": "number"}, "acceleration": {"type": "number"},
                               "effort": {"type": "number"}}}},
        },
    },
    "foxglove.Log": {
        "title": "foxglove.Log", "description": "A log message", "type": "object",
        "properties": {"timestamp": _TIME, "level": {"type": "integer", "minimum": 0, "maximum": 5},
                       "message": {"type": "string"}, "name": {"type": "string"}, "file": {"type": "string"},
                       "line": {"type": "integer", "minimum": 0}},
    },
    "foxglove.CompressedImage": {
        "title": "foxglove.CompressedImage", "description": "A compressed image", "type": "object",
        "properties": {"timestamp": _TIME, "frame_id": {"type": "string"},
                       "data": {"type": "string", "contentEncoding": "base64"}, "format": {"type": "string"}},
    },
}

VERTEBRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "vertebra.Safety": {
        "title": "vertebra.Safety", "type": "object",
        "properties": {"tick": {"type": "integer"}, "safety_mode": {"type": "string"}, "controller": {"type": "string"},
                       "enabled": {"type": "boolean"}, "faults_active": {"type": "array", "items": {"type": "string"}},
                       "faults_latched": {"type": "array", "items": {"type": "string"}},
                       "clamp_flags": {"type": "integer"}, "stream_age_ms": {"type": "number"}},
    },
    "vertebra.Controller": {
        "title": "vertebra.Controller", "type": "object",
        "properties": {"tick": {"type": "integer"}, "controller": {"type": "string"},
                       "com_err": {"type": "array", "items": {"type": "number"}},
                       "base_pos_err": {"type": "number"}, "base_rot_err": {"type": "number"},
                       "torso_rot_err": {"type": "number"},
                       "hand_pos_err": {"type": "array", "items": {"type": "number"}},
                       "hand_rot_err": {"type": "array", "items": {"type": "number"}},
                       "contact_wrench": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                       "contact_weight": {"type": "array", "items": {"type": "number"}},
                       "solve_us": {"type": "number"}, "qp_iterations": {"type": "integer"}},
    },
    "vertebra.Event": {
        "title": "vertebra.Event", "type": "object",
        "description": "a safety event as the event log writes it (cpp/safety/events.hpp), or a note from Python",
        "properties": {"kind": {"type": "string"}, "tick": {"type": "integer"}}, "additionalProperties": True,
    },
    "vertebra.Episode": {
        "title": "vertebra.Episode", "type": "object",
        "properties": {
            "event": {"enum": ["episode_start", "episode_end", "intervention_start", "intervention_end"]},
            "episode": {"type": "integer"}, "instruction": {"type": "string"}, "task": {"type": "string"},
            "policy": {"type": "string"}, "policy_sha256": {"type": "string"},
            "outcome": {"enum": ["success", "failure", "aborted"]}, "reason": {"type": "string"},
            "time_to_success_s": {"type": "number"},
            "intervention": {"type": "integer"}, "by": {"type": "string"}, "robot_time_ns": {"type": "integer"}},
        "required": ["event"],
    },
    "vertebra.Dropout": {
        "title": "vertebra.Dropout", "type": "object",
        "properties": {"lost": {"type": "integer"}, "since_ns": {"type": "integer"}, "duration_s": {"type": "number"},
                       "before_tick": {"type": "integer"}},
    },
}


def tick_dtype() -> np.dtype:
    """The numpy dtype of one TickRecord, from the C++ layout (vertebra._rt.tick_record_fields())."""
    return dtype_from_table(tick_table())


def tick_table() -> dict[str, Any]:
    """The TickRecord layout as the JSON the recording carries in its schema."""
    from vertebra import _rt

    return {"itemsize": int(_rt.TICK_RECORD_BYTES),
            "fields": [[name, dt, list(shape), int(off)] for name, dt, shape, off in _rt.tick_record_fields()]}


def dtype_from_table(table: dict[str, Any]) -> np.dtype:
    """A numpy dtype from a layout table (as stored in a recording: readable without Vertebra's C++)."""
    names, formats, offsets = [], [], []
    for name, dt, shape, off in table["fields"]:
        names.append(name)
        formats.append((dt, tuple(shape)) if shape else dt)
        offsets.append(off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(table["itemsize"])})


def schema_bytes(name: str) -> bytes:
    """A channel schema's JSON Schema text (Foxglove's or Vertebra's)."""
    s = FOXGLOVE_SCHEMAS.get(name) or VERTEBRA_SCHEMAS.get(name)
    if s is None:
        raise KeyError(f"no schema {name!r}; known: {', '.join(sorted(FOXGLOVE_SCHEMAS) + sorted(VERTEBRA_SCHEMAS))}")
    return json.dumps(s, separators=(",", ":")).encode()


def stamp(ns: int) -> dict[str, int]:
    """A foxglove.Timestamp from nanoseconds."""
    ns = max(0, int(ns))
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}

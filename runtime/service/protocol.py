"""The control API's wire protocol: the policy protocol's framing (vertebra.policies.protocol:
msgpack, never pickle, a version on every message, size and schema checks before any payload is
decoded, replies matched by id, error replies with a code and a message) with its own requests.

Sockets (vertebra.runtime.service.server)
  - requests: a ZMQ ROUTER on ``ipc://<runtime dir>/control-<deploy>.sock`` (mode 0660), and
    optionally ``tcp://`` with CURVE and a client allowlist; the client is a DEALER.
  - status stream: a ZMQ PUB next to it (``hello_reply.status_endpoints``), one ``status`` message
    per period (10-50 Hz), the same map a ``status`` request returns.

Requests (every one may carry ``id`` (int, echoed) and ``client`` (a name for the event log))
  ``hello``                       -> robot, deploy, joints, targets, endpoints, api version
  ``status``, ``events`` (since)  -> the service's status / event log lines after ``since``
  ``lease_acquire`` (force)       -> ``lease``: a token; ``force`` takes a held lease (an event)
  ``lease_retain`` / ``lease_return`` (lease)
  ``estop``                       -> any authenticated client, no lease
  With ``lease`` (motion authority):
  ``enable``, ``disable``, ``stand`` (duration_s), ``hold``, ``damp``, ``stop``, ``activate``,
  ``targets`` (targets: {name: [floats]}), ``walk`` (vx, vy, wz: the walk controller's velocity
  command, m/s, m/s, rad/s; it lapses to zero unless renewed within the service's walk deadman),
  ``estop_release``, ``reset_faults``,
  ``policy_swap`` (name), ``reload``, ``episode_start`` (instruction, command), ``episode_stop``
  (outcome, reason), ``intervention`` (on)
  ``policy_list``                 -> no lease

Every reply is ``<type>_reply`` or ``error`` (``code``, ``message``). Codes: the framing's
(``malformed``, ``version``, ``too_large``, ``unknown_type``, ``schema``), ``unauthorized``, and
the service's: ``no_lease``, ``lease_held``, ``lease_stale``, ``refused`` (the loop or a gate said
no, with why), ``busy``, ``not_found``, ``internal``.
"""

from __future__ import annotations

import math
from typing import Any

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, ProtocolError, RequestSchema, decode, encode

API_VERSION = 1
MAX_TARGETS = 64        # names in one targets request
MAX_TARGET_VALUES = 64  # values per target (a posture of every joint)
MAX_TEXT = 512          # instruction, reason, client name

_LEASE = {"lease": str}
REQUESTS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {},
    "status": {},
    "events": {},
    "lease_acquire": {},
    "lease_retain": _LEASE,
    "lease_return": _LEASE,
    "estop": {},
    "enable": _LEASE,
    "disable": _LEASE,
    "stand": _LEASE,
    "hold": _LEASE,
    "damp": _LEASE,
    "stop": _LEASE,
    "activate": _LEASE,
    "targets": {"lease": str, "targets": dict},
    "walk": {"lease": str, "vx": (int, float), "vy": (int, float), "wz": (int, float)},
    "estop_release": _LEASE,
    "reset_faults": _LEASE,
    "policy_list": {},
    "policy_swap": {"lease": str, "name": str},
    "reload": _LEASE,
    "episode_start": {"lease": str, "instruction": str},
    "episode_stop": _LEASE,
    "intervention": {"lease": str, "on": bool},
}
COMMON = {"id": int, "client": str}
OPTIONAL: dict[str, dict[str, type | tuple[type, ...]]] = {
    "events": {"since": int, "limit": int},
    "lease_acquire": {"force": bool},
    "stand": {"duration_s": (int, float)},
    "episode_start": {"command": list, "policy": str},
    "episode_stop": {"outcome": str, "reason": str},
}
LEASE_FREE = frozenset({"hello", "status", "events", "lease_acquire", "estop", "policy_list"})
OUTCOMES = ("success", "failure", "aborted")


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _check(t: str, msg: dict[str, Any]) -> None:
    for key in ("client", "instruction", "reason", "lease", "name", "policy"):
        v = msg.get(key)
        if isinstance(v, str) and (len(v) > MAX_TEXT or not v.isprintable()):
            raise ProtocolError("schema", f"'{t}' field '{key}': at most {MAX_TEXT} printable characters")
    if t == "targets":
        targets = msg["targets"]
        if not 0 < len(targets) <= MAX_TARGETS:
            raise ProtocolError("schema", f"'targets': 1 to {MAX_TARGETS} named targets")
        for name, value in targets.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ProtocolError("schema", f"'targets': target names are identifiers, found {name!r}")
            vals = value if isinstance(value, list) else [value]
            if not 0 < len(vals) <= MAX_TARGET_VALUES or not all(_number(x) for x in vals):
                raise ProtocolError("schema", f"'targets': '{name}' must be a finite number or a list of 1 to "
                                              f"{MAX_TARGET_VALUES} finite numbers")
    if t == "walk":
        for key in ("vx", "vy", "wz"):
            if not _number(msg[key]) or isinstance(msg[key], bool):
                raise ProtocolError("schema", f"'walk' field '{key}': a finite number")
    if t == "episode_start" and "command" in msg:
        c = msg["command"]
        if len(c) > MAX_TARGET_VALUES or not all(_number(x) for x in c):
            raise ProtocolError("schema", f"'episode_start' field 'command': at most {MAX_TARGET_VALUES} finite numbers")
    if t == "episode_stop" and msg.get("outcome", "success") not in OUTCOMES:
        raise ProtocolError("schema", f"'episode_stop' field 'outcome': one of {', '.join(OUTCOMES)}")
    if t == "stand" and "duration_s" in msg and not (_number(msg["duration_s"]) and 0.5 <= msg["duration_s"] <= 30.0):
        raise ProtocolError("schema", "'stand' field 'duration_s': a number of seconds in [0.5, 30]")
    if t == "events":
        for key in ("since", "limit"):
            if key in msg and msg[key] < 0:
                raise ProtocolError("schema", f"'events' field '{key}': a non-negative integer")


SCHEMA = RequestSchema(REQUESTS, COMMON, OPTIONAL, _check, strict=True)


def refused(message: str) -> ProtocolError:
    """The service's answer to a request a gate said no to (the loop, the guard, the robot's state)."""
    return ProtocolError("refused", message)


def decode_request(frame: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Check and decode one control request (raises ProtocolError with the reply's code)."""
    return decode(frame, max_bytes, requests=True, schema=SCHEMA)


def decode_reply(frame: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    return decode(frame, max_bytes, requests=False)


__all__ = ["API_VERSION", "LEASE_FREE", "OUTCOMES", "REQUESTS", "SCHEMA", "ProtocolError", "decode_reply",
           "decode_request", "encode", "refused"]

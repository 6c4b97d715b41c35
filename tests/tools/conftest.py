"""Fixtures for the operator tools: status maps shaped as Service.status() builds them, and a small
in-process control API (the real ControlServer, with a handler written here) on a Unix socket."""

from __future__ import annotations

import copy
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from vertebra.runtime.service.protocol import LEASE_FREE, ProtocolError
from vertebra.runtime.service.server import ControlServer

G1_HANDS = ["left_rubber_hand", "right_rubber_hand"]


def joint(name: str, q: float = 0.1, tau: float = 2.0, temp: float | None = 35.0, limit: float = 0.8,
          torque: float = 0.9, error: int = 0) -> dict[str, Any]:
    return {"name": name, "q": q, "tau": tau, "temp_c": temp, "limit_margin_rad": limit, "torque_margin": torque,
            "error": error}


def g1_status() -> dict[str, Any]:
    """A running G1 service's status, every field as Service.status() gives it."""
    joints = [joint(f"left_{n}_joint") for n in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch",
                                                 "ankle_roll")]
    joints += [joint(f"right_{n}_joint") for n in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch",
                                                   "ankle_roll")]
    joints += [joint(f"waist_{a}_joint") for a in ("yaw", "roll", "pitch")]
    joints[3] = joint("left_knee_joint", q=2.01, tau=60.0, temp=71.5, limit=0.012, torque=0.45)  # the worst
    joints[10] = joint("right_ankle_pitch_joint", tau=38.0, torque=0.08)                        # torque margin
    joints[12] = joint("waist_yaw_joint", error=3)                                              # a motor error
    return {
        "api": 1, "service": "running", "deploy": "g1_bench", "robot": "g1", "pid": 4242, "uptime_s": 812.4,
        "lease": {"holder": "alice@teleop", "state": "held", "held_s": 31.2, "retained_ago_s": 0.21,
                  "timeout_s": 1.0},
        "previous_run": {"pid": 4100, "started": 1.0, "ended": 2.0, "end": "signal: DAMP", "clean": True},
        "job": None, "time_s": 805.125, "tick": 402562, "mode": "hold", "safety_mode": "FAULT", "progress": 1.0,
        "enabled": True, "pose_interpolated": False,
        "faults": [{"fault": "joint_position_limit", "latched": True, "present": True, "joint": "left_knee_joint",
                    "value": 2.0131, "response": "damp"},
                   {"fault": "motor_overtemp", "latched": True, "present": False, "joint": "left_knee_joint",
                    "value": 71.5, "response": "settle_then_cut"}],
        "request": {"status": "ok", "reason": ""},
        "loop": {"rate_hz": 500.0, "overruns": 3, "lateness_us": {"p50": 11.5, "p99": 84.2, "max": 412.0},
                 "last_read": "ok", "last_write": "ok"},
        "battery_v": 49.87,
        "base": {"source": "estimator", "pos": [0.01, -0.02, 0.7821]},
        "joints": joints,
        "chunks": {"chunks_received": 120, "chunks_dropped": 1, "chunks_rejected": 0, "last_seq": 120,
                   "starved_ticks": 37, "starved": True, "has_output": True, "blend": 0.0},
        "policy": {"name": "pick_cube", "version": "1.2", "action_space": "wbc_targets", "rate_hz": 10.0,
                   "running": True, "server": "running", "steps": 118, "outages": 2, "restarts": 0,
                   "latency_us": {"p50": 31250.0, "max": 90500.0}, "last_error": None,
                   "available": ["pick_cube", "wave"]},
        "episode": {"id": 7, "instruction": "pick up the red cube", "policy": "pick_cube", "command": [],
                    "by": "bob@eval", "started": 1.0, "faults": [],
                    "interventions": [{"start": 2.0, "by": "alice@teleop", "why": "teleop input during the episode"}]},
        "episodes": 7, "intervention": True,
        "hands": {"left_rubber_hand": [0.31, 0.2, 0.91], "right_rubber_hand": [0.31, -0.2, 0.91]},
        "clamps": 12,
        "watchdog": {"pings": 1624, "skipped": 0},
        "guard": {"state": "watching", "watching": True, "takeovers": 0},
    }


@pytest.fixture
def status() -> dict[str, Any]:
    return g1_status()


class FakeService:
    """The control API of a robot, handled here: leases, hello, status, estop, activate, targets, hold,
    intervention, like vertebra.runtime.service.service.Service answers them (no robot behind it).
    `requests` records every request (type and fields)."""

    def __init__(self, socket_path: Path, status: dict[str, Any], controller: str = "wbc",
                 hands: list[str] | None = None):
        self.status = status
        self.controller = controller
        self.hands = list(G1_HANDS if hands is None else hands)
        self.requests: list[dict[str, Any]] = []
        self.token: str | None = None
        self.holder: str | None = None
        self.seen = threading.Condition()
        self.server = ControlServer(self.handle, self.stream_status, socket_path, status_rate_hz=50.0)
        self.server.start()

    def types(self) -> list[str]:
        return [r["type"] for r in self.requests if r["type"] not in ("lease_retain", "status", "hello")]

    def wait_for(self, type_: str, timeout_s: float = 10.0) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: any(r["type"] == type_ for r in self.requests), timeout_s)

    def stream_status(self) -> dict[str, Any]:
        return copy.deepcopy(self.status)

    def handle(self, msg: dict[str, Any], transport: str) -> dict[str, Any]:
        t = msg["type"]
        with self.seen:
            self.requests.append(dict(msg))
            self.seen.notify_all()
        if t not in LEASE_FREE and t not in ("lease_retain", "lease_return") and msg.get("lease") != self.token:
            raise ProtocolError("no_lease", "this request needs the lease")
        out: dict[str, Any] = {}
        s = self.status
        if t == "hello":
            out = {"api": 1, "deploy": s["deploy"], "robot": s["robot"], "hands": self.hands,
                   "controller": self.controller, "status_endpoints": dict(self.server.endpoints),
                   "lease_timeout_s": 1.0}
        elif t == "status":
            out = copy.deepcopy(s)
        elif t == "lease_acquire":
            if self.token is not None and not msg.get("force"):
                raise ProtocolError("lease_held", f"the lease is held by '{self.holder}'")
            previous, self.token, self.holder = self.holder, f"token-{len(self.requests)}", msg.get("client")
            s["lease"] = {"holder": self.holder, "state": "held", "held_s": 0.0, "retained_ago_s": 0.0,
                          "timeout_s": 1.0}
            out = {"lease": self.token, "holder": self.holder, "timeout_s": 1.0, "previous": previous}
        elif t in ("lease_retain", "lease_return"):
            if msg["lease"] != self.token:
                raise ProtocolError("no_lease", "not the current lease")
            if t == "lease_return":
                self.token = self.holder = None
                s["lease"] = None
        elif t == "estop":
            s["safety_mode"] = "ESTOP"
            out = {"safety_mode": "ESTOP"}
        elif t == "activate":
            s["safety_mode"], s["mode"] = "ACTIVE", self.controller
            out = {"safety_mode": "ACTIVE", "mode": self.controller}
        elif t == "targets":
            if s["safety_mode"] != "ACTIVE":
                raise ProtocolError("refused", "targets need ACTIVE: activate first")
            for name, value in msg["targets"].items():
                s["hands"][name] = list(value)
            out = {"applied": list(msg["targets"])}
        elif t == "hold":
            s["safety_mode"], s["mode"] = "HOLD", "hold"
            out = {"safety_mode": "HOLD"}
        elif t == "intervention":
            s["intervention"] = bool(msg["on"])
            out = {"intervention": s["intervention"]}
        return {"type": f"{t}_reply", **out}

    def close(self) -> None:
        self.server.close()


def write_deploy(folder: Path, socket_path: Path, controller: str = "wbc") -> Path:
    """A deploy config whose control socket is `socket_path` (tools find the service by it)."""
    path = folder / "bench.yaml"
    path.write_text(f"robot: g1\ndriver:\n  type: mujoco\nsafety: g1\ncontroller: {controller}\n"
                    f"control:\n  socket: {socket_path}\n")
    return path


@pytest.fixture
def sock_dir() -> Any:
    """A short folder for Unix sockets (their paths are limited to about 100 characters)."""
    d = Path(tempfile.mkdtemp(prefix="vtools-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_service(sock_dir: Path, status: dict[str, Any]) -> Any:
    """(FakeService, deploy path): a G1 service in HOLD, no episode, nobody holding the lease."""
    status.update({"safety_mode": "HOLD", "mode": "hold", "faults": [], "episode": None, "intervention": False,
                   "lease": None})
    svc = FakeService(sock_dir / "c.sock", status)
    try:
        yield svc, write_deploy(sock_dir, sock_dir / "c.sock")
    finally:
        svc.close()

"""The DDS sim bridge in a process of its own, with its world under control: the simulated robot
speaks DDS exactly as the real one (rt/lowstate, rt/lowcmd), and the things a real robot's
surroundings do — the hoist an engineer lowers and releases, a push, the truth a motion-capture
system would measure — travel over the bridge process's stdin/stdout, one JSON object per line:

    -> {"op": "truth"}                       <- {"ok": true, "time_s": .., "base_pos": [..], ...}
    -> {"op": "hoist_lower_to", "z": 0.7, "speed": 0.1}
    -> {"op": "hoist_release"}                   {"op": "push", "force": [fx, fy, fz], "duration_s": 0.2}
    -> {"op": "info"}                        <- hoist state, standing height, counters
    -> {"op": "corrupt_states", "n": 5}  /  {"op": "drop_states", "n": 5}  /  {"op": "quit"}
    -> {"op": "set_remote", "buttons": 0x0002, "lx": 0.0, "ly": 0.5, "rx": 0.0, "ry": 0.0, "l2": 0.0}
    -> {"op": "command_stream", "reset": false}  <- {"ok": true, "samples": .., "max_gap_ms": .., ...}
    -> {"op": "last_command"}                <- {"ok": true, "q": [..], "kp": [..], "kd": [..], ...}
    -> {"op": "set_faults", "faults": {"joints": {"left_knee_joint": {"sign": -1}}, "command_latency_ms": 20}}
    -> {"op": "faults"}                      <- {"ok": true, "faults": {"joints": {..}, "seed": 1, ...}}

``command_stream`` is the rt/lowcmd stream as the robot received it since the last reset (valid
frames from any writer; the largest gap between two consecutive ones: what a guard's takeover looks
like from the motors' side); ``"reset": true`` answers the stream so far, then starts a new one.
``set_faults`` replaces the emulated hardware faults (the mapping of drivers/bridge_faults.py, joints
by name; ``{}``: none; a bad one is refused and changes nothing), ``faults`` answers those in force
in the same form. ``--faults JSON`` (``BridgeProcess(faults=...)``) sets them from the start.

Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. The process prints
``{"ready": true, ...}`` once the bridge publishes. ``BridgeProcess`` starts one and offers the same
methods as the in-process simulator driver (hoist_lower_to, hoist_release, push, base_truth), so the
deployment procedure and the scenarios run unchanged against either.

Run directly: ``python -m vertebra.drivers.bridge_process --robot g1 --domain 7 --lockstep``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

import numpy as np


class BridgeError(RuntimeError):
    """The bridge process failed to start, answered an error or died."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


OPS = ("truth", "hoist_lower_to", "hoist_release", "push", "set_remote", "corrupt_states", "drop_states",
       "command_stream", "last_command", "set_faults", "faults", "info", "quit")


def serve(robot: str, domain_id: int, interface: str, lockstep: bool, noise: bool,
          faults: dict[str, Any] | None = None) -> int:
    """The bridge process: start the bridge, then answer stdin's requests until quit or EOF."""
    from vertebra.drivers.sim_bridge import SimBridge
    from vertebra.runtime.config import RobotConfig

    cfg = RobotConfig.load(robot)
    bridge = SimBridge(cfg, domain_id=domain_id, network_interface=interface, lockstep=lockstep, noise=noise,
                       faults=faults)
    sim = bridge.sim
    from vertebra import _rt

    model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    standing = float(model.standing_base_height(cfg.column("default_rad"), cfg.foot_frames, cfg.sole_offset_m))
    bridge.start()
    out = sys.stdout
    out.write(json.dumps({"ready": True, "robot": cfg.name, "domain": domain_id, "interface": interface,
                          "lockstep": lockstep, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                op = req.get("op") if isinstance(req, dict) else None
                if op == "quit":
                    out.write(json.dumps({"ok": True}) + "\n")
                    out.flush()
                    break
                if op == "truth":
                    reply: dict[str, Any] = {"ok": True, **_jsonable(sim.base_truth())}
                elif op == "hoist_lower_to":
                    sim.hoist_lower_to(float(req["z"]), float(req["speed"]))
                    reply = {"ok": True}
                elif op == "hoist_release":
                    sim.hoist_release()
                    reply = {"ok": True}
                elif op == "push":
                    fx, fy, fz = (float(v) for v in req["force"])
                    sim.push(fx, fy, fz, float(req["duration_s"]))
                    reply = {"ok": True}
                elif op == "set_remote":  # the wireless remote's state in the next rt/lowstate samples
                    bridge.bridge.set_remote(int(req.get("buttons", 0)), *(float(req.get(k, 0.0)) for k in
                                                                          ("lx", "rx", "ry", "l2", "ly")))
                    reply = {"ok": True}
                elif op == "corrupt_states":
                    bridge.bridge.corrupt_states(int(req["n"]))
                    reply = {"ok": True}
                elif op == "drop_states":
                    bridge.bridge.drop_states(int(req["n"]))
                    reply = {"ok": True}
                elif op == "command_stream":
                    reply = {"ok": True, **bridge.command_stream(reset=bool(req.get("reset", False)))}
                elif op == "last_command":
                    reply = {"ok": True, **_jsonable(bridge.last_command())}
                elif op == "set_faults":  # the whole set: joints by name (drivers/bridge_faults.py)
                    wanted = req.get("faults") or {}
                    if not isinstance(wanted, dict):
                        raise ValueError(f"faults: found {wanted!r}; valid: a mapping (drivers/bridge_faults.py)")
                    bridge.set_faults(wanted)
                    reply = {"ok": True}
                elif op == "faults":
                    reply = {"ok": True, "faults": bridge.faults()}
                elif op == "info":
                    reply = {"ok": True, "hoist_engaged": bool(sim.hoist_engaged), "hoist_anchor_z": float(sim.hoist_anchor_z),
                             "standing_height_m": standing, "counters": _jsonable(bridge.counters())}
                else:
                    reply = {"ok": False, "error": f"unknown op {op!r}; ops are: {', '.join(OPS)}"}
            except (KeyError, TypeError, ValueError) as e:
                reply = {"ok": False, "error": f"bad request {line[:200]!r}: {e}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        bridge.close()
    return 0


class BridgeProcess:
    """A sim bridge in a child process (the robot, as a runtime in this process sees it over DDS)."""

    def __init__(self, robot: str, *, domain_id: int, interface: str = "lo", lockstep: bool = True,
                 noise: bool = False, faults: dict[str, Any] | None = None, start_timeout_s: float = 60.0,
                 reply_timeout_s: float = 30.0):
        """`faults`: the emulated hardware faults from the start (the mapping of drivers/bridge_faults.py,
        joints by name); a bad one makes the process exit and this raise BridgeError with the reason."""
        cmd = [sys.executable, "-m", "vertebra.drivers.bridge_process", "--robot", robot, "--domain", str(domain_id),
               "--interface", interface] + (["--lockstep"] if lockstep else []) + (["--noise"] if noise else []) + (
               ["--faults", json.dumps(faults)] if faults else [])
        self.robot = robot
        self.domain_id = domain_id
        self.reply_timeout_s = reply_timeout_s
        # its own session: an operator's Ctrl-C in the terminal stops the harness, not the (simulated) robot
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, start_new_session=True)
        ready = self._read_line(start_timeout_s)
        if not ready.get("ready"):
            self.close()
            raise BridgeError(f"the sim bridge did not start: {ready}")
        self.info = ready

    def _read_line(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise BridgeError(f"the sim bridge (pid {self.proc.pid}) did not answer within {timeout_s:g} s")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    try:
                        code = self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        code = None
                    raise BridgeError(f"the sim bridge exited (code {code}): {err.strip()[-2000:]}")
                return dict(json.loads(line))

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise BridgeError(f"the sim bridge has exited (code {self.proc.returncode})")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        reply = self._read_line(self.reply_timeout_s)
        if not reply.get("ok"):
            raise BridgeError(f"sim bridge: {op}: {reply.get('error')}")
        return reply

    # -- the in-process simulator driver's world methods ---------------------------------------
    def hoist_lower_to(self, z: float, speed: float) -> None:
        self.call("hoist_lower_to", z=z, speed=speed)

    def hoist_release(self) -> None:
        self.call("hoist_release")

    def push(self, fx: float, fy: float, fz: float, duration_s: float) -> None:
        self.call("push", force=[fx, fy, fz], duration_s=duration_s)

    @property
    def hoist_engaged(self) -> bool:
        return bool(self.call("info")["hoist_engaged"])

    @property
    def hoist_anchor_z(self) -> float:
        return float(self.call("info")["hoist_anchor_z"])

    def base_truth(self) -> dict[str, Any]:
        t = self.call("truth")
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in t.items() if k != "ok"}

    def corrupt_states(self, n: int) -> None:
        self.call("corrupt_states", n=n)

    def command_stream(self, reset: bool = False) -> dict[str, Any]:
        """The received rt/lowcmd stream since the last reset (samples, max_gap_ms, last_age_ms, ...);
        `reset`: then start a new one."""
        r = self.call("command_stream", reset=reset)
        r.pop("ok", None)
        return r

    def last_command(self) -> dict[str, np.ndarray]:
        """The newest valid command the robot received, decoded (q, dq, kp, kd, tau_ff per joint)."""
        return {k: np.asarray(v) for k, v in self.call("last_command").items() if k != "ok"}

    def drop_states(self, n: int) -> None:
        self.call("drop_states", n=n)

    def set_faults(self, faults: dict[str, Any] | None) -> None:
        """Replace the emulated hardware faults (drivers/bridge_faults.py mapping; None or {}: none).
        BridgeError with the config error for a bad one (nothing changed then)."""
        self.call("set_faults", faults=faults or {})

    def faults(self) -> dict[str, Any]:
        """The emulated hardware faults in force, as the mapping (faulty joints by name)."""
        return dict(self.call("faults")["faults"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()

    def kill(self) -> None:
        """The robot goes away at once (power cut, cable pulled)."""
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> BridgeProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vertebra.drivers.bridge_process",
                                description="the DDS sim bridge with its world (hoist, pushes, truth) on stdin/stdout")
    p.add_argument("--robot", required=True, help="robot config name (configs/robots/)")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id")
    p.add_argument("--interface", default="lo", help="network interface (lo: one machine)")
    p.add_argument("--lockstep", action="store_true", help="one control period per command received")
    p.add_argument("--noise", action="store_true", help="the robot config's sensor noise")
    p.add_argument("--faults", default=None, metavar="JSON",
                   help="emulated hardware faults from the start, as a JSON object (drivers/bridge_faults.py)")
    a = p.parse_args(argv)
    faults = None
    if a.faults:
        try:
            faults = json.loads(a.faults)
        except json.JSONDecodeError as e:
            p.error(f"--faults: not a JSON object ({e})")
        if not isinstance(faults, dict):
            p.error(f"--faults: found {a.faults!r}; valid: a JSON object (drivers/bridge_faults.py)")
    from vertebra.runtime.errors import VertebraError

    try:
        return serve(a.robot, a.domain, a.interface, a.lockstep, a.noise, faults)
    except VertebraError as e:  # a bad robot or faults config: say what, without a traceback
        print(f"bridge_process: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

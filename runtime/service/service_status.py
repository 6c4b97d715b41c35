"""The service's status: what `vertebra status`, the status stream and systemd's STATUS= show (a
part of :class:`vertebra.runtime.service.service.Service`). Read from the loop's snapshot off the tick."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from vertebra.runtime.numerics import tilt_deg
from vertebra.runtime.service.protocol import API_VERSION


class ServiceStatus:
    """Status assembly for the Service (its attributes: rt, robot, deploy, leases, policy, ...)."""

    rt: Any
    robot: Any
    deploy: Any
    leases: Any
    policy: Any
    state: str

    # -- status -------------------------------------------------------------------------------
    def status_text(self) -> str:
        if self.rt is None:
            return self.state
        s = self.rt.loop.snapshot()
        faults = ",".join(s["faults"]) or "none"
        lease = self.leases.describe()
        who = f"lease {lease['holder']} ({lease['state']})" if lease else "lease free"
        pol = f"policy {self.policy.active}{' running' if self.policy.running else ''}" if self.policy else "no policy"
        return f"{s['safety_mode']} ({s['mode']}), faults: {faults}, {who}, {pol}"

    def _joints(self, s: dict[str, Any]) -> list[dict[str, Any]]:
        st, cfg = s["state"], self.robot
        lo, hi = np.asarray(cfg.column("q_min_rad")), np.asarray(cfg.column("q_max_rad"))
        q, tau = np.asarray(st["q"]), np.asarray(st["tau"])
        tmax = np.asarray(cfg.column("tau_max_nm"))
        out = []
        for i, name in enumerate(cfg.joint_names):
            out.append({"name": name, "q": round(float(q[i]), 4), "tau": round(float(tau[i]), 2),
                        "temp_c": round(float(st["motor_temp_c"][i]), 1) if st["has_motor_temp"] else None,
                        "limit_margin_rad": round(float(min(q[i] - lo[i], hi[i] - q[i])), 4),
                        "torque_margin": round(float(1 - abs(tau[i]) / tmax[i]), 3),
                        "error": int(st["motor_error"][i])})
        return out

    def status(self) -> dict[str, Any]:
        rt = self.rt
        base: dict[str, Any] = {"api": API_VERSION, "service": self.state, "deploy": self.deploy.name,
                                "robot": self.robot.name, "pid": os.getpid(), "uptime_s": round(time.time() - self._started, 1),
                                "lease": self.leases.describe(), "previous_run": self.previous_run, "job": self.job}
        if rt is None:
            return base
        s = rt.loop.snapshot()
        stats = rt.loop.stats()
        lat = stats["lateness_us"]
        base.update({
            "time_s": round(float(s["time_s"]), 3), "tick": int(s["tick"]),
            "mode": s["mode"], "safety_mode": s["safety_mode"], "progress": round(float(s["mode_progress"]), 3),
            "enabled": bool(s["enabled"]), "pose_interpolated": bool(s["pose_interpolated"]),
            "faults": [self._fault(f, s) for f in sorted(set(s["faults"]) | set(s["active_faults"]))],
            "request": {"status": s["request_status"], "reason": s["request_reason"]},
            "loop": {"rate_hz": rt.rate_hz, "overruns": int(stats["overruns"]),
                     "lateness_us": {k: round(float(lat[k]), 1) for k in ("p50", "p99", "max")},
                     "last_read": s["last_read"], "last_write": s["last_write"], "os": self._rt_report},
            "battery_v": round(float(s["state"]["battery_v"]), 2) if s["state"]["has_battery"] else None,
            "base": {"source": s["base"]["source"], "pos": [round(float(v), 4) for v in s["base"]["pos"]],
                     "quat": [round(float(v), 5) for v in s["base"]["quat"]],
                     "tilt_deg": round(float(tilt_deg(s["base"]["quat"])), 2)},
            "joints": self._joints(s),
            "chunks": {k: (int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v)
                       for k, v in s["chunks"].items()},
            "policy": self.policy.status() if self.policy else None,
            "episode": self.episode, "episodes": self.episodes, "intervention": self.intervening,
            "hands": self._hand_positions(s), "hand_targets": self._hands, "com": self._com(s),
            "contacts": [bool(c) for c in s["estimate"]["contact"][:len(self.robot.foot_frames)]],
            "clamps": int(s["clamps"]),
            "remote": self._remote(),
            "watchdog": None if self.pinger is None else {"pings": self.pinger.pings, "skipped": self.pinger.skipped},
            "guard": self._guard_status(),
            "walk": self._walk_status(),
        })
        return base

    def _walk_status(self) -> dict[str, Any] | None:
        """The walk controller's phase and command (None under another controller)."""
        walker = self.rt.handle if self.deploy.controller == "walk" else None
        if walker is None:
            return None
        w = walker.status()
        return {"phase": w["phase"], "steps": int(w["steps"]), "command": [round(float(v), 4) for v in w["command"]],
                "applied": [round(float(v), 4) for v in w["applied"]], "refused_commands": int(w["refused_commands"]),
                "bounds": self._walk_bounds()}

    def _fault(self, name: str, s: dict[str, Any]) -> dict[str, Any]:
        d = {"fault": name, "latched": name in s["faults"], "present": name in s["active_faults"]}
        d.update(self.fault_details.get(name, {}))
        return d

    def _guard_status(self) -> dict[str, Any] | None:
        if not self.uses_guard:
            return None
        from vertebra.safety.guard import guard_state

        g = guard_state(self.deploy.heartbeat_name)
        if g is None:
            return {"state": "not running", "watching": False}
        return {"state": g.get("state"), "watching": bool(g.get("guard_alive")) and g.get("state") == "watching",
                "takeovers": g.get("takeovers")}

    def _remote(self) -> dict[str, Any] | None:
        """The Unitree wireless remote in the robot's newest state (sticks -1..1, the button bits of
        unitree_sdk2's xKeySwitchUnion); None for a driver without one."""
        remote = getattr(self.rt.driver, "remote", None)
        if remote is None:
            return None
        r = remote()
        return {k: (int(v) if k == "buttons" else round(float(v), 4)) for k, v in r.items()}

    def _com(self, s: dict[str, Any]) -> list[float]:
        """The centre of mass (on the base the controller uses), world frame, m."""
        b = s["base"]
        q = self.rt.model.full_configuration(b["pos"], b["quat"], s["state"]["q"])
        return [round(float(v), 4) for v in self.rt.model.center_of_mass(q)]

    def _hand_positions(self, s: dict[str, Any]) -> dict[str, list[float]]:
        """Where the hands are (forward kinematics on the base the controller uses), world frame, m."""
        if not self.robot.hand_frames:
            return {}
        b = s["base"]
        q = self.rt.model.full_configuration(b["pos"], b["quat"], s["state"]["q"])
        return {h: [round(float(v), 4) for v in self.rt.model.frame_translation(q, h)] for h in self.robot.hand_frames}

    def _scan_events(self) -> None:
        lines = self.rt.events.recent(self._events_seen)
        for n, j in lines:
            self._events_seen = max(self._events_seen, n)
            try:
                ev = json.loads(j)
            except ValueError:
                continue
            if ev.get("kind") == "fault" and ev.get("fault"):
                self.fault_details[ev["fault"]] = {k: ev[k] for k in ("joint", "value", "response", "wall_time")
                                                   if k in ev}

"""A run's wear and usage, accumulated by the recorder's writer thread from the records it writes
(never on the tick): per joint, time under torque, travel, torque-time integral, peak torque and
temperature, time at temperature, limit hits and faults; per robot, powered, armed, active and
policy time, falls, e-stops and stops by kind; per task, episodes attempted and succeeded, and the
interventions. runtime/lifecycle.py stores the joints' totals across runs (SQLite); runtime/usage.py
appends the run's usage to a hash-chained log.

Definitions (docs/data.md):
- under torque: |tau| above `TORQUE_ON` of the joint's rating (the robot config's tau_max);
- travel: the sum of |q(k) - q(k-1)| over recorded ticks;
- powered: every recorded tick (the runtime ran and read the robot); armed: the operator's enable
  was on; active: the safety mode was ACTIVE; policy: ACTIVE with a policy stream expected or action
  chunks flowing; available: powered and not in FAULT, ESTOP or STOPPING;
- a stop: a mode change into STOPPING (the controlled stop), FAULT or ESTOP, counted by its cause.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vertebra.runtime import record_schema as rs

TORQUE_ON = 0.05
TEMP_EDGES_C = (40.0, 50.0, 60.0, 70.0, 80.0)  # time-at-temperature bins: <40, 40-50, ..., >=80
STOP_MODES = ("STOPPING", "FAULT", "ESTOP")
LIMIT_FAULTS = ("joint_soft_limit", "joint_hard_limit", "joint_velocity", "torque")


def temp_bin_names() -> list[str]:
    e = TEMP_EDGES_C
    return [f"<{e[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(e, e[1:])] + [f">={e[-1]:g}"]


class RunStats:
    """One run's counters; `add_*` are fed in recording order."""

    def __init__(self, joint_names: list[str], tau_max: list[float], dt_s: float, safety_modes: list[str]):
        self.joints = list(joint_names)
        n = len(self.joints)
        self.n = n
        self.dt = float(dt_s)
        self.on = TORQUE_ON * np.asarray(tau_max, dtype=np.float64)
        self.active_mode = safety_modes.index("ACTIVE")
        self.down_modes = [safety_modes.index(m) for m in STOP_MODES]
        self.torque_s = np.zeros(n)
        self.travel_rad = np.zeros(n)
        self.torque_integral_nms = np.zeros(n)
        self.peak_torque_nm = np.zeros(n)
        self.peak_temp_c = np.full(n, np.nan)
        self.temp_s = np.zeros((n, len(TEMP_EDGES_C) + 1))
        self.limit_hits = np.zeros(n, dtype=np.int64)
        self.joint_faults = np.zeros(n, dtype=np.int64)
        self._last_q: np.ndarray | None = None
        self.start_s: float | None = None
        self.end_s: float | None = None
        self.powered_s = self.armed_s = self.active_s = self.policy_s = self.available_s = 0.0
        self.faults: dict[str, int] = {}
        self.falls = 0
        self.estops = 0
        self.stops: dict[str, dict[str, int]] = {}
        self.tasks: dict[str, dict[str, int]] = {}
        self.episodes = 0
        self.successes = 0
        self.interventions = 0
        self.lost_records = 0
        self._task: str | None = None

    # -- feeding ---------------------------------------------------------------------------
    def add_ticks(self, recs: np.ndarray) -> None:
        n, dt = self.n, self.dt
        q = recs["q"][:, :n].astype(np.float64)
        tau = np.abs(recs["tau"][:, :n].astype(np.float64))
        t = recs["driver_ns"].astype(np.float64) * 1e-9
        self.start_s = float(t[0]) if self.start_s is None else self.start_s
        self.end_s = float(t[-1])
        prev = q[:1] if self._last_q is None else self._last_q[None, :]
        self.travel_rad += np.abs(np.diff(np.vstack([prev, q]), axis=0)).sum(axis=0)
        self._last_q = q[-1].copy()
        self.torque_s += (tau > self.on).sum(axis=0) * dt
        self.torque_integral_nms += tau.sum(axis=0) * dt
        self.peak_torque_nm = np.maximum(self.peak_torque_nm, tau.max(axis=0))
        flags = recs["flags"].astype(np.int64)
        hot = (flags & rs.FLAG_MOTOR_TEMP) != 0
        if hot.any():
            temp = recs["temp_c"][hot, :n].astype(np.float64)
            self.peak_temp_c = np.fmax(self.peak_temp_c, temp.max(axis=0))
            bins = np.digitize(temp, TEMP_EDGES_C)  # 0 .. len(edges)
            for b in range(self.temp_s.shape[1]):
                self.temp_s[:, b] += (bins == b).sum(axis=0) * dt
        mode = recs["safety_mode"]
        k = len(recs)
        self.powered_s += k * dt
        self.armed_s += int(((flags & rs.FLAG_ENABLED) != 0).sum()) * dt
        active = mode == self.active_mode
        self.active_s += int(active.sum()) * dt
        streaming = ((flags & rs.FLAG_STREAM_EXPECTED) != 0) | (recs["chunk_seq"] > 0)
        self.policy_s += int((active & streaming).sum()) * dt
        self.available_s += int((~np.isin(mode, self.down_modes)).sum()) * dt
        self.lost_records += int(recs["lost_before"].sum())

    def add_event(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind == "fault":
            name = str(e.get("fault"))
            self.faults[name] = self.faults.get(name, 0) + 1
            if name == "fall":
                self.falls += 1
            j = e.get("joint")
            if isinstance(j, int) and 0 <= j < self.n:
                self.joint_faults[j] += 1
                if name in LIMIT_FAULTS:
                    self.limit_hits[j] += 1
        elif kind == "mode" and e.get("to") in STOP_MODES:
            by = self.stops.setdefault(str(e["to"]), {})
            cause = str(e.get("cause", "unknown")) + (f":{e['fault']}" if e.get("fault") else "")
            by[cause] = by.get(cause, 0) + 1
        elif kind == "operator" and e.get("action") == "estop":
            self.estops += 1

    def add_episode(self, rec: dict[str, Any]) -> None:
        ev = rec.get("event")
        if ev == "episode_start":
            self.episodes += 1
            t = self.tasks.setdefault(str(rec.get("task") or rec.get("instruction", "")), {"attempted": 0, "succeeded": 0})
            t["attempted"] += 1
            self._task = str(rec.get("task") or rec.get("instruction", ""))
        elif ev == "episode_end" and rec.get("outcome") == "success":
            self.successes += 1
            if self._task in self.tasks:
                self.tasks[self._task]["succeeded"] += 1
        elif ev == "intervention_start":
            self.interventions += 1

    # -- results ---------------------------------------------------------------------------
    def joint_rows(self) -> list[dict[str, Any]]:
        names = temp_bin_names()
        return [{"joint": self.joints[i], "torque_s": float(self.torque_s[i]), "travel_rad": float(self.travel_rad[i]),
                 "torque_integral_nms": float(self.torque_integral_nms[i]), "peak_torque_nm": float(self.peak_torque_nm[i]),
                 "peak_temp_c": None if np.isnan(self.peak_temp_c[i]) else float(self.peak_temp_c[i]),
                 "temp_s": {names[b]: float(self.temp_s[i, b]) for b in range(len(names))},
                 "limit_hits": int(self.limit_hits[i]), "faults": int(self.joint_faults[i])} for i in range(self.n)]

    def usage(self) -> dict[str, Any]:
        return {"powered_s": round(self.powered_s, 3), "armed_s": round(self.armed_s, 3),
                "active_s": round(self.active_s, 3), "policy_s": round(self.policy_s, 3),
                "available_s": round(self.available_s, 3),
                "start_s": self.start_s, "end_s": self.end_s, "episodes": self.episodes, "successes": self.successes,
                "tasks": self.tasks, "interventions": self.interventions, "faults": dict(self.faults),
                "fault_count": int(sum(self.faults.values())), "falls": self.falls, "estops": self.estops,
                "stops": self.stops, "lost_records": self.lost_records}

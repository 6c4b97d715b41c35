"""Lifecycle records: each robot's wear, per joint, across every run it made (SQLite, stdlib), the
service intervals it is measured against (the robot config's `maintenance:`), and every bench-rig
check it had (`vertebra hil run` appends its result).

The recorder's writer thread stores its run's counters (runtime/run_stats.py) every few seconds
and when the run ends (one row per run and per run and joint, replaced each time), so a crash
loses only the last few seconds. Totals are sums over a robot's runs (peaks: the largest). A robot
is its serial number where the deploy config gives one, else its robot name.

Tables:
  runs(run_id, robot_key, robot, serial, started, updated, powered_s, armed_s, active_s, policy_s,
       available_s, falls, estops, episodes, successes, interventions, faults, stops)  stops: JSON
  joints(run_id, joint, torque_s, travel_rad, torque_integral_nms, peak_torque_nm, peak_temp_c,
         temp_s, limit_hits, faults)  temp_s: JSON {bin: seconds}
  hil(hil_id, robot_key, robot, serial, started, rig, profile, fit, stopped, passed, failed, errors,
      skipped, duration_s, software, config_hashes, cases)  software, config_hashes: JSON;
      cases: JSON [{case, verdict, message, measured}] (the plots stay in the run's own reports)
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from vertebra.runtime.run_stats import RunStats, temp_bin_names

FILE = "lifecycle.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, robot_key TEXT NOT NULL, robot TEXT NOT NULL,
  serial TEXT NOT NULL, started REAL NOT NULL, updated REAL NOT NULL, powered_s REAL, armed_s REAL, active_s REAL,
  policy_s REAL, available_s REAL, falls INTEGER, estops INTEGER, episodes INTEGER, successes INTEGER,
  interventions INTEGER, faults INTEGER, stops TEXT);
CREATE TABLE IF NOT EXISTS joints (run_id TEXT NOT NULL, joint TEXT NOT NULL, torque_s REAL, travel_rad REAL,
  torque_integral_nms REAL, peak_torque_nm REAL, peak_temp_c REAL, temp_s TEXT, limit_hits INTEGER, faults INTEGER,
  PRIMARY KEY (run_id, joint));
CREATE INDEX IF NOT EXISTS runs_by_robot ON runs (robot_key);
CREATE TABLE IF NOT EXISTS hil (hil_id INTEGER PRIMARY KEY AUTOINCREMENT, robot_key TEXT NOT NULL, robot TEXT NOT NULL,
  serial TEXT NOT NULL, started TEXT NOT NULL, rig TEXT NOT NULL, profile TEXT NOT NULL, fit INTEGER NOT NULL,
  stopped TEXT NOT NULL, passed INTEGER, failed INTEGER, errors INTEGER, skipped INTEGER, duration_s REAL,
  software TEXT, config_hashes TEXT, cases TEXT);
CREATE INDEX IF NOT EXISTS hil_by_robot ON hil (robot_key);
"""


class LifecycleStore:
    """The lifecycle database in `folder` (lifecycle.sqlite, created on first use)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def write_run(self, run_id: str, robot: str, serial: str, started_wall: float, stats: RunStats) -> None:
        """Store (replace) one run's counters."""
        u = stats.usage()
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, serial or robot, robot, serial, started_wall, time.time(), u["powered_s"], u["armed_s"],
                 u["active_s"], u["policy_s"], u["available_s"], u["falls"], u["estops"], u["episodes"],
                 u["successes"], u["interventions"], u["fault_count"], json.dumps(u["stops"])))
            self.db.executemany(
                "INSERT OR REPLACE INTO joints VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(run_id, r["joint"], r["torque_s"], r["travel_rad"], r["torque_integral_nms"], r["peak_torque_nm"],
                  r["peak_temp_c"], json.dumps(r["temp_s"]), r["limit_hits"], r["faults"]) for r in stats.joint_rows()])

    def write_hil(self, result: Any) -> int:
        """Append one bench-rig result (vertebra.tools.hil.results.RunResult); its row id."""
        n = result.counts()
        cases = [{"case": c.id, "verdict": c.verdict, "message": c.message, "measured": c.measured} for c in result.cases]
        with self.db:
            cur = self.db.execute(
                "INSERT INTO hil (robot_key, robot, serial, started, rig, profile, fit, stopped, passed, failed, errors, "
                "skipped, duration_s, software, config_hashes, cases) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (result.serial or result.robot, result.robot, result.serial, result.started, result.rig, result.profile,
                 int(result.passed), result.stopped, n["passed"], n["failed"], n["error"], n["skipped"],
                 result.duration_s, json.dumps(result.software), json.dumps(result.config_hashes),
                 json.dumps(cases, default=float)))
        return int(cur.lastrowid)

    def hil_history(self, robot_key: str) -> list[dict[str, Any]]:
        """A robot's bench-rig results, oldest first (each without its cases' numbers, but with the ids of
        the cases that failed and why)."""
        out = []
        for (hid, robot, serial, started, rig, profile, fit, stopped, passed, failed, errors, skipped, duration,
             software, cases) in self.db.execute(
                "SELECT hil_id, robot, serial, started, rig, profile, fit, stopped, passed, failed, errors, skipped, "
                "duration_s, software, cases FROM hil WHERE robot_key = ? ORDER BY hil_id", (robot_key,)):
            bad = [{"case": c["case"], "message": c["message"]} for c in json.loads(cases or "[]")
                   if c["verdict"] in ("failed", "error")]
            out.append({"hil_id": hid, "robot": robot, "serial": serial, "started": started, "rig": rig,
                        "profile": profile, "fit_to_run": bool(fit), "stopped": stopped,
                        "counts": {"passed": passed, "failed": failed, "error": errors, "skipped": skipped},
                        "duration_s": duration, "software": json.loads(software or "{}"), "failed": bad})
        return out

    def robots(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT robot_key FROM runs UNION SELECT robot_key FROM hil ORDER BY robot_key")]

    def totals(self, robot_key: str) -> dict[str, Any]:
        """A robot's totals over its runs: the robot's counters and each joint's."""
        rows = self.db.execute("SELECT robot, serial, powered_s, armed_s, active_s, policy_s, available_s, falls, "
                               "estops, episodes, successes, interventions, faults, stops, started, updated "
                               "FROM runs WHERE robot_key = ?", (robot_key,)).fetchall()
        hil = self.hil_history(robot_key)
        if not rows and not hil:
            raise KeyError(robot_key)
        stops: dict[str, dict[str, int]] = {}
        for r in rows:
            for mode, by in json.loads(r[13] or "{}").items():
                d = stops.setdefault(mode, {})
                for cause, k in by.items():
                    d[cause] = d.get(cause, 0) + int(k)
        first = rows[0] if rows else (hil[0]["robot"], hil[0]["serial"])
        robot = {"robot_key": robot_key, "robot": first[0], "serial": first[1], "runs": len(rows),
                 "powered_h": sum(r[2] or 0 for r in rows) / 3600, "armed_h": sum(r[3] or 0 for r in rows) / 3600,
                 "active_h": sum(r[4] or 0 for r in rows) / 3600, "policy_h": sum(r[5] or 0 for r in rows) / 3600,
                 "available_h": sum(r[6] or 0 for r in rows) / 3600, "falls": sum(r[7] or 0 for r in rows),
                 "estops": sum(r[8] or 0 for r in rows), "episodes": sum(r[9] or 0 for r in rows),
                 "successes": sum(r[10] or 0 for r in rows), "interventions": sum(r[11] or 0 for r in rows),
                 "faults": sum(r[12] or 0 for r in rows), "stops": stops,
                 "first_run": min((r[14] for r in rows), default=None),
                 "last_update": max((r[15] for r in rows), default=None)}
        joints: dict[str, dict[str, Any]] = {}
        bins = temp_bin_names()
        for (j, torque_s, travel, integral, peak_tau, peak_temp, temp_s, hits, faults) in self.db.execute(
                "SELECT j.joint, j.torque_s, j.travel_rad, j.torque_integral_nms, j.peak_torque_nm, j.peak_temp_c, "
                "j.temp_s, j.limit_hits, j.faults FROM joints j JOIN runs r ON r.run_id = j.run_id "
                "WHERE r.robot_key = ? ORDER BY j.rowid", (robot_key,)):
            t = joints.setdefault(j, {"joint": j, "torque_h": 0.0, "travel_rad": 0.0, "torque_integral_nms": 0.0,
                                      "peak_torque_nm": 0.0, "peak_temp_c": None, "temp_h": {b: 0.0 for b in bins},
                                      "limit_hits": 0, "faults": 0})
            t["torque_h"] += (torque_s or 0) / 3600
            t["travel_rad"] += travel or 0
            t["torque_integral_nms"] += integral or 0
            t["peak_torque_nm"] = max(t["peak_torque_nm"], peak_tau or 0)
            if peak_temp is not None:
                t["peak_temp_c"] = peak_temp if t["peak_temp_c"] is None else max(t["peak_temp_c"], peak_temp)
            for b, v in json.loads(temp_s or "{}").items():
                t["temp_h"][b] = t["temp_h"].get(b, 0.0) + v / 3600
            t["limit_hits"] += hits or 0
            t["faults"] += faults or 0
        return {"robot": robot, "joints": list(joints.values()), "hil": hil}

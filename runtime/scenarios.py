"""Whole-body controller scenarios on the simulated robot (`vertebra sim --controller wbc --scenario ...`).

Each scenario runs after the deployment procedure has the robot standing and the whole-body
controller engaged, and returns metrics: tracking errors at steady state (the end of each hold),
contact-force summary and whether the robot fell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from vertebra.runtime.estimation import EstimatorErrorTracker
from vertebra.runtime.numerics import quat_from_rpy, tilt_deg
from vertebra.runtime.sim_runtime import SimRuntime

SCENARIOS = ("stand", "push", "reach", "pose")


class _Watch:
    """Samples the run: fall detection, tilt, contact forces."""

    def __init__(self, rt: SimRuntime):
        self.rt = rt
        self.max_tilt = 0.0
        self.min_height = math.inf
        self.fz: list[list[float]] = [[] for _ in rt.cfg.foot_frames]
        self.estimator = EstimatorErrorTracker() if rt.estimator is not None else None

    def __call__(self, snap: dict[str, Any]) -> None:
        st = self.rt.truth(snap)  # outcomes are judged on truth, whatever base the controller used
        if self.estimator is not None:
            self.estimator(snap, st)
        self.max_tilt = max(self.max_tilt, tilt_deg(st["base_quat"]))
        self.min_height = min(self.min_height, float(st["base_pos"][2]))
        wb = self.rt.wb.status()
        for i, w in enumerate(wb["contact_wrench"]):
            self.fz[i].append(float(w[2]))

    @property
    def fell(self) -> bool:
        return self.max_tilt > 45.0 or self.min_height < 0.6 * self.rt.standing_height_m

    def summary(self) -> dict[str, Any]:
        return {
            "fell": self.fell,
            "max_tilt_deg": round(self.max_tilt, 3),
            "min_base_height_m": round(self.min_height, 4),
            "contact_forces": {
                foot: {"fz_min_n": round(min(v), 1), "fz_max_n": round(max(v), 1), "fz_mean_n": round(float(np.mean(v)), 1)}
                for foot, v in zip(self.rt.cfg.foot_frames, self.fz) if v},
            "base": self.rt.loop.snapshot()["base"]["source"],
            **({"estimator": self.estimator.summary()} if self.estimator is not None else {}),
        }


def _hold(rt: SimRuntime, seconds: float, watch: _Watch) -> None:
    rt.wait(seconds, on_sample=watch, sample_every_s=0.01)


def stand(rt: SimRuntime, duration_s: float, watch: _Watch, say: Callable[[str], None]) -> dict[str, Any]:
    say(f"standing on the whole-body controller for {duration_s:g} s")
    _hold(rt, duration_s, watch)
    st = rt.wb.status()
    return {"com_err_m": round(float(np.linalg.norm(st["com_err"])), 4)}


def push(rt: SimRuntime, watch: _Watch, say: Callable[[str], None], force_n: float = 30.0,
         duration_s: float = 0.2, directions: int = 8, settle_s: float = 2.0) -> dict[str, Any]:
    results = []
    for k in range(directions):
        ang = 2 * math.pi * k / directions
        say(f"push {force_n:g} N for {duration_s:g} s at {math.degrees(ang):.0f} deg")
        before = watch.max_tilt
        watch.max_tilt = 0.0
        rt.world.push(force_n * math.cos(ang), force_n * math.sin(ang), 0.0, duration_s)
        _hold(rt, settle_s, watch)
        results.append({"direction_deg": round(math.degrees(ang), 1), "max_tilt_deg": round(watch.max_tilt, 3),
                        "fell": watch.fell})
        watch.max_tilt = max(before, watch.max_tilt)
        if watch.fell:
            break
    return {"push_force_n": force_n, "push_duration_s": duration_s, "pushes": results,
            "survived_all": not watch.fell and len(results) == directions}


def _hand_poses(rt: SimRuntime) -> list[tuple[np.ndarray, np.ndarray]]:
    """Current hand positions from the robot model at the state the controller sees (its base:
    truth, or the estimate)."""
    snap = rt.loop.snapshot()
    q = rt.model.full_configuration(snap["base"]["pos"], snap["base"]["quat"], snap["state"]["q"])
    out = []
    for f in rt.cfg.hand_frames:
        out.append(np.asarray(rt.model.frame_translation(q, f)))
    return out  # type: ignore[return-value]


def reach(rt: SimRuntime, watch: _Watch, say: Callable[[str], None], hold_s: float = 2.5) -> dict[str, Any]:
    if not rt.cfg.hand_frames:
        raise ValueError(f"robot '{rt.cfg.name}' has no hands: the reach scenario needs frames.hands")
    start = _hand_poses(rt)
    # Offsets (m) in world axes and a wrist rotation for each target; left hand first, right mirrored.
    sequence = [([0.15, 0.0, 0.10], (0.0, 0.0, 0.0)), ([0.20, 0.05, 0.25], (0.0, -0.3, 0.0)),
                ([0.15, 0.05, 0.20], (0.2, 0.0, 0.2)), ([0.25, -0.05, 0.15], (0.0, 0.0, -0.3))]
    results: list[dict[str, Any]] = []
    names = list(rt.cfg.hand_frames)
    for i, (off, rpy) in enumerate(sequence):
        for h, name in enumerate(names):
            sign = 1.0 if h == 0 else -1.0
            pos = start[h] + np.array([off[0], sign * off[1], off[2]])
            quat = quat_from_rpy(sign * rpy[0], rpy[1], sign * rpy[2])
            rt.wb.set_target(name, (pos, quat))
        say(f"reach target {i + 1}/{len(sequence)}: hands offset {off} m, wrist rpy {rpy} rad")
        _hold(rt, hold_s, watch)
        st = rt.wb.status()
        results.append({"target": i + 1, "pos_err_m": [round(float(e), 4) for e in st["hand_pos_err"][: len(names)]],
                        "rot_err_deg": [round(math.degrees(float(e)), 3) for e in st["hand_rot_err"][: len(names)]]})
    for name in names:
        rt.wb.release(name)
    worst_p = max(max(r["pos_err_m"]) for r in results)
    worst_r = max(max(r["rot_err_deg"]) for r in results)
    return {"reach": results, "max_hand_pos_err_m": worst_p, "max_hand_rot_err_deg": worst_r}


def pose(rt: SimRuntime, watch: _Watch, say: Callable[[str], None], hold_s: float = 2.0) -> dict[str, Any]:
    st0 = rt.wb.status()
    results: list[dict[str, Any]] = []
    if rt.cfg.wbc.flat_feet:  # humanoid: centre-of-mass shifts
        com0 = np.asarray(st0["com"])
        for dy in (0.05, -0.05, 0.0):
            target = com0 + np.array([0.0, dy, 0.0])
            say(f"centre of mass {dy * 100:+.0f} cm lateral")
            rt.wb.set_target("com", target)
            _hold(rt, hold_s, watch)
            st = rt.wb.status()
            results.append({"com_shift_y_m": dy, "com_err_m": round(float(np.linalg.norm(st["com_err"])), 4)})
        return {"pose": results, "max_com_err_m": max(r["com_err_m"] for r in results)}
    # quadruped: base pose
    p0 = np.asarray(rt.loop.snapshot()["base"]["pos"], dtype=float)  # in the controller's frame
    r15 = math.radians(15.0)
    seq = [("roll", (r15, 0, 0), 0.0), ("roll", (-r15, 0, 0), 0.0), ("pitch", (0, r15, 0), 0.0),
           ("pitch", (0, -r15, 0), 0.0), ("yaw", (0, 0, r15), 0.0), ("yaw", (0, 0, -r15), 0.0),
           ("height", (0, 0, 0), 0.05), ("height", (0, 0, 0), -0.05), ("level", (0, 0, 0), 0.0)]
    for what, rpy, dz in seq:
        say(f"base {what}: rpy {tuple(round(math.degrees(a)) for a in rpy)} deg, height {dz * 100:+.0f} cm")
        rt.wb.set_target("base", (p0 + np.array([0.0, 0.0, dz]), quat_from_rpy(*rpy)))
        _hold(rt, hold_s, watch)
        st = rt.wb.status()
        results.append({"target": what, "rpy_deg": [round(math.degrees(a), 1) for a in rpy], "height_offset_m": dz,
                        "rot_err_deg": round(math.degrees(st["base_rot_err"]), 3),
                        "height_err_m": round(float(st["base_pos_err"]), 4)})
    return {"pose": results, "max_base_rot_err_deg": max(r["rot_err_deg"] for r in results),
            "max_base_height_err_m": max(r["height_err_m"] for r in results)}


def run_scenario(rt: SimRuntime, name: str, duration_s: float, say: Callable[[str], None],
                 push_force_n: float = 30.0) -> dict[str, Any]:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario '{name}'; scenarios are: {', '.join(SCENARIOS)}")
    rt.engage_wbc()
    watch = _Watch(rt)
    if name == "stand":
        out = stand(rt, duration_s, watch, say)
    elif name == "push":
        out = push(rt, watch, say, force_n=push_force_n)
    elif name == "reach":
        out = reach(rt, watch, say)
    else:
        out = pose(rt, watch, say)
    out.update(watch.summary())
    st = rt.wb.status()
    out["solver"] = {"solves": int(st["solves"]), "failures": int(st["failures"])}
    return out


def find_max_push(robot: str, say: Callable[[str], None], start_n: float = 30.0, step_n: float = 10.0,
                  limit_n: float = 400.0) -> dict[str, Any]:
    """Largest push (0.2 s, every 45 degrees) the robot survives without stepping, by increasing steps."""
    survived = None
    force = start_n
    while force <= limit_n:
        with SimRuntime(robot, controller="wbc") as rt:
            rt.stand_up(hold_s=0.5)
            out = run_scenario(rt, "push", 0.0, say=lambda _m: None, push_force_n=force)
        say(f"push {force:g} N from 8 directions: {'survived' if out['survived_all'] else 'fell'}")
        if not out["survived_all"]:
            break
        survived = force
        force += step_n
    return {"largest_push_survived_n": survived, "first_push_failed_n": force if force <= limit_n else None}

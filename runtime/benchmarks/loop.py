"""`vertebra bench loop`: wake-up lateness of the C++ real-time loop against a plain Python time.sleep loop
at the same rate, measured in the same run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from vertebra import _rt
from vertebra.runtime.config import loop_config
from vertebra.runtime.numerics import summary

# the lateness summary both loops report, in this order
LATENESS_KEYS = ("count", "p50", "p99", "p999", "max", "mean")


def python_sleep_loop(rate_hz: float, seconds: float) -> dict[str, Any]:
    """What a user would otherwise write: a plain Python loop pacing itself with time.sleep."""
    period = 1.0 / rate_hz
    n = int(round(rate_hz * seconds))
    lateness = np.empty(n)
    overruns = 0
    next_t = time.perf_counter() + period
    for i in range(n):
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        lateness[i] = now - next_t
        next_t += period
        if time.perf_counter() > next_t:
            overruns += 1
    return {"lateness_us": summary(np.maximum(lateness, 0.0) * 1e6, LATENESS_KEYS), "overruns": overruns}


def cpp_loop(rate_hz: float, seconds: float, n_joints: int = 29, spin_us: float | None = None,
             cpu: int | None = None, record: bool = False) -> dict[str, Any]:
    """The runtime's C++ real-time loop (mock driver, joint-PD mode: a full tick's data path).
    `record`: with the recorder's ring attached (every tick) and drained by a thread, as the writer does."""
    driver = _rt.MockDriver()
    driver.init([f"j{i}" for i in range(n_joints)], rate_hz)
    ones = [1.0] * n_joints
    params = _rt.RobotParams(kp=[50.0] * n_joints, kd=ones, kd_damping=ones, kp_max=[100.0] * n_joints,
                             kd_max=[5.0] * n_joints, q_lower=[-3.0] * n_joints, q_upper=[3.0] * n_joints,
                             dq_max=[20.0] * n_joints, tau_max=[50.0] * n_joints, default_pose=[0.0] * n_joints)
    cfg = loop_config(rate_hz)
    if spin_us is not None:
        cfg.spin_ns = int(spin_us * 1000)
    spin_used_us = cfg.spin_ns / 1000.0
    if cpu is not None:
        cfg.cpu = cpu
    loop = _rt.RtLoop(driver, params, cfg)
    ring = drain = None
    stop = threading.Event()
    if record:
        from vertebra.runtime import record_schema as rs

        ring = _rt.RecordRing(int(rate_hz))
        loop.set_record_ring(ring)
        buf = np.zeros(256, dtype=rs.tick_dtype())

        def drain_ring() -> None:
            while not stop.is_set():
                ring.pop_into(buf)
                stop.wait(0.005)

        drain = threading.Thread(target=drain_ring, daemon=True)
        drain.start()
    loop.start()
    try:
        loop.request_mode(_rt.Mode.HOLD)
        time.sleep(0.2)  # warm-up, then measure from a clean histogram
        loop.reset_stats()
        time.sleep(seconds)
        stats = loop.stats()
        report = loop.rt_report()
        cost = loop.record_cost() if record else None
    finally:
        loop.stop()
        stop.set()
        if drain is not None:
            drain.join()
    lat = stats["lateness_us"]
    return {
        "lateness_us": {k: (int(lat[k]) if k == "count" else round(lat[k], 1)) for k in LATENESS_KEYS},
        "compute_us": {k: round(stats["compute_us"][k], 1) for k in ("p50", "p99", "max")},
        "overruns": int(stats["overruns"]),
        "spin_us": spin_used_us,
        "cpu": cfg.cpu,
        "os": report,
        **({"record_cost_us": {k: round(cost[k], 3) for k in ("p50", "p99", "max", "mean")},
            "records_lost": int(ring.lost)} if record else {}),
    }


def bench_loop(rate_hz: float, seconds: float, progress: Callable[[str], None] | None = None,
               spin_us: float | None = None, recorder: bool = False) -> dict[str, Any]:
    """`recorder`: also run the C++ loop with the recorder's ring attached (the same run, after the
    baseline) and report what it costs the tick."""
    say = progress or (lambda _m: None)
    say(f"C++ real-time loop at {rate_hz:g} Hz for {seconds:g} s ...")
    cpp = cpp_loop(rate_hz, seconds, spin_us=spin_us)
    rec = None
    if recorder:
        say(f"C++ real-time loop at {rate_hz:g} Hz for {seconds:g} s, recording every tick ...")
        rec = cpp_loop(rate_hz, seconds, spin_us=spin_us, record=True)
    say(f"Python time.sleep loop at {rate_hz:g} Hz for {seconds:g} s ...")
    py = python_sleep_loop(rate_hz, seconds)

    def ratio(key: str) -> float | None:
        c = cpp["lateness_us"][key]
        p = py["lateness_us"][key]
        return round(p / c, 2) if c > 0 else None

    ratios = {f"{k}_python_over_cpp": ratio(k) for k in ("p50", "p99", "p999", "max")}
    goals = {"p99_at_least_1.5x_lower": (ratios["p99_python_over_cpp"] or float("inf")) >= 1.5,
             "p999_at_least_3x_lower": (ratios["p999_python_over_cpp"] or float("inf")) >= 3.0}
    out = {"benchmark": "loop", "rate_hz": rate_hz, "seconds": seconds, "cpp": cpp, "python_sleep": py,
           "ratios": ratios, "goals_met": goals}
    if rec is not None:
        out["recorder"] = {
            "compute_us_without": cpp["compute_us"], "compute_us_with": rec["compute_us"],
            "compute_p99_delta_us": round(rec["compute_us"]["p99"] - cpp["compute_us"]["p99"], 2),
            "record_cost_us": rec["record_cost_us"], "records_lost": rec["records_lost"],
            "record_cost_p99_at_most_2us": rec["record_cost_us"]["p99"] <= 2.0}
    return out

"""`vertebra bench wbc --controller walk`: the walk mode's cost per tick on the simulated G1 in
lockstep, on the state estimator. The baseline is measured in the same run: the same walk mode
standing (the whole-body QP and an idle planner), then walking under a sequence of commands
(forward, turning, sideways). The cost of a tick is what the controller measures inside C++: the
model update with the walk's planner, plus the QP solve (WbcStatus.model_us + solve_us). The state
estimator's update is timed inside C++ too, and reported beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from vertebra.runtime.numerics import summary, tilt_deg
from vertebra.runtime.sim_runtime import SimRuntime

# (seconds, command) walked after the standing baseline
WALK_SEQUENCE: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (6.0, (0.4, 0.0, 0.0)), (4.0, (0.2, 0.0, 0.3)), (4.0, (0.0, 0.1, 0.0)), (4.0, (0.0, 0.0, 0.0)))


def bench_walk(robot: str = "g1", standing_ticks: int = 2500, say: Callable[[str], None] | None = None,
               scale: float = 1.0) -> dict[str, Any]:
    """`scale` shortens the walked sequence (tests); the JSON says what was walked."""
    say = say or (lambda _m: None)
    rt = SimRuntime(robot, controller="walk", use_estimator=True)
    try:
        rt.stand_up(hold_s=0.5)
        rt.activate_controller()
        rt.wait(0.3)
        walker, est = rt.handle, rt.estimator

        def tick_costs(n: int, on_tick: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
            cost, est_us, worst_iter = np.zeros(n), np.zeros(n), 0
            for k in range(n):
                if on_tick is not None:
                    on_tick(k)
                rt.loop.run_ticks(1)
                st = walker.wb.status()
                cost[k] = st["model_us"] + st["solve_us"]
                est_us[k] = est.last_update_us if est is not None else 0.0
                worst_iter = max(worst_iter, int(st["tick_iterations"]))
            return cost, est_us, worst_iter

        say(f"standing under the walk mode: {standing_ticks} ticks (the baseline) ...")
        stand_cost, stand_est, stand_iter = tick_costs(standing_ticks)
        rate = rt.rate_hz
        plan = [(max(1, int(round(s * scale * rate))), c) for s, c in WALK_SEQUENCE]
        starts, total = [], 0
        for n, _ in plan:
            starts.append(total)
            total += n
        steps0 = int(walker.status()["steps"])
        max_tilt = 0.0

        def on_tick(k: int) -> None:
            nonlocal max_tilt
            for i, s0 in enumerate(starts):
                if k == s0:
                    walker.command(*plan[i][1])
                    say(f"walking: command {plan[i][1]} for {plan[i][0] / rate:g} s ...")
            if k % 50 == 0:
                max_tilt = max(max_tilt, tilt_deg(rt.truth()["base_quat"]))

        walk_cost, walk_est, walk_iter = tick_costs(total, on_tick)
        snap = rt.loop.snapshot()
        stand_p50 = summary(stand_cost, ("p50",))["p50"]
        walk = summary(walk_cost)
        period_us = 1e6 / rate
        return {
            "benchmark": "wbc", "controller": "walk", "robot": robot, "base": snap["base"]["source"],
            "standing_ticks": standing_ticks, "walking_ticks": total,
            "walked": [{"seconds": round(n / rate, 3), "command": list(c)} for n, c in plan],
            "steps": int(walker.status()["steps"]) - steps0, "fell": bool(max_tilt > 45.0 or snap["faults"]),
            "max_tilt_deg": round(max_tilt, 2), "faults": list(snap["faults"]),
            "standing_us": summary(stand_cost), "walking_us": walk,
            "estimator_us": {"standing": summary(stand_est), "walking": summary(walk_est)},
            "walking_plus_estimator_us": summary(walk_cost + walk_est),
            "ratio_p50_walking_over_standing": round(walk["p50"] / stand_p50, 3) if stand_p50 > 0 else None,
            "max_tick_iterations": {"standing": stand_iter, "walking": walk_iter},
            "period_us": period_us,
            "worst_tick_share_of_period": round(float(np.max(walk_cost + walk_est)) / period_us, 3),
        }
    finally:
        rt.close()

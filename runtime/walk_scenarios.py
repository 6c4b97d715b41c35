"""Walking scenarios on the simulated robot (`vertebra sim --controller walk --scenario ...`).

Each runs after the deployment procedure has the robot standing: the walk mode is engaged, a
velocity command is held for `duration` seconds, then set to zero, and the robot must stop
standing. Outcomes are judged on the simulator's truth, whatever base the controller ran on:
- achieved: the base's mean velocity over the steady part (from the first stride after the command's
  ramp to the end of the command), in the heading frame (forward, left, yaw rate);
- tracking: per stride (two touch-downs), the base's mean velocity against the applied command,
  RMS over the steady strides (a stride's mean takes out the sway inside each step);
- steps, falls, the most tilt, and whether the robot ended standing;
- the controller's tick cost (model, planner and QP, timed inside C++) over the sampled ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from vertebra.runtime.numerics import summary, tilt_deg
from vertebra.runtime.sim_runtime import SimRuntime

# The command each scenario holds (vx m/s, vy m/s, wz rad/s), at --speed 1 (--speed scales it).
# random: a new command every RANDOM_EVERY_S, each axis uniform over RANDOM_RANGE (x --speed; seeded:
# the range the single-axis scenarios walk; the gait's full reach, 0.47 m/s forward, falls); push-walk: forward at 0.3 m/s with a push every PUSH_EVERY_S from 8 directions in turn.
WALK_SCENARIOS: dict[str, tuple[float, float, float]] = {
    "forward": (0.3, 0.0, 0.0),
    "backward": (-0.15, 0.0, 0.0),
    "lateral": (0.0, 0.08, 0.0),
    "turn": (0.0, 0.0, 0.2),
    "random": (0.0, 0.0, 0.0),
    "push-walk": (0.3, 0.0, 0.0),
}
RANDOM_EVERY_S = 3.0
RANDOM_RANGE = ((-0.15, 0.3), (-0.08, 0.08), (-0.2, 0.2))
PUSH_EVERY_S = 2.5


def _yaw(q: Any) -> float:
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def scenario_refusal(walker: Any, name: str, speed: float) -> str:
    """'' when every command scenario `name` gives at `speed` is within the walker's bounds (the safety
    config's base_velocity), else what is beyond them (said before the robot stands up)."""
    if name == "random":
        cmd = tuple(speed * max(abs(lo), abs(hi)) for lo, hi in RANDOM_RANGE)
    else:
        cmd = tuple(speed * v for v in WALK_SCENARIOS[name])
    if walker.bounds is None:
        return ""
    why = walker.bounds.refusal(*cmd)
    return f"--speed {speed:g}: scenario '{name}' would command {why} (safety config base_velocity)" if why else ""


def run_walk_scenario(rt: SimRuntime, name: str, duration_s: float, say: Callable[[str], None],
                      speed: float = 1.0, settle_s: float = 3.0, push_n: float = 60.0, push_s: float = 0.1,
                      seed: int = 0) -> dict[str, Any]:
    if name not in WALK_SCENARIOS:
        raise ValueError(f"unknown walk scenario '{name}'; walk scenarios are: {', '.join(WALK_SCENARIOS)}")
    if not (math.isfinite(speed) and speed > 0.0):
        raise ValueError(f"--speed: expected a positive scale, found {speed}")
    walker = rt.handle
    rt.activate_controller()
    rt.wait(0.3)
    cmd = tuple(speed * v for v in WALK_SCENARIOS[name])
    say(f"walking: {name}, command vx {cmd[0]:+.2f} m/s, vy {cmd[1]:+.2f} m/s, yaw rate {cmd[2]:+.2f} rad/s "
        f"for {duration_s:g} s")
    walker.command(*cmd)
    samples: list[tuple[float, np.ndarray, float, int]] = []  # time, base xy, yaw, touch-downs
    costs: list[float] = []  # the controller's cost of the sampled ticks (C++: model + planner + QP), us
    max_tilt, min_h = 0.0, math.inf
    t0 = rt.time_s()

    def sample(snap: dict[str, Any]) -> None:
        nonlocal max_tilt, min_h
        st = rt.truth(snap)
        max_tilt = max(max_tilt, tilt_deg(st["base_quat"]))
        min_h = min(min_h, float(st["base_pos"][2]))
        samples.append((rt.time_s() - t0, np.asarray(st["base_pos"][:2], dtype=float), _yaw(st["base_quat"]),
                        int(walker.status()["steps"])))
        w = walker.wb.status()
        costs.append(float(w["model_us"]) + float(w["solve_us"]))

    pushes: list[dict[str, Any]] = []
    commands: list[list[float]] = [list(cmd)]
    if name == "random":
        rng = np.random.default_rng(seed)
        elapsed = 0.0
        while elapsed < duration_s - 1e-9:
            c = [float(rng.uniform(lo, hi)) * speed for lo, hi in RANDOM_RANGE]
            walker.command(*c)
            commands.append([round(v, 4) for v in c])
            span = min(RANDOM_EVERY_S, duration_s - elapsed)
            rt.wait(span, on_sample=sample, sample_every_s=0.01)
            elapsed += span
            if max_tilt > 45.0:
                break
        commands = commands[1:]
    elif name == "push-walk":
        rt.wait(min(3.0, duration_s), on_sample=sample, sample_every_s=0.01)  # up to speed first
        elapsed, k = min(3.0, duration_s), 0
        while elapsed + PUSH_EVERY_S <= duration_s + 1e-9:
            ang = 2.0 * math.pi * (k % 8) / 8.0
            yaw = _yaw(rt.truth()["base_quat"])  # the direction is the robot's (0: from behind)
            say(f"push {push_n:g} N for {push_s:g} s at {math.degrees(ang):.0f} deg while walking")
            rt.world.push(push_n * math.cos(yaw + ang), push_n * math.sin(yaw + ang), 0.0, push_s)
            rt.wait(PUSH_EVERY_S, on_sample=sample, sample_every_s=0.01)
            pushes.append({"direction_deg": round(math.degrees(ang), 1), "fell": max_tilt > 45.0 or min_h < 0.6 * rt.standing_height_m})
            elapsed += PUSH_EVERY_S
            k += 1
            if pushes[-1]["fell"]:
                break
        rt.wait(max(0.0, duration_s - elapsed), on_sample=sample, sample_every_s=0.01)
    else:
        rt.wait(duration_s, on_sample=sample, sample_every_s=0.01)
    applied = list(walker.status()["applied"])
    walker.command(0.0, 0.0, 0.0)
    say(f"stopping: {settle_s:g} s to stand")
    rt.wait(settle_s, on_sample=sample, sample_every_s=0.01)
    end = walker.status()
    fell = max_tilt > 45.0 or min_h < 0.6 * rt.standing_height_m

    # strides: every second touch-down while the command was held
    times = np.array([s[0] for s in samples])
    held = times <= duration_s
    downs = [i for i in range(1, len(samples)) if samples[i][3] != samples[i - 1][3] and held[i]]
    strides = downs[::2]
    per_stride = []
    for a, b in zip(strides, strides[1:]):
        dt = samples[b][0] - samples[a][0]
        yaw0 = samples[a][2]
        d = samples[b][1] - samples[a][1]
        c, s = math.cos(yaw0), math.sin(yaw0)
        dyaw = math.atan2(math.sin(samples[b][2] - yaw0), math.cos(samples[b][2] - yaw0))
        per_stride.append(np.array([(c * d[0] + s * d[1]) / dt, (-s * d[0] + c * d[1]) / dt, dyaw / dt]))
    steady = per_stride[1:] if len(per_stride) > 2 else per_stride  # the first stride is still ramping
    err = [v - np.asarray(applied) for v in steady]
    achieved = np.mean(steady, axis=0) if steady else np.zeros(3)
    distance = float(np.linalg.norm(samples[-1][1] - samples[0][1])) if samples else 0.0
    extra: dict[str, Any] = {}
    if name == "random":
        extra = {"commands": commands, "command_every_s": RANDOM_EVERY_S, "seed": seed}
    if name == "push-walk":
        extra = {"push_force_n": push_n, "push_duration_s": push_s, "pushes": pushes,
                 "survived_all": bool(pushes) and not any(p["fell"] for p in pushes) and not fell}
    if name in ("random", "push-walk"):  # the command changed (or was disturbed): no steady tracking
        err = []
    return {
        **extra,
        "walk": name,
        "command": [round(v, 4) for v in cmd],
        "applied": [round(float(v), 4) for v in applied],
        "achieved": {"vx_m_s": round(float(achieved[0]), 4), "vy_m_s": round(float(achieved[1]), 4),
                     "wz_rad_s": round(float(achieved[2]), 4)},
        "tracking_rms": {"linear_m_s": round(float(np.sqrt(np.mean([e[0] ** 2 + e[1] ** 2 for e in err]))), 4) if err else None,
                         "yaw_rad_s": round(float(np.sqrt(np.mean([e[2] ** 2 for e in err]))), 4) if err else None,
                         "strides": len(steady)},
        "steps": int(end["steps"]),
        "distance_m": round(distance, 3),
        "turned_rad": round(float(np.sum(np.diff(np.unwrap([s[2] for s in samples])))), 3) if samples else 0.0,
        "fell": fell,
        "max_tilt_deg": round(max_tilt, 3),
        "min_base_height_m": round(min_h, 4),
        "ended_standing": end["phase"] == "standing" and not fell,
        "base": rt.loop.snapshot()["base"]["source"],
        "tick_cost_us": summary(costs, ("p50", "p99", "max")),
    }

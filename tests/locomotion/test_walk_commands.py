"""The walk's velocity command interface: the robot YAML's `walk:` section sets the gait, the safety
config's `base_velocity` bounds every command (refused, never clamped; no bounds, no walking), and a
policy's chunks drive the command through the walk mode's target sink (`base_velocity.vx/.vy/.wz`),
where a command beyond the bounds stops the walk."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from vertebra import _rt
from vertebra.runtime.cli import main
from vertebra.runtime.config import CONFIG_DIR, ConfigError, RobotConfig, read_yaml

MS = 1_000_000


def g1_with(walk: dict | None):
    d = read_yaml(CONFIG_DIR / "robots" / "g1.yaml")
    if walk is not None:
        d["walk"] = walk
    return RobotConfig.from_dict(d, "g1-test.yaml")


def test_the_walk_section_defaults_are_the_controllers_and_its_values_reach_it():
    from vertebra.runtime.walk import GAIT_FIELDS, build_walk_config

    c_default = _rt.WalkConfig()
    c_yaml = build_walk_config(g1_with({}))  # every field at the section's default
    for name in GAIT_FIELDS:
        assert getattr(c_yaml.gait, name) == pytest.approx(getattr(c_default.gait, name)), name
    for name in ("dcm_gain", "start_s", "preview_steps", "max_lin_acc", "max_yaw_acc", "zmp_margin_m",
                 "com_weight_scale", "step_in_place", "step_adjust"):
        assert getattr(c_yaml, name) == pytest.approx(getattr(c_default, name)), name
    c = build_walk_config(g1_with({"gait": {"single_support_s": 0.7, "step_width_m": 0.22}, "dcm_gain": 2.5,
                                   "step_in_place": True}))
    assert c.gait.single_support_s == 0.7 and c.gait.step_width_m == 0.22 and c.dcm_gain == 2.5 and c.step_in_place


@pytest.mark.parametrize("walk, field, says", [
    ({"gait": {"min_step_width_m": 0.3}}, "walk.gait.min_step_width_m", "at most step_width_m"),
    ({"gait": {"single_support_s": -1}}, "walk.gait.single_support_s", ""),
    ({"start_s": 0.05, "gait": {"double_support_s": 0.1}}, "walk.start_s", "at least gait.double_support_s"),
    ({"dcm_gain": "fast"}, "walk.dcm_gain", ""),
    ({"stride": 0.3}, "walk", "stride"),
])
def test_a_bad_walk_section_is_refused_naming_the_field(walk, field, says):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        g1_with(walk)
    assert says in str(e.value)


def test_without_base_velocity_bounds_the_walk_controller_does_not_start():
    from vertebra.runtime.sim_runtime import SimRuntime
    from vertebra.safety.config import SafetySettings

    robot = RobotConfig.load("g1")
    d = read_yaml(CONFIG_DIR / "safety" / "g1.yaml")
    del d["base_velocity"]
    safety = SafetySettings.from_dict(d, robot, "g1-safety-test.yaml")
    with pytest.raises(ConfigError, match="base_velocity.*fail closed"):
        SimRuntime(robot, controller="walk", safety=safety)


def test_a_command_beyond_the_bounds_is_refused_and_the_robot_keeps_the_one_it_had():
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="walk")
    b = rt.safety.base_velocity
    assert tuple(rt.handle.config.max_command) == (b.max_vx_m_s, b.max_vy_m_s, b.max_wz_rad_s)
    rt.stand_up(hold_s=0.3)
    rt.activate_controller()
    rt.wait(0.2)
    rt.handle.command(0.2, 0.0, 0.0)
    rt.wait(1.5)
    for bad, says in (((b.max_vx_m_s + 0.01, 0.0, 0.0), "|vx|"), ((0.0, -b.max_vy_m_s - 0.01, 0.0), "|vy|"),
                      ((0.0, 0.0, b.max_wz_rad_s * 2), "|wz|")):
        with pytest.raises(ValueError, match=r"refused \(safety config base_velocity\).*" + re.escape(says)):
            rt.handle.command(*bad)
    rt.wait(0.5)
    st = rt.handle.status()
    assert st["command"] == [0.2, 0.0, 0.0] and st["phase"] == "walking" and st["steps"] >= 1
    assert rt.loop.snapshot()["faults"] == []


def test_the_sim_command_refuses_a_scenario_beyond_the_bounds_before_standing(capsys):
    rc = main(["sim", "--robot", "g1", "--lockstep", "--no-record", "--controller", "walk", "--scenario", "forward",
               "--speed", "3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--speed 3: scenario 'forward' would command |vx| 0.9 m/s > 0.6 m/s" in err and "Traceback" not in err


def test_a_policy_chunk_drives_the_walk_through_its_target_sink_and_one_beyond_the_bounds_stops_it():
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="walk")
    mode = rt.handle.mode
    names = mode.target_names
    assert names[:3] == ["base_velocity.vx", "base_velocity.vy", "base_velocity.wz"]
    assert names[3:] == rt.handle.wb.ctrl.target_names[3:]  # the hands; the walk owns the CoM
    with pytest.raises(ValueError, match="needs all of base_velocity.vx, .vy and .wz in the stream, found 2"):
        _rt.set_chunk_scheduler(rt.loop, _rt.ChunkScheduler(2), "walk", ["base_velocity.vx", "base_velocity.wz"])
    sched = _rt.ChunkScheduler(3, blend_s=0.0)
    _rt.set_chunk_scheduler(rt.loop, sched, "walk", ["base_velocity.vx", "base_velocity.vy", "base_velocity.wz"])
    rt.stand_up(hold_s=0.3)
    rt.activate_controller()
    rt.wait(0.2)
    p0 = np.asarray(rt.truth()["base_pos"][:2])
    t0 = int(rt.time_s() * 1e9)
    sched.push(t0, 100 * MS, np.tile([0.25, 0.0, 0.0], (50, 1)))  # 5 s forward at 0.25 m/s
    rt.wait(4.0)
    st = rt.handle.status()
    assert st["command"] == [0.25, 0.0, 0.0] and st["steps"] >= 4 and st["refused_commands"] == 0
    assert np.asarray(rt.truth()["base_pos"][:2])[0] - p0[0] > 0.5
    t1 = int(rt.time_s() * 1e9)
    sched.push(t1, 100 * MS, np.tile([0.25, 0.0, 5.0], (40, 1)))  # a yaw rate beyond the bounds
    rt.wait(3.0)
    st = rt.handle.status()
    snap = rt.loop.snapshot()
    assert st["refused_commands"] > 0 and st["command"] == [0.0, 0.0, 0.0]  # refused: the walk stops
    assert st["phase"] == "standing" and snap["faults"] == [] and snap["mode"] == "walk"
    assert abs(math.degrees(st["applied"][2])) < 1e-6


def test_the_walk_benchmark_times_walking_against_standing_in_the_same_run(capsys):
    from vertebra.runtime.benchmarks.walk import bench_walk

    out = bench_walk("g1", standing_ticks=200, scale=0.3)
    assert out["controller"] == "walk" and out["base"] == "estimate" and not out["fell"], out
    assert out["standing_ticks"] == 200 and out["walking_ticks"] == sum(round(w["seconds"] * 500) for w in out["walked"])
    assert out["steps"] >= 3
    for key in ("standing_us", "walking_us", "walking_plus_estimator_us"):
        assert 0 < out[key]["p50"] <= out[key]["p99"] <= out[key]["max"], (key, out[key])
    assert out["ratio_p50_walking_over_standing"] > 0 and out["period_us"] == 2000.0
    rc = main(["bench", "wbc", "--controller", "walk", "--robot", "go2"])
    assert rc == 2 and "for bipeds" in capsys.readouterr().err

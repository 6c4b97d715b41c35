"""The safety config fails closed: every threshold is required, a monitor is off only by an explicit
`enabled: false`, cross-field checks hold, and the shipped files give the C++ SafetyConfig they gave
before the schema (numbers recorded with the old reader)."""

import copy

import pytest
import yaml
from vertebra import _rt
from vertebra.runtime.config import ConfigError, RobotConfig
from vertebra.runtime.errors import MissingFieldsError
from vertebra.safety.config import SAFETY_DIR, SafetySettings

SECTIONS = ("state", "attitude", "joints", "motors", "battery", "policy", "loop", "limiter")
THRESHOLDS = [  # every threshold the empty-sections file must be refused for
    "state.timeout_ms", "state.frozen_ms",
    "attitude.tilt_warn_deg", "attitude.fall_tilt_deg", "attitude.fall_height_m", "attitude.fall_rate_rad_s",
    "joints.soft_limit_margin_rad", "joints.hard_limit_tolerance_rad", "joints.velocity_fault_scale",
    "joints.torque_fault_scale",
    "motors.temp_warn_c", "motors.temp_derate_c", "motors.temp_stop_c",
    "battery.warn_v", "battery.stop_v",
    "policy.starvation_hold_ms", "policy.starvation_stop_ms",
    "loop.overrun_window_ticks", "loop.overrun_max",
    "limiter.rate_limit_scale",
]

# to_cpp() of configs/safety/{g1,go2}.yaml as the hand-written reader produced it (recorded before the port).
DEFAULT_RESPONSES = {
    "battery_critical": "stop", "battery_low": "warn", "controller": "stop", "driver_read": "stop",
    "driver_write": "damp", "fall": "damp", "joint_hard_limit": "stop", "joint_soft_limit": "warn",
    "joint_velocity": "stop", "loop_overrun": "stop", "motor_error": "stop", "non_finite_command": "hold",
    "non_finite_state": "stop", "starvation_hold": "hold", "starvation_stop": "stop", "state_frozen": "stop",
    "state_loss": "stop", "temperature_derate": "derate", "temperature_stop": "stop", "temperature_warn": "warn",
    "tilt": "warn", "torque": "stop", "event_log_write": "warn", "lowcmd_conflict": "damp",
}
COMMON = {
    "clamp_quiet_ticks": 250, "derate_scale": 0.6, "estop_cut": False, "fall_tilt_deg": 40.0, "frozen_ms": 40.0,
    "hard_limit_tolerance_rad": 0.05, "joint_limit_monitor": True, "motor_error_monitor": True, "overrun_max": 25,
    "overrun_window_ticks": 500, "rate_limit_scale": 1.0, "settle_hold_s": 0.5, "soft_limit_margin_rad": 0.02,
    "starvation_hold_ms": 100.0, "starvation_stop_ms": 1000.0, "state_timeout_ms": 50.0, "temp_derate_c": 80.0,
    "temp_hysteresis_c": 5.0, "temp_stop_c": 90.0, "temp_warn_c": 70.0, "torque_fault_scale": 1.1,
    "velocity_fault_scale": 1.2,
}
RECORDED = {
    "g1": {**COMMON, "battery_hysteresis_v": 0.5, "battery_stop_v": 41.6, "battery_warn_v": 44.2, "fall_height_m": 0.45,
           "fall_rate_rad_s": 5.0, "n_settle": 2, "tilt_warn_deg": 20.0},
    "go2": {**COMMON, "battery_hysteresis_v": 0.3, "battery_stop_v": 25.6, "battery_warn_v": 27.2,
            "fall_height_m": 0.15, "fall_rate_rad_s": 6.0, "n_settle": 1, "tilt_warn_deg": 25.0},
}
RECORDED_SETTLE = {  # settle_poses() and keyframe durations, and the simulator's battery voltage
    "g1": ([[-0.87, 0.0, 0.0, 1.74, -0.85, 0.0, -0.87, 0.0, 0.0, 1.74, -0.85, 0.0, 0.0, 0.0, 0.0, -1.2, 0.2, 0.0, 0.9,
             0.0, 0.0, 0.0, -1.2, -0.2, 0.0, 0.9, 0.0, 0.0, 0.0],
            [-2.2, 0.0, 0.0, 2.8, -0.85, 0.0, -2.2, 0.0, 0.0, 2.8, -0.85, 0.0, 0.0, 0.0, 0.5, -1.2, 0.2, 0.0, 0.9,
             0.0, 0.0, 0.0, -1.2, -0.2, 0.0, 0.9, 0.0, 0.0, 0.0]], [2.0, 2.0], 50.7),
    "go2": ([[0.0, 1.3, -2.6, 0.0, 1.3, -2.6, 0.0, 1.3, -2.6, 0.0, 1.3, -2.6]], [2.0], 31.2),
}
# What each group's `enabled: false` turns off in the C++ config (the values the supervisor reads as off).
OFF = {
    "state": {"state_timeout_ms": 0.0, "frozen_ms": 0.0},
    "attitude": {"tilt_warn_deg": 0.0, "fall_tilt_deg": 0.0, "fall_height_m": 0.0, "fall_rate_rad_s": 0.0},
    "joints": {"joint_limit_monitor": False, "velocity_fault_scale": 0.0, "torque_fault_scale": 0.0},
    "motors": {"temp_warn_c": 0.0, "temp_derate_c": 0.0, "temp_stop_c": 0.0, "motor_error_monitor": False},
    "battery": {"battery_warn_v": 0.0, "battery_stop_v": 0.0},
    "policy": {"starvation_hold_ms": 0.0, "starvation_stop_ms": 0.0},
    "loop": {"overrun_window_ticks": 0, "overrun_max": 0},
    "limiter": {"rate_limit_scale": 0.0},
}


def cpp_values(c):
    return {name: getattr(c, name) for name in RECORDED["g1"]}


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_shipped_files_give_the_recorded_cpp_config(robot):
    cfg = RobotConfig.load(robot)
    s = SafetySettings.load(cfg)
    c = s.to_cpp(cfg)
    assert cpp_values(c) == RECORDED[robot]
    assert {f: c.response(f) for f in _rt.fault_names()} == DEFAULT_RESPONSES
    poses, durations, sim_v = RECORDED_SETTLE[robot]
    assert s.settle_poses(cfg) == poses and [k.duration_s for k in s.settle] == durations
    assert s.battery_sim_v == sim_v
    assert s.disabled_monitors() == []


def test_empty_sections_are_refused_naming_each_missing_threshold(g1, tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("robot: g1\n" + "".join(f"{s}: {{}}\n" for s in SECTIONS))
    with pytest.raises(MissingFieldsError) as ei:
        SafetySettings.load(g1, p)
    e = ei.value
    assert e.fields == THRESHOLDS
    text = str(e)
    assert text.startswith(f"{p}: {len(THRESHOLDS)} required fields are missing")
    assert "enabled: false" in text.splitlines()[0]
    for path in THRESHOLDS:
        assert f"field '{path}': found '<missing>'; valid: required: " in text
    assert isinstance(e, ConfigError) and isinstance(e, ValueError)


def test_a_file_without_its_sections_is_refused(g1):
    with pytest.raises(MissingFieldsError) as ei:
        SafetySettings.from_dict({"robot": "g1"}, g1, "bare.yaml")
    assert ei.value.fields == list(SECTIONS)


def test_one_missing_threshold_is_named(g1, raw):
    d = copy.deepcopy(raw)
    del d["policy"]["starvation_stop_ms"]
    with pytest.raises(ConfigError) as ei:
        SafetySettings.from_dict(d, g1, "g1.yaml")
    assert ei.value.field == "policy.starvation_stop_ms" and ei.value.found == "<missing>"


@pytest.mark.parametrize("section", SECTIONS)
def test_enabled_false_turns_one_monitor_group_off(g1, raw, section):
    on = SafetySettings.from_dict(raw, g1, "g1.yaml").to_cpp(g1)
    d = copy.deepcopy(raw)
    declared = SafetySettings.declared_fields[section].kind.declared_fields
    keep = {k: v for k, v in d[section].items() if not declared[k].gated}  # settings that are not thresholds
    d[section] = {"enabled": False, **keep}  # no thresholds needed once it is off
    s = SafetySettings.from_dict(d, g1, "g1.yaml")
    assert s.disabled_monitors() == [section]
    c = s.to_cpp(g1)
    want = cpp_values(on) | OFF[section]
    assert cpp_values(c) == want


def test_enabled_false_wins_over_thresholds_that_are_still_written(g1, raw):
    d = copy.deepcopy(raw)
    d["policy"]["enabled"] = False
    s = SafetySettings.from_dict(d, g1, "g1.yaml")
    assert s.starvation_hold_ms == 0.0 and s.starvation_stop_ms == 0.0 and s.disabled_monitors() == ["policy"]
    d["policy"]["starvation_stop_ms"] = -1  # still type- and bound-checked
    with pytest.raises(ConfigError, match="policy.starvation_stop_ms"):
        SafetySettings.from_dict(d, g1, "g1.yaml")


def test_switches_and_several_disabled_groups_are_all_listed(g1, raw):
    d = copy.deepcopy(raw)
    d["joints"]["limit_monitor"] = False
    d["motors"]["error_monitor"] = False
    d["battery"] = {"enabled": False}
    s = SafetySettings.from_dict(d, g1, "g1.yaml")
    assert s.disabled_monitors() == ["joints.limit_monitor", "motors.error_monitor", "battery"]
    c = s.to_cpp(g1)
    assert not c.joint_limit_monitor and not c.motor_error_monitor and c.velocity_fault_scale == 1.2
    assert [path for path, _ in SafetySettings.monitor_list()] == [
        "state", "attitude", "joints", "joints.limit_monitor", "motors", "motors.error_monitor", "battery", "policy",
        "loop", "limiter", "event_log", "event_log.write_monitor"]


@pytest.mark.parametrize("path", ["state.timeout_ms", "attitude.fall_rate_rad_s", "battery.stop_v",
                                  "policy.starvation_hold_ms", "loop.overrun_window_ticks", "limiter.rate_limit_scale"])
def test_zero_no_longer_means_off(g1, raw, path):
    d = copy.deepcopy(raw)
    section, name = path.split(".")
    d[section][name] = 0
    with pytest.raises(ConfigError) as ei:
        SafetySettings.from_dict(d, g1, "g1.yaml")
    assert ei.value.field == path and ei.value.found == 0


@pytest.mark.parametrize("changes,field,valid", [
    ({("attitude", "fall_tilt_deg"): 20}, "attitude.fall_tilt_deg", "> tilt_warn_deg (20)"),
    ({("attitude", "tilt_warn_deg"): 45}, "attitude.fall_tilt_deg", "> tilt_warn_deg (45)"),
    ({("loop", "overrun_max"): 500}, "loop.overrun_max", "< overrun_window_ticks (500)"),
    ({("loop", "overrun_window_ticks"): 2000}, "loop.overrun_window_ticks", "<= 1024"),
    ({("motors", "temp_warn_c"): 85}, "motors.temp_derate_c", "> temp_warn_c (85)"),
    ({("motors", "temp_stop_c"): 75}, "motors.temp_stop_c", "> temp_derate_c (80)"),
    ({("motors", "temp_stop_c"): 130}, "motors.temp_stop_c", "<= 120.0"),
    ({("battery", "warn_v"): 41.6}, "battery.warn_v", "> stop_v (41.6)"),
    ({("policy", "starvation_stop_ms"): 100}, "policy.starvation_stop_ms", "> starvation_hold_ms (100)"),
    ({("limiter", "rate_limit_scale"): 0}, "limiter.rate_limit_scale", "> 0.0"),
    ({("limiter", "rate_limit_scale"): 11}, "limiter.rate_limit_scale", "<= 10.0"),
    ({("joints", "velocity_fault_scale"): 0.5}, "joints.velocity_fault_scale", ">= 1.0"),
    ({("state", "enabled"): "off"}, "state.enabled", "true or false"),
])
def test_cross_field_and_bound_checks_name_one_field(g1, raw, changes, field, valid):
    d = copy.deepcopy(raw)
    for (section, name), value in changes.items():
        d[section][name] = value
    with pytest.raises(ConfigError) as ei:
        SafetySettings.from_dict(d, g1, "g1.yaml")
    e = ei.value
    assert e.field == field and valid in e.valid, str(e)
    assert str(e).count("field '") == 1


def test_cross_field_checks_of_a_disabled_group_do_not_apply(g1, raw):
    d = copy.deepcopy(raw)
    d["attitude"] = {"enabled": False, "tilt_warn_deg": 40, "fall_tilt_deg": 20}
    assert SafetySettings.from_dict(d, g1, "g1.yaml").fall_tilt_deg == 0.0

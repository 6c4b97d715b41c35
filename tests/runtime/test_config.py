"""Robot configs load, and each bad field gives an error naming file, field, value and what is valid."""

import copy
from pathlib import Path

import pytest
import yaml
from vertebra.runtime.config import ConfigError, RobotConfig, available_robots

G1 = Path(__file__).resolve().parents[2] / "configs" / "robots" / "g1.yaml"


@pytest.fixture(scope="module")
def g1_data():
    return yaml.safe_load(G1.read_text())


def test_shipped_robots_load_with_motor_order_and_urdf_limits():
    assert {"g1", "go2"} <= set(available_robots())
    g1 = RobotConfig.load("g1")
    assert g1.n_joints == 29
    assert g1.joint_names[:6] == ["left_hip_pitch_joint", "left_hip_roll_joint", "left_hip_yaw_joint",
                                  "left_knee_joint", "left_ankle_pitch_joint", "left_ankle_roll_joint"]
    assert g1.joint_names[12:15] == ["waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint"]
    assert g1.joint_names[15] == "left_shoulder_pitch_joint" and g1.joint_names[22] == "right_shoulder_pitch_joint"
    go2 = RobotConfig.load("go2")
    assert go2.n_joints == 12
    # Go2 motor order is FR, FL, RR, RL (not the URDF's FL, FR, RL, RR)
    assert [n.split("_")[0] for n in go2.joint_names[::3]] == ["FR", "FL", "RR", "RL"]
    for cfg in (g1, go2):
        for j in cfg.joints:
            assert j.q_min_rad <= j.default_rad <= j.q_max_rad
            assert j.kp >= 0 and j.kd >= 0 and j.tau_max_nm > 0


def mutate(data, path, value):
    d = copy.deepcopy(data)
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


DELETE = object()

CASES = [
    # (path, new value, expected field in the error, text expected in 'valid')
    (("name",), DELETE, "name", "required"),
    (("name",), "G1 robot", "name", "matching"),
    (("control_rate_hz",), "fast", "control_rate_hz", "finite number"),
    (("control_rate_hz",), 20, "control_rate_hz", ">= 50"),
    (("urdf", "package"), "ros-descriptions", "urdf.package", "example-robot-data or repo"),
    (("urdf", "path"), "robots/g1_description/urdf/nope.urdf", "urdf.path", "URDF file"),
    (("joints", 0, "name"), "lef_hip_pitch_joint", "joints", "left_hip_pitch_joint"),
    (("joints", 1, "name"), "left_hip_pitch_joint", "joints[1].name", "not already listed"),
    (("joints", 3, "motor"), 7, "joints[3].motor", "motor-index order"),
    (("joints", 0, "q_max_rad"), -3.0, "joints[0].q_max_rad", "greater than q_min_rad"),
    (("joints", 0, "q_min_rad"), -3.0, "joints[0].q_min_rad", "URDF lower limit"),
    (("joints", 0, "tau_max_nm"), 500, "joints[0].tau_max_nm", "URDF effort limit"),
    (("joints", 0, "dq_max_rad_s"), 0, "joints[0].dq_max_rad_s", "> 0"),
    (("joints", 0, "default_rad"), 2.9, "joints[0].default_rad", "<= 2.8798"),
    (("joints", 0, "kp"), -1, "joints[0].kp", ">= 0"),
    (("joints", 0, "kd"), float("nan"), "joints[0].kd", "finite number"),
    (("joints", 0, "stiffness"), 5, "joints[0].stiffness", "a known field"),
    (("frames", "feet"), ["left_foot"], "frames.feet[0]", "a frame of the URDF"),
    (("frames", "imu"), "imu_link", "frames.imu", "left_ankle_roll_link"),
    (("sim", "sim_rate_hz"), -1, "sim.sim_rate_hz", ">= 100"),
    (("sim", "joint_dynamics"), [{"match": "hip", "armature_kg_m2": 0.01, "damping_nm_s_rad": 0.1,
                                  "frictionloss_nm": 0.0}], "sim.joint_dynamics", "covering every joint"),
    (("sim", "joint_dynamics", 0, "match"), "hip(", "sim.joint_dynamics[0].match", "regular expression"),
    (("sim", "hoist", "clearance_m"), 5, "sim.hoist.clearance_m", "<= 1.0"),
    (("sim", "cameras", 0, "xyaxes"), [1, 0, 0], "sim.cameras[0].xyaxes", "6 finite numbers"),
    (("wheels",), 4, "wheels", "a known field"),
]


@pytest.mark.parametrize("path,value,field,valid", CASES, ids=[".".join(map(str, c[0])) + f"={c[1]!r}"[:30] for c in CASES])
def test_each_bad_field_is_named(g1_data, tmp_path, path, value, field, valid):
    bad = tmp_path / "bad_g1.yaml"
    bad.write_text(yaml.safe_dump(mutate(g1_data, path, value)))
    with pytest.raises(ConfigError) as ei:
        RobotConfig.load(bad)
    e = ei.value
    assert e.file == str(bad)
    assert e.field == field
    assert valid in e.valid or valid in str(e)
    assert str(bad) in str(e) and field in str(e)
    if value is not DELETE and not isinstance(value, (list, dict)) and e.field != "joints":
        assert repr(value) in str(e)  # the value found is quoted


def test_unknown_robot_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="one of: .*g1.*go2"):
        RobotConfig.load("atlas")


def test_invalid_yaml_is_reported(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: g1\njoints: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        RobotConfig.load(p)


def test_sim_rate_must_be_an_integer_multiple_of_the_control_rate(g1_data, tmp_path):
    for rate in (2100, 250):
        bad = tmp_path / "bad_g1.yaml"
        bad.write_text(yaml.safe_dump(mutate(g1_data, ("sim", "sim_rate_hz"), rate)))
        with pytest.raises(ConfigError) as ei:
            RobotConfig.load(bad)
        assert ei.value.field == "sim.sim_rate_hz" and ei.value.found == rate
        assert "an integer multiple of control_rate_hz (500) and >= it" in ei.value.valid
    ok = tmp_path / "ok_g1.yaml"
    ok.write_text(yaml.safe_dump(mutate(g1_data, ("sim", "sim_rate_hz"), 500)))
    assert RobotConfig.load(ok).sim.sim_rate_hz == 500.0


# What build_wbc_config gave for the shipped robots before the WBC section moved onto the schema
# (recorded with the old hand-written reader; tick_iteration_budget came later and is not set by the files; the
# G1 eps_abs went from 1e-6 to 1e-4 with walking, docs/walking.md).
RECORDED_WBC = {
    "g1": {"balance_guard_full_m": 0.015, "balance_guard_scale": 10.0, "balance_guard_start_m": 0.04,
           "base": (60.0, 15.0, [0.0, 0.0, 100.0, 50.0, 50.0, 20.0]), "base_frame": "pelvis",
           "com": (60.0, 15.0, [100.0, 100.0, 100.0, 0.0, 0.0, 0.0]), "contact_ramp_s": 0.1, "control_rate_hz": 500.0,
           "eliminate_contacts": True, "eps_abs": 1e-04, "flat_feet": True,
           "foot_frames": ["left_ankle_roll_link", "right_ankle_roll_link"], "friction": 0.7,
           "hand_frames": ["left_rubber_hand", "right_rubber_hand"],
           "hands": (150.0, 25.0, [100.0, 100.0, 100.0, 20.0, 20.0, 20.0]), "limit_horizon_s": 0.05,
           "hand_posture_scale": 0.05, "hand_aim_frames": ["left_shoulder_pitch_link", "right_shoulder_pitch_link"],
           "max_consecutive_failures": 10, "max_iter": 50, "max_normal_force_n": 1500.0, "max_position_error_m": 0.05,
           "max_rotation_error_rad": 0.3, "min_normal_force_n": 10.0,
           "posture": (40.0, 12.0, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), "qp_backend": 0, "reg_ddq": 1e-06,
           "reg_force": 1e-05, "sole_half_length_m": 0.08, "sole_half_width_m": 0.025,
           "sole_offset_m": [0.035, 0.0, -0.035],
           "swing_foot": (200.0, 28.0, [500.0, 500.0, 500.0, 100.0, 100.0, 100.0]),
           "torso": (60.0, 15.0, [0.0, 0.0, 0.0, 20.0, 20.0, 10.0]), "torso_frame": "torso_link",
           "armature": [0.0102, 0.0251, 0.0102, 0.0251, 0.0072, 0.0072, 0.0102, 0.0251, 0.0102, 0.0251, 0.0072, 0.0072,
                        0.0102, 0.0072, 0.0072, 0.0036, 0.0036, 0.0036, 0.0036, 0.0036, 0.0043, 0.0043, 0.0036, 0.0036,
                        0.0036, 0.0036, 0.0036, 0.0043, 0.0043],
           "out_kd": [2.5, 2.5, 2.5, 3.0, 2.5, 2.5, 2.5, 2.5, 2.5, 3.0, 2.5, 2.5, 1.5, 1.5, 1.5, 0.75, 0.75, 0.75, 0.75,
                      0.75, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75, 0.75, 0.25, 0.25],
           "out_kp": [20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 15.0, 15.0, 15.0, 6.0,
                      6.0, 6.0, 6.0, 6.0, 2.0, 2.0, 6.0, 6.0, 6.0, 6.0, 6.0, 2.0, 2.0]},
    "go2": {"balance_guard_full_m": 0.015, "balance_guard_scale": 10.0, "balance_guard_start_m": 0.04,
            "base": (300.0, 35.0, [0.0, 0.0, 1000.0, 1000.0, 1000.0, 1000.0]), "base_frame": "base",
            "com": (60.0, 15.0, [20.0, 20.0, 0.0, 0.0, 0.0, 0.0]), "contact_ramp_s": 0.1, "control_rate_hz": 500.0,
            "eliminate_contacts": True, "eps_abs": 1e-06, "flat_feet": False,
            "foot_frames": ["FR_foot", "FL_foot", "RR_foot", "RL_foot"], "friction": 0.6, "hand_frames": [],
            "hand_posture_scale": 1.0, "hand_aim_frames": [],
            "hands": (0.0, 0.0, [0.0] * 6), "limit_horizon_s": 0.05, "max_consecutive_failures": 10, "max_iter": 50,
            "max_normal_force_n": 500.0, "max_position_error_m": 0.05, "max_rotation_error_rad": 0.3,
            "min_normal_force_n": 5.0, "posture": (40.0, 12.0, [0.05, 0.0, 0.0, 0.0, 0.0, 0.0]), "qp_backend": 0,
            "reg_ddq": 1e-06, "reg_force": 1e-05, "sole_half_length_m": 0.0, "sole_half_width_m": 0.0,
            "sole_offset_m": [0.0, 0.0, 0.0], "swing_foot": (200.0, 28.0, [500.0, 500.0, 500.0, 0.0, 0.0, 0.0]),
            "torso": (0.0, 0.0, [0.0] * 6), "torso_frame": "",
            "armature": [0.01, 0.01, 0.024, 0.01, 0.01, 0.024, 0.01, 0.01, 0.024, 0.01, 0.01, 0.024],
            "out_kd": [2.0] * 12, "out_kp": [8.0] * 12},
}


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_shipped_wbc_sections_give_the_recorded_cpp_config(robot):
    from vertebra.runtime.wbc import build_wbc_config

    c = build_wbc_config(RobotConfig.load(robot))
    for name, want in RECORDED_WBC[robot].items():
        got = getattr(c, name)
        if isinstance(want, tuple):
            got = (got.kp, got.kd, list(got.weight))
        elif isinstance(want, list):
            got = list(got)
        assert got == want, name


WBC_KNOBS = {  # schema path under wbc -> the C++ WbcConfig field it sets
    ("solver", "max_iter"): "max_iter", ("solver", "eps_abs"): "eps_abs", ("solver", "reg_ddq"): "reg_ddq",
    ("solver", "reg_force"): "reg_force", ("solver", "max_consecutive_failures"): "max_consecutive_failures",
    ("solver", "eliminate_contacts"): "eliminate_contacts",
    ("limits", "max_position_error_m"): "max_position_error_m",
    ("limits", "max_rotation_error_rad"): "max_rotation_error_rad", ("limits", "limit_horizon_s"): "limit_horizon_s",
    ("balance_guard", "start_m"): "balance_guard_start_m", ("balance_guard", "full_m"): "balance_guard_full_m",
    ("balance_guard", "scale"): "balance_guard_scale",
}
WBC_TOP_KNOBS = {"hand_posture_scale": "hand_posture_scale", "hand_aim": "hand_aim_frames"}  # wbc.<name>


def test_wbc_knob_defaults_are_the_cpp_defaults():
    from vertebra import _rt
    from vertebra.runtime.config import WbcSettings

    cpp = _rt.WbcConfig()
    rows = {r.path: r for r in WbcSettings.describe()}
    for (section, name), cpp_name in WBC_KNOBS.items():
        declared = WbcSettings.declared_fields[section].kind.declared_fields[name].default
        assert declared == getattr(cpp, cpp_name), (section, name)
        assert rows[f"{section}.{name}"].doc
    for name, cpp_name in WBC_TOP_KNOBS.items():
        declared = WbcSettings.declared_fields[name].default
        assert declared == getattr(cpp, cpp_name), name
        assert rows[name].doc
    solver = WbcSettings.declared_fields["solver"].kind
    assert solver.declared_fields["qp_backend"].default == "auto" and cpp.qp_backend == 0
    from vertebra.runtime.wbc import build_wbc_config

    built = build_wbc_config(RobotConfig.load("g1"))  # knobs left null keep the controller's own defaults
    assert (built.tick_iteration_budget, built.warm_max_iter, built.inner_max_iter) == (
        cpp.tick_iteration_budget, cpp.warm_max_iter, cpp.inner_max_iter)


def test_wbc_knobs_are_settable_from_yaml(g1_data, tmp_path):
    from vertebra.runtime.wbc import build_wbc_config

    d = copy.deepcopy(g1_data)
    d["wbc"]["solver"] = {"max_iter": 80, "eps_abs": "1e-7", "reg_ddq": 2e-6, "reg_force": 3e-5,
                          "max_consecutive_failures": 4, "eliminate_contacts": False, "qp_backend": "primal_ldlt",
                          "tick_iteration_budget": 90, "warm_max_iter": 7, "inner_max_iter": 12}
    d["wbc"]["limits"] = {"max_position_error_m": 0.08, "max_rotation_error_rad": 0.4, "limit_horizon_s": 0.04}
    d["wbc"]["balance_guard"] = {"start_m": 0.05, "full_m": 0.01, "scale": 1.0}
    p = tmp_path / "g1_knobs.yaml"
    p.write_text(yaml.safe_dump(d))
    c = build_wbc_config(RobotConfig.load(p))
    assert (c.max_iter, c.eps_abs, c.reg_ddq, c.reg_force) == (80, 1e-7, 2e-6, 3e-5)
    assert (c.max_consecutive_failures, c.eliminate_contacts, c.qp_backend) == (4, False, 2)
    assert (c.max_position_error_m, c.max_rotation_error_rad, c.limit_horizon_s) == (0.08, 0.4, 0.04)
    assert (c.balance_guard_start_m, c.balance_guard_full_m, c.balance_guard_scale) == (0.05, 0.01, 1.0)
    assert (c.tick_iteration_budget, c.warm_max_iter, c.inner_max_iter) == (90, 7, 12)


@pytest.mark.parametrize("path,value,field,valid", [
    (("wbc", "solver", "max_iter"), 0, "wbc.solver.max_iter", "an integer >= 1"),
    (("wbc", "solver", "eps_abs"), 0.0, "wbc.solver.eps_abs", "> 0.0"),
    (("wbc", "solver", "qp_backend"), "fast", "wbc.solver.qp_backend", "one of auto"),
    (("wbc", "solver", "max_iters"), 5, "wbc.solver.max_iters", "a known field: eliminate_contacts, eps_abs, inner_max_iter, max_c"),
    (("wbc", "limits", "max_rotation_error_rad"), 4.0, "wbc.limits.max_rotation_error_rad", "<= 3.14159"),
    (("wbc", "balance_guard", "full_m"), 0.05, "wbc.balance_guard.full_m", "less than start_m (0.04)"),
    (("wbc", "contacts", "max_normal_force_n"), 5, "wbc.contacts.max_normal_force_n", "greater than min_normal_force"),
    (("wbc", "contacts", "sole_half_width_m"), 0.001, "wbc.contacts.sole_half_width_m", ">= 0.005"),
    (("wbc", "tasks", "com", "weight"), [1, 1], "wbc.tasks.com.weight", "a list of 3 finite numbers >= 0"),
    (("wbc", "tasks", "hands"), DELETE, "wbc.tasks.hands", "hands when frames.hands lists hands"),
    (("wbc", "hand_aim"), ["left_shoulder_pitch_link"], "wbc.hand_aim", "one shoulder frame per hand (2"),
    (("wbc", "hand_aim"), ["left_shoulder_pitch_link", "right_shoulder"], "wbc.hand_aim[1]", "a frame of the URDF"),
    (("wbc", "hand_posture_scale"), 1.5, "wbc.hand_posture_scale", "<= 1"),
])
def test_bad_wbc_fields_are_named(g1_data, tmp_path, path, value, field, valid):
    d = copy.deepcopy(g1_data)
    d["wbc"].setdefault(path[1], {})  # the optional sections (solver, limits, balance_guard) are absent
    bad = tmp_path / "bad_g1.yaml"
    bad.write_text(yaml.safe_dump(mutate(d, path, value)))
    with pytest.raises(ConfigError) as ei:
        RobotConfig.load(bad)
    assert ei.value.field == field and valid in ei.value.valid


def test_the_python_wbc_settings_and_the_cpp_config_have_different_names():
    from vertebra import _rt
    from vertebra.runtime import config

    assert not hasattr(config, "WbcConfig") and hasattr(_rt, "WbcConfig")
    assert isinstance(RobotConfig.load("g1").wbc, config.WbcSettings)


def test_config_dir_prefers_the_package_copy(tmp_path, monkeypatch):
    import vertebra
    from vertebra.runtime.config import CONFIG_DIR, find_config_dir

    assert CONFIG_DIR == find_config_dir() and (CONFIG_DIR / "robots" / "g1.yaml").is_file()
    installed = tmp_path / "site" / "vertebra"
    (installed / "configs" / "robots").mkdir(parents=True)
    monkeypatch.setattr(vertebra, "__path__", [str(installed), *vertebra.__path__])
    assert find_config_dir() == installed / "configs"

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

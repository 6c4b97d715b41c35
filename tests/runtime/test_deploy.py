"""Deploy configs (configs/deploy/<name>.yaml): robot, driver by registered type, safety, controller,
policy and loop options, validated on load."""

import shutil

import pytest
import yaml
from vertebra.drivers.registry import MockDriverConfig, MujocoDriverConfig
from vertebra.runtime.config import CONFIG_DIR, ConfigError, RobotConfig
from vertebra.runtime.deploy import DeployConfig, available_deploys
from vertebra.runtime.errors import MissingFieldsError


def write(tmp_path, **fields):
    d = {"robot": "go2", "driver": {"type": "mock"}, **fields}
    p = tmp_path / "deploy.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


@pytest.mark.parametrize("name,robot", [("g1_sim", "g1"), ("go2_sim", "go2")])
def test_shipped_deploy_configs_load(name, robot):
    assert name in available_deploys()
    d = DeployConfig.load(name)
    assert d.robot_config().name == robot and d.safety_path == CONFIG_DIR / "safety" / f"{robot}.yaml"
    assert isinstance(d.driver, MujocoDriverConfig) and d.driver["type"] == "mujoco" and not d.driver.noise
    assert d.controller == "pd" and d.policy is None and d.policy_path is None
    assert d.loop.lockstep is False and d.rate_hz == d.robot_config().control_rate_hz == 500.0
    assert d.safety_settings().disabled_monitors() == []
    c = d.loop_config()
    assert c.rate_hz == 500.0 and not c.lockstep


def test_unknown_driver_types_list_the_registered_ones(tmp_path):
    with pytest.raises(ConfigError) as ei:
        DeployConfig.load(write(tmp_path, driver={"type": "dds"}))
    e = ei.value
    assert e.field == "driver.type" and e.found == "dds"
    assert e.valid.startswith("a registered driver: ") and "mock" in e.valid and "mujoco" in e.valid
    with pytest.raises(MissingFieldsError) as ei:
        DeployConfig.load(write(tmp_path, driver={"noise": True}))
    assert ei.value.fields == ["driver.type"]


def test_the_driver_section_is_validated_by_the_driver_class(tmp_path):
    d = DeployConfig.load(write(tmp_path, driver={"type": "mock", "joint_inertia_kg_m2": 0.2}))
    assert isinstance(d.driver, MockDriverConfig) and d.driver.joint_inertia_kg_m2 == 0.2
    with pytest.raises(ConfigError) as ei:
        DeployConfig.load(write(tmp_path, driver={"type": "mujoco", "command_latency_ms": -5}))
    assert ei.value.field == "driver.command_latency_ms" and ei.value.found == -5
    with pytest.raises(ConfigError, match="a known field: battery_v, command_latency_ms, furniture, noise, standing_height_m"):
        DeployConfig.load(write(tmp_path, driver={"type": "mujoco", "latency_ms": 5}))


def test_keep_out_boxes_reach_the_runtime_and_bad_ones_are_named(tmp_path):
    from vertebra.runtime.runtime import Runtime

    table = {"name": "table", "center_m": [0.33, 0.0, 0.4], "half_m": [0.1, 0.32, 0.4]}
    d = DeployConfig.load(write(tmp_path, robot="g1", controller="wbc", keep_out=[table],
                                driver={"type": "mujoco", "furniture": [table]}))
    _, kw = Runtime.deploy_arguments(d)
    assert [b.name for b in kw["keep_out"]] == ["table"] and kw["keep_out"][0].half_m == [0.1, 0.32, 0.4]
    assert [b.name for b in d.driver.furniture] == ["table"]
    with pytest.raises(ConfigError) as ei:
        DeployConfig.load(write(tmp_path, robot="g1", controller="wbc", keep_out=[{**table, "half_m": [0.1, 0.0, 0.4]}]))
    assert ei.value.field == "keep_out[0].half_m"
    with pytest.raises(MissingFieldsError) as ei:
        DeployConfig.load(write(tmp_path, keep_out=[{"name": "table"}]))
    assert ei.value.fields == ["keep_out[0].center_m", "keep_out[0].half_m"]


def test_a_mock_deploy_builds_its_driver_and_loop(tmp_path):
    d = DeployConfig.load(write(tmp_path, loop={"rate_hz": 250, "lockstep": True, "cpu": 0}))
    assert d.rate_hz == 250.0
    c = d.loop_config()
    assert (c.rate_hz, c.lockstep, c.cpu) == (250.0, True, 0)
    assert d.build_driver() is not None


def test_the_mujoco_driver_finds_its_standing_height_when_not_given():
    from vertebra import _rt

    robot = RobotConfig.load("go2")
    model = _rt.RobotModel(str(robot.urdf_path), robot.joint_names)
    standing = model.standing_base_height(robot.column("default_rad"), robot.foot_frames, robot.sole_offset_m)
    assert MujocoDriverConfig().hang_height_m(robot) == pytest.approx(standing + robot.sim.hoist.clearance_m)
    assert MujocoDriverConfig(standing_height_m=0.5).hang_height_m(robot) == pytest.approx(
        0.5 + robot.sim.hoist.clearance_m)


@pytest.mark.parametrize("fields,field,valid", [
    ({"robot": "atlas"}, "robot", "one of: g1, go2"),
    ({"robot": "nowhere/robot.yaml"}, "robot", "a robot YAML file"),
    ({"safety": "g3"}, "safety", "a name in configs/safety/ (g1, go2)"),
    ({"policy": "nope"}, "policy", "noop"),
    ({"controller": "PD!"}, "controller", "matching [a-z][a-z0-9_]*"),
    ({"loop": {"rate_hz": 10}}, "loop.rate_hz", ">= 50.0"),
    ({"loop": {"lockstep": "yes please"}}, "loop.lockstep", "true or false"),
    ({"loop": {"period_s": 0.002}}, "loop.period_s", "a known field: cpu, lockstep, rate_hz, realtime_priority"),
    ({"record": {"fsync_s": 5}}, "record.fsync_s", "<= 1.0"),
    ({"record": {"every_ticks": 0}}, "record.every_ticks", ">= 1"),
    ({"record": {"drir": "/data"}}, "record.drir", "a known field: cameras, controller_hz, dir, enabled"),
    ({"robot": "g1", "record": {"cameras": [{"name": "belly"}]}}, "record.cameras[0].name", "a camera of g1: head"),
    ({"record": {"cameras": [{"name": "head", "fps": 0}]}}, "record.cameras[0].fps", ">= 1.0"),
    ({"serial": "G1 0042"}, "serial", "matching"),
    ({"speed": 1}, "speed", "a known field: active_policy, control, controller, driver, guard, keep_out, loop, policy, policy_remote, record, "
     "robot, safety, serial, service, use_estimator"),
])
def test_bad_deploy_fields_are_named(tmp_path, fields, field, valid):
    with pytest.raises(ConfigError) as ei:
        DeployConfig.load(write(tmp_path, **fields))
    assert ei.value.field == field and valid in ei.value.valid, str(ei.value)
    assert ei.value.file == str(tmp_path / "deploy.yaml")


def test_controller_is_checked_against_the_callers_modes(tmp_path):
    p = write(tmp_path, controller="wbc")
    assert DeployConfig.load(p, controllers=["pd", "wbc"]).controller == "wbc"
    with pytest.raises(ConfigError, match="field 'controller': found 'wbc'; valid: one of: pd, locomotion"):
        DeployConfig.load(p, controllers=["pd", "locomotion"])


def test_policy_and_paths_relative_to_the_deploy_file(tmp_path):
    safety = yaml.safe_load((CONFIG_DIR / "safety" / "go2.yaml").read_text())
    safety["battery"] = {"enabled": False}
    (tmp_path / "bench_safety.yaml").write_text(yaml.safe_dump(safety))
    shutil.copy(CONFIG_DIR / "robots" / "go2.yaml", tmp_path / "my_go2.yaml")
    d = DeployConfig.load(write(tmp_path, robot="my_go2.yaml", safety="bench_safety.yaml", policy="noop"))
    assert d.robot_config().file == str(tmp_path / "my_go2.yaml")
    assert d.safety_path == tmp_path / "bench_safety.yaml"
    assert d.safety_settings().disabled_monitors() == ["battery"]
    assert d.policy_path == CONFIG_DIR / "policies" / "noop.yaml"


def test_errors_in_the_named_files_name_those_files(tmp_path):
    (tmp_path / "empty_safety.yaml").write_text("robot: go2\n")
    with pytest.raises(MissingFieldsError) as ei:
        DeployConfig.load(write(tmp_path, safety="empty_safety.yaml"))
    assert ei.value.file == str(tmp_path / "empty_safety.yaml") and "state" in ei.value.fields


def test_unknown_deploy_names_list_the_shipped_ones():
    with pytest.raises(ConfigError, match="one of: .*g1_sim.*go2_sim"):
        DeployConfig.load("moon_base")


def test_the_description_lists_each_drivers_fields():
    rows = {r.path for r in DeployConfig.describe()}
    assert {"driver<mock>.joint_inertia_kg_m2", "driver<mujoco>.command_latency_ms", "loop.rate_hz"} <= rows


def test_a_policy_server_for_another_robot_is_refused(tmp_path, monkeypatch):
    from vertebra.runtime import deploy

    cfgs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, cfgs)
    (cfgs / "policies" / "pose.yaml").write_text(
        "robot: go2\npolicies:\n  pose: {kind: package, path: policies/packages/go2_pose}\n")
    monkeypatch.setattr(deploy, "CONFIG_DIR", cfgs)
    with pytest.raises(ConfigError, match="policy.*a policy server for g1 \\(pose.yaml serves go2\\)"):
        DeployConfig.load(write(tmp_path, robot="g1", safety="g1", policy="pose"))

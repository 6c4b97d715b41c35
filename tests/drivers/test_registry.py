import pytest
from vertebra import _rt
from vertebra.drivers.registry import available_drivers, driver_config
from vertebra.runtime.config import RobotConfig, loop_config, robot_params


def test_drivers_are_registered_by_name_and_unknown_names_list_them():
    assert {"mock", "mujoco"} <= set(available_drivers())
    with pytest.raises(ValueError, match="unknown driver 'dds'; drivers are: mock, mujoco"):
        driver_config("dds")


def test_driver_configs_validate_themselves():
    with pytest.raises(ValueError, match="joint_inertia_kg_m2"):
        driver_config("mock", joint_inertia_kg_m2=0.0)
    with pytest.raises(ValueError, match="command_latency_ms"):
        driver_config("mujoco", standing_height_m=0.3, command_latency_ms=-5)


def test_a_robot_runs_on_the_mock_driver_built_from_its_config():
    robot = RobotConfig.load("go2")
    driver = driver_config("mock").build(robot, 500.0)
    driver.activate()  # build() configures; the runtime (here: the test) activates
    loop = _rt.RtLoop(driver, robot_params(robot), loop_config(500.0, lockstep=True))
    loop.set_enabled(True)  # the operator's enable: the arming gate
    loop.request_mode(_rt.Mode.INTERPOLATE, 0.5, robot.column("default_rad"))
    loop.run_ticks(600)
    s = loop.snapshot()
    assert s["request_status"] == "ok" and s["faults"] == []
    assert s["state"]["q"] == pytest.approx(robot.column("default_rad"), abs=1e-3)

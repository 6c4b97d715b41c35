"""The floating-base state estimator (cpp/estimation/estimator.hpp): what the controller stands on
without the simulator's truth. Lockstep simulation; the truth is used only to judge the estimate."""

import math

import numpy as np
import pytest
from vertebra import _rt
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.estimation import EstimatorErrorTracker, build_estimator, build_estimator_config
from vertebra.runtime.sim_runtime import SimRuntime


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_the_estimate_follows_the_robot_from_the_hoist_to_standing(robot):
    with SimRuntime(robot, controller="pd", use_estimator=True) as rt:
        res = rt.stand_up(hold_s=2.0)
        snap = rt.loop.snapshot()
        assert snap["faults"] == [] and snap["estimate_used"] and snap["base"]["source"] == "estimate"
        est, st = snap["estimate"], snap["state"]
        assert est["valid"] and all(est["contact"]), est  # every foot on the ground
        assert abs(est["base_pos"][2] - st["base_pos"][2]) < 0.005
        assert np.linalg.norm(np.asarray(est["base_lin_vel"]) - st["base_lin_vel"]) < 0.02
        # Standing still: the estimate drifts no more than the robot does.
        tracker = EstimatorErrorTracker()
        rt.wait(5.0, on_sample=lambda s: tracker(s, s["state"]), sample_every_s=0.002)
        e = tracker.summary()
        assert e["samples"] == 2500 and e["vel_rmse_m_s"] < 0.01 and e["height_err_max_m"] < 0.005, e
        assert e["xy_drift_max_m"] < 0.005, e
        assert res.hold_max_tilt_deg < 5.0


def test_a_hoisted_robot_has_no_foot_in_contact_and_its_velocity_does_not_drift():
    with SimRuntime("g1", controller="pd", use_estimator=True) as rt:
        rt.wait(0.5)  # hanging limp in the hoist (legs swinging: the static force estimate means nothing yet)
        rt.enable()
        rt.request(_rt.Mode.INTERPOLATE, 1.0, rt.default_pose)
        rt.wait(2.0)  # legs held in the default pose, feet in the air
        est = rt.loop.snapshot()["estimate"]
        assert est["valid"] and not any(est["contact"]), est
        truth = rt.loop.snapshot()["state"]["base_lin_vel"]
        assert np.linalg.norm(np.asarray(est["base_lin_vel"]) - truth) < 0.05, (est, truth)


def test_the_g1_contact_estimate_follows_a_released_foot():
    """The G1's lowstate has no foot force: its contact comes from the leg torques and the controller's plan."""
    with SimRuntime("g1", controller="wbc", use_estimator=True) as rt:
        rt.stand_up(hold_s=0.5)
        rt.engage_wbc()
        rt.wait(0.5)
        st = rt.wb.status()
        com = np.asarray(st["com"])
        left = np.asarray(rt.loop.snapshot()["estimate"]["foot_pos"][0])
        rt.wb.set_target("com", com + np.array([0.0, left[1] - com[1], 0.0]) * 0.9)  # over the left foot
        rt.wait(2.0)
        rt.wb.set_contact(rt.cfg.foot_frames[1], False)
        rt.wait(0.5)
        est = rt.loop.snapshot()["estimate"]
        assert est["contact"] == [True, False], est
        assert est["normal_force"][0] > 250.0 and abs(est["normal_force"][1]) < 30.0, est
        assert rt.loop.snapshot()["faults"] == []


def test_a_non_finite_imu_sample_is_refused_and_the_estimate_marked_invalid():
    cfg = RobotConfig.load("g1")
    model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    est = build_estimator(cfg, model, cfg.control_rate_hz)
    h = model.standing_base_height(cfg.column("default_rad"), cfg.foot_frames, cfg.sole_offset_m)
    state = {"q": cfg.column("default_rad"), "dq": [0.0] * cfg.n_joints, "tau": [0.0] * cfg.n_joints,
             "base_pos": [0, 0, h], "base_quat": [1, 0, 0, 0], "base_lin_vel": [0, 0, 0], "base_ang_vel": [0, 0, 0],
             "imu_quat": [1, 0, 0, 0], "imu_gyro": [0, 0, 0], "imu_acc": [0, 0, 9.81]}
    ok = est.update(state, None)
    assert ok["status"] == "ok" and ok["valid"]
    assert abs(ok["base_pos"][2] - h) < 0.01  # from the legs: the lowest foot on the ground
    bad = est.update({**state, "imu_acc": [0, math.nan, 9.81]}, None)
    assert bad["status"] != "ok" and not bad["valid"]
    with pytest.raises(ValueError, match="one weight per foot"):
        est.update(state, [1.0])


def test_estimator_configuration_errors_name_the_field():
    cfg = RobotConfig.load("g1")
    from vertebra.runtime.config import EstimatorSettings

    with pytest.raises(ConfigError, match="contact_off_n.*less than contact_on_n"):
        EstimatorSettings.from_dict({"contact_source": "joint_torque", "contact_on_n": 20, "contact_off_n": 30},
                                    "robot.yaml")
    with pytest.raises(ConfigError, match="contact_source"):
        EstimatorSettings.from_dict({"contact_source": "magic", "contact_on_n": 20, "contact_off_n": 10}, "robot.yaml")
    c = build_estimator_config(cfg, 500.0)
    c.foot_frames = ["left_ankle_roll_link", "no_such_foot"]
    with pytest.raises(ValueError, match="no_such_foot"):
        _rt.StateEstimator(_rt.RobotModel(str(cfg.urdf_path), cfg.joint_names), c)
    cfg.estimator = None
    with pytest.raises(ConfigError, match="estimator"):
        build_estimator_config(cfg, 500.0)
    with pytest.raises(ConfigError, match="estimator"):
        SimRuntime(cfg, controller="pd", use_estimator=True)


def test_without_truth_the_controller_runs_on_the_estimate_and_with_truth_only_when_asked():
    with SimRuntime("g1", controller="pd") as rt:  # truth exists: the estimator runs, for the report only
        rt.wait(0.1)
        snap = rt.loop.snapshot()
        assert snap["estimate"]["valid"] and not snap["estimate_used"] and snap["base"]["source"] == "truth"
        assert rt.report()["base"] == "truth"

"""Each controller mode does what it says, on the mock robot in lockstep."""

import math

import numpy as np
import pytest
from vertebra import _rt

from tests.conftest import RATE, N, arm


def cmd(loop):
    return loop.snapshot()["command"]


def request_ok(loop, *args):
    seq = loop.request_mode(*args)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["request_seq"] == seq
    return s["request_status"]


def test_zero_torque_sends_nothing_and_the_robot_sags(mock_loop):
    driver, loop = mock_loop
    loop.run_ticks(200)
    c = cmd(loop)
    for k in ("kp", "kd", "tau_ff"):
        assert np.all(c[k] == 0.0)
    assert loop.snapshot()["mode"] == "zero_torque"
    assert np.all(loop.snapshot()["state"]["q"] < -0.05)  # the constant load pulled every joint down


def test_damping_resists_motion_without_holding_pose(mock_loop):
    driver, loop = mock_loop
    loop.run_ticks(100)  # limp: joints gain speed under the load
    v_limp = np.abs(loop.snapshot()["state"]["dq"]).min()
    assert request_ok(loop, _rt.Mode.DAMPING) == "ok"
    loop.run_ticks(300)
    s = loop.snapshot()
    c = s["command"]
    assert np.all(c["kp"] == 0.0) and np.all(c["kd"] == 3.0)
    # terminal velocity under damping: load / (kd + friction)
    assert np.allclose(s["state"]["dq"], -2.0 / (3.0 + 0.1), rtol=0.05)
    assert np.abs(s["state"]["dq"]).max() < v_limp * 5


def test_interpolate_moves_along_minimum_jerk_to_the_goal(mock_loop):
    driver, loop = mock_loop
    loop.set_enabled(True)
    goal = [0.5, -0.5, 1.0, 0.0, 0.25, -1.0]
    q0 = loop.snapshot()["state"]["q"].copy()
    assert request_ok(loop, _rt.Mode.INTERPOLATE, 1.0, goal) == "ok"
    first = cmd(loop)["q"].copy()
    assert np.allclose(first, q0, atol=0.01)  # no jump on entry
    loop.run_ticks(int(0.5 * RATE) - 1)       # t = T/2: minimum jerk is exactly half way
    mid = cmd(loop)["q"]
    assert np.allclose(mid, q0 + 0.5 * (np.array(goal) - q0), atol=0.01)
    loop.run_ticks(int(0.5 * RATE) + 250)
    s = loop.snapshot()
    assert np.allclose(s["command"]["q"], goal) and np.all(s["command"]["dq"] == 0.0)
    assert s["mode_progress"] == 1.0
    # PD plus the load: settles within load/kp of the goal.
    assert np.allclose(s["state"]["q"], goal, atol=2.0 / 40.0 + 0.01)


@pytest.mark.parametrize("duration,pose,why", [
    (1.0, [3.0] + [0.0] * (N - 1), "beyond the upper limit"),
    (1.0, [math.nan] + [0.0] * (N - 1), "NaN"),
    (1.0, [0.0] * (N - 1), "wrong length"),
    (0.0, [0.0] * N, "zero duration"),
    (math.inf, [0.0] * N, "infinite duration"),
])
def test_interpolate_rejects_bad_requests(mock_loop, duration, pose, why):
    _, loop = mock_loop
    loop.set_enabled(True)
    assert request_ok(loop, _rt.Mode.INTERPOLATE, duration, pose) == "invalid_request", why
    s = loop.snapshot()
    assert s["mode"] == "zero_torque" and s["requests_rejected"] == 1


def test_hold_keeps_the_pose_it_was_given_not_the_sagged_one(mock_loop):
    _, loop = mock_loop
    loop.set_enabled(True)
    goal = [0.3] * N
    request_ok(loop, _rt.Mode.INTERPOLATE, 0.5, goal)
    loop.run_ticks(400)
    assert request_ok(loop, _rt.Mode.HOLD) == "ok"
    loop.run_ticks(1000)
    s = loop.snapshot()
    assert np.allclose(s["command"]["q"], goal)  # from the last stiff command, not the sagged measurement
    assert np.allclose(s["state"]["q"], goal, atol=0.06)
    assert np.all(s["command"]["kp"] == 40.0) and np.all(s["command"]["kd"] == 2.0)


def test_standup_from_limp_starts_at_the_measured_pose(mock_loop):
    _, loop = mock_loop
    loop.set_enabled(True)
    loop.run_ticks(50)
    q = loop.snapshot()["state"]["q"].copy()
    request_ok(loop, _rt.Mode.INTERPOLATE, 1.0, [0.3] * N)
    assert np.allclose(cmd(loop)["q"], q, atol=0.02)


def test_joint_pd_holds_until_targets_arrive_then_tracks_them(mock_loop):
    _, loop = mock_loop
    arm(loop)
    request_ok(loop, _rt.Mode.JOINT_PD)
    held = cmd(loop)["q"].copy()
    loop.run_ticks(20)
    assert np.allclose(cmd(loop)["q"], held)  # no targets yet: hold
    target = np.linspace(-0.5, 0.5, N)
    loop.set_targets(target.tolist(), [0.0] * N, [50.0] * N, [2.5] * N, [2.0] * N, 1)
    loop.run_ticks(600)
    s = loop.snapshot()
    assert s["targets_seq"] == 1
    assert np.allclose(s["command"]["q"], target)
    assert np.allclose(s["state"]["q"], target, atol=0.01)  # tau_ff cancels the load


def test_limiter_clamps_gains_and_limits_and_counts(mock_loop):
    _, loop = mock_loop
    arm(loop)
    request_ok(loop, _rt.Mode.JOINT_PD)
    loop.set_targets([5.0] * N, [50.0] * N, [1000.0] * N, [100.0] * N, [500.0] * N, 1)
    loop.run_ticks(1)
    s = loop.snapshot()
    c = s["command"]
    assert np.all(c["q"] == 2.0) and np.all(c["dq"] == 10.0)
    assert np.all(c["kp"] == 60.0) and np.all(c["kd"] == 3.0) and np.all(c["tau_ff"] == 30.0)
    assert s["clamps"] >= 1


def test_non_finite_target_is_replaced_in_the_same_tick_and_the_policy_dropped(mock_loop):
    driver, loop = mock_loop
    arm(loop)
    request_ok(loop, _rt.Mode.JOINT_PD)
    good = [0.1] * N
    loop.set_targets(good, [0.0] * N, [40.0] * N, [2.0] * N, [0.0] * N, 1)
    loop.run_ticks(5)
    bad = list(good)
    bad[2] = math.nan
    loop.set_targets(bad, [0.0] * N, [40.0] * N, [math.inf] * N, [0.0] * N, 2)
    loop.run_ticks(1)
    s = loop.snapshot()
    sent = driver.last_command
    # same tick: the NaN/Inf never reach the driver (previous finite values instead)
    assert np.all(np.isfinite(sent["q"])) and np.all(np.isfinite(sent["kd"]))
    assert sent["q"][2] == pytest.approx(0.1) and np.all(sent["kd"] == 2.0)
    assert s["clamp_counts"]["non_finite"] >= 1 and "non_finite_command" in s["active_faults"]
    assert s["raised_tick"]["non_finite_command"] == s["tick"]
    assert s["safety_mode"] == "HOLD" and s["faults"] == []  # the policy is dropped; nothing to reset
    loop.run_ticks(10)
    assert loop.snapshot()["mode"] == "hold" and np.allclose(driver.last_command["q"], 0.1)


def test_driver_failures_and_nan_state_raise_faults(mock_loop):
    driver, loop = mock_loop
    arm(loop)
    driver.set_nan_state(True)
    loop.run_ticks(1)
    s = loop.snapshot()
    # no settle keyframes configured: the stop goes straight to damping, latched
    assert "non_finite_state" in s["faults"] and s["safety_mode"] == "FAULT" and s["mode"] == "damping"
    assert np.all(np.isfinite(driver.last_command["q"]))
    driver.set_nan_state(False)
    driver.set_fail_reads(True)
    loop.reset_faults()
    loop.run_ticks(1)
    assert "driver_read" in loop.snapshot()["faults"]


def test_joint_pd_reentry_never_acts_on_stale_targets(mock_loop):
    _, loop = mock_loop
    arm(loop)
    request_ok(loop, _rt.Mode.JOINT_PD)
    loop.set_targets([1.0] * N, [0.0] * N, [40.0] * N, [2.0] * N, [2.0] * N, 1)
    loop.run_ticks(300)
    request_ok(loop, _rt.Mode.HOLD)
    request_ok(loop, _rt.Mode.INTERPOLATE, 0.5, [-0.5] * N)
    loop.run_ticks(400)
    request_ok(loop, _rt.Mode.HOLD)
    assert request_ok(loop, _rt.Mode.JOINT_PD) == "ok"
    loop.run_ticks(10)
    # the policy session's old target (1.0) is not resumed: the pose is held until new targets
    assert np.allclose(cmd(loop)["q"], -0.5)
    loop.set_targets([0.2] * N, [0.0] * N, [40.0] * N, [2.0] * N, [2.0] * N, 2)
    loop.run_ticks(1)
    assert np.allclose(cmd(loop)["q"], 0.2)


def test_interpolation_starts_inside_the_limits(mock_loop):
    driver, loop = mock_loop
    driver.set_joint_positions([2.05] + [0.0] * (N - 1))  # a limp joint hanging past its 2.0 limit
    loop.set_enabled(True)
    loop.run_ticks(1)
    request_ok(loop, _rt.Mode.INTERPOLATE, 1.0, [0.0] * N)
    s = loop.snapshot()
    assert s["command"]["q"][0] <= 2.0 and s["clamps"] == 0


@pytest.mark.parametrize("field,value,match", [
    ("q_lower", 3.0, "q_lower"), ("tau_max", math.nan, "finite"), ("dq_max", -1.0, ">= 0")])
def test_loop_refuses_inconsistent_limits(field, value, match):

    kw = dict(kp=[40.0] * N, kd=[2.0] * N, kd_damping=[3.0] * N, kp_max=[60.0] * N, kd_max=[3.0] * N,
              q_lower=[-2.0] * N, q_upper=[2.0] * N, dq_max=[10.0] * N, tau_max=[30.0] * N, default_pose=[0.0] * N)
    kw[field] = [value] + kw[field][1:]
    driver = _rt.MockDriver()
    driver.init([f"j{i}" for i in range(N)], RATE)
    with pytest.raises(ValueError, match=match):
        _rt.RtLoop(driver, _rt.RobotParams(**kw), _rt.LoopConfig())

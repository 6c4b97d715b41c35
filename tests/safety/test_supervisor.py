"""The supervisor on a mock robot (lockstep): mode table, arming gate, monitors, responses, resets."""

import json

import pytest
from vertebra import _rt

from tests.conftest import RATE, N, make_params

M = _rt.Mode
POSE = [0.3] * N


def make(**cfg):
    mock = _rt.MockDriver(joint_inertia=0.05, joint_friction=0.1, gravity_torque=2.0)
    inj = _rt.FaultInjector(mock)
    inj.init([f"j{i}" for i in range(N)], RATE)
    lc = _rt.LoopConfig()
    lc.rate_hz = RATE
    lc.lockstep = True
    sc = _rt.SafetyConfig()
    sc.state_timeout_ms = 20
    sc.set_settle([[0.0] * N], [0.4])
    sc.settle_hold_s = 0.1
    sc.motor_error_monitor = True
    sc.rate_limit_scale = 1.0
    for k, v in cfg.items():
        setattr(sc, k, v)
    loop = _rt.RtLoop(inj, make_params(), lc, sc)
    log = _rt.EventLog(loop, "")
    return inj, loop, log


def req(loop, mode, *args, stream=False):
    seq = loop.request_mode(mode, *args, stream=stream)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["request_seq"] == seq
    return s["request_status"]


def to_state(loop, name):
    """Drive the loop into a safety mode through legal steps."""
    loop.set_enabled(True)
    loop.run_ticks(1)
    if name == "PASSIVE":
        return
    if name == "DAMP":
        assert req(loop, M.DAMPING) == "ok"
        return
    if name == "ESTOP":
        loop.estop()
        loop.run_ticks(1)
        return
    assert req(loop, M.INTERPOLATE, 0.2 if name != "STANDUP" else 5.0, POSE) == "ok"
    if name == "STANDUP":
        return
    loop.run_ticks(110)
    assert req(loop, M.HOLD) == "ok"
    if name == "HOLD":
        return
    if name == "ACTIVE":
        assert req(loop, M.JOINT_PD) == "ok"
        return
    if name == "STOPPING":
        loop.request_stop()
        loop.run_ticks(1)


STATES = ["PASSIVE", "DAMP", "STANDUP", "HOLD", "ACTIVE", "STOPPING", "FAULT", "ESTOP"]
REQUESTS = {"PASSIVE": (M.ZERO_TORQUE,), "DAMP": (M.DAMPING,), "STANDUP": (M.INTERPOLATE, 0.5, POSE),
            "HOLD": (M.HOLD,), "ACTIVE": (M.JOINT_PD,)}
OK, INV, NR = "ok", "invalid_request", "not_ready"
TABLE = {  # from -> {to: answer}; the table in cpp/safety/supervisor.hpp
    "PASSIVE": {"PASSIVE": OK, "DAMP": OK, "STANDUP": OK, "HOLD": INV, "ACTIVE": INV},
    "DAMP": {"PASSIVE": OK, "DAMP": OK, "STANDUP": OK, "HOLD": INV, "ACTIVE": INV},
    "STANDUP": {"PASSIVE": INV, "DAMP": OK, "STANDUP": OK, "HOLD": NR, "ACTIVE": INV},  # interpolation unfinished
    "HOLD": {"PASSIVE": INV, "DAMP": OK, "STANDUP": OK, "HOLD": OK, "ACTIVE": OK},
    "ACTIVE": {"PASSIVE": INV, "DAMP": OK, "STANDUP": INV, "HOLD": OK, "ACTIVE": INV},
    "STOPPING": {"PASSIVE": INV, "DAMP": OK, "STANDUP": INV, "HOLD": INV, "ACTIVE": INV},
    "FAULT": {k: INV for k in REQUESTS},
    "ESTOP": {k: INV for k in REQUESTS},
}


@pytest.mark.parametrize("src", STATES)
@pytest.mark.parametrize("dst", list(REQUESTS))
def test_mode_table(src, dst):
    inj, loop, _ = make()
    if src == "FAULT":
        loop.set_enabled(True)
        inj.set_motor_error(0, 1)
        loop.run_ticks(1)
    else:
        to_state(loop, src)
    s = loop.snapshot()
    assert s["safety_mode"] == src
    answer = req(loop, *REQUESTS[dst])
    assert answer == TABLE[src][dst], (src, dst, answer)
    after = loop.snapshot()["safety_mode"]
    assert after == (dst if answer == OK else src) or (src == "STOPPING" and answer != OK)


def test_no_stiffness_before_the_arming_gate():
    inj, loop, _ = make()
    inj.set_drop_reads(True)  # no state has ever arrived
    loop.set_enabled(True)
    loop.run_ticks(1)
    assert req(loop, M.INTERPOLATE, 0.5, POSE) == NR  # enabled, but no fresh state
    inj.set_drop_reads(False)
    loop.set_enabled(False)
    loop.run_ticks(1)
    assert req(loop, M.INTERPOLATE, 0.5, POSE) == NR  # fresh state, but not enabled
    inj.set_drop_reads(True)
    loop.run_ticks(20)  # state loss while limp: latched
    assert "state_loss" in loop.snapshot()["faults"] and loop.snapshot()["safety_mode"] == "FAULT"
    loop.set_enabled(True)
    assert req(loop, M.INTERPOLATE, 0.5, POSE) == INV  # latched: an operator reset first
    assert max(loop.snapshot()["command"]["kp"]) == 0.0
    inj.set_drop_reads(False)
    loop.run_ticks(1)
    loop.reset_faults()
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "DAMP"
    assert req(loop, M.INTERPOLATE, 0.2, POSE) == OK
    assert max(loop.snapshot()["command"]["kp"]) > 0
    loop.set_enabled(False)  # disabling an armed robot stops it (settle-then-cut), never goes limp
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "STOPPING"
    loop.run_ticks(300)
    assert loop.snapshot()["safety_mode"] == "DAMP" and loop.snapshot()["faults"] == []


def test_state_loss_is_detected_within_the_timeout_plus_one_tick():
    inj, loop, _ = make(state_timeout_ms=20)
    to_state(loop, "HOLD")
    last_fresh = loop.snapshot()["tick"]
    inj.set_drop_reads(True)
    for _ in range(30):
        loop.run_ticks(1)
        if "state_loss" in loop.snapshot()["active_faults"]:
            break
    s = loop.snapshot()
    timeout_ticks = int(0.020 * RATE)
    assert s["raised_tick"]["state_loss"] - last_fresh == timeout_ticks + 1
    assert s["safety_mode"] == "STOPPING"


def test_estop_in_the_same_tick_and_by_category():
    for cut in (False, True):
        inj, loop, _ = make(estop_cut=cut)
        to_state(loop, "ACTIVE")
        loop.estop()
        loop.run_ticks(1)
        s = loop.snapshot()
        assert s["safety_mode"] == "ESTOP"
        assert max(s["command"]["kp"]) == 0.0
        assert (max(s["command"]["kd"]) == 0.0) == cut
        assert req(loop, M.HOLD) == INV  # latched until reset
        loop.reset_faults()
        loop.run_ticks(1)
        assert loop.snapshot()["safety_mode"] == "DAMP"


def test_reset_is_refused_while_the_cause_is_active_and_never_rearms():
    inj, loop, log = make()
    to_state(loop, "HOLD")
    inj.set_motor_error(2, 0x4)
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "STOPPING"
    loop.run_ticks(300)
    assert loop.snapshot()["safety_mode"] == "FAULT"
    loop.reset_faults()
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["safety_mode"] == "FAULT" and s["resets_refused"] == 1 and "motor_error" in s["faults"]
    inj.set_motor_error(2, 0)
    loop.run_ticks(1)
    loop.reset_faults()
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["safety_mode"] == "DAMP" and s["faults"] == [] and max(s["command"]["kp"]) == 0.0
    log.flush()
    actions = [json.loads(j).get("action") for _, j in log.recent(0)]
    assert "reset_refused" in actions and "reset" in actions


def test_policy_starvation_holds_then_stops():
    inj, loop, _ = make(starvation_hold_ms=40, starvation_stop_ms=200)
    to_state(loop, "HOLD")
    assert req(loop, M.JOINT_PD, stream=True) == OK
    for k in range(1, 6):
        loop.set_targets(POSE, [0.0] * N, [40.0] * N, [2.0] * N, [0.0] * N, k)
        loop.run_ticks(10)
    assert loop.snapshot()["safety_mode"] == "ACTIVE"
    t0 = loop.snapshot()["tick"]
    loop.run_ticks(30)
    s = loop.snapshot()
    assert s["safety_mode"] == "HOLD" and s["raised_tick"]["starvation_hold"] - t0 <= 21
    loop.run_ticks(100)
    s = loop.snapshot()
    assert s["safety_mode"] == "STOPPING" and "starvation_stop" in s["faults"]


def test_temperature_levels_with_hysteresis_and_derating():
    inj, loop, _ = make(temp_warn_c=60, temp_derate_c=70, temp_stop_c=80, temp_hysteresis_c=5)
    to_state(loop, "HOLD")
    inj.set_motor_temp(1, 61)
    loop.run_ticks(1)
    assert loop.snapshot()["active_faults"] == ["temperature_warn"]
    inj.set_motor_temp(1, 57)  # below 60 but not below 55: still warning
    loop.run_ticks(1)
    assert loop.snapshot()["active_faults"] == ["temperature_warn"]
    inj.set_motor_temp(1, 54)
    loop.run_ticks(1)
    assert loop.snapshot()["active_faults"] == []
    inj.set_motor_temp(1, 71)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["derated_joints"] == [1] and s["safety_mode"] == "HOLD"
    assert s["command"]["kp"][1] <= 1.5 * 40.0 * 0.5 + 1e-9  # derate_scale 0.5 on kp_max
    inj.set_motor_temp(1, 80)
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "STOPPING"


def test_a_fault_during_stopping_does_not_restart_the_stop():
    inj, loop, _ = make()
    to_state(loop, "HOLD")
    loop.request_stop()
    loop.run_ticks(50)
    started = loop.snapshot()["mode_tick"]
    inj.set_drop_reads(True)
    loop.run_ticks(30)
    s = loop.snapshot()
    assert s["safety_mode"] == "STOPPING" and s["mode_tick"] == started
    loop.run_ticks(300)
    s = loop.snapshot()
    assert s["safety_mode"] == "FAULT" and "state_loss" in s["faults"]  # ends latched


def test_events_name_every_mode_change_fault_and_clamp_burst():
    inj, loop, log = make(clamp_quiet_ticks=5)
    to_state(loop, "ACTIVE")
    loop.set_targets([9.0] * N, [0.0] * N, [40.0] * N, [2.0] * N, [0.0] * N, 1)  # beyond the limits
    loop.run_ticks(3)
    loop.set_targets(POSE, [0.0] * N, [40.0] * N, [2.0] * N, [0.0] * N, 2)
    loop.run_ticks(400)
    inj.set_motor_error(0, 1)
    loop.run_ticks(2)
    log.flush()
    evs = [json.loads(j) for _, j in log.recent(0)]
    modes = [(e["from"], e["to"], e["cause"]) for e in evs if e["kind"] == "mode"]
    assert ("PASSIVE", "STANDUP", "request") in modes and ("HOLD", "ACTIVE", "request") in modes
    assert ("ACTIVE", "STOPPING", "fault") in modes
    bursts = [e for e in evs if e["kind"] == "clamp"]
    assert bursts[0]["burst"] == "start" and "rate" in bursts[0]["clamped"]
    assert any(e["burst"] == "end" and e["clamps"] >= 3 for e in bursts)
    fault = next(e for e in evs if e["kind"] == "fault" and e["fault"] == "motor_error")
    assert fault["response"] == "stop" and fault["joint"] == 0 and fault["mode"] == "ACTIVE"
    assert all(e["seq"] > 0 and e["time"].endswith("Z") for e in evs if e["kind"] != "note")


def test_bad_safety_configs_are_refused():
    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(N)], RATE)
    sc = _rt.SafetyConfig()
    sc.set_settle([[5.0] * N], [1.0])  # outside the joint limits
    with pytest.raises(ValueError, match="outside the joint's limits"):
        _rt.RtLoop(mock, make_params(), _rt.LoopConfig(), sc)
    sc = _rt.SafetyConfig()
    sc.overrun_window_ticks = 5000
    with pytest.raises(ValueError, match="overrun_window_ticks"):
        _rt.RtLoop(mock, make_params(), _rt.LoopConfig(), sc)
    with pytest.raises(ValueError, match="unknown fault 'tilted'; faults are: driver_read"):
        _rt.SafetyConfig().set_response("tilted", "stop")
    with pytest.raises(ValueError, match="responses are: warn"):
        _rt.SafetyConfig().set_response("tilt", "panic")


def test_an_estop_takes_its_tick_whatever_else_arrived_with_it():
    inj, loop, _ = make()
    to_state(loop, "HOLD")
    loop.estop()
    loop.reset_faults()
    loop.set_enabled(True)
    seq = loop.request_mode(M.INTERPOLATE, 0.5, POSE)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["safety_mode"] == "ESTOP" and max(s["command"]["kp"]) == 0.0 and s["request_seq"] != seq
    assert not s["enabled"]  # an e-stop withdraws the operator's enable
    loop.reset_faults()
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "DAMP"
    assert req(loop, M.INTERPOLATE, 0.5, POSE) == NR  # enable again first
    loop.set_enabled(True)
    assert req(loop, M.INTERPOLATE, 0.5, POSE) == OK


def test_cutting_a_fault_stop_short_keeps_the_latch():
    inj, loop, _ = make()
    to_state(loop, "HOLD")
    inj.set_motor_error(1, 2)
    loop.run_ticks(5)
    assert loop.snapshot()["safety_mode"] == "STOPPING"
    assert req(loop, M.DAMPING) == OK
    s = loop.snapshot()
    assert s["safety_mode"] == "FAULT" and "motor_error" in s["faults"]
    inj.set_motor_error(1, 0)
    loop.run_ticks(1)
    loop.reset_faults()
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "DAMP" and loop.snapshot()["faults"] == []
    loop.request_stop()  # an operator stop after that ends in DAMP, not FAULT
    loop.set_enabled(True)
    to_state(loop, "HOLD")
    loop.request_stop()
    loop.run_ticks(300)
    assert loop.snapshot()["safety_mode"] == "DAMP"


def test_a_latched_joint_fault_is_watched_until_reset():
    inj, loop, _ = make(joint_limit_monitor=True, hard_limit_tolerance_rad=0.05)
    driver = inj.inner
    to_state(loop, "HOLD")
    for _ in range(400):  # a joint forced past its hard limit (2.0 + 0.05), through the stop
        driver.set_joint_positions([2.3] + [0.3] * (N - 1))
        loop.run_ticks(1)
    s = loop.snapshot()
    assert s["safety_mode"] == "FAULT" and "joint_hard_limit" in s["faults"]
    assert "joint_hard_limit" in s["active_faults"]  # still watched although FAULT is not armed
    loop.reset_faults()
    driver.set_joint_positions([2.3] + [0.3] * (N - 1))
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "FAULT" and loop.snapshot()["resets_refused"] == 1
    driver.set_joint_positions([0.3] * N)
    loop.run_ticks(2)
    loop.reset_faults()
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "DAMP"


def test_each_level_has_its_own_threshold_and_derating_follows_the_response_table():
    inj, loop, _ = make(temp_warn_c=0, temp_derate_c=80, temp_stop_c=90, battery_warn_v=0, battery_stop_v=40)
    to_state(loop, "HOLD")
    inj.set_motor_temp(2, 120.0)  # no warning level configured: derate and stop still act
    loop.run_ticks(1)
    s = loop.snapshot()
    assert "temperature_stop" in s["active_faults"] and s["derated_joints"] == [2] and s["safety_mode"] == "STOPPING"
    inj2, loop2, _ = make(battery_warn_v=0, battery_stop_v=40)
    to_state(loop2, "HOLD")
    inj2.set_battery_v(10.0)
    loop2.run_ticks(1)
    assert "battery_critical" in loop2.snapshot()["active_faults"]
    # derate is a response like any other: on a battery warning, derate every joint
    sc = _rt.SafetyConfig()
    assert sc.response("temperature_derate") == "derate"
    mock = _rt.MockDriver()
    inj4 = _rt.FaultInjector(mock)
    inj4.init([f"j{i}" for i in range(N)], RATE)
    sc.set_response("battery_low", "derate")
    sc.set_response("temperature_derate", "warn")
    sc.battery_warn_v, sc.battery_stop_v, sc.temp_warn_c, sc.temp_derate_c, sc.temp_stop_c = 45, 40, 60, 70, 80
    lc = _rt.LoopConfig()
    lc.lockstep = True
    loop4 = _rt.RtLoop(inj4, make_params(), lc, sc)
    inj4.set_motor_temp(0, 75.0)
    loop4.run_ticks(1)
    assert loop4.snapshot()["derated_joints"] == []
    inj4.set_battery_v(44.0)
    loop4.run_ticks(1)
    assert loop4.snapshot()["derated_joints"] == list(range(N))


def test_the_pose_counts_as_interpolated_only_once_it_is_reached():
    inj, loop, _ = make(rate_limit_scale=1.0)
    loop.set_enabled(True)
    loop.run_ticks(1)
    assert req(loop, M.INTERPOLATE, 0.004, [1.5] * N) == OK  # 4 ms profile; the rate limit needs ~150 ms
    loop.run_ticks(3)
    assert not loop.snapshot()["pose_interpolated"] and req(loop, M.HOLD) == NR
    loop.run_ticks(150)
    assert loop.snapshot()["pose_interpolated"] and req(loop, M.HOLD) == OK


def test_a_stopping_response_from_the_limiter_is_written_in_the_same_tick():
    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(N)], RATE)
    sc = _rt.SafetyConfig()
    sc.set_response("non_finite_command", "cut")
    lc = _rt.LoopConfig()
    lc.lockstep = True
    loop = _rt.RtLoop(mock, make_params(), lc, sc)
    from tests.conftest import arm

    arm(loop)
    req(loop, M.JOINT_PD)
    loop.set_targets([float("nan")] * N, [0.0] * N, [40.0] * N, [2.0] * N, [0.0] * N, 1)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["safety_mode"] == "FAULT" and s["cut"]
    assert max(mock.last_command["kp"]) == 0.0 and max(mock.last_command["kd"]) == 0.0


def test_a_disable_is_never_lost_to_a_following_enable():
    inj, loop, _ = make()
    to_state(loop, "HOLD")
    loop.set_enabled(False)
    loop.set_enabled(True)
    loop.run_ticks(1)
    assert loop.snapshot()["safety_mode"] == "STOPPING"

"""Controller modes registered by name: an open table instead of a closed enum. A mode registered
from this test module (no edit of Vertebra's files) is requested by name and runs in ACTIVE; the
supervisor's gates still apply; a refused request names the gate that failed."""

from __future__ import annotations

import pytest
from vertebra import _rt

from tests.conftest import N, RATE, arm, make_params


def lockstep_loop(**kw):
    driver = _rt.MockDriver(joint_inertia=0.05, joint_friction=0.1, gravity_torque=2.0)
    driver.init([f"j{i}" for i in range(N)], RATE)
    cfg = _rt.LoopConfig()
    cfg.rate_hz = RATE
    cfg.lockstep = True
    return driver, _rt.RtLoop(driver, make_params(), cfg)


def answer(loop, mode, *args):
    seq = loop.request_mode(mode, *args)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["request_seq"] == seq
    return s


def test_a_mode_registered_here_is_requested_by_name_and_runs_in_active():
    _, loop = lockstep_loop()
    mid = loop.register_mode("test_stand_still", _rt.HoldMode())
    assert "test_stand_still" in loop.mode_names and _rt.mode_name("test_stand_still") == "test_stand_still"
    assert mid >= 8 and "test_stand_still" in _rt.known_modes()
    arm(loop, pose=[0.3] * N)
    s = answer(loop, "test_stand_still")
    assert s["request_status"] == "ok" and s["safety_mode"] == "ACTIVE" and s["mode"] == "test_stand_still"
    loop.run_ticks(200)
    s = loop.snapshot()
    # Stiff on the entry pose (the 2 N·m load sags it by about load / kp = 0.05 rad, as HOLD does).
    assert s["safety_mode"] == "ACTIVE" and max(abs(q - 0.3) for q in s["state"]["q"]) < 0.08
    assert min(s["command"]["kp"]) > 0
    # The same name on a second loop gets the same process-wide id (events and logs agree).
    _, other = lockstep_loop()
    assert other.register_mode("test_stand_still", _rt.HoldMode()) == mid


def test_registration_is_configuration_time_and_names_are_checked():
    _, loop = lockstep_loop()
    loop.register_mode("test_once", _rt.HoldMode())
    with pytest.raises(ValueError, match="already registered on this loop; registered: test_once"):
        loop.register_mode("test_once", _rt.HoldMode())
    with pytest.raises(ValueError, match="built-in mode"):
        loop.register_mode("hold", _rt.HoldMode())
    with pytest.raises(ValueError, match="lower-case identifier"):
        loop.register_mode("Bad Name", _rt.HoldMode())
    loop.run_ticks(1)
    with pytest.raises(RuntimeError, match="before the loop first ticks"):
        loop.register_mode("test_late", _rt.HoldMode())
    with pytest.raises(ValueError, match="unknown mode 'no_such_mode'; modes are: zero_torque, damping"):
        loop.request_mode("no_such_mode")


def test_a_mode_registered_on_another_loop_is_refused_here():
    _, a = lockstep_loop()
    a.register_mode("test_elsewhere", _rt.HoldMode())
    _, b = lockstep_loop()
    arm(b, pose=[0.3] * N)
    s = answer(b, "test_elsewhere")
    assert s["request_status"] == "invalid_request" and s["safety_mode"] == "HOLD"
    assert s["request_reason"] == "no mode is registered under that id"


def test_a_refused_request_names_the_arming_gate_that_failed():
    _, loop = lockstep_loop()
    loop.run_ticks(2)
    s = answer(loop, _rt.Mode.INTERPOLATE, 0.5, [0.3] * N)
    assert s["request_status"] == "not_ready" and s["request_reason"] == "operator enable missing"
    loop.set_enabled(True)
    loop.run_ticks(1)
    s = answer(loop, _rt.Mode.INTERPOLATE, 0.5, [0.3] * N)
    assert s["request_status"] == "ok" and s["request_reason"] == ""
    s = answer(loop, _rt.Mode.HOLD)  # the pose is not reached yet
    assert s["request_status"] == "not_ready" and s["request_reason"] == "the standup pose has not been reached"
    s = answer(loop, _rt.Mode.ZERO_TORQUE)  # STANDUP -> PASSIVE is not in the table
    assert s["request_status"] == "invalid_request" and s["request_reason"] == "no such transition from the current mode"

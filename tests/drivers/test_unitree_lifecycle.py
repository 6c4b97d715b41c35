"""Who commands the robot, over real Cyclone DDS on the loopback interface (lockstep): Unitree's
built-in motion service (emulated by the sim bridge: motion_switcher RPC, rt/sportmodestate) must be
released before the unitree_dds driver activates; a second rt/lowcmd publisher appearing while
Vertebra commands latches the lowcmd_conflict fault; Go2 foot forces arrive over DDS.

Discovery is asynchronous, so a test waits (bounded) for DDS to show what it set up before it
counts ticks; what it asserts is behaviour in ticks and states, never wall-clock time."""

import itertools
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.registry import UnitreeDdsDriverConfig
from vertebra.drivers.sim_bridge import SimBridge
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.runtime import ModeRequestRefused, Runtime

_domains = itertools.count(60)  # apart from test_unitree_dds.py's when both run in one process


def domain() -> int:
    """A DDS domain of its own per test (and per concurrent test run)."""
    return 100 + (os.getpid() * 7 + next(_domains)) % 120


def dds_driver(dom, **extra):
    return UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom, "lockstep": True,
                                             "state_timeout_s": 30.0, **extra})


def wait_for(pred, what, timeout_s=20.0):
    """Wait for DDS discovery to show something (bounded; not a timing assertion)."""
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"DDS never showed {what} within {timeout_s} s")
        time.sleep(0.01)


def hold_default_pose(rt, seconds=1.0):
    rt.enable()
    rt.request(_rt.Mode.INTERPOLATE, duration_s=seconds, pose=rt.default_pose)
    rt.wait(seconds + 0.3)
    snap = rt.loop.snapshot()
    return snap, float(np.abs(np.array(snap["state"]["q"]) - np.array(rt.default_pose)).max())


RELEASE_HINT = ("Unitree's built-in motion service is active .*: it commands the motors, so Vertebra does not take "
                "them. Release it first.*motion_switcher ReleaseMode.*release_motion_service: true")


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_an_active_motion_service_refuses_activation_and_says_how_to_release_it(robot):
    dom = domain()
    cfg = RobotConfig.load(robot)
    with SimBridge(cfg, domain_id=dom, lockstep=True, motion_service=True) as bridge:
        d = dds_driver(dom).build(cfg, cfg.control_rate_hz)
        try:
            with pytest.raises(RuntimeError, match=RELEASE_HINT + ".*") as ei:
                d.activate()
            assert "CheckMode names mode 'normal'" in str(ei.value)
            assert d.lifecycle_state == "inactive"  # never took the motors
            c = d.counters()
            assert c["motion_service_answered"] and c["motion_service_mode"] == "normal"
            assert c["sportmodestate_writers"] == 1 and c["commands"] == 0
            b = bridge.counters()
            assert b["motion_service_active"] and b["commands"] == 0 and b["rpc_requests"] >= 1
        finally:
            d.cleanup()


def test_a_sportmodestate_publisher_alone_refuses_activation():
    """A robot whose motion_switcher does not answer, but whose sport service publishes its state."""
    dom = domain()
    cfg = RobotConfig.load("go2")
    with SimBridge(cfg, domain_id=dom, lockstep=True, motion_service=True, motion_switcher=False):
        d = dds_driver(dom, motion_service_timeout_s=0.2).build(cfg, cfg.control_rate_hz)
        try:
            with pytest.raises(RuntimeError, match="motion_switcher did not answer CheckMode within 0.2 s, "
                                                   "rt/sportmodestate has 1 publisher"):
                d.activate()
            assert not d.counters()["motion_service_answered"]
        finally:
            d.cleanup()


def test_no_motion_switcher_and_no_service_is_a_robot_without_one():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True, motion_switcher=False):
        rt = Runtime(cfg, dds_driver(dom, motion_service_timeout_s=0.2), lockstep=True)
        try:
            c = rt.driver.counters()
            assert rt.driver.lifecycle_state == "active"
            assert not c["motion_service_answered"] and c["rpc_requests"] >= 1  # asked, nobody answered: counted
        finally:
            rt.close()


def test_the_driver_releases_the_service_when_told_and_the_robot_holds_its_pose():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True, motion_service=True) as bridge:
        rt = Runtime(cfg, dds_driver(dom, release_motion_service=True), lockstep=True)
        try:
            c = rt.driver.counters()
            assert c["motion_service_released"] and c["sportmodestate_writers"] == 0
            b = bridge.counters()
            assert not b["motion_service_active"] and b["motion_service_mode"] == ""
            snap, err = hold_default_pose(rt)
        finally:
            rt.close()
        b = bridge.counters()
    assert not snap["faults"] and err < 0.05, (snap["faults"], err)
    assert b["ignored_commands"] == 0 and b["commands"] >= 650  # every command after the release took effect


def test_a_separate_release_request_lets_the_refused_driver_activate():
    """The CLI bridge boots with the service active, as the robot does; an operator's ReleaseMode
    (motion_switcher, as unitree_sdk2's client sends it) releases it, then the same driver activates."""
    dom = domain()
    bridge = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", "go2",
                               "--domain", str(dom), "--lockstep", "--quiet"])
    try:
        cfg = RobotConfig.load("go2")
        d = dds_driver(dom).build(cfg, cfg.control_rate_hz)
        with pytest.raises(RuntimeError, match=RELEASE_HINT):
            d.activate()
        operator = _rt.MotionSwitcherClient(dom, "lo")
        assert operator.check_mode(timeout_s=10.0) == "normal"
        assert operator.release_mode(timeout_s=10.0) == 0
        assert operator.check_mode(timeout_s=10.0) == ""
        wait_for(lambda: d.counters()["sportmodestate_writers"] == 0, "the rt/sportmodestate publisher leave")
        rt = Runtime(cfg, d, lockstep=True)  # the same driver, still inactive: activates now
        try:
            c = rt.driver.counters()
            assert c["motion_service_answered"] and c["motion_service_mode"] == "" and not c["motion_service_released"]
            snap, err = hold_default_pose(rt)
        finally:
            rt.close()
    finally:
        bridge.terminate()
        bridge.wait(30)
    assert not snap["faults"] and err < 0.05, (snap["faults"], err)


def test_a_second_lowcmd_publisher_latches_lowcmd_conflict_and_arming_is_refused_while_it_lasts():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True):
        rt = Runtime(cfg, dds_driver(dom), lockstep=True)
        try:
            snap, err = hold_default_pose(rt, 0.6)
            assert not snap["faults"] and snap["safety_mode"] in ("STANDUP", "HOLD") and err < 0.05
            assert not rt.driver.counters()["lowcmd_conflict"]
            # A second controller starts publishing rt/lowcmd (configure() creates its writer).
            other = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom}).build(
                cfg, cfg.control_rate_hz)
            wait_for(lambda: rt.driver.counters()["lowcmd_conflict"], "the second rt/lowcmd writer")
            # What the driver's counters show, the next read() reports: latched on the first tick.
            rt.loop.run_ticks(1)
            snap = rt.loop.snapshot()
            assert "lowcmd_conflict" in snap["faults"] and "lowcmd_conflict" in snap["active_faults"]
            assert snap["safety_mode"] == "FAULT" and snap["state"]["lowcmd_conflict"]
            cmd = snap["command"]
            assert max(cmd["kp"]) == 0.0 and min(cmd["kd"]) > 0.0  # damping (the declared response)
            rt.loop.run_ticks(20)
            # No arming while it persists: the reset is refused, so STANDUP is too.
            refused = rt.loop.snapshot()["resets_refused"]
            rt.reset()
            snap = rt.loop.snapshot()
            assert snap["safety_mode"] == "FAULT" and snap["resets_refused"] == refused + 1
            rt.enable()
            with pytest.raises(ModeRequestRefused):
                rt.request(_rt.Mode.INTERPOLATE, duration_s=0.5, pose=rt.default_pose)
            # The other controller goes: the fault can be reset, and the robot armed again.
            other.cleanup()
            wait_for(lambda: not rt.driver.counters()["lowcmd_conflict"], "the second writer leave")
            rt.loop.run_ticks(1)
            rt.reset()
            assert rt.loop.snapshot()["safety_mode"] == "DAMP"
            snap, err = hold_default_pose(rt, 0.6)
            assert not snap["faults"] and err < 0.05
        finally:
            rt.close()


def test_go2_foot_forces_arrive_over_dds_when_it_stands():
    dom = domain()
    cfg = RobotConfig.load("go2")
    with SimBridge(cfg, domain_id=dom, lockstep=True) as bridge:
        rt = Runtime(cfg, dds_driver(dom), lockstep=True)
        try:
            hold_default_pose(rt, 1.0)
            assert rt.driver.foot_force() == [0.0] * 4  # in the hoist, feet in the air
            rt.request(_rt.Mode.HOLD)
            model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
            standing = model.standing_base_height(cfg.column("default_rad"), cfg.foot_frames, cfg.sole_offset_m)
            h = cfg.sim.hoist
            target = standing - 0.10  # below standing: the rope goes slack on the way down
            bridge.sim.hoist_lower_to(target, h.lower_speed_m_s)
            rt.wait((bridge.sim.hoist_anchor_z - target) / h.lower_speed_m_s + 0.5)
            bridge.sim.hoist_release()
            rt.wait(0.5)
            ff = rt.driver.foot_force()
            snap = rt.loop.snapshot()
        finally:
            rt.close()
    assert not snap["faults"], snap["faults"]
    weight = bridge.sim.total_mass * 9.81
    assert all(f > 0.05 * weight for f in ff), ff  # every foot carries some of the weight
    assert sum(ff) == pytest.approx(weight, rel=0.2), (ff, weight)

"""The Unitree DDS driver against the DDS sim bridge, over real Cyclone DDS on the loopback
interface: the bridge in another process as the robot would be, or in this one where a test injects
faults on the bus. Lockstep: one control period per command, deterministic on a loaded machine."""

import itertools
import json
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
from vertebra.runtime.errors import VertebraError
from vertebra.runtime.runtime import Runtime

_domains = itertools.count(0)


def domain() -> int:
    """A DDS domain of its own per test (and per concurrent test run)."""
    return 100 + (os.getpid() * 7 + next(_domains)) % 120


def dds_driver(dom, **extra):
    return UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom, "lockstep": True,
                                             "state_timeout_s": 30.0, **extra})


def hold_default_pose(rt, seconds=2.0):
    rt.enable()
    rt.request(_rt.Mode.INTERPOLATE, duration_s=seconds, pose=rt.default_pose)
    rt.wait(seconds + 0.5)
    snap = rt.loop.snapshot()
    return snap, float(np.abs(np.array(snap["state"]["q"]) - np.array(rt.default_pose)).max())


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_the_robot_in_its_hoist_takes_its_pose_over_dds_from_another_process(robot):
    dom = domain()
    bridge = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", robot,
                               "--domain", str(dom), "--lockstep", "--released", "--json", "--quiet"],
                              stdout=subprocess.PIPE, text=True)
    try:
        rt = Runtime(robot, dds_driver(dom), lockstep=True)
        try:
            snap, err = hold_default_pose(rt)
            c = rt.driver.counters()
        finally:
            rt.close()
    finally:
        bridge.terminate()
        out, _ = bridge.communicate(timeout=30)
    assert not snap["faults"] and err < 0.05, (snap["faults"], err)
    assert snap["time_s"] == pytest.approx(2.5, abs=0.05)  # robot time: one control period per command
    assert c["crc_errors"] == 0 and c["lockstep_timeouts"] == 0 and c["commands"] >= 1250
    import json

    b = json.loads(out)["counters"]
    assert b["crc_errors"] == 0 and b["commands"] >= c["commands"]  # every command arrived with a valid CRC


def test_bad_crcs_are_dropped_and_persistent_corruption_is_state_loss():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True) as bridge:
        rt = Runtime(cfg, dds_driver(dom, lockstep_timeout_s=0.02), lockstep=True)
        try:
            hold_default_pose(rt, 0.4)
            bridge.bridge.corrupt_states(3)  # a burst: dropped, counted, the robot keeps going
            rt.loop.run_ticks(10)
            assert rt.driver.counters()["crc_errors"] == 3 and not rt.loop.snapshot()["faults"]
            bridge.bridge.corrupt_states(10**6)  # persistent corruption
            last_good, fault_at = None, None
            seq = rt.loop.snapshot()["state"]["seq"]
            for k in range(60):
                rt.loop.run_ticks(1)
                if rt.loop.snapshot()["state"]["seq"] != seq:  # this tick read a good state
                    seq = rt.loop.snapshot()["state"]["seq"]
                    last_good = k
                if rt.loop.snapshot()["faults"]:
                    fault_at = k
                    break
            timeout_ticks = round(rt.safety.state.timeout_ms / 1000 * rt.rate_hz)
            assert "state_loss" in rt.loop.snapshot()["faults"]
            assert fault_at - (last_good if last_good is not None else -1) <= timeout_ticks + 1
        finally:
            rt.close()


def test_a_killed_bridge_is_state_loss():
    dom = domain()
    bridge = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", "g1",
                               "--domain", str(dom), "--lockstep", "--released", "--quiet"])
    rt = Runtime("g1", dds_driver(dom, lockstep_timeout_s=0.02), lockstep=True)
    try:
        hold_default_pose(rt, 0.4)
        bridge.kill()
        bridge.wait(10)
        rt.loop.run_ticks(40)
        assert "state_loss" in rt.loop.snapshot()["faults"]
    finally:
        rt.close()
        if bridge.poll() is None:
            bridge.kill()


def test_another_lowcmd_publisher_stops_activation():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True):
        other = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom}).build(
            cfg, cfg.control_rate_hz)  # a second controller (or the motion service) on rt/lowcmd
        ours = dds_driver(dom).build(cfg, cfg.control_rate_hz)
        time.sleep(0.3)  # discovery
        with pytest.raises(RuntimeError, match="another participant publishes rt/lowcmd .*release Unitree's built-in"):
            ours.activate()
        assert ours.lifecycle_state == "inactive"  # never armed
        other.cleanup()
        ours.cleanup()


def test_configuration_errors_name_what_is_wrong():
    cfg = RobotConfig.load("g1")
    with pytest.raises(VertebraError, match="network_interface: found 'nope0'; valid: an interface of this machine"):
        UnitreeDdsDriverConfig.from_dict({"network_interface": "nope0"}).build(cfg, 500.0)
    with pytest.raises(VertebraError, match="no valid rt/lowstate within 0.3 s on domain .*is the robot on"):
        UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": domain(),
                                          "state_timeout_s": 0.3}).build(cfg, 500.0)
    dom = domain()
    with SimBridge(cfg, domain_id=dom, lockstep=True):  # a G1 bridge, a Go2 driver: wrong message type
        with pytest.raises(VertebraError, match="no valid rt/lowstate"):
            UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom, "messages": "go",
                                              "state_timeout_s": 0.5}).build(RobotConfig.load("go2"), 500.0)


def test_the_remote_reaches_the_driver():
    dom = domain()
    cfg = RobotConfig.load("go2")
    with SimBridge(cfg, domain_id=dom, lockstep=True) as bridge:
        bridge.bridge.set_remote(buttons=0x0120, lx=0.25, ly=-0.5)
        rt = Runtime(cfg, dds_driver(dom), lockstep=True)
        try:
            rt.loop.run_ticks(3)
            r = rt.driver.remote()
            assert r["buttons"] == 0x0120 and r["lx"] == 0.25 and r["ly"] == -0.5
        finally:
            rt.close()


def test_the_remote_estop_combination_stops_the_robot_on_that_tick():
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True) as bridge:
        rt = Runtime(cfg, dds_driver(dom), lockstep=True)
        try:
            hold_default_pose(rt, 0.4)
            bridge.bridge.set_remote(buttons=0x0020)  # L2 alone: nothing
            rt.loop.run_ticks(3)
            assert rt.loop.snapshot()["safety_mode"] != "ESTOP"
            bridge.bridge.set_remote(buttons=0x0220 | 0x0001)  # L2 + B (+ R1): the e-stop combination
            ticks = 0
            while rt.loop.snapshot()["safety_mode"] != "ESTOP" and ticks < 5:
                rt.loop.run_ticks(1)
                ticks += 1
            # One tick for the bridge to publish it with the answer to our last command, then the
            # tick that reads it e-stops.
            assert rt.loop.snapshot()["safety_mode"] == "ESTOP" and ticks <= 2
            cmd = rt.loop.snapshot()["command"]
            assert max(cmd["kp"]) == 0.0  # no stiffness from that tick on
        finally:
            rt.close()


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_the_deployment_procedure_over_dds_stands_the_robot_on_its_state_estimate(robot, capsys):
    """hoist -> stand -> release -> hold 10 s, the bridge in another process: no base truth reaches the
    runtime; the supervisor's fall monitor and the report's estimator errors come from the estimate."""
    from vertebra.runtime.cli import main

    rc = main(["sim", "--robot", robot, "--driver", "unitree_dds", "--domain", str(domain()), "--lockstep",
               "--duration", "10", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["faults"] == [] and out["mode"] == "hold", out
    assert out["driver"] == "unitree_dds" and out["base"] == "estimate"
    assert not out["hoist_engaged"]
    lo, hi = out["hold_base_height_range_m"]
    assert abs(lo - out["standing_height_m"]) < 0.03 and abs(hi - out["standing_height_m"]) < 0.03, out
    assert out["max_tilt_deg"] < 5.0
    assert out["sim_time_s"] > 10.0


def test_in_real_time_every_tick_hands_its_command_to_the_publisher_and_the_robot_follows():
    """Real time (not lockstep): the tick only seals the frame; the driver's publisher thread sends it."""
    dom = domain()
    cfg = RobotConfig.load("go2")
    with SimBridge(cfg, domain_id=dom, lockstep=False) as bridge:
        rt = Runtime(cfg, UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom}), lockstep=False)
        try:
            snap, err = hold_default_pose(rt, 2.0)
            c = rt.driver.counters()
            ticks = rt.loop.stats()["ticks"]
        finally:
            rt.close()
        b = bridge.counters()
    assert not snap["faults"] and err < 0.05, (snap["faults"], err)
    assert c["write_errors"] == 0 and 0 < c["commands"] <= ticks + 10  # + the hand-back's damping frames
    assert b["crc_errors"] == 0 and b["commands"] > 0

"""Hardware faults emulated on the DDS sim bridge (cpp/drivers/unitree/bridge_faults.hpp,
drivers/bridge_faults.py), seen through the `unitree_dds` driver over real Cyclone DDS on the
loopback interface, in lockstep (one control period per command: exact and reproducible). The
simulator's own read() gives the joints' physical truth between two exchanges."""

import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.bridge_faults import BridgeFaults, parse_bridge_faults
from vertebra.drivers.bridge_process import BridgeError, BridgeProcess
from vertebra.drivers.registry import UnitreeDdsDriverConfig
from vertebra.drivers.sim_bridge import SimBridge
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.errors import ConfigError

_counter = itertools.count(700)
CFG = RobotConfig.load("g1")
N = len(CFG.joint_names)
J = {name: i for i, name in enumerate(CFG.joint_names)}
KP, KD = 100.0, 3.0  # the other joints hold their starting pose


def domain() -> int:
    """A DDS domain of its own per test (and per concurrent test run)."""
    return 100 + (os.getpid() * 7 + next(_counter)) % 120


@contextlib.contextmanager
def bridge_and_driver(faults: Any = None, lockstep_timeout_s: float = 1.0) -> Iterator[tuple[SimBridge, Any]]:
    """A lockstep G1 bridge with `faults` and an active unitree_dds driver talking to it."""
    dom = domain()
    with SimBridge(CFG, domain_id=dom, lockstep=True, faults=faults) as bridge:
        driver = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom, "lockstep": True,
                                                   "state_timeout_s": 30.0,
                                                   "lockstep_timeout_s": lockstep_timeout_s}).build(
            CFG, CFG.control_rate_hz)
        driver.activate()
        try:
            yield bridge, driver
        finally:
            driver.deactivate()
            driver.cleanup()


def holding(driver: Any) -> dict[str, list[float]]:
    """A command holding every joint where the motors report it now."""
    q0 = [float(v) for v in driver.read()["q"]]
    return {"q": q0, "dq": [0.0] * N, "kp": [KP] * N, "kd": [KD] * N, "tau_ff": [0.0] * N}


def with_joint(cmd: dict[str, list[float]], joint: str, **values: float) -> dict[str, list[float]]:
    out = {k: list(v) for k, v in cmd.items()}
    for k, v in values.items():
        out[k][J[joint]] = v
    return out


def exchange(driver: Any, cmd: dict[str, list[float]], steps: int = 1) -> dict[str, Any]:
    return _rt.dds_lockstep_exchange(driver, cmd, steps)


def test_a_reversed_motor_tracks_its_command_while_the_joint_moves_the_other_way():
    reversed_joint, healthy = "left_hip_pitch_joint", "right_hip_pitch_joint"
    with bridge_and_driver({"joints": {reversed_joint: {"sign": -1}}}) as (bridge, driver):
        cmd = holding(driver)
        for name in (reversed_joint, healthy):
            cmd = with_joint(cmd, name, q=0.4, kp=400.0, kd=8.0)
        s = exchange(driver, cmd, 500)
        truth = bridge.sim.read()
    r, h = J[reversed_joint], J[healthy]
    assert abs(s["q"][r] - 0.4) < 0.05 and abs(s["q"][h] - 0.4) < 0.05  # both motors report tracking
    assert truth["q"][r] == pytest.approx(-s["q"][r], abs=1e-5)      # the reversed joint went the other way
    assert truth["dq"][r] == pytest.approx(-s["dq"][r], abs=1e-4)
    assert truth["tau"][r] == pytest.approx(-s["tau"][r], abs=1e-3)
    assert truth["q"][h] == pytest.approx(s["q"][h], abs=1e-5)


def test_an_encoder_offset_shifts_what_the_motor_reports():
    joint, offset = "right_knee_joint", 0.1
    with bridge_and_driver({"joints": {joint: {"offset_rad": offset}}}) as (bridge, driver):
        cmd = with_joint(holding(driver), joint, q=0.8, kp=150.0, kd=4.0)
        s = exchange(driver, cmd, 500)
        truth = bridge.sim.read()
        j = J[joint]
        assert truth["q"][j] == pytest.approx(s["q"][j] - offset, abs=1e-5)
        assert truth["dq"][j] == pytest.approx(s["dq"][j], abs=1e-4)
        assert bridge.faults()["joints"] == {joint: {"sign": 1, "offset_rad": offset, "friction_scale": 1.0,
                                                     "torque_limit_scale": 1.0, "heat_scale": 1.0}}


def test_friction_scale_triples_damping_and_the_torque_to_move_at_constant_speed():
    joint = "left_hip_yaw_joint"
    j = J[joint]

    def torque_at_constant_speed(driver: Any) -> tuple[float, float]:
        """Mean motor torque and speed over 0.2 s at about 1 rad/s (a velocity servo), from the start pose."""
        cmd = with_joint(holding(driver), joint, dq=1.0, kp=0.0, kd=20.0)
        exchange(driver, cmd, 100)  # up to speed
        states = [exchange(driver, cmd) for _ in range(100)]
        return float(np.mean([s["tau"][j] for s in states])), float(np.mean([s["dq"][j] for s in states]))

    with bridge_and_driver() as (bridge, driver):
        nominal = bridge.sim.nominal_joint_friction(j)
        damping, dry = nominal["damping_nm_s_rad"], nominal["frictionloss_nm"]
        assert damping > 0 and dry > 0 and bridge.sim.joint_friction(j) == nominal
        healthy, v_healthy = torque_at_constant_speed(driver)
        bridge.set_faults({"joints": {joint: {"friction_scale": 3.0}}})  # while the bridge runs
        assert bridge.sim.joint_friction(j) == pytest.approx({"damping_nm_s_rad": 3 * damping, "frictionloss_nm": 3 * dry})
        bridge.set_faults(None)  # healthy again: the robot config's values
        assert bridge.sim.joint_friction(j) == nominal
    with bridge_and_driver({"joints": {joint: {"friction_scale": 3.0}}}) as (bridge, driver):
        faulty, v_faulty = torque_at_constant_speed(driver)  # the same move from the same start
    # The same trajectory but for the friction: the torques differ by the friction torques alone.
    rise = (3 * (damping * v_faulty + dry)) - (damping * v_healthy + dry)
    assert v_healthy > 0.9 and v_faulty > 0.9
    assert faulty - healthy == pytest.approx(rise, rel=0.15), (healthy, faulty, rise)


def test_a_weak_motor_saturates_at_its_torque_limit_scale():
    weak, healthy = "left_knee_joint", "right_knee_joint"
    with bridge_and_driver({"joints": {weak: {"torque_limit_scale": 0.5}}}) as (bridge, driver):
        limit = bridge.sim.nominal_effort_limit(J[weak])
        assert bridge.sim.effort_limit(J[weak]) == pytest.approx(0.5 * limit)
        cmd = holding(driver)
        for name in (weak, healthy):  # far more torque than either motor has
            cmd = with_joint(cmd, name, kp=0.0, kd=0.0, tau_ff=3 * limit)
        s = exchange(driver, cmd, 5)
    assert s["tau"][J[weak]] == pytest.approx(0.5 * limit, abs=1e-3)
    assert s["tau"][J[healthy]] == pytest.approx(bridge.sim.nominal_effort_limit(J[healthy]), abs=1e-3)


def test_command_latency_delays_the_torque_response_by_whole_control_periods():
    joint, step_nm = "left_shoulder_roll_joint", 5.0
    j = J[joint]

    def periods_until_torque(driver: Any, rest: dict[str, list[float]]) -> int:
        for _ in range(20):
            exchange(driver, rest)  # settled: the zero torque in force
        step = with_joint(rest, joint, tau_ff=step_nm)
        for k in range(40):
            if exchange(driver, step)["tau"][j] == step_nm:
                return k
        raise AssertionError("the torque step never arrived")

    with bridge_and_driver() as (bridge, driver):
        rest = with_joint(holding(driver), joint, kp=0.0, kd=0.0, tau_ff=0.0)
        immediate = periods_until_torque(driver, rest)
        bridge.set_faults({"command_latency_ms": 20})  # 20 ms at 500 Hz: 10 commands in the FIFO
        delayed = periods_until_torque(driver, rest)
        assert bridge.faults()["command_latency_ms"] == 20.0
    assert CFG.control_rate_hz == 500.0
    assert delayed - immediate == 10, (immediate, delayed)


def test_random_state_loss_and_corruption_are_reproducible_from_the_seed():
    faults = {"state_drop_probability": 0.05, "crc_corrupt_probability": 0.05, "seed": 11}
    samples = 1000

    def run(bridge: SimBridge, driver: Any, cmd: dict[str, list[float]]) -> tuple[int, int, int]:
        before, crc_before = bridge.counters(), driver.counters()["crc_errors"]
        for _ in range(samples // 100):
            exchange(driver, cmd, 100)
        after = bridge.counters()
        assert after["commands"] - before["commands"] == samples
        return (after["dropped_sent"] - before["dropped_sent"], after["corrupted_sent"] - before["corrupted_sent"],
                driver.counters()["crc_errors"] - crc_before)

    with bridge_and_driver(faults, lockstep_timeout_s=0.02) as (bridge, driver):
        cmd = holding(driver)
        first = run(bridge, driver, cmd)
        bridge.set_faults(faults)  # the generator restarts from the seed
        again = run(bridge, driver, cmd)
        bridge.set_faults(dict(faults, seed=12))
        other = run(bridge, driver, cmd)
    dropped, corrupted, crc_errors = first
    assert again == first and other != first
    assert 25 <= dropped <= 80 and 25 <= corrupted <= 80, first  # 5 % of 1000 (3 sigma: about 30 to 70)
    assert crc_errors == corrupted  # every corrupted state reached the driver and was refused


def test_the_config_refuses_bad_faults_saying_what_is_valid():
    def refused(mapping: dict[str, Any], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            parse_bridge_faults(mapping, CFG, "faults.yaml")

    refused({"joints": {"left_kneee_joint": {"sign": -1}}},
            r"faults.yaml: field 'joints.left_kneee_joint'.*valid: a joint of the robot: left_hip_pitch_joint, .*"
            r"left_knee_joint")
    refused({"joints": {"left_knee_joint": {"sign": 2}}}, r"joints.left_knee_joint.sign': found 2; valid: 1 .* or -1")
    refused({"joints": {"left_knee_joint": {"offset_rad": 0.7}}}, r"offset_rad.*<= 0.5")
    refused({"joints": {"left_knee_joint": {"friction_scale": 50}}}, r"friction_scale.*>= 0.1 and <= 20")
    refused({"joints": {"left_knee_joint": {"torque_limit_scale": 0.0}}}, r"torque_limit_scale.*>= 0.05 and <= 1")
    refused({"joints": {"left_knee_joint": {"stiction": 1}}}, r"stiction.*valid: a known field: friction_scale")
    refused({"state_drop_probability": 0.6}, r"state_drop_probability': found 0.6; valid: .*<= 0.5")
    refused({"crc_corrupt_probability": -0.1}, r"crc_corrupt_probability.*>= 0.0")
    refused({"command_latency_ms": 250}, r"command_latency_ms': found 250.0; valid: .*<= 200")
    refused({"drop_probability": 0.1}, r"valid: a known field: command_latency_ms, crc_corrupt_probability")
    ok = parse_bridge_faults({"joints": {"left_knee_joint": {"sign": -1, "offset_rad": 0.1, "friction_scale": 3.0,
                                                             "torque_limit_scale": 0.5}},
                              "state_drop_probability": 0.05, "crc_corrupt_probability": 0.01,
                              "command_latency_ms": 20, "seed": 1}, CFG)
    rt = ok.to_rt(CFG)
    assert len(rt.joints) == N and rt.joints[J["left_knee_joint"]].sign == -1 and rt.joints[0].healthy
    with pytest.raises(ConfigError, match="a joint of the robot"):  # checked again against the robot
        BridgeFaults(joints={"nope": {}}).to_rt(CFG)
    bad = _rt.HardwareFaults()  # the C++ side checks too (a bridge built without the Python config)
    bad.joints = [_rt.JointFault()] * 3
    bridge = SimBridge(CFG, domain_id=domain(), lockstep=True)
    with pytest.raises(ValueError, match=r"joints: found 3 entries; valid: none, or one per joint \(29\)"):
        bridge.bridge.set_faults(bad)
    bad = _rt.HardwareFaults()
    bad.command_latency_ms = 500
    with pytest.raises(ValueError, match="command_latency_ms: found 500; valid: 0 to 200"):
        bridge.bridge.set_faults(bad)


def test_a_hot_motor_heats_with_its_torque_squared():
    hot, normal = "left_knee_joint", "right_knee_joint"
    heating, tc, tau, seconds = 0.05, 10.0, 20.0, 1.0
    faults = {"joints": {hot: {"heat_scale": 2.0}},
              "motor_thermal": {"heating_c_per_nm2_s": heating, "time_constant_s": tc}}
    with bridge_and_driver(faults) as (bridge, driver):
        ambient = driver.read()["motor_temp_c"][J[normal]]
        cmd = holding(driver)
        for name in (hot, normal):
            cmd = with_joint(cmd, name, kp=0.0, kd=0.0, tau_ff=tau)
        s = exchange(driver, cmd, int(seconds * CFG.control_rate_hz))
        assert bridge.faults()["motor_thermal"] == {"heating_c_per_nm2_s": heating, "time_constant_s": tc}
    rise = heating * tc * tau**2 * (1 - np.exp(-seconds / tc))  # first order towards the steady rise
    assert s["motor_temp_c"][J[normal]] - ambient == pytest.approx(rise, abs=1.0)  # whole degrees on the wire
    assert s["motor_temp_c"][J[hot]] - ambient == pytest.approx(2 * rise, abs=1.0)


def test_the_bridge_process_and_the_cli_take_faults():
    with BridgeProcess("g1", domain_id=domain(), faults={"joints": {"left_knee_joint": {"sign": -1}}}) as proc:
        assert proc.faults()["joints"]["left_knee_joint"]["sign"] == -1
        proc.set_faults({"command_latency_ms": 10, "seed": 3})
        f = proc.faults()
        assert f["joints"] == {} and f["command_latency_ms"] == 10.0 and f["seed"] == 3
        with pytest.raises(BridgeError, match="state_drop_probability': found 0.9"):
            proc.set_faults({"state_drop_probability": 0.9})
        assert proc.faults() == f  # a refused set changes nothing
    with pytest.raises(BridgeError, match="joints.nope.*a joint of the robot"):
        BridgeProcess("g1", domain_id=domain(), faults={"joints": {"nope": {"sign": -1}}})


def test_the_cli_reads_a_faults_file(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("joints:\n  left_knee_joint: {sign: -1, offset_rad: 0.1}\nstate_drop_probability: 0.05\n")
    out = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", "g1", "--domain",
                          str(domain()), "--lockstep", "--released", "--faults", str(path), "--seconds", "0.3",
                          "--json", "--quiet"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    faults = json.loads(out.stdout)["faults"]
    assert faults["joints"]["left_knee_joint"]["offset_rad"] == 0.1 and faults["state_drop_probability"] == 0.05
    path.write_text("command_latency_ms: 300\n")
    out = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", "g1", "--domain",
                          str(domain()), "--faults", str(path), "--seconds", "0.3", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "command_latency_ms': found 300" in out.stderr

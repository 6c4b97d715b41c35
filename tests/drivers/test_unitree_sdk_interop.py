"""Interoperability with Unitree's own software: Unitree's official Python SDK (`unitree-sdk2` 1.0.1 on
PyPI, its cyclonedds binding built against Debian's Cyclone DDS 0.10.2, in its own virtualenv made by
scripts/setup_unitree_sdk.sh) and Vertebra, in separate processes over real DDS on the loopback
interface, as on a robot:

1. the SDK as the controller: it subscribes to Vertebra's sim bridge, checks every LowState_ with its
   `utils.crc.CRC`, and moves a joint through LowCmd_ sealed with that CRC;
2. the SDK as the robot: a fake robot written with the SDK (LowState_ sealed by its CRC, each
   LowCmd_ checked by its CRC) driven by Vertebra's `unitree_dds` driver under the runtime.

The SDK side is runtime/benchmarks/unitree_sdk_peer.py, run with the SDK's python. These tests skip,
saying why, only where the SDK's virtualenv is missing or broken. Both run in real time (the SDK
publishes at its own rate, as a robot or a controller does): every assertion is on behaviour (the
joint gets there before a generous deadline), never on timing.
"""

import json
import subprocess
import time

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.registry import UnitreeDdsDriverConfig
from vertebra.drivers.sim_bridge import SimBridge
from vertebra.runtime.benchmarks.dds import PEER_SCRIPT, parse_peer_output, run_sdk_peer, sdk_python
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.runtime import Runtime
from vertebra.safety.config import SafetySettings

from tests.drivers.test_unitree_dds import domain

# A joint each that moves freely while the robot hangs in its hoist: the G1's left elbow, the Go2's
# front-right calf.
MOVED_JOINT = {"g1": "left_elbow_joint", "go2": "FR_calf_joint"}
TOLERANCE_RAD = 0.05


@pytest.fixture(scope="module")
def sdk():
    """The SDK virtualenv's python, checked to import the SDK and make its CRC."""
    py, why = sdk_python()
    if py is None:
        pytest.skip(why)
    probe = subprocess.run([py, "-c", "import unitree_sdk2py; from unitree_sdk2py.utils.crc import CRC; CRC()"],
                           check=False, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"the Unitree SDK in {py} is broken: {probe.stderr.strip().splitlines()[-1:]}")
    return py


def spec_for(cfg, dom, **extra):
    return {"messages": UnitreeDdsDriverConfig.default_messages(cfg), "domain": dom, "interface": "lo",
            "motors": [j.motor_index for j in cfg.joints], **extra}


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_the_sdk_reads_the_bridges_state_with_a_valid_crc_and_moves_a_joint(sdk, robot):
    cfg = RobotConfig.load(robot)
    dom = domain()
    j = cfg.joint_names.index(MOVED_JOINT[robot])
    joint = cfg.joints[j]
    with SimBridge(cfg, domain_id=dom, lockstep=False) as bridge:  # real time: the SDK sends at its own rate
        spec = spec_for(cfg, dom, kp=cfg.column("kp"), kd=cfg.column("kd"), move=j, delta=0.4,
                        q_max=joint.q_max_rad, tolerance=TOLERANCE_RAD, ramp_s=0.5, settle_s=0.2, timeout_s=40.0)
        ans = run_sdk_peer(sdk, "follow", spec, timeout_s=120.0)
        counters = bridge.counters()
    assert "error" not in ans, ans
    # Every LowState_ the bridge published passed the SDK's own CRC.
    assert ans["crc_ok"] >= 10 and ans["crc_bad"] == 0, ans
    # The joint went where the SDK commanded it, and stayed.
    assert abs(ans["target"] - ans["q_start"]) > 0.3, ans
    assert ans["reached"] and abs(ans["q_final"] - ans["target"]) <= TOLERANCE_RAD, ans
    # Every LowCmd_ sealed by the SDK's CRC passed the bridge's check.
    assert counters["commands"] > 0 and counters["crc_errors"] == 0, counters


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_vertebras_driver_drives_a_fake_robot_written_with_the_sdk(sdk, robot):
    cfg = RobotConfig.load(robot)
    dom = domain()
    j = cfg.joint_names.index(MOVED_JOINT[robot])
    joint = cfg.joints[j]
    start = np.array(cfg.column("default_rad"))
    target = start.copy()
    target[j] += 0.4 if start[j] + 0.4 < joint.q_max_rad - 0.05 else -0.4
    mode_machine = 4  # a G1's LowCmd_ must echo the model id its LowState_ reports
    spec = spec_for(cfg, dom, q0=start.tolist(), rate_hz=500.0, tau_s=0.05, seconds=120.0, mode_machine=mode_machine,
                    power_v=28.8)
    robot_proc = subprocess.Popen([sdk, str(PEER_SCRIPT), "fake-robot", "--spec", json.dumps(spec)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The fake robot is a Python process sharing this machine's two cores with the loop: allow it
    # longer gaps between states than a robot's boards get (the state-loss monitor has its own tests).
    safety = SafetySettings.load(cfg)
    safety.state.timeout_ms = 250
    try:
        driver = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom,
                                                   "state_timeout_s": 30.0})
        rt = Runtime(cfg, driver, lockstep=False, realtime_priority=False, safety=safety)
        try:
            rt.enable()
            rt.request(_rt.Mode.INTERPOLATE, duration_s=1.0, pose=target.tolist())
            deadline, err = time.monotonic() + 30.0, float("inf")
            while time.monotonic() < deadline:
                snap = rt.status()
                err = float(np.abs(np.array(snap["state"]["q"]) - target).max())
                if err <= TOLERANCE_RAD or snap["faults"]:
                    break
                time.sleep(0.05)
            time.sleep(0.2)  # a few more commands at the target
            snap = rt.status()
            dds = rt.driver.counters()
        finally:
            rt.close()
    finally:
        if robot_proc.poll() is None:
            robot_proc.terminate()
        out, errs = robot_proc.communicate(timeout=60)
    fake = parse_peer_output("fake-robot", out, errs)
    assert "error" not in fake, fake
    assert not snap["faults"], snap["faults"]
    # Vertebra reads the fake robot's states (sealed by the SDK's CRC) without a CRC error ...
    assert dds["states"] > 100 and dds["crc_errors"] == 0, dds
    # ... and the fake robot found every command's CRC valid and the G1's mode_machine echoed.
    assert fake["crc_ok"] > 100 and fake["crc_bad"] == 0 and fake["mode_machine_mismatch"] == 0, fake
    # The joints followed: Vertebra's view and the robot's own.
    assert err <= TOLERANCE_RAD, (err, snap["state"]["q"][j], target[j])
    assert abs(fake["q_final"][j] - target[j]) <= TOLERANCE_RAD, (fake["q_final"][j], target[j])

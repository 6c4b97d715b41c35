"""Shared fixtures: a small joint-level robot on the mock driver, run in lockstep."""

from __future__ import annotations

import pytest
from vertebra import _rt

N = 6
RATE = 500.0


@pytest.fixture(autouse=True, scope="session")
def _recordings_in_a_scratch_folder(tmp_path_factory):
    """Every run a test makes is recorded (runtime/recorder.py), as any run is: into a folder of this
    test session, never the user's data folder; and datasets are signed with a throwaway robot key
    of this session (tools/data/security.py), never the user's. Child processes inherit both."""
    import os

    from vertebra.tools.data.security import init_key

    os.environ["VERTEBRA_DATA_DIR"] = str(tmp_path_factory.mktemp("recordings"))
    keys = tmp_path_factory.mktemp("keys")
    os.environ["VERTEBRA_KEYS_DIR"] = str(keys)
    init_key("robot", "ed25519", keys)
    yield


def make_params(n: int = N, kp: float = 40.0, kd: float = 2.0) -> _rt.RobotParams:
    return _rt.RobotParams(
        kp=[kp] * n, kd=[kd] * n, kd_damping=[3.0] * n, kp_max=[1.5 * kp] * n, kd_max=[1.5 * kd] * n,
        q_lower=[-2.0] * n, q_upper=[2.0] * n, dq_max=[10.0] * n, tau_max=[30.0] * n, default_pose=[0.3] * n)


@pytest.fixture
def mock_loop():
    """(driver, loop) — a 6-joint mock robot with a constant gravity-like load, lockstep."""
    driver = _rt.MockDriver(joint_inertia=0.05, joint_friction=0.1, gravity_torque=2.0)
    driver.init([f"j{i}" for i in range(N)], RATE)
    cfg = _rt.LoopConfig()
    cfg.rate_hz = RATE
    cfg.lockstep = True
    loop = _rt.RtLoop(driver, make_params(), cfg)
    return driver, loop


def arm(loop, pose=None, duration_s: float = 0.1) -> None:
    """Through the supervisor's arming gate: operator enable -> STANDUP (to `pose`, default: where the
    joints are, inside the limits) -> HOLD. Lockstep loops only."""
    import numpy as np

    loop.set_enabled(True)
    loop.run_ticks(1)
    s = loop.snapshot()
    if pose is None:
        lim = loop.limiter
        pose = [min(max(float(q), lim.soft_lower(i)), lim.soft_upper(i)) for i, q in enumerate(s["state"]["q"])]
    seq = loop.request_mode(_rt.Mode.INTERPOLATE, duration_s, list(np.asarray(pose, dtype=float)))
    loop.run_ticks(int(duration_s * loop.stats()["rate_hz"]) + 2)
    assert loop.snapshot()["request_seq"] == seq and loop.snapshot()["request_status"] == "ok", loop.snapshot()["request_status"]
    seq = loop.request_mode(_rt.Mode.HOLD)
    loop.run_ticks(1)
    s = loop.snapshot()
    assert s["request_seq"] == seq and s["request_status"] == "ok" and s["safety_mode"] == "HOLD", s["request_status"]

"""A centre-of-mass trajectory with its velocity and acceleration (the walking controller's kind of
target) is tracked without the lag a set point has; a bad feed-forward is refused."""

import math

import numpy as np
import pytest
from vertebra.runtime.sim_runtime import SimRuntime


def sway(feed_forward):
    """The CoM swayed 3 cm sideways at 0.5 Hz for 4 s: the RMS tracking error over the last 2 s."""
    rt = SimRuntime("g1", controller="wbc")
    rt.stand_up(hold_s=0.5)
    rt.engage_wbc()
    rt.wait(0.3)
    c0 = np.array(rt.wb.status()["com"])
    w, A, dt = 2 * math.pi * 0.5, 0.03, 1.0 / rt.rate_hz
    err = []
    for i in range(int(4.0 / dt)):
        t = i * dt
        pos = c0 + [0.0, A * math.sin(w * t), 0.0]
        vel = np.array([0.0, A * w * math.cos(w * t), 0.0])
        acc = np.array([0.0, -A * w * w * math.sin(w * t), 0.0])
        if feed_forward:
            rt.wb.set_com_trajectory(pos, vel, acc)
        else:
            rt.wb.set_target("com", pos)
        rt.loop.run_ticks(1)
        if t >= 2.0:
            err.append(pos[1] - rt.wb.status()["com"][1])
    assert rt.loop.snapshot()["mode"] == "wbc"
    return float(np.sqrt(np.mean(np.square(err))))


def test_a_centre_of_mass_trajectory_with_its_feed_forward_is_tracked_without_lag():
    lag, tracked = sway(False), sway(True)
    # a set point lags the sway (kp 60, kd 15: about 0.25 rad of phase at 0.5 Hz); with the
    # trajectory's velocity and acceleration the error is a small fraction of that
    assert lag > 0.004, lag
    assert tracked < 0.25 * lag, (tracked, lag)


def test_a_bad_feed_forward_is_refused():
    rt = SimRuntime("g1", controller="wbc")
    with pytest.raises(ValueError, match="vel"):
        rt.wb.set_com_trajectory([0, 0, 0.7], [0, float("nan"), 0], [0, 0, 0])
    with pytest.raises(ValueError, match="acc"):
        rt.wb.set_com_trajectory([0, 0, 0.7], [0, 0, 0], [0, 0])

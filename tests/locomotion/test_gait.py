"""The biped walking pattern (cpp/locomotion/gait.hpp): unicycle footsteps within their limits, a DCM
plan that is the bounded solution of the pendulum over its ZMP reference, a pendulum that follows
it under the DCM feedback law (also after a push), and swing trajectories that start and end at
rest."""

import math

import numpy as np
import pytest
from vertebra import _rt

LEFT, RIGHT = (0.0, 0.1, 0.0), (0.0, -0.1, 0.0)


def params(**kw):
    g = _rt.GaitParams()
    for k, v in kw.items():
        setattr(g, k, v)
    return g


def rel(a, b):
    """b in a's frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    dx, dy = b[0] - a[0], b[1] - a[1]
    return c * dx + s * dy, -s * dx + c * dy, math.atan2(math.sin(b[2] - a[2]), math.cos(b[2] - a[2]))


def walk(g, cmd, n, first="left", left=LEFT, right=RIGHT):
    """The steps and, per step, the landing in the stance foot's frame."""
    steps = _rt.gait_plan_footsteps(g, left, right, first, cmd, n)
    feet = {"left": left, "right": right}
    rels = []
    for s in steps:
        other = "right" if s["foot"] == "left" else "left"
        rels.append((s["foot"], rel(feet[other], s["pose"])))
        feet[s["foot"]] = s["pose"]
    return steps, rels, feet


def test_bad_parameters_are_refused_with_the_reason():
    assert _rt.GaitParams().check() == ""
    assert "double_support_s" in params(double_support_s=0.0).check()
    assert "finite" in params(com_height_m=float("nan")).check()
    assert "min_step_width_m" in params(min_step_width_m=0.3).check()
    with pytest.raises(ValueError, match="single_support_s"):
        _rt.gait_plan_footsteps(params(single_support_s=0.01), LEFT, RIGHT, "left", (0.2, 0, 0), 4)
    with pytest.raises(ValueError, match="'left' or 'right'"):
        _rt.gait_plan_footsteps(_rt.GaitParams(), LEFT, RIGHT, "middle", (0.2, 0, 0), 4)
    with pytest.raises(ValueError, match="n must be"):
        _rt.gait_plan_footsteps(_rt.GaitParams(), LEFT, RIGHT, "left", (0.2, 0, 0), 99)


def test_forward_steps_alternate_at_the_commanded_speed():
    g = params()
    T = g.step_s
    steps, rels, _ = walk(g, (0.3, 0.0, 0.0), 6)
    assert [s["foot"] for s in steps] == ["left", "right"] * 3
    assert [s["t_lift"] for s in steps] == pytest.approx([k * T for k in range(6)])
    assert all(s["t_land"] - s["t_lift"] == pytest.approx(g.single_support_s) for s in steps)
    for foot, (x, y, yaw) in rels:  # each landing 0.3 T ahead of the stance foot, at the step width
        assert x == pytest.approx(0.3 * T) and yaw == pytest.approx(0.0)
        assert y == pytest.approx(g.step_width_m if foot == "left" else -g.step_width_m)
    # six steps: the frame between the feet moved six times the command's step
    assert 0.5 * (steps[-1]["pose"][0] + steps[-2]["pose"][0]) == pytest.approx(0.3 * T * 5.5)


def test_sideways_and_turning_steps_open_the_foot_on_the_motions_side_and_never_cross():
    g = params()
    T = g.step_s
    _, rels, feet = walk(g, (0.0, 0.05, 0.0), 6)
    widths = [(f, y) for f, (x, y, yaw) in rels]
    assert widths[0] == ("left", pytest.approx(g.step_width_m + 2 * 0.05 * T))  # left opens ...
    assert widths[1] == ("right", pytest.approx(-g.step_width_m))  # ... right closes up
    assert 0.5 * (feet["left"][1] + feet["right"][1]) == pytest.approx(3 * 2 * 0.05 * T)
    _, rels, feet = walk(g, (0.0, 0.0, 0.2), 6)
    assert rels[0][1][2] == pytest.approx(2 * 0.2 * T) and rels[1][1][2] == pytest.approx(0.0)
    assert feet["left"][2] == pytest.approx(6 * 0.2 * T) and feet["right"][2] == pytest.approx(6 * 0.2 * T)
    for foot, (x, y, yaw) in rels:  # the swing foot lands on its own side of the stance foot
        assert (y if foot == "left" else -y) >= g.min_step_width_m - 1e-9


@pytest.mark.parametrize("cmd", [(5.0, 0, 0), (-5.0, 0, 0), (0, 5.0, 0), (0, -5.0, 0), (0, 0, 9.0), (3.0, 2.0, -4.0),
                                 (float("nan"), 0.1, float("inf"))])
def test_every_landing_stays_within_the_step_limits(cmd):
    g = params()
    r = _rt.gait_reachable(g, cmd)
    assert all(math.isfinite(v) for v in r)
    assert abs(r[0]) <= g.max_step_length_m / g.step_s + 1e-12
    _, rels, _ = walk(g, cmd, 8, first="right")
    for foot, (x, y, yaw) in rels:
        assert -g.max_step_back_m - 1e-9 <= x <= g.max_step_length_m + 1e-9
        w = y if foot == "left" else -y
        assert g.min_step_width_m - 1e-9 <= w <= g.step_width_m + g.max_step_out_m + 1e-9
        assert abs(yaw) <= g.max_step_turn_rad + 1e-9


def plan(g, cmd, n, t_first=0.3, dcm_start=None):
    steps = _rt.gait_plan_footsteps(g, LEFT, RIGHT, "left", cmd, n, t_first)
    return _rt.DcmPlan(g, (0.0, 0.0), t_first, LEFT, RIGHT, steps, dcm_start), steps


def test_the_dcm_plan_is_continuous_obeys_the_pendulum_and_ends_standing():
    g = params()
    p, steps = plan(g, (0.3, 0.05, 0.1), 5)
    assert p.segments == 1 + 2 * 5
    assert p.duration == pytest.approx(0.3 + 5 * g.step_s)
    ts = np.linspace(0.0, p.duration, 20001)
    xi = np.array([p.dcm(t) for t in ts])
    zmp = np.array([p.zmp(t) for t in ts])
    dt = ts[1] - ts[0]
    # xi' = omega (xi - p): the derivative (central differences) against the pendulum's
    rate = np.gradient(xi, dt, axis=0)
    assert np.max(np.abs(rate[1:-1] - g.omega * (xi - zmp)[1:-1])) < 1e-3
    assert np.max(np.abs(np.diff(xi, axis=0))) < 1e-3  # no jumps between segments
    # it ends where the robot stands: on the ZMP, in the middle of the last two feet
    last = [s["pose"] for s in steps[-2:]]
    mid = np.mean([q[:2] for q in last], axis=0)
    assert p.end == pytest.approx(tuple(mid)) and p.dcm(p.duration + 1.0) == pytest.approx(tuple(mid))
    # in single support the ZMP reference is on the stance foot
    s1 = steps[1]  # right swings: stance is the left foot, landed by step 0
    assert p.zmp(s1["t_lift"] + 0.5 * g.single_support_s) == pytest.approx(steps[0]["pose"][:2])


def lipm(g, p, k, t_end, push=None, dt=0.002):
    """The pendulum under the DCM feedback law: returns (times, CoM, DCM error)."""
    w = g.omega
    c, v = np.zeros(2), np.zeros(2)
    out_t, out_c, out_e = [], [], []
    for i in range(int(t_end / dt)):
        t = i * dt
        if push and abs(t - push[0]) < dt / 2:
            v = v + np.asarray(push[1])
        xi = c + v / w
        xi_d = np.asarray(p.dcm(t))
        r = np.asarray(_rt.gait_dcm_feedback(tuple(xi), tuple(xi_d), p.zmp(t), w, k))
        a = w * w * (c - r)
        c, v = c + v * dt + 0.5 * a * dt * dt, v + a * dt
        out_t.append(t)
        out_c.append(c.copy())
        out_e.append(np.linalg.norm(xi - xi_d))
    return np.array(out_t), np.array(out_c), np.array(out_e)


def test_a_pendulum_under_the_dcm_feedback_walks_the_plan_and_recovers_from_a_push():
    g = params()
    # from rest at the feet's middle: a plan whose first ZMP segment starts at a chosen point has its
    # DCM start there, and the ZMP first moves out, away from the first stance foot (the right)
    p, steps = plan(g, (0.3, 0.0, 0.0), 6, t_first=0.4, dcm_start=(0.0, 0.0))
    assert p.dcm(0.0) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert p.zmp(0.0)[1] > 0.0
    t, c, e = lipm(g, p, 3.0, p.duration + 2.0)
    assert np.max(e) < 1e-3  # the pendulum walks the plan without correction
    assert np.linalg.norm(c[-1] - np.asarray(p.end)) < 2e-3
    # a plan that starts its ZMP where the robot stands anticipates the first step: its DCM starts
    # centimetres off, and the feedback takes that out
    p, steps = plan(g, (0.3, 0.0, 0.0), 6)
    t, c, e = lipm(g, p, 3.0, p.duration + 2.0)
    assert e[0] > 0.03 and np.max(e[t > 1.5]) < 1e-3
    assert np.linalg.norm(c[-1] - np.asarray(p.end)) < 2e-3
    # a push (0.3 m/s sideways at mid-walk): the DCM error jumps and decays at the feedback's rate
    t, c, e = lipm(g, p, 3.0, p.duration + 2.0, push=(2.0, (0.0, 0.3)))
    i = np.searchsorted(t, 2.0) + 1
    assert e[i] > 0.05
    j = np.searchsorted(t, 3.0)
    assert e[j] < e[i] * math.exp(-3.0 * 1.0) * 1.2
    assert np.linalg.norm(c[-1] - np.asarray(p.end)) < 2e-3
    # without feedback (k = 0 is still the pendulum on the plan's ZMP) the same push diverges
    t, c, e = lipm(g, p, -g.omega, p.duration, push=(2.0, (0.0, 0.3)))
    assert e[-1] > 1.0


def test_a_swing_starts_and_ends_at_rest_with_its_apex_at_mid_swing():
    a, b = (0.0, 0.1, 0.0), (0.3, 0.12, 0.2)
    D, h = 0.7, 0.06
    s0 = _rt.gait_swing(a, 0.0, b, 0.02, h, D, 0.0)
    s1 = _rt.gait_swing(a, 0.0, b, 0.02, h, D, D)
    assert s0["pos"] == pytest.approx([0.0, 0.1, 0.0]) and s1["pos"] == pytest.approx([0.3, 0.12, 0.02])
    for s in (s0, s1):
        assert s["vel"] == pytest.approx([0, 0, 0], abs=1e-12) and s["acc"] == pytest.approx([0, 0, 0], abs=1e-12)
        assert s["yaw_rate"] == pytest.approx(0.0, abs=1e-12)
    mid = _rt.gait_swing(a, 0.0, b, 0.02, h, D, D / 2)
    assert mid["pos"][2] == pytest.approx(0.01 + h) and mid["yaw"] == pytest.approx(0.1)
    # the velocities and accelerations are the positions' derivatives
    ts = np.linspace(0, D, 701)
    sw = [_rt.gait_swing(a, 0.0, b, 0.02, h, D, t) for t in ts]
    pos, vel = np.array([s["pos"] for s in sw]), np.array([s["vel"] for s in sw])
    acc = np.array([s["acc"] for s in sw])
    dt = ts[1] - ts[0]
    assert np.max(np.abs(np.gradient(pos, dt, axis=0)[1:-1] - vel[1:-1])) < 1e-3
    assert np.max(np.abs(np.gradient(vel, dt, axis=0)[1:-1] - acc[1:-1])) < 1e-2
    assert np.min(pos[:, 2]) >= -1e-12  # never below the lower end
    # a turn across the +-pi seam goes the short way
    turn = _rt.gait_swing((0, 0, 3.0), 0.0, (0, 0, -3.0), 0.0, h, D, D / 2)
    assert abs(abs(turn["yaw"]) - math.pi) < 1e-9

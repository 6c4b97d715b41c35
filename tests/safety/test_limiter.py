"""The command limiter, property-based: for any command (NaN, Inf, huge values included) and any
previous command and measurement, the output respects every limit."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from vertebra import _rt

N = 6
DT = 0.002
Q_LO, Q_HI = np.array([-2.0, -0.5, -3.0, 0.0, -1.0, -2.5]), np.array([2.0, 0.5, 1.0, 2.8, 1.0, 0.2])
KP, KD = np.array([40.0, 80.0, 200.0, 300.0, 20.0, 60.0]), np.array([2.0, 3.0, 5.0, 6.0, 0.5, 1.5])
DQ_MAX, TAU_MAX = np.array([10.0, 20.0, 32.0, 20.0, 37.0, 22.0]), np.array([30.0, 88.0, 139.0, 139.0, 5.0, 25.0])
MARGIN, DERATE, RATE_SCALE = 0.02, 0.6, 1.0


def params():
    return _rt.RobotParams(kp=KP.tolist(), kd=KD.tolist(), kd_damping=[3.0] * N, kp_max=(1.5 * KP).tolist(),
                           kd_max=(1.5 * KD).tolist(), q_lower=Q_LO.tolist(), q_upper=Q_HI.tolist(),
                           dq_max=DQ_MAX.tolist(), tau_max=TAU_MAX.tolist(), default_pose=[0.0, 0, 0, 1.0, 0, 0])


def limiter():
    c = _rt.SafetyConfig()
    c.soft_limit_margin_rad = MARGIN
    c.derate_scale = DERATE
    c.rate_limit_scale = RATE_SCALE
    return _rt.CommandLimiter(params(), c, DT)


P, LIM = params(), limiter()
anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]),
)
vec = st.lists(anything, min_size=N, max_size=N)
command = st.fixed_dictionaries({"q": vec, "dq": vec, "kp": vec, "kd": vec, "tau_ff": vec})


@settings(max_examples=400, deadline=None)
@given(cmd=command, prev=command, q_meas=vec, derated=st.integers(min_value=0, max_value=2**N - 1))
def test_every_output_respects_every_limit(cmd, prev, q_meas, derated):
    out, flags, counts = LIM.apply(P, q_meas, prev, cmd, derated)
    d = np.array([DERATE if (derated >> i) & 1 else 1.0 for i in range(N)])
    q, dq, kp, kd, tau = (np.asarray(out[k]) for k in ("q", "dq", "kp", "kd", "tau_ff"))
    for a in (q, dq, kp, kd, tau):
        assert np.all(np.isfinite(a))
    lo, hi = Q_LO + MARGIN, Q_HI - MARGIN
    assert np.all(q >= lo) and np.all(q <= hi)
    assert np.all(np.abs(dq) <= DQ_MAX)
    assert np.all(kp >= 0) and np.all(kp <= 1.5 * KP * d + 1e-12)
    assert np.all(kd >= 0) and np.all(kd <= 1.5 * KD)
    assert np.all(np.abs(tau) <= TAU_MAX * d + 1e-12)
    # The rate limit: a stiff target moves at most dq_max*dt from its reference, whenever that
    # reference itself lies inside the soft limits (otherwise the soft limit wins).
    step = RATE_SCALE * DQ_MAX * DT
    for i in range(N):
        pq, pkp = prev["q"][i], prev["kp"][i]
        ref = pq if (pkp > 0 and math.isfinite(pq)) else q_meas[i]
        if kp[i] > 0 and math.isfinite(ref) and lo[i] <= ref <= hi[i]:
            assert abs(q[i] - ref) <= step[i] + 1e-9, (i, q[i], ref)
    # Every intervention is counted, and an untouched command comes back unchanged.
    bad = any(not math.isfinite(v) for k in cmd for v in cmd[k])
    assert (counts["non_finite"] > 0) == bad
    if flags == 0:
        for k in cmd:
            if k != "q":
                assert np.array_equal(np.asarray(cmd[k], dtype=float), out[k])


@settings(max_examples=200, deadline=None)
@given(cmd=command, q_meas=vec)
def test_the_limiter_accepts_its_own_output_unchanged(cmd, q_meas):
    """A limited command, sent again after itself, is not clamped again (no drift, no chatter)."""
    zero = {k: [0.0] * N for k in ("q", "dq", "kp", "kd", "tau_ff")}
    out, _, _ = LIM.apply(P, q_meas, zero, cmd, 0)
    prev = {k: list(map(float, out[k])) for k in out}
    again, flags, counts = LIM.apply(P, q_meas, prev, prev, 0)
    assert flags == 0 and sum(counts.values()) == 0
    for k in out:
        assert np.array_equal(again[k], out[k])


def test_named_cases():
    zero = {k: [0.0] * N for k in ("q", "dq", "kp", "kd", "tau_ff")}
    stiff = {"q": [0.1] * N, "dq": [0.0] * N, "kp": KP.tolist(), "kd": KD.tolist(), "tau_ff": [0.0] * N}
    # NaN position with a stiff previous command: the previous target, same tick
    cmd = dict(stiff, q=[math.nan] + [0.1] * (N - 1))
    out, flags, counts = LIM.apply(P, [0.0] * N, stiff, cmd, 0)
    assert out["q"][0] == 0.1 and flags & 1 and counts["non_finite"] == 1
    # gain escalation: clamped to kp_max
    out, flags, counts = LIM.apply(P, [0.1] * N, stiff, dict(stiff, kp=(KP * 10).tolist()), 0)
    assert np.allclose(out["kp"], 1.5 * KP) and counts["kp"] == N
    # a target far away moves one rate-limited step per tick
    out, flags, counts = LIM.apply(P, [0.1] * N, stiff, dict(stiff, q=[0.1, 0.1, 0.1, 2.0, 0.1, 0.1]), 0)
    assert out["q"][3] == np.float64(0.1 + DQ_MAX[3] * DT) and counts["rate"] == 1
    # derated joint: torque and stiffness limits scaled
    out, _, _ = LIM.apply(P, [0.1] * N, stiff, dict(stiff, tau_ff=[1e3] * N, kp=(KP * 2).tolist()), 0b1)
    assert out["tau_ff"][0] == TAU_MAX[0] * DERATE and out["tau_ff"][1] == TAU_MAX[1]
    assert out["kp"][0] == 1.5 * KP[0] * DERATE
    # without stiffness the position is informative: clamped to the soft range, not counted
    out, flags, counts = LIM.apply(P, [0.1] * N, zero, dict(zero, q=[9.0] * N), 0)
    assert flags == 0 and np.allclose(out["q"], Q_HI - MARGIN)


@settings(max_examples=300, deadline=None)
@given(cmd=command, prev=command, q_meas=vec)
def test_on_a_mode_entry_the_step_is_measured_in_torque(cmd, prev, q_meas):
    """First tick of a new mode: the reference reproduces the previous command's torque with the new
    kp and feed-forward, so a gain/feed-forward switch is not a position step (and is not clamped)."""
    out, _, _ = LIM.apply(P, q_meas, prev, cmd, 0, mode_entry=True)
    step = RATE_SCALE * DQ_MAX * DT
    lo, hi = Q_LO + MARGIN, Q_HI - MARGIN
    for i in range(N):
        kp, tau, q = float(out["kp"][i]), float(out["tau_ff"][i]), float(out["q"][i])
        if kp <= 0 or not math.isfinite(q_meas[i]):
            continue
        pq, pkp, ptau = prev["q"][i], prev["kp"][i], prev["tau_ff"][i]
        prev_tau = pkp * (pq - q_meas[i]) + ptau if math.isfinite(pq) else 0.0
        ref = q_meas[i] + (prev_tau - tau) / kp
        # Float tolerance scaled by the operands: ref = q_meas + (prev_tau - tau) / kp cancels them
        # (hypothesis found q_meas = 7e15 with kp = 1e-5, where ref is 0 only to within ~1 rad).
        scale = max(1.0, abs(ref), abs(q_meas[i]), abs((prev_tau - tau) / kp))
        if math.isfinite(ref) and lo[i] <= ref <= hi[i]:
            assert abs(q - ref) <= step[i] + 1e-6 * scale, (i, q, ref)


def test_no_stiffness_without_a_reference():
    limp = {k: [0.0] * N for k in ("q", "dq", "kp", "kd", "tau_ff")}
    cmd = {"q": [1.9] * N, "dq": [0.0] * N, "kp": KP.tolist(), "kd": KD.tolist(), "tau_ff": [0.0] * N}
    out, flags, counts = LIM.apply(P, [math.nan] * N, limp, cmd, 0)
    assert np.all(out["kp"] == 0.0) and counts["kp"] == N  # no measurement, no stiff previous target
    # a torque-preserving switch: previous PD holding 2 N·m of load, new command with feed-forward
    prev = {"q": [0.1] * N, "dq": [0.0] * N, "kp": KP.tolist(), "kd": KD.tolist(), "tau_ff": [0.0] * N}
    q_meas = (0.1 - 2.0 / KP).tolist()
    new = {"q": q_meas, "dq": [0.0] * N, "kp": (KP / 4).tolist(), "kd": KD.tolist(), "tau_ff": [2.0] * N}
    out, flags, _ = LIM.apply(P, q_meas, prev, new, 0, mode_entry=True)
    assert flags == 0  # same torque: not a step
    out, flags, _ = LIM.apply(P, q_meas, prev, new, 0, mode_entry=False)
    assert flags & 4  # the same command judged against the previous position target is a step

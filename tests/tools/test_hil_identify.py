"""The identification maths on synthetic traces (tools/hil/identify.py): what each estimator
recovers from a trace whose friction, lead and delay are known. Fast; no simulator."""

from __future__ import annotations

import numpy as np
import pytest

from vertebra.tools.hil import identify, programs

DT = 0.002
B, C, LEAD = 0.1, 0.05, 0.75e-3  # viscous N·m·s/rad, Coulomb N·m, the torque report's lead (s)


def synthetic_sweeps(kp: float, speed_gain: float = 1.0) -> tuple[programs.Program, np.ndarray, np.ndarray, np.ndarray]:
    """Two constant-speed sweeps played by an ideal joint whose measured speed is `speed_gain` x the
    commanded one (gravity pulling a torso away from its target), whose torque carries friction, a
    position-dependent gravity term, and the report's lead."""
    p = programs.Program(DT)
    programs.rest(p, "rest", 0.2)
    for k, v in enumerate([0.15, 0.3]):
        programs.sweep(p, f"sweep_{k}", 0.12, v, 1)
        programs.rest(p, f"sweep_{k}_settle", 0.2)
    q_cmd, dq_cmd, _ = p.arrays(0.0)
    dq = speed_gain * dq_cmd
    q = np.cumsum(dq) * DT
    tau = 3.0 * np.sin(q + 0.2) + B * dq + C * np.sign(dq) - kp * dq * LEAD
    return p, q, dq, tau


def sweeps_of(kp: float, speed_gain: float) -> list[tuple[float, list]]:
    p, q, dq, tau = synthetic_sweeps(kp, speed_gain)
    gravity = 3.0 * np.sin(q + 0.2)
    return [(kp, identify.sweep_bins(q, dq, tau - gravity, p, name, 0.0, 0.12)) for name in ("sweep_0", "sweep_1")]


@pytest.mark.parametrize("speed_gain", [1.0, 1.6])
def test_friction_and_lead_are_recovered_from_two_speeds_and_two_stiffnesses(speed_gain):
    # 1.6: the pass runs faster than commanded; steadiness is judged against the pass's own speed
    fr = identify.friction(sweeps_of(200.0, speed_gain) + sweeps_of(100.0, speed_gain))
    assert fr["viscous_nm_s_rad"] == pytest.approx(B, rel=0.02)
    assert fr["coulomb_nm"] == pytest.approx(C, rel=0.02)
    assert fr["lead_s"] == pytest.approx(LEAD, rel=0.02)
    assert all(s["bins"] == 8 for s in fr["per_sweep"])


def test_one_stiffness_gives_no_estimate():
    # b and the lead both scale with v: without a second stiffness they are not separable (no guess)
    fr = identify.friction(sweeps_of(200.0, 1.0))
    assert fr["viscous_nm_s_rad"] is None and fr["coulomb_nm"] is None and fr["lead_s"] is None


def test_a_joint_that_does_not_move_gives_no_estimate():
    p, q, dq, tau = synthetic_sweeps(200.0)
    stuck = [(kp, identify.sweep_bins(np.zeros_like(q), np.zeros_like(dq), tau, p, name, 0.0, 0.12))
             for kp in (200.0, 100.0) for name in ("sweep_0", "sweep_1")]
    assert all(bins == [] for _, bins in stuck)
    fr = identify.friction(stuck)
    assert fr["viscous_nm_s_rad"] is None and fr["coulomb_nm"] is None and fr["per_sweep"] == []


def test_torque_delay_counts_ticks_to_the_answer():
    cmd = np.zeros(400)
    cmd[100:150], cmd[200:250] = 2.0, -2.0
    meas = np.roll(cmd, 3)  # answered three samples later
    assert identify.torque_delay(meas, cmd, 0, 400, DT) == pytest.approx([3 * DT] * 4)

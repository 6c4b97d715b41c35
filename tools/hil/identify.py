"""Per-joint identification from a bench trace (tools/hil/programs.py made the program; the bench mode
recorded the state every tick). Pure numpy, off the tick. Conventions: index k of the trace is the
state the tick read before it wrote command k, so command k is first seen in sample k + 1 (one
control period is the least delay a bus can have).

* delay: the first sample after an edge of the torque doublet whose measured torque moved by a fifth
  of the edge, minus the edge (the median over the edges).
* friction: at one position the joint passes up and down at the same constant speed v; gravity and
  the hoist are the same both ways (and the inverse dynamics of the hanging robot is taken out),
  friction flips: tau_up - tau_down = 2 (b v + c), less the torque report's lead (see friction()).
  Two speeds and two stiffnesses give b, c and the lead (least squares over the position bins).
* torque constant: during the torque doublet, the measured torque against the motor-board law
  evaluated on the measured state (kp (q* - q) + kd (dq* - dq) + tau_ff), aligned by the delay; the
  least-squares slope is the ratio (1: the motor gives what it is told; saturation or a wrong torque
  constant shows as < 1 or > 1).
* Bode: the chirp's instantaneous frequency is known, so at each analysis frequency both command and
  response are fitted with a sine of the chirp's own phase over the samples near that frequency;
  their complex ratio is the response. Bandwidth: the first -3 dB crossing (None: above the chirp).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vertebra.tools.hil.programs import Program

STEADY = 0.25  # a sweep sample is steady within this fraction of its pass's median speed


def _seg(p: Program, name: str) -> slice:
    a, b = p.segments[name]
    return slice(a, b)


def torque_delay(tau: np.ndarray, cmd_tau: np.ndarray, start: int, end: int, dt: float) -> list[float]:
    """Delays (s) of the measured torque's answer to each edge of a feed-forward torque signal in
    ticks [start, end): the first sample after an edge that moved by a fifth of the edge's size
    towards it. Feed-forward torque is the one command no limiter shapes (a position step is rate-limited)."""
    out = []
    edges = [k for k in range(max(start, 1), end) if abs(cmd_tau[k] - cmd_tau[k - 1]) > 1e-9]
    quiet = 20  # only edges after a quiet spell: the answer to an earlier edge cannot be mistaken for it
    for i, k0 in enumerate(edges):
        if i > 0 and k0 - edges[i - 1] < quiet:
            continue
        size = cmd_tau[k0] - cmd_tau[k0 - 1]
        base = tau[k0]
        stop = min(len(tau), k0 + 1 + 100)
        # a fifth of the edge: a light link's own damping answers within the period and eats the rest
        moved = np.nonzero(np.sign(size) * (tau[k0 + 1:stop] - base) > 0.2 * abs(size))[0]
        if len(moved):
            out.append((moved[0] + 1) * dt)
    return out


def sweep_bins(q: np.ndarray, dq: np.ndarray, tau: np.ndarray, p: Program, name: str, hold: float,
               amplitude: float) -> list[tuple[float, float, float, float]]:
    """Per position bin of the sweep `name` (the middle 60% of its range, steady speed only: within
    STEADY of the median speed of the pass's direction there):
    (tau_up - tau_down, the mean speed, the bin's position, (tau_up + tau_down) / 2)."""
    edges = np.linspace(-0.6 * amplitude, 0.6 * amplitude, 9)
    s = _seg(p, name)
    x, w, t = q[s] - hold, dq[s], tau[s]
    mid = (x >= edges[0]) & (x < edges[-1])
    up = down = np.zeros(len(w), bool)
    for sign in (1.0, -1.0):
        # steady against the pass's own speed, not the commanded one: a joint that gravity pulls away
        # from its target (a torso over the waist, an inverted pendulum) runs faster than commanded
        here = mid & (sign * w > 0)
        if not here.any():
            continue
        v = float(np.median(np.abs(w[here])))
        steady = here & (np.abs(np.abs(w) - v) < STEADY * v)
        if sign > 0:
            up = steady
        else:
            down = steady
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        iu = up & (x >= lo) & (x < hi)
        idn = down & (x >= lo) & (x < hi)
        if iu.sum() >= 2 and idn.sum() >= 2:
            out.append((float(t[iu].mean() - t[idn].mean()), float(0.5 * (w[iu].mean() - w[idn].mean())),
                        float(0.5 * (lo + hi) + hold), float(0.5 * (t[iu].mean() + t[idn].mean()))))
    return out


def friction(sweeps: list[tuple[float, list[tuple[float, float, float, float]]]]) -> dict[str, Any]:
    """Viscous b (N·m·s/rad), Coulomb c (N·m) and the torque report's lead (s) from sweeps given as
    (kp, bins of sweep_bins() on the inverse-dynamics residual).

    Up against down at one position: tau_up - tau_down = 2 (b v + c) - 2 kp v lead. The last term is
    how the motor board reports its torque: it holds each command for a control period while the
    joint moves on, so the spring torque falls through the period and the sample it reports is not
    the period's mean (in the simulator: the last physics step's of 4, a lead of 1.5 steps). It grows
    with kp and friction does not, so sweeps at two stiffnesses tell them apart. Without two speeds at
    each of two stiffnesses nothing is estimated (None)."""
    per = []
    for kp, bins in sweeps:
        if bins:
            per.append({"kp": kp, "speed_rad_s": float(np.mean([b[1] for b in bins])),
                        "tau_up_minus_down_nm": float(np.mean([b[0] for b in bins])), "bins": len(bins)})
    out: dict[str, Any] = {"per_sweep": per, "viscous_nm_s_rad": None, "coulomb_nm": None, "lead_s": None}
    # every stiffness needs two speeds: otherwise b, c and the lead are not separable (no guess)
    by_kp: dict[float, set[float]] = {}
    for x in per:
        by_kp.setdefault(round(x["kp"], 9), set()).add(round(x["speed_rad_s"], 2))
    if len(by_kp) < 2 or any(len(v) < 2 for v in by_kp.values()):
        return out
    rows, rhs = [], []
    for kp, bins in sweeps:
        for d, v, *_ in bins:
            rows.append([2 * v, 2.0, -2 * kp * v])
            rhs.append(d)
    (b, c, lead), *_ = np.linalg.lstsq(np.asarray(rows), np.asarray(rhs), rcond=None)
    out.update(viscous_nm_s_rad=float(b), coulomb_nm=float(c), lead_s=float(lead))
    return out


def torque_ratio(q: np.ndarray, dq: np.ndarray, tau: np.ndarray, p: Program, cmd_q: np.ndarray, cmd_dq: np.ndarray,
                 cmd_tau: np.ndarray, kp: float, kd: float, delay_ticks: int, rating: float) -> float | None:
    """Measured / commanded torque over the doublet (least-squares slope), None when not measurable:
    a doublet below a quarter of the joint's rating (a light link cannot take more without moving
    fast) or too few samples where the feed-forward dominates."""
    k0, k1 = p.segments["doublet"]
    d = max(1, delay_ticks)
    ks = np.arange(k0, k1)
    ks = ks[ks + d < len(tau)]
    if not len(ks):
        return None
    meas = tau[ks + d]
    spring = kp * (cmd_q[ks] - q[ks + d]) + kd * (cmd_dq[ks] - dq[ks + d])
    commanded = spring + cmd_tau[ks]
    # only where the feed-forward dominates: the motor board evaluates its spring on a state that moves
    # within the period, which the sampled state cannot reproduce for a light, fast link
    strong = (np.abs(cmd_tau[ks]) > 0.5 * np.abs(cmd_tau[ks]).max()) & (np.abs(spring) < 0.1 * np.abs(cmd_tau[ks]))
    if strong.sum() < 6 or np.abs(cmd_tau[ks]).max() < 0.25 * rating:
        return None
    c, m = commanded[strong], meas[strong]
    return float(np.dot(m, c) / np.dot(c, c))


def bode(cmd: np.ndarray, resp: np.ndarray, p: Program, dt: float, points: int = 16) -> dict[str, Any]:
    """Gain (dB) and phase (deg) of the response to the chirp at `points` log-spaced frequencies."""
    s = _seg(p, "chirp")
    f0, f1, T = p.meta["chirp_f0_hz"], p.meta["chirp_f1_hz"], p.meta["chirp_s"]
    c, r = cmd[s] - cmd[s].mean(), resp[s] - resp[s].mean()
    t = np.arange(len(c)) * dt
    f_inst = f0 + (f1 - f0) * t / T
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t * t / T)
    env = np.abs(c)
    freqs, gains, phases = [], [], []
    lo_f, hi_f = f0 * 1.15, f1 / 1.15
    for fc in np.geomspace(lo_f, hi_f, points) if hi_f > lo_f else []:
        # the samples around the time the chirp passes fc: at least 1.5 of its periods (the fit uses the
        # chirp's own phase, so the frequency sweeping within the window is part of the model)
        tc = (fc - f0) * T / (f1 - f0)
        hw = max(0.75 / fc, 0.12 * fc * T / (f1 - f0))
        if tc - hw < 0.2 or tc + hw > T - 0.2:
            continue
        w = (t >= tc - hw) & (t <= tc + hw)
        if w.sum() < 12:
            continue
        basis = np.column_stack([np.sin(phase[w]), np.cos(phase[w]), np.ones(w.sum()), t[w] - t[w].mean()])
        (ac, bc, *_), *_ = np.linalg.lstsq(basis, c[w], rcond=None)
        (ar, br, *_), *_ = np.linalg.lstsq(basis, r[w], rcond=None)
        hc, hr = complex(ac, bc), complex(ar, br)
        if abs(hc) < 1e-9 or env[w].max() < 1e-6:
            continue
        h = hr / hc
        freqs.append(float(fc))
        gains.append(float(20 * np.log10(max(abs(h), 1e-9))))
        phases.append(float(np.degrees(np.angle(h))))
    phases = list(np.degrees(np.unwrap(np.radians(phases)))) if phases else []
    bw = None
    for i in range(1, len(gains)):
        if gains[i] < -3.0 <= gains[i - 1]:
            x0, x1 = np.log(freqs[i - 1]), np.log(freqs[i])
            frac = (-3.0 - gains[i - 1]) / (gains[i] - gains[i - 1])
            bw = float(np.exp(x0 + frac * (x1 - x0)))
            break
    if bw is None and gains and gains[0] < -3.0:
        bw = freqs[0]
    return {"freq_hz": freqs, "gain_db": gains, "phase_deg": [float(x) for x in phases], "bandwidth_hz": bw,
            "tracking_rms_rad": float(np.sqrt(np.mean((resp[s] - cmd[s]) ** 2)))}


def sibling_key(name: str) -> str:
    """The name a joint shares with its siblings: without the side (left_/right_) or the leg (FR_, FL_, RR_, RL_)."""
    for prefix in ("left_", "right_", "FR_", "FL_", "RR_", "RL_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name

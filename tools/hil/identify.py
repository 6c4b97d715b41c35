"""Per-joint identification from a bench trace (tools/hil/programs.py made the program; the bench mode
recorded the state every tick). Pure numpy, off the tick. Conventions: index k of the trace is the
state the tick read before it wrote command k, so command k is first seen in sample k + 1 (one
control period is the least delay a bus can have).

* delay: the first sample after an edge of the torque doublet whose measured torque moved by half
  the edge, minus the edge (the median over the edges).
* friction: at one position the joint passes up and down at the same constant speed v; gravity and
  the hoist are the same both ways, friction flips: tau_up - tau_down = 2 (b v + c). Two speeds give
  the viscous b and the Coulomb c (a linear least-squares over the position bins of both speeds).
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


def _seg(p: Program, name: str) -> slice:
    a, b = p.segments[name]
    return slice(a, b)


def torque_delay(tau: np.ndarray, cmd_tau: np.ndarray, start: int, end: int, dt: float) -> list[float]:
    """Delays (s) of the measured torque's answer to each edge of a feed-forward torque signal in
    ticks [start, end): the first sample after an edge that moved by half the edge's size towards
    it. Feed-forward torque is the one command no limiter shapes (a position step is rate-limited)."""
    out = []
    edges = [k for k in range(max(start, 1), end) if abs(cmd_tau[k] - cmd_tau[k - 1]) > 1e-9]
    quiet = 20  # only edges after a quiet spell: the answer to an earlier edge cannot be mistaken for it
    for i, k0 in enumerate(edges):
        if i > 0 and k0 - edges[i - 1] < quiet:
            continue
        size = cmd_tau[k0] - cmd_tau[k0 - 1]
        base = tau[k0]
        stop = min(len(tau), k0 + 1 + 100)
        moved = np.nonzero(np.sign(size) * (tau[k0 + 1:stop] - base) > 0.5 * abs(size))[0]
        if len(moved):
            out.append((moved[0] + 1) * dt)
    return out


def friction(q: np.ndarray, dq: np.ndarray, tau: np.ndarray, p: Program, hold: float, amplitude: float,
             names: list[str]) -> dict[str, Any]:
    """Viscous b (N·m·s/rad) and Coulomb c (N·m) from the constant-speed sweeps `names`."""
    rows, rhs, per_speed = [], [], []
    gravity_q, gravity_tau = [], []
    edges = np.linspace(-0.6 * amplitude, 0.6 * amplitude, 9)
    for name in names:
        s = _seg(p, name)
        v = p.meta[f"{name}_speed"]
        x, w, t = q[s] - hold, dq[s], tau[s]
        steady = np.abs(np.abs(w) - v) < 0.25 * v
        up, down = steady & (w > 0), steady & (w < 0)
        diffs, speeds = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            iu = up & (x >= lo) & (x < hi)
            idn = down & (x >= lo) & (x < hi)
            if iu.sum() >= 2 and idn.sum() >= 2:
                diffs.append(t[iu].mean() - t[idn].mean())
                speeds.append(0.5 * (w[iu].mean() - w[idn].mean()))
                gravity_q.append(0.5 * (lo + hi) + hold)
                gravity_tau.append(0.5 * (t[iu].mean() + t[idn].mean()))
        if diffs:
            d, vm = float(np.mean(diffs)), float(np.mean(speeds))
            per_speed.append({"speed_rad_s": vm, "tau_up_minus_down_nm": d, "bins": len(diffs)})
            for di, vi in zip(diffs, speeds):
                rows.append([2 * vi, 2.0])
                rhs.append(di)
    result: dict[str, Any] = {"per_speed": per_speed, "gravity_q": gravity_q, "gravity_tau": gravity_tau}
    if len(per_speed) >= 2:
        (b, c), *_ = np.linalg.lstsq(np.asarray(rows), np.asarray(rhs), rcond=None)
        result.update(viscous_nm_s_rad=float(b), coulomb_nm=float(c))
    else:
        result.update(viscous_nm_s_rad=None, coulomb_nm=None)
    return result


def torque_ratio(q: np.ndarray, dq: np.ndarray, tau: np.ndarray, p: Program, cmd_q: np.ndarray, cmd_dq: np.ndarray,
                 cmd_tau: np.ndarray, kp: float, kd: float, delay_ticks: int) -> float | None:
    """Measured / commanded torque over the doublet (least-squares slope), None when not measurable."""
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
    if strong.sum() < 3:
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
        w = (f_inst > fc / 1.12) & (f_inst < fc * 1.12) & (t > 0.2) & (t < T - 0.2)
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

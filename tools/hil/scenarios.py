"""The characterisation scenarios of `vertebra hil run`: bus, identify, wiring, limits, thermal. Each
runs programs through the bench runtime (tools/hil/bench.py) and turns the traces into Cases
(tools/hil/results.py) with the numbers measured, the thresholds applied and the data to plot.
The service-based scenarios are in tools/hil/reactions.py (safety) and policy_smoke.py (policy).

Judging, per joint, is against the rig config's thresholds and, for friction, against the robot
config's nominal values (sim.joint_dynamics) and the joint's siblings (the same joint on the other
side or leg): a joint with 3x the friction of its siblings is named even when its siblings are all
worse than the nominal.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vertebra.tools.hil import identify, programs
from vertebra.tools.hil.bench import BenchRuntime
from vertebra.tools.hil.model import BenchModel
from vertebra.tools.hil.results import Case


def movable(b: BenchRuntime) -> list[int]:
    return [i for i, n in enumerate(b.cfg.joint_names) if b.ctx.rig.bench_joint(n) is not None]


def _r(x: Any, nd: int = 4) -> Any:
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else round(float(x), nd)


# -- bus ------------------------------------------------------------------------------------------
def run_bus(b: BenchRuntime) -> list[Case]:
    s = b.ctx.rig.bus
    t0 = time.monotonic()
    names = b.cfg.joint_names
    if s.probe_joint not in names:
        return [Case("bus", "lowstate", "error", f"probe_joint {s.probe_joint!r} is not a joint: {', '.join(names)}")]
    j = names.index(s.probe_joint)
    before = b.counters()
    n = programs.ticks(s.duration_s, b.dt)
    half = programs.ticks(0.05, b.dt)
    tau = np.where((np.arange(n) // half) % 2 == 1, s.probe_torque_nm, 0.0)
    tau[-half:] = 0.0
    tr = b.play(j, b.cfg.joints[j].kp, b.cfg.joints[j].kd, np.full(n, b.hold[j]), np.zeros(n), tau)
    after = b.counters()
    seq = tr["seq"].astype(np.int64)
    stamps = tr["stamp_ns"].astype(np.int64)
    fresh = np.concatenate([[True], np.diff(seq) != 0])
    st = stamps[fresh] * 1e-9
    period = b.dt
    iv = np.diff(st)
    missing = int(np.sum(np.maximum(0, np.round(iv / period) - 1))) if len(iv) else 0
    expected = len(st) + missing
    span = st[-1] - st[0] if len(st) > 1 else 0.0
    rate = (len(st) - 1) / span if span > 0 else 0.0
    jitter = np.abs(iv[np.round(iv / period) == 1] - period) * 1e3 if len(iv) else np.zeros(0)
    crc = int(after.get("crc_errors", 0)) - int(before.get("crc_errors", 0))
    lat = np.asarray(identify.torque_delay(tr["tau"][:, j], tau, 0, n, b.dt)) * 1e3
    crc_rate = crc / max(1, expected)
    drop_rate = missing / max(1, expected)
    m = {"samples": int(len(st)), "rate_hz": _r(rate, 2), "jitter_p99_ms": _r(np.percentile(jitter, 99) if len(jitter) else 0.0),
         "dropped": missing, "drop_rate": _r(drop_rate, 5), "crc_errors": crc, "crc_error_rate": _r(crc_rate, 5),
         "latency_ms_p50": _r(np.median(lat) if len(lat) else None, 2), "latency_ms_max": _r(lat.max() if len(lat) else None, 2),
         "latency_samples": int(len(lat)), "success_rate": _r(1.0 - drop_rate - crc_rate, 5)}
    lim = {"rate_hz": [_r(b.rate_hz * (1 - s.rate_tolerance), 2), _r(b.rate_hz * (1 + s.rate_tolerance), 2)],
           "jitter_p99_ms": s.jitter_ms_max, "drop_rate": s.drop_rate_max, "crc_error_rate": s.crc_error_rate_max,
           "latency_ms_max": s.latency_ms_max}
    problems = []
    if abs(rate - b.rate_hz) > s.rate_tolerance * b.rate_hz:
        problems.append(f"lowstate at {rate:.1f} Hz (control rate {b.rate_hz:g} Hz)")
    if m["jitter_p99_ms"] is not None and m["jitter_p99_ms"] > s.jitter_ms_max:
        problems.append(f"jitter p99 {m['jitter_p99_ms']} ms > {s.jitter_ms_max:g} ms")
    if drop_rate > s.drop_rate_max:
        problems.append(f"{missing} lowstate samples dropped ({100 * drop_rate:.2f}%)")
    if crc_rate > s.crc_error_rate_max:
        problems.append(f"{crc} lowstate CRC errors ({100 * crc_rate:.2f}%)")
    if not len(lat):
        problems.append("no lowcmd -> lowstate round trip seen (torque steps never echoed)")
    elif lat.max() > s.latency_ms_max:
        problems.append(f"lowcmd -> lowstate round trip up to {lat.max():.1f} ms > {s.latency_ms_max:g} ms")
    plots = {"latency": {"kind": "histogram", "values": lat.tolist(), "unit": "ms"},
             "interval": {"kind": "histogram", "values": (iv * 1e3).tolist(), "unit": "ms"}}
    return [Case("bus", "lowstate", "failed" if problems else "passed",
                 "; ".join(problems) or f"{len(st)} samples at {rate:.1f} Hz, round trip {m['latency_ms_max']} ms",
                 m, lim, time.monotonic() - t0, plots)]


# -- identification and wiring ---------------------------------------------------------------------
def _program(b: BenchRuntime, model: BenchModel, j: int) -> programs.Program:
    idc = b.ctx.rig.identify
    bj = b.ctx.rig.bench_joint(b.cfg.joint_names[j])
    assert bj is not None
    return programs.identification_program(
        b.dt, amplitude=bj.amplitude_rad, speed_cap=bj.velocity_rad_s, kp=b.cfg.joints[j].kp,
        torque_cap=b.cfg.joints[j].tau_max_nm, inertia=model.joint_inertia(b.hold, j), step_s=idc.step_s,
        sweep_speeds=list(idc.sweep_speeds_rad_s), sweep_cycles=idc.sweep_cycles, chirp_f0=idc.chirp_f0_hz,
        chirp_f1=idc.chirp_f1_hz, chirp_s=idc.chirp_s)


def _soft_sweeps(b: BenchRuntime, j: int) -> programs.Program:
    idc = b.ctx.rig.identify
    bj = b.ctx.rig.bench_joint(b.cfg.joint_names[j])
    assert bj is not None
    p = programs.Program(b.dt)
    programs.rest(p, "rest", 0.2)
    for k, v in enumerate(idc.sweep_speeds_rad_s):
        programs.sweep(p, f"sweep_{k}", bj.amplitude_rad, min(v, bj.velocity_rad_s), idc.sweep_cycles)
        programs.rest(p, f"sweep_{k}_settle", 0.2)
    return p


def _residual(model: BenchModel, j: int, p: programs.Program, tr: dict[str, Any], dt: float,
              sweeps: list[str]) -> np.ndarray:
    """Measured torque minus the inverse dynamics of the hanging robot, over the sweeps (0 elsewhere).

    Sample k's torque is what the motor gave over the control period that ended at sample k (it held
    command k - 1 through it), so the inverse dynamics is that period's: the mean of samples k - 1 and
    k for the state and the IMU's angular rate, their difference over the period for the
    accelerations, and sample k's specific force (an IMU reports the period's mean: its accelerometer
    filters before it decimates). Evaluated at sample k with a central difference instead, the model
    is half a period ahead of the torque; gravity's pull on a heavy link then changes by its stiffness
    x speed x half a period, which reads as viscous friction (the G1's waist read +50%)."""
    T = tr["tau"][:, j]
    Q, DQ, G, A = tr["q"], tr["dq"], tr["gyro"], tr["acc"]
    resid = np.zeros_like(T)
    for name in sweeps:
        for k in range(max(1, p.segments[name][0]), p.segments[name][1]):
            resid[k] = T[k] - model.joint_torques(0.5 * (Q[k] + Q[k - 1]), 0.5 * (DQ[k] + DQ[k - 1]), (DQ[k] - DQ[k - 1]) / dt,
                                                  0.5 * (G[k] + G[k - 1]), (G[k] - G[k - 1]) / dt, A[k])[j]
    return resid


def characterise(b: BenchRuntime, joints: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Play the identification program on each movable joint in turn; the analysis of each."""
    model = BenchModel(b.full)
    out: dict[int, dict[str, Any]] = {}
    js = movable(b) if joints is None else joints
    for n_done, j in enumerate(js):
        b.ctx.check_stop()
        name = b.cfg.joint_names[j]
        b.ctx.log(f"identify {name} ({n_done + 1}/{len(js)})")
        p = _program(b, model, j)
        q, dq, tau = p.arrays(b.hold[j])
        t0 = time.monotonic()
        tr = b.play(j, b.cfg.joints[j].kp, b.cfg.joints[j].kd, q, dq, tau)
        # the friction sweeps again at half the stiffness: tells friction from the torque report's lead
        soft = _soft_sweeps(b, j)
        q2, dq2, tau2 = soft.arrays(b.hold[j])
        tr_soft = b.play(j, 0.5 * b.cfg.joints[j].kp, b.cfg.joints[j].kd, q2, dq2, tau2)
        out[j] = analyse(b, model, j, p, tr, soft, tr_soft)
        out[j]["duration_s"] = time.monotonic() - t0
        if b.ctx.rig.bench.settle_s > 0:
            b.wait(b.ctx.rig.bench.settle_s)
    return out


def analyse(b: BenchRuntime, model: BenchModel, j: int, p: programs.Program, tr: dict[str, Any],
            soft: programs.Program, tr_soft: dict[str, Any]) -> dict[str, Any]:
    dt = b.dt
    kp, kd = b.cfg.joints[j].kp, b.cfg.joints[j].kd
    Q, DQ, T = tr["q"][:, j], tr["dq"][:, j], tr["tau"][:, j]
    a, e = p.segments["doublet"]
    delays = identify.torque_delay(T, tr["cmd_tau_ff"], a, e, dt)
    delay = float(np.median(delays)) if delays else None
    dticks = int(round(delay / dt)) if delay is not None else 1
    ratio = identify.torque_ratio(Q, DQ, T, p, tr["cmd_q"], tr["cmd_dq"], tr["cmd_tau_ff"], kp, kd, dticks,
                                   b.full.joints[j].tau_max_nm)
    # inverse dynamics of the hanging robot over the sweeps: the residual torque is friction
    sweeps = [k for k in p.segments if k.startswith("sweep_") and not k.endswith("settle")]
    bj = b.ctx.rig.bench_joint(b.cfg.joint_names[j])
    amp = bj.amplitude_rad
    resid = _residual(model, j, p, tr, dt, sweeps)
    soft_sweeps = [k for k in soft.segments if k.startswith("sweep_") and not k.endswith("settle")]
    resid_soft = _residual(model, j, soft, tr_soft, dt, soft_sweeps)
    Qs, DQs = tr_soft["q"][:, j], tr_soft["dq"][:, j]
    fr = identify.friction([(kp, identify.sweep_bins(Q, DQ, resid, p, n, b.hold[j], amp)) for n in sweeps] +
                           [(0.5 * kp, identify.sweep_bins(Qs, DQs, resid_soft, soft, n, b.hold[j], amp))
                            for n in soft_sweeps])
    grav_bins = [x for n in sweeps for x in identify.sweep_bins(Q, DQ, T, p, n, b.hold[j], amp)]
    grav_model = np.full_like(T, np.nan)
    for name in sweeps:
        for k in range(*p.segments[name]):
            grav_model[k] = model.gravity(tr["q"][k], tr["quat"][k])[j]
    bo = identify.bode(tr["cmd_q"], Q, p, dt)
    # wiring: gravity torque against the model (offset), IMU reaction against the model (sign)
    gq, gt = np.asarray([x[2] for x in grav_bins]), np.asarray([x[3] for x in grav_bins])
    offset = slope = None
    sweep_ks = np.concatenate([np.arange(*p.segments[n]) for n in sweeps]) if sweeps else np.zeros(0, int)
    if len(gq) >= 3 and len(sweep_ks):
        ks = [int(sweep_ks[np.argmin(np.abs(Q[sweep_ks] - x))]) for x in gq]
        gm = np.asarray([grav_model[k] for k in ks])
        h = 1e-3
        slopes = []
        for k in ks:
            qq = tr["q"][k].copy()
            qq[j] += h
            slopes.append((model.gravity(qq, tr["quat"][k])[j] - grav_model[k]) / h)
        sl = np.asarray(slopes)
        slope = float(np.sqrt(np.mean(sl ** 2)))
        r = gt - gm
        offset = float(-np.dot(r, sl) / np.dot(sl, sl)) if np.dot(sl, sl) > 0 else None
    c0, c1 = p.segments["chirp"]
    pred = np.asarray([model.base_reaction(tr["q"][k], j) * tr["dq"][k, j] for k in range(c0, c1)])
    meas = tr["gyro"][c0:c1]
    win = max(3, int(0.25 / dt))
    kern = np.ones(win) / win

    def hp(x: np.ndarray) -> np.ndarray:
        return x - np.column_stack([np.convolve(x[:, i], kern, mode="same") for i in range(x.shape[1])])

    pm, mm = hp(pred), hp(meas)
    pred_rms = float(np.sqrt(np.mean(np.sum(pm ** 2, axis=1))))
    den = float(np.sqrt(np.sum(pm ** 2) * np.sum(mm ** 2)))
    corr = float(np.sum(pm * mm) / den) if den > 0 else None
    s0, s1 = p.segments["step_up"]
    lo = max(0, s0 - 50)
    return {"delay_s": delay, "delays_s": delays, "torque_ratio": ratio, "friction": fr, "bode": bo,
            "offset_rad": offset, "gravity_slope_nm_rad": slope, "reaction_corr": corr, "reaction_rms_rad_s": pred_rms,
            "step": {"t_s": (np.arange(lo, p.segments["step_down"][1]) - s0) * dt,
                     "command": tr["cmd_q"][lo:p.segments["step_down"][1]], "response": Q[lo:p.segments["step_down"][1]],
                     "torque": T[lo:p.segments["step_down"][1]]}}


def _nominal_friction(b: BenchRuntime, name: str) -> tuple[float, float]:
    import re

    for d in b.full.sim.joint_dynamics:
        if re.search(d.match, name):
            return float(d.damping_nm_s_rad), float(d.frictionloss_nm)
    return 0.0, 0.0


def identify_cases(b: BenchRuntime, res: dict[int, dict[str, Any]]) -> list[Case]:
    s = b.ctx.rig.identify
    names = b.cfg.joint_names
    groups: dict[str, list[int]] = {}
    for j in res:
        groups.setdefault(identify.sibling_key(names[j]), []).append(j)
    cases = []
    for j, r in res.items():
        name = names[j]
        fb, fc = r["friction"]["viscous_nm_s_rad"], r["friction"]["coulomb_nm"]
        nb, nc = _nominal_friction(b, name)
        sib = [k for k in groups[identify.sibling_key(name)] if k != j]
        # siblings whose estimate is physical (friction > 0): a garbled sibling is no reference
        sib_b = [x for k in sib if (x := res[k]["friction"]["viscous_nm_s_rad"]) is not None and x > 0]
        sib_c = [x for k in sib if (x := res[k]["friction"]["coulomb_nm"]) is not None and x > 0]
        delay_ms = None if r["delay_s"] is None else r["delay_s"] * 1e3
        bw = r["bode"]["bandwidth_hz"]
        m = {"delay_ms": _r(delay_ms, 2), "bandwidth_hz": _r(bw, 2),
             "bandwidth_above_range": bw is None and bool(r["bode"]["gain_db"]),
             "tracking_rms_rad": _r(r["bode"]["tracking_rms_rad"], 5), "viscous_nm_s_rad": _r(fb), "coulomb_nm": _r(fc),
             "nominal_viscous_nm_s_rad": nb, "nominal_coulomb_nm": nc,
             "siblings_viscous_nm_s_rad": _r(float(np.median(sib_b))) if sib_b else None,
             "siblings_coulomb_nm": _r(float(np.median(sib_c))) if sib_c else None,
             "torque_report_lead_ms": _r(None if r["friction"]["lead_s"] is None else 1e3 * r["friction"]["lead_s"], 3),
             "torque_ratio": _r(r["torque_ratio"]), "torque_constant_error": _r(abs(r["torque_ratio"] - 1.0)) if r["torque_ratio"] is not None else None}
        lim = {"delay_ms_max": s.delay_ms_max, "bandwidth_hz_min": s.bandwidth_hz_min,
               "tracking_rms_rad_max": s.tracking_rms_rad_max, "friction_ratio_max": s.friction_ratio_max,
               "torque_constant_error_max": s.torque_constant_error_max}
        bad, notes = [], []
        if delay_ms is None:
            bad.append("no torque response to the torque doublet")
        elif delay_ms > s.delay_ms_max:
            bad.append(f"delay {delay_ms:.1f} ms > {s.delay_ms_max:g} ms")
        if bw is not None and bw < s.bandwidth_hz_min:
            bad.append(f"bandwidth {bw:.2f} Hz < {s.bandwidth_hz_min:g} Hz")
        if r["bode"]["tracking_rms_rad"] > s.tracking_rms_rad_max:
            bad.append(f"chirp tracking error {r['bode']['tracking_rms_rad']:.4f} rad RMS > {s.tracking_rms_rad_max:g}")
        floor_b, floor_c = s.friction_floor
        for label, val, nom, sibs, floor in (("viscous friction", fb, nb, sib_b, floor_b), ("Coulomb friction", fc, nc, sib_c, floor_c)):
            if val is None:
                notes.append(f"{label} not identified (too few steady samples in the sweeps)")
                continue
            refs = [("the robot config's", nom)] + ([("its siblings'", float(np.median(sibs)))] if sibs else [])
            for what, ref in refs:
                if val > floor and val > s.friction_ratio_max * max(ref, floor):
                    bad.append(f"{label} {val:.3f} = {val / max(ref, floor):.1f}x {what} {ref:.3f}")
        if r["torque_ratio"] is not None and abs(r["torque_ratio"] - 1) > s.torque_constant_error_max:
            bad.append(f"measured torque {r['torque_ratio']:.2f}x the commanded (saturation or torque constant error)")
        bo = r["bode"]
        plots = {"bode": {"kind": "bode", "freq_hz": bo["freq_hz"], "gain_db": bo["gain_db"], "phase_deg": bo["phase_deg"],
                          "bandwidth_hz": bw},
                 "step": {"kind": "step", "t_s": r["step"]["t_s"].tolist(), "command": r["step"]["command"].tolist(),
                          "response": r["step"]["response"].tolist(), "torque": r["step"]["torque"].tolist()}}
        summary = (f"delay {m['delay_ms']} ms, bandwidth {m['bandwidth_hz'] or '> ' + str(s.chirp_f1_hz)} Hz"
                   + (f", friction {m['viscous_nm_s_rad']} N·m·s/rad + {m['coulomb_nm']} N·m" if fb is not None else ""))
        cases.append(Case("identify", name, "failed" if bad else "passed", "; ".join((bad or [summary]) + notes),
                          m, lim, r.get("duration_s", 0.0), plots))
    return cases


def wiring_cases(b: BenchRuntime, res: dict[int, dict[str, Any]]) -> list[Case]:
    s = b.ctx.rig.wiring
    cases = []
    for j, r in res.items():
        name = b.cfg.joint_names[j]
        corr, rms = r["reaction_corr"], r["reaction_rms_rad_s"]
        off, slope = r["offset_rad"], r["gravity_slope_nm_rad"]
        m = {"reaction_correlation": _r(corr), "reaction_rms_rad_s": _r(rms, 5), "offset_rad": _r(off),
             "gravity_slope_nm_rad": _r(slope, 3)}
        lim = {"reaction_correlation_min": s.reaction_correlation_min, "reaction_min_rad_s": s.reaction_min_rad_s,
               "offset_rad_max": s.offset_rad_max, "gravity_slope_min_nm_rad": s.gravity_slope_min_nm_rad}
        bad, unobservable = [], []
        if corr is None or rms < s.reaction_min_rad_s:
            unobservable.append(f"sign: the IMU reaction the model predicts ({rms:.4f} rad/s RMS) is below what this rig sees")
        elif corr < -s.reaction_correlation_min:
            bad.append(f"REVERSED: the base turns with the joint, not against it (IMU reaction correlation {corr:.2f})")
        elif corr < s.reaction_correlation_min:
            unobservable.append(f"sign: the IMU reaction is inconclusive (correlation {corr:.2f}: the hoist holds this "
                                "axis, or the link is light)")
        if off is None or slope is None or slope < s.gravity_slope_min_nm_rad:
            unobservable.append(f"offset: gravity barely loads this joint here ({slope if slope is not None else 0:.2f} N·m/rad)")
        elif abs(off) > s.offset_rad_max:
            bad.append(f"OFFSET: the gravity torque says the joint is {off:+.3f} rad from where its encoder says")
        if bad:
            verdict, msg = "failed", "; ".join(bad + unobservable)
        elif len(unobservable) == 2:
            verdict, msg = "skipped", "not observable on this rig: " + "; ".join(unobservable)
        else:
            verdict, msg = "passed", "; ".join(["sign and offset agree with the model"] + unobservable)
        cases.append(Case("wiring", name, verdict, msg, m, lim, 0.0))
    return cases


# -- limits -----------------------------------------------------------------------------------------
def run_limits(b: BenchRuntime) -> list[Case]:
    s = b.ctx.rig.limits
    names = b.cfg.joint_names
    cases = []
    for name in s.joints:
        t0 = time.monotonic()
        if name not in names:
            cases.append(Case("limits", name, "error", f"not a joint; joints are: {', '.join(names)}"))
            continue
        j = names.index(name)
        bj = b.ctx.rig.bench_joint(name)
        if bj is None:
            cases.append(Case("limits", name, "error", "the bench does not let this joint move (no bench.joints entry)"))
            continue
        lo, hi = b.rt.loop.limiter.soft_lower(j), b.rt.loop.limiter.soft_upper(j)
        hold = b.hold[j]
        side = 1.0 if hi - hold <= hold - lo else -1.0
        soft = hi if side > 0 else lo
        target = soft + side * s.overshoot_rad
        p = programs.Program(b.dt)
        q1, dq1 = programs.ramp(0.0, target - hold, bj.velocity_rad_s * 0.5, b.dt)
        p.add("out", q1, dq1)
        programs.rest(p, "beyond", s.hold_s, at=target - hold)
        q2, dq2 = programs.ramp(target - hold, 0.0, bj.velocity_rad_s * 0.5, b.dt)
        p.add("back", q2, dq2)
        programs.rest(p, "rest", 0.3)
        c0 = int(b.rt.status()["clamp_counts"]["position"])
        q, dq, tau = p.arrays(hold)
        tr = b.play(j, b.cfg.joints[j].kp, b.cfg.joints[j].kd, q, dq, tau)
        clamps = int(b.rt.status()["clamp_counts"]["position"]) - c0
        Q = tr["q"][:, j]
        beyond = float(np.max(side * (Q - soft)))
        m = {"soft_limit_rad": _r(soft), "target_rad": _r(target), "max_beyond_soft_rad": _r(beyond, 5),
             "position_clamps": clamps, "travel_rad": _r(abs(target - hold))}
        lim = {"tolerance_rad": s.tolerance_rad, "position_clamps_min": 1}
        bad = []
        if beyond > s.tolerance_rad:
            bad.append(f"the joint went {beyond:.3f} rad beyond its soft limit {soft:.3f} (target {target:.3f})")
        if clamps < 1:
            bad.append("the limiter never clamped a target beyond the soft limit")
        t = (np.arange(len(Q)) * b.dt).tolist()
        plots = {"limit": {"kind": "series", "t_s": t, "series": {"target": q.tolist(), "measured": Q.tolist(),
                                                                    "soft limit": [soft] * len(Q)}, "unit": "rad"}}
        cases.append(Case("limits", name, "failed" if bad else "passed", "; ".join(bad) or
                          f"held at {soft + beyond * side:.3f} rad against a target {s.overshoot_rad:g} rad beyond "
                          f"the soft limit; {clamps} clamps", m, lim, time.monotonic() - t0, plots))
    return cases


# -- thermal ---------------------------------------------------------------------------------------
def run_thermal(b: BenchRuntime) -> list[Case]:
    import re

    s = b.ctx.rig.thermal
    t0 = time.monotonic()
    names = b.cfg.joint_names
    pose = b.hold.copy()
    for pat, v in s.posture.items():
        for i, n in enumerate(names):
            if re.search(pat, n):
                bj = b.ctx.rig.bench_joint(n)
                if bj is None:
                    return [Case("thermal", "soak", "error", f"posture moves {n}, which the bench does not let move")]
                pose[i] = b.rt.default_pose[i] + float(np.clip(v, -3 * bj.amplitude_rad, 3 * bj.amplitude_rad))
    b.to_pose(pose, 1.0)
    times, temps, faults_seen = [], [], set()
    start_t = b.rt.time_s()
    samples = int(np.ceil(s.duration_s / s.sample_s))
    for k in range(samples + 1):  # a fixed count of whole sample intervals: the robot's clock paces it
        snap = b.rt.status()
        times.append(snap["time_s"] - start_t)
        temps.append(np.asarray(snap["state"]["motor_temp_c"])[:len(names)].copy())
        faults_seen.update(f for f in snap["faults"] if f.startswith("motor_temp"))
        if k < samples:
            b.wait(max(s.sample_s, 2 * b.dt))
    snap = b.rt.status()
    faults_seen.update(f for f in snap["faults"] if f.startswith("motor_temp"))
    T = np.asarray(temps)
    rise = T[-1] - T[0] if len(T) else np.zeros(len(names))
    hottest = int(np.argmax(T[-1])) if len(T) else 0
    b.to_pose(np.asarray(b.rt.default_pose), 1.0)
    saf = b.deploy.safety_settings(b.cfg)
    m = {"duration_s": s.duration_s, "max_temp_c": _r(float(T.max()) if len(T) else None, 1),
         "max_rise_c": _r(float(rise.max()) if len(rise) else None, 2), "hottest_joint": names[hottest],
         "derated_or_stopped": sorted(faults_seen)}
    lim = {"rise_c_max": s.rise_c_max}
    try:
        lim.update(temp_warn_c=saf.motors.temp_warn_c, temp_derate_c=saf.motors.temp_derate_c, temp_stop_c=saf.motors.temp_stop_c)
    except AttributeError:
        pass
    bad = []
    if len(rise) and rise.max() > s.rise_c_max:
        bad.append(f"{names[int(np.argmax(rise))]} rose {rise.max():.1f} C in {s.duration_s:g} s")
    if faults_seen:
        bad.append("temperature thresholds reached: " + ", ".join(sorted(faults_seen)))
    top = np.argsort(-T[-1])[:6] if len(T) else []
    plots = {"temperatures": {"kind": "series", "t_s": times, "series": {names[i]: T[:, i].tolist() for i in top}, "unit": "C"}}
    return [Case("thermal", "soak", "failed" if bad else "passed", "; ".join(bad) or
                 f"hottest {names[hottest]} at {m['max_temp_c']} C, largest rise {m['max_rise_c']} C", m, lim,
                 time.monotonic() - t0, plots)]

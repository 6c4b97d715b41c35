"""`vertebra bench wbc`: per-tick time of the C++ whole-body controller against the same QP written
in Python with the pinocchio and proxsuite Python bindings (what a user would otherwise write),
both fed the same recorded states of a simulated robot moving its hands/base, in the same run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pinocchio as pin
import proxsuite
from vertebra import _rt
from vertebra.runtime.config import RobotConfig, robot_params
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.runtime.numerics import quat_from_rpy, rotation_between, summary
from vertebra.runtime.wbc import build_wbc_config

FREE = 1e6


def record_trajectory(robot: str, ticks: int,
                      say: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[Any], list[list[float]]]:
    """States of the robot under the whole-body controller while its targets move, the targets, and
    the controller's contact plan per tick (what the state estimator reads)."""
    rt = SimRuntime(robot, controller="wbc")
    rt.stand_up(hold_s=0.5)
    rt.engage_wbc()
    rt.wait(0.2)
    st0 = rt.wb.status()
    com0 = np.array(st0["com"])
    snap = rt.loop.snapshot()["state"]
    base0 = np.array(snap["base_pos"])
    hands0 = []
    q = rt.model.full_configuration(snap["base_pos"], snap["base_quat"], snap["q"])
    for f in rt.cfg.hand_frames:
        hands0.append(np.asarray(rt.model.frame_translation(q, f)))
    states, targets, plans = [], [], []
    say(f"recording {ticks} ticks of {robot} moving under the whole-body controller ...")
    for k in range(ticks):
        t = k / rt.rate_hz
        if k % 10 == 0:  # moving targets, re-published at 50 Hz
            tgt: dict[str, Any] = {}
            if hands0:
                for h, name in enumerate(rt.cfg.hand_frames):
                    sign = 1.0 if h == 0 else -1.0
                    p = hands0[h] + np.array([0.12 + 0.06 * math.sin(1.3 * t), sign * 0.05 * math.cos(1.1 * t),
                                              0.12 + 0.08 * math.sin(0.9 * t + h)])
                    tgt[name] = (p, quat_from_rpy(0.0, -0.2 * math.sin(0.7 * t), 0.0))
                tgt["com"] = com0 + np.array([0.0, 0.03 * math.sin(0.5 * t), 0.0])
            else:
                tgt["base"] = (base0 + np.array([0.0, 0.0, 0.03 * math.sin(0.8 * t)]),
                               quat_from_rpy(0.2 * math.sin(0.7 * t), 0.15 * math.sin(0.5 * t), 0.2 * math.sin(0.3 * t)))
            for name, value in tgt.items():
                rt.wb.set_target(name, value)
        else:
            tgt = {}
        rt.loop.run_ticks(1)
        s = rt.loop.snapshot()["state"]
        states.append({k2: np.asarray(s[k2]).tolist() for k2 in ("q", "dq", "base_pos", "base_quat", "base_lin_vel",
                                                               "base_ang_vel", "tau", "imu_quat", "imu_gyro",
                                                               "imu_acc")})
        if s["has_foot_force"]:
            states[-1]["foot_force"] = np.asarray(s["foot_force"]).tolist()
        plans.append(list(rt.wb.status()["contact_weight"][: len(rt.cfg.foot_frames)]))
        targets.append(tgt)
        if (k + 1) % 2500 == 0:
            say(f"  {k + 1}/{ticks} ticks recorded")
    if rt.loop.snapshot()["faults"]:
        raise RuntimeError(f"the recorded run faulted: {rt.loop.snapshot()['faults']}")
    rt.close()
    return states, targets, plans


class PythonWbc:
    """The same task-space inverse-dynamics QP, straightforwardly in Python (pinocchio + proxsuite)."""

    def __init__(self, cfg: RobotConfig):
        self.cfg = cfg
        w = cfg.wbc
        self.wc = build_wbc_config(cfg)
        m = pin.buildModelFromUrdf(str(cfg.urdf_path), pin.JointModelFreeFlyer())
        self.vidx = np.array([m.joints[m.getJointId(n)].idx_v for n in cfg.joint_names])
        self.qidx = np.array([m.joints[m.getJointId(n)].idx_q for n in cfg.joint_names])
        for i, a in enumerate(self.wc.armature):
            m.armature[self.vidx[i]] = a
        self.contacts = []
        for f in cfg.foot_frames:
            parent = m.getFrameId(f)
            pf = m.frames[parent]
            off = pin.SE3(np.eye(3), np.array(w.sole_offset_m))
            self.contacts.append(m.addFrame(pin.Frame("py_" + f, pf.parentJoint, parent, pf.placement * off, pin.OP_FRAME)))
        self.model, self.data = m, m.createData()
        self.base = m.getFrameId(cfg.base_frame)
        self.torso = m.getFrameId(w.torso_frame) if w.torso_frame else None
        self.hands = [m.getFrameId(h) for h in cfg.hand_frames]
        # the controller's arms (wbc_setup.cpp): joints under a hand and not under the torso (or base);
        # their posture weight x hand_posture_scale while the hand has a target
        trunk = set(m.supports[m.frames[self.torso if self.torso is not None else self.base].parentJoint])
        self.arm_of: dict[int, int] = {}  # v index -> hand, -1: under both
        for h, fid in enumerate(self.hands):
            for j in m.supports[m.frames[fid].parentJoint]:
                if j == 0 or m.joints[j].idx_v < 6 or j in trunk:
                    continue
                iv = m.joints[j].idx_v
                self.arm_of[iv] = h if iv not in self.arm_of else -1
        # hands aimed from their shoulders (wbc_tasks.cpp, aim_hands)
        self.aim = [m.getFrameId(f) for f in self.wc.hand_aim_frames]
        self.aim_dir: dict[str, np.ndarray] = {}
        self.m = 6 if w.flat_feet else 3
        self.nc = len(self.contacts)
        self.nv, self.nj = m.nv, cfg.n_joints
        self.n = self.nv + self.nc * self.m
        self.neq = 6 + self.nc * self.m
        self.nin = self.nj + self.nc * (16 if w.flat_feet else 4)
        self.qp = proxsuite.proxqp.dense.QP(self.n, self.neq, self.nin, True)
        self.qp.settings.eps_abs = self.wc.eps_abs
        self.qp.settings.eps_rel = 0.0
        self.qp.settings.max_iter = self.wc.max_iter
        self.qp.settings.initial_guess = proxsuite.proxqp.InitialGuess.WARM_START_WITH_PREVIOUS_RESULT
        self.initialized = False
        self.tau_max = np.array(cfg.column("tau_max_nm"))
        self.refs: dict[str, Any] = {}
        self.posture = np.array(cfg.column("default_rad"))
        self.q_lo, self.q_hi = np.array(cfg.column("q_min_rad")), np.array(cfg.column("q_max_rad"))
        self.dq_max = np.array(cfg.column("dq_max_rad_s"))

    def load(self, s: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros(self.model.nq)
        v = np.zeros(self.nv)
        q[:3] = s["base_pos"]
        w, x, y, z = s["base_quat"]
        q[3:7] = [x, y, z, w]
        R = pin.Quaternion(w, x, y, z).normalized().toRotationMatrix()
        v[:3] = R.T @ np.asarray(s["base_lin_vel"])
        v[3:6] = s["base_ang_vel"]
        q[self.qidx] = s["q"]
        v[self.vidx] = s["dq"]
        return q, v

    def enter(self, s: dict[str, Any]) -> None:
        q, v = self.load(s)
        pin.framesForwardKinematics(self.model, self.data, q)
        self.refs["com"] = pin.centerOfMass(self.model, self.data, q).copy()
        Rb = self.data.oMf[self.base].rotation
        yaw = math.atan2(Rb[1, 0], Rb[0, 0])
        level = pin.rpy.rpyToMatrix(0, 0, yaw)
        self.refs["base"] = (self.data.oMf[self.base].translation.copy(), level)
        if self.torso is not None:
            Rt = self.data.oMf[self.torso].rotation
            self.refs["torso"] = pin.rpy.rpyToMatrix(0, 0, math.atan2(Rt[1, 0], Rt[0, 0]))

    def set_targets(self, tgt: dict[str, Any]) -> None:
        for name, value in tgt.items():
            if name == "com":
                self.refs["com"] = np.asarray(value)
            elif name == "base":
                self.refs["base"] = (np.asarray(value[0]), pin.Quaternion(*value[1]).toRotationMatrix())
            else:
                w_, x_, y_, z_ = value[1]
                self.refs[name] = (np.asarray(value[0]), pin.Quaternion(w_, x_, y_, z_).toRotationMatrix())
                self.aim_dir.pop(name, None)  # the orientation applies at this target's direction

    def _task(self, H, g, J, drift, aref, w):
        W = np.asarray(w)
        H[: self.nv, : self.nv] += J.T @ (W[:, None] * J)
        g[: self.nv] -= J.T @ (W * (aref - drift))

    def _se3(self, H, g, fid, p_ref, R_ref, gains, with_pos=True, max_p=FREE, max_r=FREE):
        m, d = self.model, self.data
        J = pin.getFrameJacobian(m, d, fid, pin.LOCAL_WORLD_ALIGNED)
        drift = pin.getFrameClassicalAcceleration(m, d, fid, pin.LOCAL_WORLD_ALIGNED).vector
        vel = pin.getFrameVelocity(m, d, fid, pin.LOCAL_WORLD_ALIGNED).vector
        oMf = d.oMf[fid]
        ep = p_ref - oMf.translation if p_ref is not None else np.zeros(3)
        er = pin.log3(R_ref @ oMf.rotation.T)
        ep = ep * min(1.0, max_p / max(np.linalg.norm(ep), 1e-12))
        er = er * min(1.0, max_r / max(np.linalg.norm(er), 1e-12))
        aref = np.concatenate([gains.kp * ep, gains.kp * er]) - gains.kd * vel
        w = np.array(gains.weight, dtype=float)
        if not with_pos:
            w[:3] = 0
        self._task(H, g, J, drift, aref, w)

    def _balance_guard(self, com: np.ndarray, vcom: np.ndarray) -> float:
        """The C++ controller's balance guard (wbc.cpp): the horizontal centre-of-mass weight factor
        from the capture point's distance to the edge of the soles' bounding box (all feet down)."""
        wc, d = self.wc, self.data
        if wc.balance_guard_scale <= 1.0:
            return 1.0
        X, Y = (wc.sole_half_length_m, wc.sole_half_width_m) if self.m == 6 else (0.0, 0.0)
        sole = np.array([[-X, -Y, 0.0], [-X, Y, 0.0], [X, -Y, 0.0], [X, Y, 0.0]])
        frames = [d.oMf[fid] for fid in self.contacts]
        corners = np.concatenate([f.translation + sole @ f.rotation.T for f in frames])
        ground = sum(f.translation[2] for f in frames) / len(frames)
        omega = math.sqrt(9.81 / max(0.1, com[2] - ground))
        xi = com[:2] + vcom[:2] / omega
        inside = min((xi - corners[:, :2].min(0)).min(), (corners[:, :2].max(0) - xi).min())
        span = wc.balance_guard_start_m - wc.balance_guard_full_m
        sgrd = min(max((wc.balance_guard_start_m - inside) / span, 0.0), 1.0)
        return 1.0 + (wc.balance_guard_scale - 1.0) * sgrd * sgrd

    def tick(self, s: dict[str, Any], dt: float) -> np.ndarray:
        m, d, wc = self.model, self.data, self.wc
        nv, nj, nc, mm = self.nv, self.nj, self.nc, self.m
        q, v = self.load(s)
        pin.forwardKinematics(m, d, q, v, np.zeros(nv))
        pin.computeJointJacobians(m, d)
        pin.updateFramePlacements(m, d)
        M = pin.crba(m, d, q)
        M = np.triu(M) + np.triu(M, 1).T
        h = pin.nonLinearEffects(m, d, q, v)
        com = pin.centerOfMass(m, d, q, v, np.zeros(nv))
        Jcom = pin.jacobianCenterOfMass(m, d, q)
        rf = pin.LOCAL if mm == 6 else pin.LOCAL_WORLD_ALIGNED
        Jc = np.zeros((nc * mm, nv))
        drift_c = np.zeros(nc * mm)
        for c, fid in enumerate(self.contacts):
            J = pin.getFrameJacobian(m, d, fid, rf)
            if mm == 6:
                Jc[6 * c: 6 * c + 6] = J
                drift_c[6 * c: 6 * c + 6] = pin.getFrameAcceleration(m, d, fid, rf).vector
            else:
                Jc[3 * c: 3 * c + 3] = J[:3]
                drift_c[3 * c: 3 * c + 3] = pin.getFrameClassicalAcceleration(m, d, fid, rf).linear
        n = self.n
        A = np.zeros((self.neq, n))
        b = np.zeros(self.neq)
        A[:6, :nv] = M[:6]
        A[:6, nv:] = -Jc[:, :6].T
        b[:6] = -h[:6]
        A[6:, :nv] = Jc
        b[6:] = -drift_c
        C = np.zeros((self.nin, n))
        lo = np.full(self.nin, -FREE)
        up = np.zeros(self.nin)
        C[:nj, :nv] = M[6:]
        C[:nj, nv:] = -Jc[:, 6:].T
        tau_lim = np.empty(nj)
        tau_lim[self.vidx - 6] = self.tau_max
        lo[:nj] = -tau_lim - h[6:]
        up[:nj] = tau_lim - h[6:]
        mu, X, Y = wc.friction, wc.sole_half_length_m, wc.sole_half_width_m
        r = nj
        for c in range(nc):
            fo = nv + c * mm
            for sx, col in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
                C[r, fo + col] = sx
                C[r, fo + 2] = -mu
                r += 1
            if mm == 6:
                for sx, col, lim in ((1, 3, Y), (-1, 3, Y), (1, 4, X), (-1, 4, X)):
                    C[r, fo + col] = sx
                    C[r, fo + 2] = -lim
                    r += 1
                for sz in (1, -1):
                    for s1 in (1, -1):
                        for s2 in (1, -1):
                            C[r, fo + 5] = sz
                            C[r, fo + 0] = s1 * Y
                            C[r, fo + 3] = s1 * sz * mu
                            C[r, fo + 1] = s2 * X
                            C[r, fo + 4] = s2 * sz * mu
                            C[r, fo + 2] = -mu * (X + Y)
                            r += 1
        T = wc.limit_horizon_s
        qj, vj = np.asarray(s["q"]), np.asarray(s["dq"])
        hi = np.minimum((self.dq_max - vj) / T, 2 * (self.q_hi - qj - vj * T) / T**2)
        lo_j = np.maximum((-self.dq_max - vj) / T, 2 * (self.q_lo - qj - vj * T) / T**2)
        bad = lo_j > hi
        lo_j[bad] = hi[bad] = 0.5 * (lo_j[bad] + hi[bad])
        lbox = np.full(n, -FREE)
        ubox = np.full(n, FREE)
        lbox[self.vidx] = lo_j
        ubox[self.vidx] = hi
        for c in range(nc):
            lbox[nv + c * mm + 2] = wc.min_normal_force_n
            ubox[nv + c * mm + 2] = wc.max_normal_force_n
        H = np.zeros((n, n))
        g = np.zeros(n)
        H[np.arange(nv), np.arange(nv)] = wc.reg_ddq
        H[np.arange(nv, n), np.arange(nv, n)] = wc.reg_force
        e = self.refs["com"] - com
        w_com = np.array(wc.com.weight[:3], dtype=float)
        w_com[:2] *= self._balance_guard(com, d.vcom[0])
        self._task(H, g, Jcom, d.acom[0], wc.com.kp * e - wc.com.kd * d.vcom[0], w_com)
        bp, bR = self.refs["base"]
        self._se3(H, g, self.base, bp, bR, wc.base)
        if self.torso is not None:
            self._se3(H, g, self.torso, None, self.refs["torso"], wc.torso, with_pos=False)
        for h, (name, fid) in enumerate(zip(self.cfg.hand_frames, self.hands)):
            if name in self.refs:
                p_, R_ = self.refs[name]
                if self.aim:
                    dh = p_ - d.oMf[self.aim[h]].translation
                    if np.linalg.norm(dh) >= 1e-3:
                        R_ = rotation_between(self.aim_dir.setdefault(name, dh / np.linalg.norm(dh)), dh) @ R_
                self._se3(H, g, fid, p_, R_, wc.hands, max_p=wc.max_position_error_m, max_r=wc.max_rotation_error_rad)
        active = [name in self.refs for name in self.cfg.hand_frames]
        wp = wc.posture.weight[0] * np.array([wc.hand_posture_scale if self.arm_of.get(int(iv), -1) >= 0
                                              and active[self.arm_of[int(iv)]] else 1.0 for iv in self.vidx])
        aref = wc.posture.kp * (self.posture - qj) - wc.posture.kd * vj
        H[self.vidx, self.vidx] += wp
        g[self.vidx] -= wp * aref
        if not self.initialized:
            self.qp.init(H, g, A, b, C, lo, up, lbox, ubox)
            self.initialized = True
        else:
            self.qp.update(H, g, A, b, C, lo, up, lbox, ubox)
        self.qp.solve()
        return np.array(self.qp.results.x[:nv])


def joint_racing_into_limit(cfg: RobotConfig, model: Any, joint: str, side: int, speed: float = 0.9) -> dict[str, Any]:
    """A standing state with one joint 0.02 rad from its lower (side -1) or upper (+1) limit, moving
    towards it at `speed` of its velocity limit: too fast to stop within the torque limits, so the
    warm solve's joint-limit acceleration bounds are infeasible and the tick needs the relaxed retry."""
    q = np.array(cfg.column("default_rad"))
    dq = np.zeros(len(q))
    j = cfg.joint_names.index(joint)
    if side < 0:
        q[j] = cfg.column("q_min_rad")[j] + 0.02
    else:
        q[j] = cfg.column("q_max_rad")[j] - 0.02
    dq[j] = side * speed * cfg.column("dq_max_rad_s")[j]
    h = model.standing_base_height(q.tolist(), cfg.foot_frames, cfg.sole_offset_m)
    return {"q": q.tolist(), "dq": dq.tolist(), "base_pos": [0.0, 0.0, h], "base_quat": [1.0, 0.0, 0.0, 0.0],
            "base_lin_vel": [0.0] * 3, "base_ang_vel": [0.0] * 3}


def worst_ticks(cfg: RobotConfig, model: Any, states: list[dict[str, Any]], snapshots: list[Any],
                say: Callable[[str], None]) -> dict[str, Any]:
    """What a tick costs when the solver works hardest, against the control period: (1) every joint
    driven into each of its limits at 90% speed (the infeasible case the retry exists for), 3 ticks
    each; (2) the recorded states with an unreachable solver tolerance, so every solve runs to its
    share of the tick's iteration budget. The budget bounds iterations (a hard cap, tested); this
    measures what that cap costs in time on this computer."""
    from vertebra.runtime.wbc import WholeBody

    params = robot_params(cfg)
    budget = build_wbc_config(cfg).tick_iteration_budget
    period_us = 1e6 / cfg.control_rate_hz
    say(f"worst ticks: every joint into each limit at 90% speed, then {len(states)} ticks spending the whole budget ...")
    t_us, iters, failed = [], [], 0
    for joint in cfg.joint_names:
        for side in (-1, 1):
            state = joint_racing_into_limit(cfg, model, joint, side)
            wb = WholeBody(cfg, model)
            wb.ctrl.enter(params, state)
            for _ in range(3):
                wb.ctrl.tick(params, state)
                st = wb.status()
                t_us.append(st["model_us"] + st["solve_us"])
                iters.append(st["tick_iterations"])
            failed += int(wb.status()["failures"])
    wb = WholeBody(cfg, model)
    wb.ctrl.enter(params, states[0])
    wb.ctrl.spend_whole_budget(True)
    rep = wb.ctrl.replay(params, states, snapshots)
    full_us = np.asarray(rep["model_us"]) + np.asarray(rep["solve_us"])
    full_it = np.asarray(rep["iterations"])
    worst = float(max(max(t_us), full_us.max()))
    return {
        "tick_iteration_budget": budget, "period_us": round(period_us, 1),
        "joint_limit_cases": {"ticks": len(t_us), "unsolved_ticks": failed, "max_tick_iterations": int(max(iters)),
                              "tick_us": summary(t_us)},
        "whole_budget": {"ticks": len(states), "max_tick_iterations": int(full_it.max()),
                         "tick_us": summary(full_us)},
        "worst_tick_us": round(worst, 1), "iterations_within_budget": int(max(max(iters), full_it.max())) <= budget,
        "worst_tick_within_period": worst < period_us,
    }


def bench_wbc(robot: str, ticks: int = 10_000, say: Callable[[str], None] | None = None,
              python_ticks: int | None = None) -> dict[str, Any]:
    say = say or (lambda _m: None)
    cfg = RobotConfig.load(robot)
    states, targets, plans = record_trajectory(robot, ticks, say)
    params = robot_params(cfg)
    dt = 1.0 / cfg.control_rate_hz

    say("C++ whole-body controller on the recorded states (back to back in C++, as the real-time loop runs it) ...")
    from vertebra.runtime.wbc import WholeBody

    model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    # Targets as the controller receives them: the cumulative WbcTargets value published before
    # each tick where they change (built on a staging copy that publishes nowhere that matters).
    staging = WholeBody(cfg, model)
    snapshots: list[Any] = []
    for tgt in targets:
        for name, value in tgt.items():
            staging.set_target(name, value)
        snapshots.append(_rt.WbcTargets(staging._t) if tgt else None)
    wb = WholeBody(cfg, model)
    wb.ctrl.enter(params, states[0])
    rep = wb.ctrl.replay(params, states, snapshots)
    cpp_model = np.asarray(rep["model_us"])
    cpp_total = cpp_model + np.asarray(rep["solve_us"])
    cpp_ddq = np.asarray(rep["ddq"])
    failures = int(rep["failures"])
    status = wb.status()

    # The same controller called once per tick from Python (what the per-tick numbers look like
    # with the interpreter running between ticks; timing is still measured inside C++).
    say("C++ controller again, one call per tick from Python ...")
    wb2 = WholeBody(cfg, model)
    wb2.ctrl.enter(params, states[0])
    from_py = []
    for s_, tgt in zip(states, targets):
        for name, value in tgt.items():
            wb2.set_target(name, value)
        wb2.ctrl.tick(params, s_)
        st = wb2.ctrl.status()
        from_py.append(st["model_us"] + st["solve_us"])

    worst = worst_ticks(cfg, model, states, snapshots, say)

    # The state estimator on the same states (it runs on the tick before the controller); its time
    # is measured inside C++ (the Python call around it is not counted).
    say("state estimator on the recorded states ...")
    from vertebra.runtime.estimation import build_estimator

    est = build_estimator(cfg, model, cfg.control_rate_hz)
    est_us, vel_err, height_err = [], [], []
    for s_, plan in zip(states, plans):
        e = est.update(s_, plan)
        est_us.append(est.last_update_us)
        vel_err.append(float(np.sum((np.asarray(e["base_lin_vel"]) - s_["base_lin_vel"]) ** 2)))
        height_err.append(abs(float(e["base_pos"][2]) - s_["base_pos"][2]))
    est_us_a = np.asarray(est_us)

    n_py = python_ticks or ticks
    say(f"Python implementation (pinocchio + proxsuite bindings) on {n_py} of the same states ...")
    py = PythonWbc(cfg)
    py.enter(states[0])
    py_total, diffs = [], []
    for k in range(n_py):
        if targets[k]:
            py.set_targets(targets[k])
        t0 = time.perf_counter()
        ddq = py.tick(states[k], dt)
        py_total.append((time.perf_counter() - t0) * 1e6)
        diffs.append(float(np.max(np.abs(ddq - cpp_ddq[k]))))
    cpp = summary(cpp_total)
    pys = summary(py_total)
    return {
        "benchmark": "wbc", "robot": robot, "ticks": ticks, "python_ticks": n_py,
        "qp": {"variables": wb.ctrl.n_variables, "equalities": wb.ctrl.n_eq, "inequalities": wb.ctrl.n_in,
               "box_bounds": wb.ctrl.n_variables,
               "solver_sees": {"variables": wb.ctrl.solver_variables, "equalities": 0,
                               "inequalities": wb.ctrl.solver_inequalities, "box_bounds": wb.ctrl.solver_variables}},
        "cpp_us": {**cpp, "model_p50": summary(cpp_model, ("p50",))["p50"],
                   "solve_p50": summary(cpp_total - cpp_model, ("p50",))["p50"]},
        "cpp_called_from_python_us": summary(from_py),
        "estimator_us": summary(est_us_a),
        "estimator_plus_cpp_us": summary(est_us_a + cpp_total),
        "estimator_vs_truth": {"vel_rmse_m_s": round(float(np.sqrt(np.mean(vel_err))), 4),
                               "height_err_max_m": round(max(height_err), 4)},
        "cpp_solves_on_fast_path": int(status["eliminated_solves"]),
        "python_us": pys,
        "ratio_p50_python_over_cpp": round(pys["p50"] / cpp["p50"], 2),
        "ratio_p99_python_over_cpp": round(pys["p99"] / cpp["p99"], 2),
        "solve_failures": {"cpp": failures, "cold_restarts": int(status["cold_restarts"]),
                           "relaxed": int(status["relaxed_solves"])},
        "same_solution_max_ddq_diff": summary(diffs, ("p99",), digits=6)["p99"],
        "worst_tick": worst,
        "goals_met": {"p50_le_40us": cpp["p50"] <= 40.0, "p99_le_80us": cpp["p99"] <= 80.0,
                      "estimator_plus_wbc_p50_le_50us": summary(est_us_a + cpp_total)["p50"] <= 50.0,
                      "p50_3x_faster_than_python": pys["p50"] / cpp["p50"] >= 3.0},
    }

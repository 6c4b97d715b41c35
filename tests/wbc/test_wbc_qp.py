"""The whole-body QP itself: dynamics consistency, contact cones, torque limits, failure handling."""

import numpy as np
import pinocchio as pin
import pytest
from vertebra import _rt
from vertebra.runtime.benchmarks.wbc import joint_racing_into_limit
from vertebra.runtime.config import RobotConfig, robot_params
from vertebra.runtime.wbc import WholeBody, build_wbc_config


def standing_state(cfg: RobotConfig, model, rng, speed=0.0):
    q = np.array(cfg.column("default_rad"))
    h = model.standing_base_height(q.tolist(), cfg.foot_frames, cfg.sole_offset_m)
    return {"q": q.tolist(), "dq": (speed * rng.standard_normal(cfg.n_joints)).tolist(), "base_pos": [0.0, 0.0, h],
            "base_quat": [1.0, 0.0, 0.0, 0.0], "base_lin_vel": (0.3 * speed * rng.standard_normal(3)).tolist(),
            "base_ang_vel": (speed * rng.standard_normal(3)).tolist()}


def reference_model(cfg: RobotConfig):
    """An independent pinocchio (Python) model: same URDF, armature and contact frames."""
    model = pin.buildModelFromUrdf(str(cfg.urdf_path), pin.JointModelFreeFlyer())
    wc = build_wbc_config(cfg)
    vidx = [model.joints[model.getJointId(n)].idx_v for n in cfg.joint_names]
    qidx = [model.joints[model.getJointId(n)].idx_q for n in cfg.joint_names]
    for i, a in enumerate(wc.armature):
        model.armature[vidx[i]] = a
    fids = []
    for f in cfg.foot_frames:
        parent = model.getFrameId(f)
        pf = model.frames[parent]
        off = pin.SE3(np.eye(3), np.array(cfg.wbc.sole_offset_m))
        fids.append(model.addFrame(pin.Frame("ref_" + f, pf.parentJoint, parent, pf.placement * off, pin.OP_FRAME)))
    return model, vidx, qidx, fids


def to_pin(state, vidx, qidx, nq, nv):
    q = np.zeros(nq)
    v = np.zeros(nv)
    q[:3] = state["base_pos"]
    w, x, y, z = state["base_quat"]
    q[3:7] = [x, y, z, w]
    R = pin.Quaternion(w, x, y, z).toRotationMatrix()
    v[:3] = R.T @ np.array(state["base_lin_vel"])
    v[3:6] = state["base_ang_vel"]
    for i in range(len(vidx)):
        q[qidx[i]] = state["q"][i]
        v[vidx[i]] = state["dq"][i]
    return q, v


@pytest.mark.parametrize("robot", ["g1", "go2"])
@pytest.mark.parametrize("speed", [0.0, 0.5])
def test_solution_reproduces_its_accelerations_through_forward_dynamics(robot, speed):
    cfg = RobotConfig.load(robot)
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    wb = WholeBody(cfg, rm)
    state = standing_state(cfg, rm, np.random.default_rng(3), speed)
    out = wb.ctrl.step(robot_params(cfg), state)
    assert out["status"] == "ok"
    ddq, f, tau = wb.ctrl.last_ddq(), wb.ctrl.last_forces(), wb.ctrl.last_tau()
    model, vidx, qidx, fids = reference_model(cfg)
    data = model.createData()
    q, v = to_pin(state, vidx, qidx, model.nq, model.nv)
    pin.computeJointJacobians(model, data, q)
    pin.updateFramePlacements(model, data)
    m = wb.ctrl.contact_dim
    rf = pin.LOCAL if m == 6 else pin.LOCAL_WORLD_ALIGNED
    gen = np.zeros(model.nv)
    for i, fid in enumerate(fids):
        J = pin.getFrameJacobian(model, data, fid, rf)[:m]
        gen += J.T @ f[i * m:(i + 1) * m]
    for i in range(cfg.n_joints):
        gen[vidx[i]] += tau[i]
    ddq_fd = pin.aba(model, data, q, v, gen)
    assert np.allclose(ddq_fd, ddq, atol=1e-4 * max(1.0, np.abs(ddq).max())), np.abs(ddq_fd - ddq).max()
    # the output command carries the same torques
    assert np.allclose(out["tau_ff"], tau)


def in_cone(wrench, cfg, tol=1e-4):
    mu = cfg.wbc.friction
    fx, fy, fz, tx, ty, tz = wrench
    ok = fz >= cfg.wbc.min_normal_force_n - tol and abs(fx) <= mu * fz + tol and abs(fy) <= mu * fz + tol
    if cfg.wbc.flat_feet:
        X, Y = cfg.wbc.sole_half_length_m, cfg.wbc.sole_half_width_m
        ok &= abs(tx) <= Y * fz + tol and abs(ty) <= X * fz + tol
        tmax = mu * (X + Y) * fz - abs(Y * fx + mu * tx) - abs(X * fy + mu * ty)
        tmin = -mu * (X + Y) * fz + abs(Y * fx - mu * tx) + abs(X * fy - mu * ty)
        ok &= tmin - tol <= tz <= tmax + tol
    return ok


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_wrenches_in_cones_and_torques_in_limits_on_random_states(robot):
    cfg = RobotConfig.load(robot)
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    wb = WholeBody(cfg, rm)
    params = robot_params(cfg)
    rng = np.random.default_rng(11)
    effort = np.array(cfg.column("tau_max_nm"))
    saturated = 0
    for k in range(40):
        state = standing_state(cfg, rm, rng, speed=1.5)
        state["q"] = (np.array(state["q"]) + 0.1 * rng.standard_normal(cfg.n_joints)).tolist()
        # an aggressive centre-of-mass target drives torques and forces towards their limits
        # (targets apply from the first tick after entering: step() re-enters, so it is not used)
        wb.reset_targets()
        wb.ctrl.enter(params, state)
        wb.ctrl.tick(params, state)
        wb.set_target("com", (np.array(wb.status()["com"]) + rng.uniform(-0.3, 0.3, 3)).tolist())
        failures = wb.status()["failures"]
        if wb.ctrl.tick(params, state) != "ok" or wb.status()["failures"] > failures:
            continue
        tau = wb.ctrl.last_tau()
        assert np.all(np.abs(tau) <= effort + 1e-4), (k, np.abs(tau) - effort)
        saturated += int(np.any(np.abs(tau) > effort - 1e-3))
        f = wb.ctrl.last_forces()
        m = wb.ctrl.contact_dim
        for c in range(wb.ctrl.n_contacts):
            w = np.zeros(6)
            w[:m] = f[c * m:(c + 1) * m]
            assert in_cone(w, cfg), (k, c, w)
    assert wb.status()["solves"] >= 40
    assert saturated > 0  # the limits were really active in some solves


def test_failed_solves_hold_the_previous_command_then_fault():
    cfg = RobotConfig.load("go2")
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime(cfg, controller="wbc")
    rt.stand_up(hold_s=0.2)
    rt.engage_wbc()
    rt.wait(0.2)
    rt.loop.run_ticks(1)
    held = rt.loop.snapshot()["command"]
    rt.wb.ctrl.inject_failures(3)
    for _ in range(3):
        rt.loop.run_ticks(1)
        c = rt.loop.snapshot()["command"]
        assert np.array_equal(c["tau_ff"], held["tau_ff"]) and np.array_equal(c["q"], held["q"])
    st = rt.wb.status()
    assert st["failures"] == 3 and st["consecutive_failures"] == 3
    rt.loop.run_ticks(5)
    assert rt.wb.status()["consecutive_failures"] == 0 and rt.loop.snapshot()["faults"] == []
    rt.wb.ctrl.inject_failures(10)  # max_consecutive_failures
    rt.loop.run_ticks(10)
    s = rt.loop.snapshot()
    # the configured response: settle-then-cut, latched until an operator reset
    assert "controller" in s["faults"] and s["safety_mode"] == "STOPPING" and s["mode"] == "settle"


def test_targets_by_name_are_validated():
    cfg = RobotConfig.load("g1")
    wb = WholeBody(cfg, _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names))
    with pytest.raises(ValueError, match="unknown target 'left_foot'; targets are: .*left_hand"):
        wb.set_target("left_foot", np.eye(4))
    with pytest.raises(ValueError, match="4x4 pose"):
        wb.set_target("left_hand", np.eye(3))
    with pytest.raises(ValueError, match="finite"):
        wb.set_target("com", [0.0, np.nan, 0.7])
    with pytest.raises(ValueError, match="outside"):
        wb.set_target("left_knee_joint", 5.0)
    wb.set_target("left_hand", np.eye(4))
    wb.set_target("left_elbow_joint", 0.5)
    wb.release("left_hand")


def test_qp_size_is_reported():
    cfg = RobotConfig.load("g1")
    wb = WholeBody(cfg, _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names))
    assert wb.ctrl.n_variables == 35 + 12 and wb.ctrl.n_eq == 6 + 12 and wb.ctrl.n_in == 29 + 32


def test_wbc_mode_is_registered_before_the_loop_ticks():
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("go2", controller="wbc")
    rt.loop.run_ticks(1)
    with pytest.raises(RuntimeError, match="before the loop first ticks"):
        rt.loop.register_mode("wbc", rt.wb.ctrl)
    pd = SimRuntime("go2")  # no whole-body controller: a WBC request is refused, not crashed on
    seq = pd.loop.request_mode("wbc")
    pd.loop.run_ticks(1)
    s = pd.loop.snapshot()
    assert s["request_seq"] == seq and s["request_status"] == "invalid_request" and s["mode"] == "zero_torque"


def test_pose_and_posture_targets_are_checked():
    cfg = RobotConfig.load("g1")
    wb = WholeBody(cfg, _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names))
    bad = np.eye(4)
    bad[:3, :3] *= 2.0
    with pytest.raises(ValueError, match="expected a rotation"):
        wb.set_target("left_hand", bad)
    with pytest.raises(ValueError, match="outside the joint limits for left_knee_joint"):
        p = np.array(cfg.column("default_rad"))
        p[3] = 4.0
        wb.set_target("posture", p)
    assert wb.hands["left_hand"] == 0 and wb.hands["right_rubber_hand"] == 1


def test_non_finite_targets_never_reach_the_solver():
    cfg = RobotConfig.load("go2")
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    wb = WholeBody(cfg, rm)
    params = robot_params(cfg)
    state = standing_state(cfg, rm, np.random.default_rng(0))
    assert wb.ctrl.enter(params, state) == "ok"
    t = _rt.WbcTargets()
    t.seq = 10**6
    t.com_set = True
    t.com = [0.0, float("nan"), 0.3]  # bypasses the Python checks
    wb.ctrl.publish_targets(t)
    assert wb.ctrl.tick(params, state) == "ok"
    assert wb.status()["failures"] == 0 and np.all(np.isfinite(wb.status()["com_err"]))


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_eliminating_the_contact_rows_gives_the_same_solution(robot):
    """The fast path (base and contact rows eliminated before ProxQP) and the fallback (contact rows
    as equalities) solve the same problem: solved tightly, they agree on accelerations and on the
    net contact force, on moving states with a centre-of-mass target, through a foot release and a
    touch-down."""
    cfg = RobotConfig.load(robot)
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    params = robot_params(cfg)
    wbs = []
    for eliminate in (True, False):
        wc = build_wbc_config(cfg)
        wc.eliminate_contacts, wc.eps_abs, wc.max_iter = eliminate, 1e-9, 2000
        wc.tick_iteration_budget, wc.inner_max_iter = 100000, 1500  # tight reference solves, not per-tick work
        wb = WholeBody(cfg, rm)
        wb.ctrl = _rt.WholeBodyController(rm, wc)
        wbs.append(wb)
    fast, slow = wbs
    rng = np.random.default_rng(5)
    m = fast.ctrl.contact_dim
    for k in range(8):
        state = standing_state(cfg, rm, rng, speed=0.5)
        for wb in wbs:
            wb.ctrl.enter(params, state)
            wb.ctrl.tick(params, state)
            wb.set_target("com", (np.array(wb.status()["com"]) + [0.0, 0.03, -0.02]).tolist())
            if k == 7:
                wb.set_contact(cfg.foot_frames[-1], False)
        for _ in range(60 if k == 7 else 1):  # the last state: through the release ramp
            assert [wb.ctrl.tick(params, state) for wb in wbs] == ["ok", "ok"]
            assert np.allclose(fast.ctrl.last_ddq(), slow.ctrl.last_ddq(), atol=1e-5)
            # how the net force splits between the feet along a flat direction of the cost (a
            # lateral squeeze, weighted only by reg_force) is the least determined part: compare totals
            net = [wb.ctrl.last_forces().reshape(-1, m)[:, :3].sum(axis=0) for wb in wbs]
            assert np.allclose(net[0], net[1], atol=1e-3)
    assert fast.status()["eliminated_solves"] == fast.status()["solves"] > 0
    assert slow.status()["eliminated_solves"] == 0


def test_a_joint_racing_into_its_limit_is_solved_with_the_bounds_relaxed():
    """Near a limit, a joint too fast to stop in time makes the joint-limit acceleration bounds
    contradict the torque limits: the warm solve fails (within max_iter), and the one retry,
    cold and without those bounds, succeeds. At most two solves per tick."""
    cfg, rm, state = go2_joint_racing_into_its_limit()
    params = robot_params(cfg)
    wb = WholeBody(cfg, rm)
    wb.ctrl.enter(params, state)
    for _ in range(3):
        assert wb.ctrl.tick(params, state) == "ok"
    st = wb.status()
    assert st["failures"] == 0 and st["relaxed_solves"] == 3 and st["cold_restarts"] == 3
    assert st["eliminated_solves"] == 3


def test_a_released_foot_switches_which_components_are_eliminated():
    """With a foot released its forces become the dependent components (f = 0 exactly) and its leg
    is free; the solve stays on the fast path and the released wrench is zero."""
    cfg = RobotConfig.load("g1")
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    wb = WholeBody(cfg, rm)
    params = robot_params(cfg)
    state = standing_state(cfg, rm, np.random.default_rng(2))
    wb.ctrl.enter(params, state)
    wb.ctrl.tick(params, state)
    wb.set_target("com", (np.array(wb.status()["com"]) + [0.0, 0.06, 0.0]).tolist())
    wb.set_contact(cfg.foot_frames[1], False)
    for _ in range(80):  # the 0.1 s force ramp (50 ticks), then the foot is free
        assert wb.ctrl.tick(params, state) == "ok"
    st = wb.status()
    assert st["contact_weight"][1] == 0.0
    assert np.all(wb.ctrl.last_forces()[6:] == 0.0)
    assert st["eliminated_solves"] == st["solves"] and st["failures"] == 0


def test_straight_knees_still_solve_the_same_problem_on_the_fast_path():
    """A fully extended knee makes the leg Jacobian singular; the base coupling keeps the
    eliminated block invertible, and the fast path's solution still matches a tight reference."""
    cfg = RobotConfig.load("g1")
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    params = robot_params(cfg)
    names = cfg.joint_names
    q = np.array(cfg.column("default_rad"))
    for side in ("left", "right"):
        for j, v in (("knee", 0.0), ("hip_pitch", 0.0), ("ankle_pitch", 0.0)):
            q[names.index(f"{side}_{j}_joint")] = v
    h = rm.standing_base_height(q.tolist(), cfg.foot_frames, cfg.sole_offset_m)
    rng = np.random.default_rng(1)
    state = {"q": q.tolist(), "dq": (0.3 * rng.standard_normal(len(q))).tolist(), "base_pos": [0.0, 0.0, h],
             "base_quat": [1.0, 0.0, 0.0, 0.0], "base_lin_vel": [0.0] * 3, "base_ang_vel": [0.0] * 3}
    ddq = {}
    for key, eliminate, eps in (("fast", True, 1e-6), ("reference", False, 1e-10)):
        wc = build_wbc_config(cfg)
        wc.eliminate_contacts, wc.eps_abs = eliminate, eps
        wb = WholeBody(cfg, rm)
        wb.ctrl = _rt.WholeBodyController(rm, wc)
        wb.ctrl.enter(params, state)
        wb.ctrl.tick(params, state)
        wb.set_target("com", (np.array(wb.status()["com"]) + [0.02, 0.03, -0.02]).tolist())
        assert wb.ctrl.tick(params, state) == "ok"
        assert wb.status()["eliminated_solves"] == (2 if eliminate else 0)
        ddq[key] = wb.ctrl.last_ddq()
    assert np.allclose(ddq["fast"], ddq["reference"], atol=1e-3)


def go2_joint_racing_into_its_limit():
    cfg = RobotConfig.load("go2")
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    return cfg, rm, joint_racing_into_limit(cfg, rm, "FL_thigh_joint", -1)


def test_the_iteration_split_never_exceeds_its_share():
    for iterations in range(2, 400, 3):
        for max_outer in (1, 2, 3, 7, 10, 50):
            for max_inner in (1, 2, 5, 10, 20, 1500):
                outer, inner = _rt.testing.solve_cap(iterations, max_outer, max_inner)
                assert 1 <= outer <= max_outer and 1 <= inner <= max_inner
                assert outer * (inner + 1) <= iterations, (iterations, max_outer, max_inner)


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_no_tick_exceeds_the_iteration_budget_with_any_joint_driven_into_its_limit(robot):
    """Every joint, at each of its limits, moving into it at 90% of its speed limit: the warm solve's
    joint-limit bounds are infeasible. The old solve ran up to 350 inner iterations (2.5 ms on the
    G1) in one tick. Now no tick runs more than the budget (ProxQP's own count), and a tick that does
    not solve within it holds the previous command. On the Go2 (the issue's case) every tick solves."""
    cfg = RobotConfig.load(robot)
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    params = robot_params(cfg)
    budget = build_wbc_config(cfg).tick_iteration_budget
    unsolved = retried = 0
    for joint in cfg.joint_names:
        for side in (-1, 1):
            state = joint_racing_into_limit(cfg, rm, joint, side)
            wb = WholeBody(cfg, rm)
            wb.ctrl.enter(params, state)
            for _ in range(3):
                assert wb.ctrl.tick(params, state) == "ok"  # solved, or held (fewer than 10 in a row)
                assert wb.status()["tick_iterations"] <= budget  # 0: the warm start is already the solution
            st = wb.status()
            assert st["max_tick_iterations"] <= budget
            unsolved += st["failures"]
            retried += st["cold_restarts"]
    assert retried >= len(cfg.joint_names)  # the infeasible cases did need the relaxed retry
    if robot == "go2":
        assert unsolved == 0


def test_a_tick_that_spends_its_whole_budget_holds_the_previous_command_and_is_counted():
    """With an unreachable tolerance every solve runs to its share of the budget: each tick stays
    within the budget, is counted as budget_exhausted, holds the previous command (the same output
    as the last solved tick), and too many in a row latch a controller fault."""
    cfg, rm, state = go2_joint_racing_into_its_limit()
    params = robot_params(cfg)
    wb = WholeBody(cfg, rm)
    budget = build_wbc_config(cfg).tick_iteration_budget
    wb.ctrl.enter(params, state)
    assert wb.ctrl.tick(params, state) == "ok" and wb.status()["failures"] == 0
    solved_tau = wb.ctrl.last_tau()
    wb.ctrl.spend_whole_budget(True)
    n = build_wbc_config(cfg).max_consecutive_failures
    out = []
    for _ in range(n):
        out.append(wb.ctrl.tick(params, state))
        assert wb.status()["tick_iterations"] <= budget
    st = wb.status()
    assert st["budget_exhausted"] == st["failures"] == n
    assert out[:-1] == ["ok"] * (n - 1)  # held: the previous command goes out
    assert out[-1] == "solver_failed"  # and too many in a row latch a controller fault
    assert np.array_equal(wb.ctrl.last_tau(), solved_tau)
    wb.ctrl.spend_whole_budget(False)
    wb.ctrl.enter(params, state)
    assert wb.ctrl.tick(params, state) == "ok" and wb.status()["consecutive_failures"] == 0


def test_a_budget_too_small_for_the_problem_fails_each_tick_within_it():
    cfg, rm, state = go2_joint_racing_into_its_limit()
    params = robot_params(cfg)
    wc = build_wbc_config(cfg)
    wc.tick_iteration_budget = 20  # far too little for this problem
    wb = WholeBody(cfg, rm)
    wb.ctrl = _rt.WholeBodyController(rm, wc)
    wb.ctrl.enter(params, state)
    for _ in range(5):
        wb.ctrl.tick(params, state)
        assert wb.status()["tick_iterations"] <= 20
    st = wb.status()
    assert st["budget_exhausted"] == st["failures"] == 5

"""Keep-out volumes: the whole-body controller keeps the robot's hands and forearms out of declared
boxes (a table), whatever targets it is given, and the simulated table is solid."""

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.scene import table_box
from vertebra.policies.vla.expert import G1Session
from vertebra.runtime.config import KeepOutBox, RobotConfig, robot_params
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.numerics import rotation_to_quat
from vertebra.runtime.wbc import WholeBody, build_wbc_config

THROUGH_THE_TABLE = np.array([0.30, 0.15, 0.86])  # on the tabletop, reached straight from the hanging hand


def drive_left_hand(s: G1Session, target: np.ndarray, seconds: float = 3.0) -> float:
    """Hold the left hand's target (the right one at home); the least hand-table clearance seen."""
    x = np.concatenate([target, s.home[1]])
    least = float("inf")
    for _ in range(int(seconds * 50)):
        s.set_hand_targets(x)
        s.rt.loop.run_ticks(10)
        least = min(least, s.hand_table_clearance())
    return least


@pytest.mark.parametrize("table", ["visual", "solid", "keep_out"])
def test_a_target_through_the_table_is_stopped_by_the_controller(table):
    s = G1Session(table=table)
    try:
        least = drive_left_hand(s, THROUGH_THE_TABLE)
        st = s.rt.wb.ctrl.status()
        assert not s.rt.loop.snapshot()["faults"] and st["failures"] == 0
        if table == "visual":  # nothing stops the hand: it goes deep into the table
            assert least < -0.05
        elif table == "solid":  # the physics stops it, in contact (a hand hitting the table)
            assert -0.01 < least < 0.002
        else:  # the controller stops it short, its margin clear (robot config: wbc.keep_out.margin_m)
            margin = s.rt.cfg.wbc.keep_out.margin_m
            assert least > 0.5 * margin
            assert st["keep_out_clearance_m"] > 0.5 * margin and st["keep_out_active"] > 0
    finally:
        s.close()


def glide_left_hand(s: G1Session, to: np.ndarray, seconds: float, hold_s: float = 0.5) -> float:
    """The left hand's target along a minimum-jerk path from where the hand is (as the expert and a
    policy's chunks move it), then held; the least hand-table clearance seen."""
    from vertebra.policies.vla.expert import min_jerk

    start = s.hands()[0]
    least = float("inf")
    n = int(seconds * 50)
    for i in range(n + int(hold_s * 50)):
        s.set_hand_targets(np.concatenate([min_jerk(start, to, (i + 1) / n), s.home[1]]))
        s.rt.loop.run_ticks(10)
        least = min(least, s.hand_table_clearance())
    return least


def test_the_hand_still_reaches_over_the_table():
    """The barrier stops motion into the box, not past it: a hand sent up and over the table gets there."""
    s = G1Session(table="keep_out")
    try:
        # up in front of the table (the hand slides up its front face: the straight path cuts the
        # corner), then over it
        over = np.array([0.32, 0.15, 1.00])
        least = min(glide_left_hand(s, np.array([0.22, 0.25, 1.12]), 1.5, 3.0), glide_left_hand(s, over, 1.5, 1.5))
        assert least > 0.0
        assert np.linalg.norm(s.hands()[0] - over) < 0.03
        # and down onto it: stopped above the top, margin clear
        least = glide_left_hand(s, np.array([0.30, 0.15, 0.70]), 1.5)
        assert least > 0.0 and s.rt.wb.ctrl.status()["keep_out_active"] > 0
        assert s.hands()[0][2] > 0.8
        assert not s.rt.loop.snapshot()["faults"]
    finally:
        s.close()


def test_both_solver_paths_agree_with_a_binding_keep_out_row():
    """The keep-out rows go through the exact contact elimination like the torque rows: the fast path
    and the fallback (contact rows as equalities) give the same accelerations."""
    cfg = RobotConfig.load("g1")
    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    params = robot_params(cfg)
    q = np.array(cfg.column("default_rad"))
    h = rm.standing_base_height(q.tolist(), cfg.foot_frames, cfg.sole_offset_m)
    state = {"q": q.tolist(), "dq": [0.0] * cfg.n_joints, "base_pos": [0.0, 0.0, h], "base_quat": [1.0, 0.0, 0.0, 0.0],
             "base_lin_vel": [0.0] * 3, "base_ang_vel": [0.0] * 3}
    full = rm.full_configuration(state["base_pos"], state["base_quat"], state["q"])
    hand = np.asarray(rm.frame_translation(full, "left_rubber_hand"))
    pose = lambda p: (p.tolist(), rotation_to_quat(np.asarray(rm.frame_rotation(full, "left_rubber_hand"))))  # noqa: E731
    # a box whose top is 12 cm below the hanging left hand's frame: the fingers (11 cm down, 4.5 cm
    # spheres) are in it, so its rows push them up while the hand's target pulls down
    box = KeepOutBox.from_dict({"name": "shelf", "center_m": [hand[0], hand[1], hand[2] - 0.22], "half_m": [0.1, 0.1, 0.1]})
    wbs = []
    for eliminate in (True, False):
        wc = build_wbc_config(cfg, [box])
        wc.eliminate_contacts, wc.eps_abs, wc.max_iter = eliminate, 1e-9, 2000
        wc.tick_iteration_budget, wc.inner_max_iter = 100000, 1500
        wb = WholeBody(cfg, rm, keep_out=[box])
        wb.ctrl = _rt.WholeBodyController(rm, wc)
        wb.ctrl.enter(params, state)
        wb.ctrl.tick(params, state)
        wb.set_target("left_rubber_hand", pose(hand - [0.0, 0.0, 0.05]))
        wbs.append(wb)
    for _ in range(3):
        assert [wb.ctrl.tick(params, state) for wb in wbs] == ["ok", "ok"]
        assert np.allclose(wbs[0].ctrl.last_ddq(), wbs[1].ctrl.last_ddq(), atol=1e-5)
    assert all(wb.status()["keep_out_active"] > 0 for wb in wbs)
    # without the box the same target accelerates the hand down: the row was binding
    free = WholeBody(cfg, rm)
    free.ctrl.enter(params, state)
    free.ctrl.tick(params, state)
    free.set_target("left_rubber_hand", pose(hand - [0.0, 0.0, 0.05]))
    free.ctrl.tick(params, state)
    assert not np.allclose(free.ctrl.last_ddq(), wbs[0].ctrl.last_ddq(), atol=1e-3)


def test_bad_keep_out_settings_are_refused():
    from vertebra.runtime.sim_runtime import SimRuntime

    g1 = RobotConfig.load("g1")
    with pytest.raises(ConfigError, match="keep_out"):  # a controller that cannot keep them out
        SimRuntime(g1, controller="pd", keep_out=[table_box()])
    with pytest.raises(ConfigError, match="half_m"):
        KeepOutBox.from_dict({"name": "t", "center_m": [0, 0, 0], "half_m": [0.1, 0.0, 0.1]})
    wc = build_wbc_config(g1, [table_box()])
    wc.keep_out = [_rt.KeepOutBox([0.0, 0.0, 0.0], [0.1, -1.0, 0.1])]
    rm = _rt.RobotModel(str(g1.urdf_path), g1.joint_names)
    with pytest.raises(ValueError, match="keep_out"):
        _rt.WholeBodyController(rm, wc)
    go2 = RobotConfig.load("go2")  # no protected points declared: refused, not silently unprotected
    with pytest.raises(ConfigError, match="wbc.keep_out.points"):
        build_wbc_config(go2, [table_box()])

"""Hands the whole-body controller moves at the speed its gains ask for (wbc.hand_posture_scale) and
orients with the arm (wbc.hand_aim), on the simulated G1 in lockstep."""

import math

import numpy as np
import pytest
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.numerics import rotation_between
from vertebra.runtime.sim_runtime import SimRuntime

RIGHT = "right_rubber_hand"
SHOULDER = "right_shoulder_pitch_link"
WRISTS = ("right_wrist_roll_joint", "right_wrist_pitch_joint", "right_wrist_yaw_joint")


class Standing:
    """The G1 standing on the whole-body controller, with a robot config changed by `change`."""

    def __init__(self, change=None):
        cfg = RobotConfig.load("g1")
        if change:
            change(cfg)
        self.cfg = cfg
        self.rt = SimRuntime(cfg, controller="wbc")
        self.rt.stand_up(hold_s=0.3)
        self.rt.engage_wbc()
        self.rt.wait(0.2)

    def q(self):
        s = self.rt.loop.snapshot()["state"]
        return self.rt.model.full_configuration(s["base_pos"], s["base_quat"], s["q"])

    def at(self, frame):
        q = self.q()
        return np.asarray(self.rt.model.frame_translation(q, frame)), np.asarray(self.rt.model.frame_rotation(q, frame))

    def drive(self, target, seconds):
        """Hold a position-only target on the right hand (the left held where it is)."""
        self.rt.wb.set_target("left_rubber_hand", self.at("left_rubber_hand")[0])
        self.rt.wb.set_target(RIGHT, np.asarray(target, float))
        self.rt.run_ticks(int(seconds * self.rt.rate_hz))
        assert not self.rt.loop.snapshot()["faults"]

    def close(self):
        self.rt.close()


def angle_deg(R):
    return math.degrees(math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("scale", [None, 1.0])
def test_a_hanging_hand_lifted_in_front_gets_there(scale):
    """With the arm's posture at full weight while the hand has a target, the posture task's joint
    damping drags the hand (it crawls up at about 6 cm/s); the shipped config scales it down."""
    def change(cfg):
        if scale is not None:
            cfg.wbc.hand_posture_scale = scale

    s = Standing(change)
    try:
        target = np.array([0.10, -0.20, 0.95])  # 25 cm above the hanging hand, in front of the shoulder
        s.drive(target, 1.5)
        err = float(np.linalg.norm(s.at(RIGHT)[0] - target))
        if scale is None:
            assert s.cfg.wbc.hand_posture_scale < 1.0
            assert err < 0.02, err
        else:
            assert err > 0.08, err
    finally:
        s.close()


@pytest.mark.parametrize("aim", [True, False])
def test_a_raised_hand_is_aimed_with_its_arm(aim):
    """Raised in front, the hand held fingers-down turns with the arm (the smallest rotation from
    the shoulder-to-hand direction it hung at to the one to its target), its wrist clear of its
    limits; with the orientation held in the world it stays fingers-down."""
    def change(cfg):
        if not aim:
            cfg.wbc.hand_aim = []

    s = Standing(change)
    try:
        p0, R0 = s.at(RIGHT)
        d0 = p0 - s.at(SHOULDER)[0]
        target = np.array([0.22, -0.25, 1.12])  # the raise task's: above the shoulder, in front
        s.drive(target, 2.5)
        p, R = s.at(RIGHT)
        want = rotation_between(d0, target - s.at(SHOULDER)[0]) @ R0 if aim else R0
        assert angle_deg(want.T @ R) < 6.0, angle_deg(want.T @ R)
        assert angle_deg(R0.T @ R) > 60.0 if aim else True
        if aim:
            assert np.linalg.norm(p - target) < 0.03
            q = s.rt.loop.snapshot()["state"]["q"]
            for name in WRISTS:
                j = s.cfg.joints[s.cfg.joint_names.index(name)]
                qi = q[s.cfg.joint_names.index(name)]
                assert j.q_min_rad + 0.1 < qi < j.q_max_rad - 0.1, (name, qi)
    finally:
        s.close()


def test_the_aim_rotation_is_the_smallest_one():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.standard_normal(3), rng.standard_normal(3)
        R = rotation_between(a, b)
        assert np.allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and abs(np.linalg.det(R) - 1) < 1e-9
        axis = np.cross(a, b)
        assert np.allclose(R @ axis, axis, atol=1e-9)  # about the normal of the two: the smallest turn
    a = np.array([0.0, 0.0, -1.0])
    R = rotation_between(a, -a)  # an about-face: half a turn about an axis normal to it
    assert np.allclose(R @ a, -a, atol=1e-9) and np.allclose(R.T @ R, np.eye(3), atol=1e-9)


def test_hand_targets_as_a_position_or_a_pose_in_any_sequence_type():
    from vertebra import _rt
    from vertebra.runtime.wbc import WholeBody

    cfg = RobotConfig.load("g1")
    wb = WholeBody(cfg, _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names))
    i = wb.hands[RIGHT]
    for position in ([0.3, -0.2, 0.9], (0.3, -0.2, 0.9), np.array([0.3, -0.2, 0.9])):
        wb.set_target(RIGHT, position)
        assert wb._t.hand_position_only[i] and wb._t.hand_set[i]
    for pose in ([[0.3, -0.2, 0.9], [1.0, 0.0, 0.0, 0.0]], ((0.3, -0.2, 0.9), np.eye(3)), np.eye(4)):
        wb.set_target(RIGHT, pose)
        assert not wb._t.hand_position_only[i]
    for bad in ([0.3, float("nan"), 0.9], [0.3, 0.2], "up"):
        with pytest.raises(ValueError):
            wb.set_target(RIGHT, bad)


@pytest.mark.parametrize("aim", [["left_rubber_hand", "right_rubber_hand"], ["right_shoulder_pitch_link",
                                                                             "left_shoulder_pitch_link"]])
def test_a_hand_is_aimed_from_a_link_above_it_on_its_own_arm(aim):
    from vertebra import _rt
    from vertebra.runtime.wbc import build_wbc_config

    cfg = RobotConfig.load("g1")
    cfg.wbc.hand_aim = aim  # the hand itself, or the other arm's shoulder
    with pytest.raises(ValueError, match="hand_aim_frames: .* is not a link above"):
        _rt.WholeBodyController(_rt.RobotModel(str(cfg.urdf_path), cfg.joint_names), build_wbc_config(cfg))

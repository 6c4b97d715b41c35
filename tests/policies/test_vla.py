"""The tabletop vision-language tasks, the shipped VLA and its pipeline."""

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from vertebra.policies import vla
from vertebra.policies.actions import wbc_target_names
from vertebra.policies.package import PolicyPackage, check_against_robot
from vertebra.runtime.config import REPO_ROOT, RobotConfig

EXE = os.path.join(os.path.dirname(sys.executable), "vertebra")
PACKAGE = REPO_ROOT / "policies" / "packages" / "g1_vla"


@pytest.fixture(scope="module")
def session():
    s = vla.G1Session(table=vla.COLLECT_TABLE)  # as the demonstrations are collected (solid, kept out)
    yield s
    s.close()


def test_the_head_camera_sees_the_named_objects(session):
    from vertebra.drivers.scene import SceneObject

    rng = np.random.default_rng(5)
    ep = vla.sample_episode(rng, "touch")
    empty = vla.Episode("touch", "", [], None, 0)
    red = vla.Episode("touch", "", [SceneObject("red", "cube", np.array([0.34, 0.0, 0.825]))], None, 0)
    img_empty = session.observe(empty)["images"]["head"].astype(int)
    img_red = session.observe(red)["images"]["head"].astype(int)
    assert img_empty.shape == (vla.IMAGE, vla.IMAGE, 3)
    redness = (img_red[..., 0] - img_red[..., 1:].max(-1)) - (img_empty[..., 0] - img_empty[..., 1:].max(-1))
    assert (redness > 60).sum() >= 4  # a red blob appeared where the cube is
    assert len(ep.objects) >= 2 and ep.target in ep.objects


def run_expert(session, ep):
    start = session.hands()
    hist, least = [], float("inf")
    for i in range(int(vla.EPISODE_S * vla.RATE_HZ)):
        session.set_hand_targets(session.expert(ep, (i + 1) / vla.RATE_HZ, start))
        session.rt.loop.run_ticks(session.period)
        hist.append(np.concatenate(session.hands()))
        least = min(least, session.hand_table_clearance())
    gap = session.touch_gap(ep)
    ok = vla.success(ep, hist, session.sh, session.home, gap)
    measured = vla.measures(ep, hist, session.sh, session.home, gap)
    back = session.hands()
    for i in range(15):  # home again for the next case
        session.set_hand_targets(np.concatenate([vla.min_jerk(back[h], session.home[h], (i + 1) / 15) for h in range(2)]))
        session.rt.loop.run_ticks(session.period)
    return ok, measured, least


@pytest.mark.parametrize("task", vla.TASKS)
def test_the_expert_completes_every_task(session, task):
    rng = np.random.default_rng(zlib.crc32(task.encode()) % 1000)  # str hash() changes per process
    for _ in range(2):
        ep = vla.sample_episode(rng, task, phrasing_rng=rng)
        ok, measured, least = run_expert(session, ep)
        assert ok, (ep.instruction, measured)
        assert least > 0.0, (ep.instruction, least)  # over the table, never into it
    assert not session.rt.loop.snapshot()["faults"]


@pytest.mark.parametrize("y", [0.09, -0.09, 0.0])
def test_the_expert_touches_with_the_far_hand_across_the_body(session, y):
    from vertebra.drivers.scene import TABLE_TOP_Z, SceneObject

    for x in (0.28, 0.38):
        obj = SceneObject("red", "cube", np.array([x, y, TABLE_TOP_Z + 0.025]))
        hand = 1 if y >= 0 else 0  # the far side's hand (at y = 0 either)
        ep = vla.Episode("touch", vla.phrase("touch", obj, hand, None), [obj], obj, hand)
        ok, measured, least = run_expert(session, ep)
        assert ok, (x, y, measured)
        assert least > 0.0, (x, y, least)


@pytest.mark.parametrize("y,arm,ok", [(0.03, 1, True), (0.03, 0, True), (-0.03, 0, True),
                                      (0.20, 1, False), (0.20, 0, True), (-0.20, 0, False)])
def test_a_point_near_the_midline_may_use_either_arm(y, arm, ok):
    """The instruction names no arm: within CROSS_REACH_Y_M of the midline either arm's point counts;
    further out, the arm on the object's side (the other arm's point, across the body, does not)."""
    from vertebra.drivers.scene import TABLE_TOP_Z, SceneObject

    obj = SceneObject("green", "ball", np.array([0.30, y, TABLE_TOP_Z + 0.025]))
    ep = vla.Episode("point", vla.phrase("point", obj, 0 if y > 0 else 1, None), [obj], obj, 0 if y > 0 else 1)
    sh = [np.array([0.01, 0.10, 1.07]), np.array([0.01, -0.10, 1.07])]
    home = [np.array([0.07, 0.22, 0.69]), np.array([0.07, -0.22, 0.69])]
    hands = [home[0].copy(), home[1].copy()]
    d = obj.pos - sh[arm]
    hands[arm] = sh[arm] + 0.35 * d / np.linalg.norm(d)  # that arm points straight at it
    m = vla.measures(ep, [np.concatenate(hands)], sh, home)
    assert vla.success(ep, [np.concatenate(hands)], sh, home) is ok, m
    assert ok == (m["angle_deg"] < 1.0)


def test_an_absent_object_is_a_task_that_cannot_be_done():
    rng = np.random.default_rng(2)
    for _ in range(30):
        ep = vla.sample_episode(rng, "touch", phrasing_rng=rng)
        gone = vla.make_absent(ep, rng, phrasing_rng=rng)
        assert not gone.feasible and gone.target.name in gone.instruction
        assert all(o.name != gone.target.name for o in gone.objects)
        assert len(gone.objects) == len(ep.objects) - 1
        # the expert's plan for it is to stay
        g = vla.goal(gone, 2.0, [np.zeros(3), np.ones(3)], [np.zeros(3), np.zeros(3)])
        assert np.array_equal(g[0], np.zeros(3)) and np.array_equal(g[1], np.ones(3))
        v = vla.relabel(gone, rng)
        assert not v.feasible and all(o.name != v.target.name for o in v.objects)


def test_the_vocabulary_reads_every_training_phrasing_in_order():
    from vertebra.policies.package import InstructionError, Tokenizer

    tok = Tokenizer(list(vla.VOCAB), vla.TOKENS, stem=True)
    for task, ts in vla.TRAIN_PHRASINGS.items():
        for t in ts:
            text = t.format(obj="yellow ball", hand="left")
            assert tok.unknown_words(text) == [], text
            assert len(tok.words(text)) <= vla.TOKENS
    a = tok.encode("touch the red cube with your left hand")
    b = tok.encode("with your left hand touch the red cube")
    assert sorted(a.tolist()) == sorted(b.tolist()) and a.tolist() != b.tolist()  # the same words, in order
    assert tok.encode("pointing at the balls").tolist()[:4] == tok.encode("point at the ball").tolist()[:4]
    assert tok.unknown_words("touch the red cube gently") == ["gently"]
    with pytest.raises(InstructionError, match="19 words, this policy reads at most 16"):
        tok.encode("please could you touch the red cube with your left hand now and then wave with your right one")


def test_a_relabelled_scene_keeps_the_motion_and_changes_the_words_and_pixels():
    rng = np.random.default_rng(3)
    changed = 0
    for task in ("touch", "point"):
        for _ in range(40):
            ep = vla.sample_episode(rng, task)
            v = vla.relabel(ep, rng)
            assert v.task == ep.task and v.hand == ep.hand and np.array_equal(v.target.pos, ep.target.pos)
            assert v.target in v.objects and v.target.name in v.instruction and 2 <= len(v.objects) <= 3
            assert v.target.size_m == ep.target.size_m
            assert len({o.name for o in v.objects}) == len(v.objects)  # one object of each kind at most
            assert all(np.linalg.norm(a.pos[:2] - b.pos[:2]) > 0.10 for a in v.objects for b in v.objects if a is not b)
            if task == "touch":
                assert ("left" in v.instruction) == ("left" in ep.instruction)
            changed += v.instruction != ep.instruction
    assert changed > 50  # the target's colour and shape are drawn anew
    raise_ep = vla.sample_episode(rng, "raise")
    assert vla.relabel(raise_ep, rng) is raise_ep


def test_shipped_vla_package_fits_the_robot():
    pkg = PolicyPackage.load(PACKAGE)
    g1 = RobotConfig.load("g1")
    assert check_against_robot(pkg.spec, g1, wbc_targets=wbc_target_names(g1)) == []
    assert sum(f.stat().st_size for f in PACKAGE.iterdir()) < 20 * 1024 * 1024
    # it says when it cannot comply, reads words in order up to 16, and records what it was trained on
    assert pkg.spec.feasibility_output == "feasible" and pkg.spec.tokenizer.max_tokens == vla.TOKENS
    assert pkg.spec.tokenizer.stem and pkg.spec.tokenizer.vocab == list(vla.VOCAB)
    import yaml

    dist = yaml.safe_load((PACKAGE / "policy.yaml").read_text())["training"]["distribution"]
    assert dist["light_scale"] == [0.4, 1.6] and dist["camera_pitch_yaw_deg"] == 5.0 and dist["table"] == "keep_out"


def test_policy_check_refuses_a_target_without_all_its_axes_or_listed_twice():
    import dataclasses

    pkg = PolicyPackage.load(PACKAGE)
    g1 = RobotConfig.load("g1")
    valid = wbc_target_names(g1)
    reordered = dataclasses.replace(pkg.spec, targets=["com.x", "com.y", "com.z"] + list(pkg.spec.targets[3:]))
    assert check_against_robot(reordered, g1, wbc_targets=valid) == []  # any order, by name
    partial = dataclasses.replace(pkg.spec, targets=["com.x", "com.y"] + list(pkg.spec.targets[2:]))
    problems = check_against_robot(partial, g1, wbc_targets=valid)
    assert any("'com' needs all of com.x, com.y and com.z; found x, y" in p for p in problems), problems
    twice = dataclasses.replace(pkg.spec, targets=list(pkg.spec.targets[:5]) + [pkg.spec.targets[0]])
    assert any("listed twice" in p for p in check_against_robot(twice, g1, wbc_targets=valid))


def test_the_shipped_vla_meets_a_floor_in_closed_loop():
    # Lockstep sim and CPU inference are deterministic: a fixed seed gives a fixed result, so this is
    # a regression floor (16 held-out episodes, 4 per task, in drawn training phrasings, at the table
    # kept out; these give 16/16; 52 episodes give 50/52, docs/policies.md).
    r = subprocess.run([EXE, "eval", "--policy", str(PACKAGE), "--robot", "g1", "--episodes", "16", "--seed", "0",
                        "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["success_rate_all"] >= 0.9, out["success_rate"]
    assert all(rate >= 0.75 for rate in out["success_rate"].values()), out["success_rate"]
    assert out["table"] == "keep_out" and out["hand_table"]["episodes_penetrating"] == 0, out["hand_table"]
    assert out["starvation_ticks"] == 0
    assert out["transport"] == "shared_memory"


def test_the_vla_pipeline_reproduces_a_package(tmp_path):
    out = tmp_path / "vla"
    r = subprocess.run([EXE, "train", "vla", "--episodes", "4", "--epochs", "1", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EXE, "policy", "check", str(out), "--robot", "g1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_eval_measures_the_hands_against_the_table_and_keep_out_holds_them_clear():
    """`vertebra eval --table keep_out`: whatever the policy's targets, the whole-body controller keeps
    the hands' collision geometry out of the (solid) table; every episode's least clearance is reported."""
    r = subprocess.run([EXE, "eval", "--policy", str(PACKAGE), "--robot", "g1", "--episodes", "4", "--seed", "3",
                        "--table", "keep_out", "--no-record", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ht = out["hand_table"]
    assert out["table"] == "keep_out" and len(out["results"]) == 4
    assert ht["episodes_penetrating"] == 0 and ht["min_clearance_m"] >= 0.0, ht
    assert ht["min_clearance_m"] == min(x["hand_table_clearance_m"] for x in out["results"])
    assert out["starvation_ticks"] == 0

"""`vertebra eval --perturb`: conditions that change the tabletop tasks' light, camera, placement and
words, and success reported with Wilson intervals."""

import json
import os
import sys
import subprocess

import numpy as np
import pytest
from vertebra.drivers.scene import TABLE_CENTER
from vertebra.policies.vla.perturb import PARAPHRASES, Perturbation, PerturbError, wilson
from vertebra.policies.vla.tasks import CROSS_REACH_Y_M, TRAIN_PHRASINGS, VOCAB
from vertebra.runtime.config import REPO_ROOT

EXE = os.path.join(os.path.dirname(sys.executable), "vertebra")
PACKAGE = REPO_ROOT / "policies" / "packages" / "g1_vla"


def test_wilson_intervals_match_the_published_values():
    # n = 8, all successes: the lower bound is 0.676 ("at least 68%", the reading)
    lo, hi = wilson(8, 8)
    assert lo == pytest.approx(0.6756, abs=1e-4) and hi == 1.0
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and hi == pytest.approx(0.0713, abs=1e-4)
    lo, hi = wilson(45, 50)  # p = 0.9, n = 50: 0.786 .. 0.957 (Wilson 1927's formula)
    assert (lo, hi) == (pytest.approx(0.7864, abs=1e-4), pytest.approx(0.9565, abs=1e-4))


@pytest.mark.parametrize("text, words", [("light=9", "a number in [0.05, 5]"), ("foo=1", "NAME one of light"),
                                         ("tint=red", "one of warm, cool"), ("light=1,light=2", "given twice"),
                                         ("distractors=x", "an integer 0..4"), ("light", "expected NAME=VALUE")])
def test_bad_conditions_are_refused_naming_what_is_valid(text, words):
    with pytest.raises(PerturbError, match=words.replace("[", r"\[").replace(".", r"\.")):
        Perturbation.parse(text)


def test_episodes_change_as_the_condition_says():
    plain = Perturbation.parse("none")
    wide = Perturbation.parse("placement=1.2,distractors=1,phrasing=heldout")
    for task in ("touch", "point", "raise", "wave"):  # the same draw of the scene, then changed
        a, b = plain.episode(np.random.default_rng(4), task), wide.episode(np.random.default_rng(4), task)
        if a.target is not None:  # placement scaled about the table's centre (same draw)
            assert abs(b.target.pos[1] - TABLE_CENTER[1]) == pytest.approx(1.2 * abs(a.target.pos[1] - TABLE_CENTER[1]), abs=1e-9)
            assert len(b.objects) == len(a.objects) + 1
        assert b.instruction != a.instruction
        assert any(b.instruction == t.format(obj=b.target.name if b.target else "", hand="left" if b.hand == 0 else "right")
                   for t in PARAPHRASES[task])
        assert a.feasible and b.feasible
    # held-out phrasings are none of the training's, and use words the vocabulary never had
    held = {t for ts in PARAPHRASES.values() for t in ts}
    assert not held & {t for ts in TRAIN_PHRASINGS.values() for t in ts}
    assert any(w not in VOCAB for t in held for w in t.replace("{obj}", "").replace("{hand}", "").split())
    absent = Perturbation.parse("absent=1").episode(np.random.default_rng(4), "touch")
    assert absent.target is not None and absent.target not in absent.objects and not absent.feasible
    assert absent.target.name in absent.instruction


def test_cross_body_touches_name_the_far_hand_on_an_object_either_hand_reaches():
    cross = Perturbation.parse("hand=cross")
    for seed in range(40):
        ep = cross.episode(np.random.default_rng(seed), "touch")
        side = 0 if ep.target.pos[1] > 0 else 1  # the hand on the object's side
        assert ep.hand == 1 - side and ("left" if ep.hand == 0 else "right") in ep.instruction
        assert abs(ep.target.pos[1]) <= CROSS_REACH_Y_M and ep.target in ep.objects
        assert all(np.linalg.norm(o.pos[:2] - ep.target.pos[:2]) >= 0.10 for o in ep.objects if o is not ep.target)


def test_light_and_camera_change_what_the_head_camera_sees():
    from vertebra.policies.vla.expert import G1Session

    s = G1Session()
    try:
        ep = Perturbation.parse("none").episode(np.random.default_rng(1), "touch")
        base = s.observe(ep)["images"]["head"].astype(float)
        Perturbation.parse("light=0.5").apply_to_camera(s.cam)
        dark = s.observe(ep)["images"]["head"].astype(float)
        assert dark.mean() < 0.8 * base.mean()
        Perturbation.parse("light=2,tint=warm").apply_to_camera(s.cam)  # back to 1x, warm
        warm = s.observe(ep)["images"]["head"].astype(float)
        assert warm[..., 0].mean() - warm[..., 2].mean() > base[..., 0].mean() - base[..., 2].mean() + 10
        Perturbation.parse("tint=cool,cam_pitch=3").apply_to_camera(s.cam)
        pitched = s.observe(ep)["images"]["head"].astype(float)
        assert np.abs(pitched - warm).mean() > 2.0
    finally:
        s.close()


def test_eval_prints_each_condition_with_intervals():
    r = subprocess.run([EXE, "eval", "--policy", str(PACKAGE), "--robot", "g1", "--episodes", "4", "--seed", "0",
                        "--no-record", "--perturb", "none", "--perturb", "absent=1", "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    base, absent = json.loads(r.stdout)["conditions"]
    assert base["perturb"] == "none" and set(base["success_counts"]) == {"touch", "point", "raise", "wave"}
    for out in (base, absent):
        for c in out["success_counts"].values():
            assert c["wilson95"] == [round(x, 3) for x in wilson(c["successes"], c["episodes"])]
    # the named object is missing: only touch and point run, and success is saying so and not moving
    assert set(absent["success_counts"]) == {"touch", "point"}
    assert absent["cannot_comply"]["infeasible_episodes"] == 4
    for res in absent["results"]:
        assert not res["feasible"] and res["success"] == (res["cannot_comply"] and res["hands_moved_m"] < 0.05)
    assert absent["cannot_comply"]["on_infeasible"] >= 3, absent["results"]
    assert base["cannot_comply"]["on_feasible"] == 0, base["results"]
    p = subprocess.run([EXE, "eval", "--policy", str(PACKAGE), "--robot", "g1", "--episodes", "1", "--perturb", "light=0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--perturb light=0: valid: a number in [0.05, 5]" in p.stderr

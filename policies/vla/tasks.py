"""The tabletop tasks: episodes, instructions, what the policy sees and does, and success in code.

Coloured objects lie at random on a table in front of the robot. The instruction names the task,
the object (colour + shape) and the hand, in one of several phrasings (`TRAIN_PHRASINGS`; the
evaluation's held-out phrasings are `perturb.PARAPHRASES`). Success is checked in code
(`success()`, which reads `measures()`):
- "touch the <colour> <shape> with your <left|right> hand": that hand's collision geometry (the
  robot config's capsule) within TOUCH_TOL_M of the object's surface;
- "point at the <colour> <shape>": the arm on the object's side (either arm within CROSS_REACH_Y_M
  of the midline: the instruction names none) points at it (within 10 deg, hand at least
  POINT_REACH_M from the shoulder) while the other hand stays down (within 10 cm of rest);
- "raise both arms": both hands above 1.0 m (they hang at 0.69 m);
- "wave with your right hand": over the last 1.5 s the right hand stays above 0.9 m and sweeps
  at least 4 cm sideways (the expert's +/-10 cm command is tracked as about 7 cm).
Touching and pointing need the image (where is the red cube?) and the words (which object, which
hand); the other two need the words. A touch or point whose object is not on the table cannot be
done (`Episode.feasible` False): the policy must say so and not move.

The policy sees the head camera (IMAGE x IMAGE), the instruction (at most TOKENS words of VOCAB, in
order) and the arm joints' q and dq (`arm_joints()`), and outputs CHUNK hand-position targets for
both hands at RATE_HZ, and how sure it is that the instruction can be done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from vertebra.drivers.scene import COLORS, SHAPES, SceneObject, random_scene

RATE_HZ = 10.0
CHUNK = 10
IMAGE = 96
EPISODE_S = 4.0
RESET_S = 1.5
TOKENS = 16
# The phrasings the demonstrations use ({obj}: "red cube", {hand}: left/right). The evaluation's
# held-out phrasings (perturb.PARAPHRASES) are none of these; a test checks it.
TRAIN_PHRASINGS = {
    "touch": ["touch the {obj} with your {hand} hand", "with your {hand} hand touch the {obj}",
              "please touch the {obj} using the {hand} hand", "{hand} hand: touch the {obj}",
              "reach the {obj} with the {hand} hand and touch it", "touch the {obj} using your {hand} hand",
              "go and touch the {obj} with your {hand} hand"],
    "point": ["point at the {obj}", "please point at the {obj}", "point an arm at the {obj}",
              "the {obj}: point at it", "point toward the {obj}", "show where the {obj} is"],
    "raise": ["raise both arms", "please raise both arms", "arms up", "lift your arms", "both hands up",
              "raise both hands up high"],
    "wave": ["wave with your right hand", "wave your right arm", "please wave with the right hand",
             "right hand: wave", "say hello with your right hand", "wave the right hand"],
}


def _vocabulary() -> list[str]:
    """<pad>, <unk>, then every word of the training phrasings, the hands, colours and shapes, in
    first-seen order (deterministic)."""
    import re

    out = ["<pad>", "<unk>"]
    for task in TRAIN_PHRASINGS:
        for text in TRAIN_PHRASINGS[task]:
            for w in re.findall(r"[a-z0-9]+", text.replace("{obj}", "").replace("{hand}", "")):
                if w not in out:
                    out.append(w)
    for w in ["left", "right", *COLORS, *SHAPES]:
        if w not in out:
            out.append(w)
    return out


VOCAB = _vocabulary()
ARM_WORDS = ("shoulder", "elbow", "wrist")
TASKS = ("touch", "point", "raise", "wave")
TOUCH_TOL_M = 0.02  # the hand's collision capsule within 2 cm of the object's surface
POINT_TOL_DEG = 10.0
POINT_REACH_M = 0.2  # the pointing hand at least this far from its shoulder
RAISED_Z_M = 1.0  # hands above the chest (they hang at 0.69 m; the shoulders are at 1.07 m)
WAVE_Z_M = 0.9    # the waving hand stays raised (the whole-body controller tracks the wave at 0.97-1.07 m)
WAVE_SWEEP_M = 0.04  # and sweeps sideways ...
CROSS_REACH_Y_M = 0.10  # an object within this of the midline can be touched (or pointed at) by either hand


@dataclass
class Episode:
    task: str
    instruction: str
    objects: list[SceneObject]
    target: SceneObject | None  # the named object (where it would be, when absent)
    hand: int  # 0 left, 1 right
    feasible: bool = True  # False: the named object is not on the table


def arm_joints(robot_cfg: Any) -> list[str]:
    """The joints whose q and dq the policy sees: every shoulder, elbow and wrist joint."""
    return [n for n in robot_cfg.joint_names if any(w in n for w in ARM_WORDS)]


def phrase(task: str, target: SceneObject | None, hand: int, rng: np.random.Generator | None,
           phrasings: dict[str, list[str]] | None = None) -> str:
    """The instruction for a task in one of `phrasings` (default TRAIN_PHRASINGS), drawn by `rng`
    (None: the first, the canonical one)."""
    choices = (phrasings or TRAIN_PHRASINGS)[task]
    text = choices[int(rng.integers(0, len(choices)))] if rng is not None else choices[0]
    return text.format(obj=target.name if target is not None else "", hand="left" if hand == 0 else "right")


def sample_episode(rng: np.random.Generator, task: str | None = None, spread: float = 1.0,
                   n_objects: tuple[int, int] = (2, 3), phrasing_rng: np.random.Generator | None = None,
                   cross: float = 0.5) -> Episode:
    """A random scene and instruction. `spread`: the placement range's scale; `n_objects`: the
    least and most objects; `phrasing_rng`: draws the phrasing (None: the canonical phrasing);
    `cross`: the chance that a touch names the hand on the far side of an object within
    CROSS_REACH_Y_M of the midline (either hand reaches it; elsewhere the hand on its side)."""
    objects = random_scene(rng, int(rng.integers(n_objects[0], n_objects[1] + 1)), spread)
    task = task or TASKS[int(rng.integers(0, len(TASKS)))]
    if task in ("touch", "point"):
        target = objects[int(rng.integers(0, len(objects)))]
        hand = 0 if target.pos[1] > 0.0 else 1  # the hand on the object's side can reach it
        if task == "touch" and abs(target.pos[1]) <= CROSS_REACH_Y_M and rng.random() < cross:
            hand = 1 - hand
        return Episode(task, phrase(task, target, hand, phrasing_rng), objects, target, hand)
    hand = -1 if task == "raise" else 1
    return Episode(task, phrase(task, None, hand, phrasing_rng), objects, None, hand)


def make_absent(ep: Episode, rng: np.random.Generator, phrasing_rng: np.random.Generator | None = None) -> Episode:
    """The episode with its named object taken off the table (a touch or point that cannot be
    done). Half the time the name is of an object not in the scene at all, otherwise the named one
    is removed; the others, which may share its colour or shape, stay."""
    if ep.target is None:
        return ep
    others = [o for o in ep.objects if o is not ep.target]
    target = ep.target
    if rng.random() < 0.5:
        used = {(o.color, o.shape) for o in ep.objects}
        kinds = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in used]
        if kinds:
            c, s = kinds[int(rng.integers(0, len(kinds)))]
            target = SceneObject(c, s, ep.target.pos.copy())
    return Episode(ep.task, phrase(ep.task, target, ep.hand, phrasing_rng), others, target, ep.hand, feasible=False)


def relabel(ep: Episode, rng: np.random.Generator, phrasing_rng: np.random.Generator | None = None) -> Episode:
    """The same episode for the arm (the target object stays where it is, the hand is the same) in a
    different-looking scene: the target gets a random colour and shape, the instruction names it,
    and the other objects are drawn anew around it. An absent object's episode stays absent: the
    name is drawn anew and no object of that kind is on the table."""
    if ep.target is None:
        return ep
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    picks = rng.permutation(len(kinds))[: 1 + int(rng.integers(1, 3))]
    target = SceneObject(kinds[picks[0]][0], kinds[picks[0]][1], ep.target.pos.copy(), ep.target.size_m)
    others = [o for o in random_scene(rng, len(picks) + 2)
              if np.linalg.norm(o.pos[:2] - target.pos[:2]) > 0.10]
    objects = [target]
    for k in picks[1:]:
        spot = next((o for o in others if all(np.linalg.norm(o.pos[:2] - p.pos[:2]) > 0.10 for p in objects)), None)
        if spot is not None:
            others.remove(spot)
            objects.append(SceneObject(kinds[k][0], kinds[k][1], spot.pos))
    objects = [objects[i] for i in rng.permutation(len(objects))]
    if not ep.feasible:
        objects = [o for o in objects if o is not target]
    return Episode(ep.task, phrase(ep.task, target, ep.hand, phrasing_rng), objects, target, ep.hand, ep.feasible)


def measures(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray],
             home: list[np.ndarray], touch_gap_m: float | None = None) -> dict[str, float]:
    """What `success()` checks, per task (also reported per episode by `vertebra eval`).
    hands_hist: per policy step, [6] = left xyz, right xyz (world); touch_gap_m: now, the named
    hand's collision capsule to the object's surface (G1Session.touch_gap; a touch needs it)."""
    h = hands_hist[-1].reshape(2, 3)
    if ep.task == "touch":
        if touch_gap_m is None:
            raise ValueError("a touch is judged on the hand's geometry: touch_gap_m is required")
        return {"hand_gap_m": float(touch_gap_m),
                "hand_to_object_m": float(np.linalg.norm(h[ep.hand] - ep.target.pos))}
    if ep.task == "point":
        # the arm on the object's side; within CROSS_REACH_Y_M of the midline, whichever arm points
        # (the instruction names none: the hand further from its rest)
        arm = ep.hand
        if abs(ep.target.pos[1]) <= CROSS_REACH_Y_M and (np.linalg.norm(h[1 - arm] - home[1 - arm])
                                                         > np.linalg.norm(h[arm] - home[arm])):
            arm = 1 - arm
        v, d = h[arm] - sh[arm], ep.target.pos - sh[arm]
        ang = math.degrees(math.acos(np.clip(v @ d / (np.linalg.norm(v) * np.linalg.norm(d) + 1e-9), -1, 1)))
        return {"angle_deg": ang, "reach_m": float(np.linalg.norm(v)), "arm": float(arm),
                "other_hand_from_rest_m": float(np.linalg.norm(h[1 - arm] - home[1 - arm]))}
    if ep.task == "raise":
        return {"lower_hand_z_m": float(min(h[0][2], h[1][2]))}
    recent = np.asarray(hands_hist[-int(1.5 * RATE_HZ):]).reshape(-1, 2, 3)[:, 1]
    return {"min_z_m": float(recent[:, 2].min()), "sweep_m": float(np.ptp(recent[:, 1]))}


def success(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray], home: list[np.ndarray],
            touch_gap_m: float | None = None) -> bool:
    m = measures(ep, hands_hist, sh, home, touch_gap_m)
    if ep.task == "touch":
        return m["hand_gap_m"] < TOUCH_TOL_M
    if ep.task == "point":
        return m["angle_deg"] < POINT_TOL_DEG and m["reach_m"] > POINT_REACH_M and m["other_hand_from_rest_m"] < 0.10
    if ep.task == "raise":
        return m["lower_hand_z_m"] > RAISED_Z_M
    return m["min_z_m"] > WAVE_Z_M and m["sweep_m"] > WAVE_SWEEP_M

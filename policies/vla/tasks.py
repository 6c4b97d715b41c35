"""The tabletop tasks: episodes, instructions, what the policy sees and does, and success in code.

Coloured objects lie at random on a table in front of the robot. The instruction names the task,
the object (colour + shape) and the hand. Success is checked in code (`success()`, which reads
`measures()`):
- "touch the <colour> <shape> with your <left|right> hand": that hand within 4 cm of the object;
- "point at the <colour> <shape>": the arm on the object's side points at it (within 10 deg,
  hand at least 0.3 m from the shoulder) while the other hand stays down (within 10 cm of rest);
- "raise both arms": both hands above 1.0 m (they hang at 0.69 m);
- "wave with your right hand": over the last 1.5 s the right hand stays above 0.9 m and sweeps
  at least 4 cm sideways (the expert's +/-10 cm command is tracked as about 7 cm).
Touching and pointing need the image (where is the red cube?) and the words (which object, which
hand); the other two need the words.

The policy sees the head camera (IMAGE x IMAGE), the instruction (TOKENS words of VOCAB) and the
arm joints' q and dq (`arm_joints()`), and outputs CHUNK hand-position targets for both hands at
RATE_HZ.
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
TOKENS = 10
VOCAB = (["<pad>", "<unk>", "touch", "the", "with", "your", "left", "right", "hand", "point", "at", "raise", "both",
          "arms", "wave"] + list(COLORS) + list(SHAPES))
ARM_WORDS = ("shoulder", "elbow", "wrist")
TASKS = ("touch", "point", "raise", "wave")
TOUCH_TOL_M = 0.04
POINT_TOL_DEG = 10.0
RAISED_Z_M = 1.0  # hands above the chest (they hang at 0.69 m; the shoulders are at 1.07 m)
WAVE_Z_M = 0.9    # the waving hand stays raised (the whole-body controller tracks the wave at 0.97-1.07 m)
WAVE_SWEEP_M = 0.04  # and sweeps sideways ...


@dataclass
class Episode:
    task: str
    instruction: str
    objects: list[SceneObject]
    target: SceneObject | None
    hand: int  # 0 left, 1 right


def arm_joints(robot_cfg: Any) -> list[str]:
    """The joints whose q and dq the policy sees: every shoulder, elbow and wrist joint."""
    return [n for n in robot_cfg.joint_names if any(w in n for w in ARM_WORDS)]


def sample_episode(rng: np.random.Generator, task: str | None = None) -> Episode:
    objects = random_scene(rng, int(rng.integers(2, 4)))
    task = task or TASKS[int(rng.integers(0, len(TASKS)))]
    if task in ("touch", "point"):
        target = objects[int(rng.integers(0, len(objects)))]
        hand = 0 if target.pos[1] > 0.0 else 1  # the hand on the object's side can reach it
        if task == "touch":
            text = f"touch the {target.name} with your {'left' if hand == 0 else 'right'} hand"
        else:
            text = f"point at the {target.name}"
        return Episode(task, text, objects, target, hand)
    if task == "raise":
        return Episode(task, "raise both arms", objects, None, -1)
    return Episode(task, "wave with your right hand", objects, None, 1)


def relabel(ep: Episode, rng: np.random.Generator) -> Episode:
    """The same episode for the arm (the target object stays where it is, the hand is the same) in a
    different-looking scene: the target gets a random colour and shape, the instruction names it,
    and the other objects are drawn anew around it."""
    if ep.target is None:
        return ep
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    picks = rng.permutation(len(kinds))[: 1 + int(rng.integers(1, 3))]
    target = SceneObject(kinds[picks[0]][0], kinds[picks[0]][1], ep.target.pos.copy())
    others = [o for o in random_scene(rng, len(picks) + 2)
              if np.linalg.norm(o.pos[:2] - target.pos[:2]) > 0.10]
    objects = [target]
    for k in picks[1:]:
        spot = next((o for o in others if all(np.linalg.norm(o.pos[:2] - p.pos[:2]) > 0.10 for p in objects)), None)
        if spot is not None:
            others.remove(spot)
            objects.append(SceneObject(kinds[k][0], kinds[k][1], spot.pos))
    objects = [objects[i] for i in rng.permutation(len(objects))]
    if ep.task == "touch":
        text = f"touch the {target.name} with your {'left' if ep.hand == 0 else 'right'} hand"
    else:
        text = f"point at the {target.name}"
    return Episode(ep.task, text, objects, target, ep.hand)


def measures(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray],
             home: list[np.ndarray]) -> dict[str, float]:
    """What `success()` checks, per task (also reported per episode by `vertebra eval`).
    hands_hist: per policy step, [6] = left xyz, right xyz (world)."""
    h = hands_hist[-1].reshape(2, 3)
    if ep.task == "touch":
        return {"hand_to_object_m": float(np.linalg.norm(h[ep.hand] - ep.target.pos))}
    if ep.task == "point":
        v, d = h[ep.hand] - sh[ep.hand], ep.target.pos - sh[ep.hand]
        ang = math.degrees(math.acos(np.clip(v @ d / (np.linalg.norm(v) * np.linalg.norm(d) + 1e-9), -1, 1)))
        return {"angle_deg": ang, "reach_m": float(np.linalg.norm(v)),
                "other_hand_from_rest_m": float(np.linalg.norm(h[1 - ep.hand] - home[1 - ep.hand]))}
    if ep.task == "raise":
        return {"lower_hand_z_m": float(min(h[0][2], h[1][2]))}
    recent = np.asarray(hands_hist[-int(1.5 * RATE_HZ):]).reshape(-1, 2, 3)[:, 1]
    return {"min_z_m": float(recent[:, 2].min()), "sweep_m": float(np.ptp(recent[:, 1]))}


def success(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray], home: list[np.ndarray]) -> bool:
    m = measures(ep, hands_hist, sh, home)
    if ep.task == "touch":
        return m["hand_to_object_m"] < TOUCH_TOL_M
    if ep.task == "point":
        return m["angle_deg"] < POINT_TOL_DEG and m["reach_m"] > 0.3 and m["other_hand_from_rest_m"] < 0.10
    if ep.task == "raise":
        return m["lower_hand_z_m"] > RAISED_Z_M
    return m["min_z_m"] > WAVE_Z_M and m["sweep_m"] > WAVE_SWEEP_M

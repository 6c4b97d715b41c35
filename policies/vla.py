"""`vertebra train vla --robot g1`: a small vision-language-action model for the G1, trained by the
repo's own reproducible pipeline, and its closed-loop tasks.

Tasks
  Coloured objects lie at random on a table in front of the robot. The instruction names the task,
  the object (colour + shape) and the hand. Success is checked in code (`success()`):
  - "touch the <colour> <shape> with your <left|right> hand": that hand within 4 cm of the object;
  - "point at the <colour> <shape>": the arm on the object's side points at it (within 15 deg,
    hand at least 0.3 m from the shoulder);
  - "raise both arms": both hands above 1.2 m;
  - "wave with your right hand": the right hand above 1.1 m, sweeping at least 6 cm sideways over
    the last 1.5 s.
  Touching and pointing need the image (where is the red cube?) and the words (which object, which
  hand); the other two need the words.

Pipeline
1. **Demonstrations.** A scripted expert drives the whole-body controller's hand targets along
   minimum-jerk paths to each task's goal, on random scenes. At 10 Hz it records the head camera
   (96x96), the instruction, the arm joints' q and dq, and the next 10 hand-position targets.
2. **Training.** The model is trained in torch on CPU:
   - a small CNN whose layers are modulated by the instruction (FiLM), read out by a spatial
     soft-argmax;
   - a bag-of-words instruction embedding;
   - an MLP on proprioception;
   - a head that outputs a chunk of 10 hand-position targets for both hands (WBC targets).
3. **Export.** The model goes to ONNX, with its ``policy.yaml``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vertebra.drivers.scene import COLORS, SHAPES, SceneObject, random_scene
from vertebra.policies.package import sha256_file

RATE_HZ = 10.0
CHUNK = 10
IMAGE = 96
EPISODE_S = 4.0
RESET_S = 1.5
MOVE_S = 1.5
TOKENS = 10
VOCAB = (["<pad>", "<unk>", "touch", "the", "with", "your", "left", "right", "hand", "point", "at", "raise", "both",
          "arms", "wave"] + list(COLORS) + list(SHAPES))
ARM_WORDS = ("shoulder", "elbow", "wrist")
TASKS = ("touch", "point", "raise", "wave")
TOUCH_TOL_M = 0.04


@dataclass
class Episode:
    task: str
    instruction: str
    objects: list[SceneObject]
    target: SceneObject | None
    hand: int  # 0 left, 1 right


def arm_joints(robot_cfg: Any) -> list[str]:
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


def shoulders(model: Any, q_full: np.ndarray, robot_cfg: Any) -> list[np.ndarray]:
    names = ["left_shoulder_pitch_link", "right_shoulder_pitch_link"]
    return [np.asarray(model.frame_translation(q_full, n)) for n in names]


def goal(ep: Episode, t: float, home: list[np.ndarray], sh: list[np.ndarray]) -> list[np.ndarray]:
    """The expert's hand targets at time t of the episode (before min-jerk shaping)."""
    g = [home[0].copy(), home[1].copy()]
    if ep.task == "touch":
        g[ep.hand] = ep.target.pos + np.array([-0.01, 0.0, 0.03])  # the fingertips come from above-behind
    elif ep.task == "point":
        d = ep.target.pos - sh[ep.hand]
        g[ep.hand] = sh[ep.hand] + 0.40 * d / np.linalg.norm(d)
    elif ep.task == "raise":
        g[0] = np.array([0.15, 0.22, 1.32])
        g[1] = np.array([0.15, -0.22, 1.32])
    elif ep.task == "wave":
        phase = max(0.0, t - MOVE_S)
        g[1] = np.array([0.15, -0.30 + 0.07 * math.sin(2 * math.pi * 1.0 * phase), 1.22])
    return g


def min_jerk(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    s = min(max(s, 0.0), 1.0)
    return a + (b - a) * (s ** 3 * (10 - 15 * s + 6 * s * s))


def expert_targets(ep: Episode, t: float, start: list[np.ndarray], home: list[np.ndarray],
                   sh: list[np.ndarray]) -> np.ndarray:
    g = goal(ep, t, home, sh)
    out = [min_jerk(start[h], g[h], t / MOVE_S) if t < MOVE_S else g[h] for h in range(2)]
    return np.concatenate(out)


def success(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray]) -> bool:
    """hands_hist: per policy step, [6] = left xyz, right xyz (world)."""
    h = hands_hist[-1].reshape(2, 3)
    if ep.task == "touch":
        return bool(np.linalg.norm(h[ep.hand] - ep.target.pos) < TOUCH_TOL_M)
    if ep.task == "point":
        v, d = h[ep.hand] - sh[ep.hand], ep.target.pos - sh[ep.hand]
        ang = math.degrees(math.acos(np.clip(v @ d / (np.linalg.norm(v) * np.linalg.norm(d) + 1e-9), -1, 1)))
        return bool(ang < 15.0 and np.linalg.norm(v) > 0.3)
    if ep.task == "raise":
        return bool(h[0][2] > 1.2 and h[1][2] > 1.2)
    recent = np.asarray(hands_hist[-int(1.5 * RATE_HZ):]).reshape(-1, 2, 3)[:, 1]
    return bool(h[1][2] > 1.1 and np.ptp(recent[:, 1]) > 0.06)


class G1Session:
    """A standing G1 on the whole-body controller with the tabletop scene and head camera."""

    def __init__(self, chunk_scheduler: bool = False):
        from vertebra import _rt
        from vertebra.drivers.scene import SceneCamera
        from vertebra.runtime.sim_runtime import SimRuntime

        self.rt = SimRuntime("g1", controller="wbc")
        self.sched = None
        if chunk_scheduler:
            self.sched = _rt.ChunkScheduler(6, mode="keep_prefix", blend_s=0.15)
            _rt.set_chunk_scheduler(self.rt.loop, self.sched, "hands")
        self.cam = SceneCamera(self.rt.mjcf_path, "head", IMAGE, IMAGE)
        self.rt.stand_up(hold_s=0.3)
        self.rt.engage_wbc()
        self.rt.wait(0.2)
        self.names = list(self.rt.cfg.joint_names)
        self.arm = [self.names.index(n) for n in arm_joints(self.rt.cfg)]
        self.home = self.hands()
        self.sh = shoulders(self.rt.model, self.q_full(), self.rt.cfg)
        self.period = int(round(self.rt.rate_hz / RATE_HZ))

    def q_full(self) -> np.ndarray:
        s = self.rt.loop.snapshot()["state"]
        return self.rt.model.full_configuration(s["base_pos"], s["base_quat"], s["q"])

    def hands(self) -> list[np.ndarray]:
        q = self.q_full()
        return [np.asarray(self.rt.model.frame_translation(q, n)) for n in self.rt.cfg.hand_frames]

    def set_hand_targets(self, x: np.ndarray) -> None:
        names = self.rt.cfg.hand_frames
        for h in range(2):
            self.rt.wb.set_target(names[h], (x[3 * h:3 * h + 3], self.home_quat[h]))

    def observe(self, ep: Episode) -> dict[str, Any]:
        s = self.rt.loop.snapshot()
        self.cam.set_objects(ep.objects)
        img = self.cam.render_driver(self.rt.driver)
        return {"images": {"head": img}, "instruction": ep.instruction,
                "state": {"q": np.asarray(s["state"]["q"], np.float32), "dq": np.asarray(s["state"]["dq"], np.float32)},
                "t_s": float(s["time_s"])}

    def close(self) -> None:
        self.cam.close()
        self.rt.close()


def collect(episodes: int, seed: int, say: Callable[[str], None]) -> dict[str, np.ndarray]:
    from vertebra.policies.package import Tokenizer
    from vertebra.runtime.wbc import rotation_to_quat

    rng = np.random.default_rng(seed)
    sess = G1Session()
    q = sess.q_full()
    sess.home_quat = [rotation_to_quat(np.asarray(sess.rt.model.frame_rotation(q, n))) for n in sess.rt.cfg.hand_frames]
    tok = Tokenizer(list(VOCAB), TOKENS)
    imgs, toks, states, acts = [], [], [], []
    t0 = time.monotonic()
    steps = int(EPISODE_S * RATE_HZ)
    for k in range(episodes):
        ep = sample_episode(rng, TASKS[k % len(TASKS)])
        start = sess.hands()
        plan = [expert_targets(ep, (i + 1) / RATE_HZ, start, sess.home, sess.sh) for i in range(steps + CHUNK)]
        for i in range(steps):
            o = sess.observe(ep)
            imgs.append(o["images"]["head"])
            toks.append(tok.encode(ep.instruction))
            states.append(np.concatenate([o["state"]["q"][sess.arm], o["state"]["dq"][sess.arm]]))
            acts.append(np.asarray(plan[i:i + CHUNK]))
            sess.set_hand_targets(plan[i])
            sess.rt.loop.run_ticks(sess.period)
        # back home for the next episode (not recorded)
        back = sess.hands()
        for i in range(int(RESET_S * RATE_HZ)):
            sess.set_hand_targets(np.concatenate([min_jerk(back[h], sess.home[h], (i + 1) / (RESET_S * RATE_HZ))
                                                  for h in range(2)]))
            sess.rt.loop.run_ticks(sess.period)
        if sess.rt.loop.snapshot()["faults"]:
            raise RuntimeError(f"a demonstration faulted: {sess.rt.loop.snapshot()['faults']}")
        if (k + 1) % 20 == 0 or k + 1 == episodes:
            say(f"demonstrations: {k + 1}/{episodes} episodes ({time.monotonic() - t0:.0f} s)")
    sess.close()
    return {"images": np.asarray(imgs, np.uint8), "tokens": np.asarray(toks, np.int64),
            "state": np.asarray(states, np.float32), "actions": np.asarray(acts, np.float32)}

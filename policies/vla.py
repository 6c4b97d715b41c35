"""`vertebra train vla --robot g1`: a small vision-language-action model for the G1, trained by the
repo's own reproducible pipeline, and its closed-loop tasks.

Tasks
  Coloured objects lie at random on a table in front of the robot. The instruction names the task,
  the object (colour + shape) and the hand. Success is checked in code (`success()`):
  - "touch the <colour> <shape> with your <left|right> hand": that hand within 4 cm of the object;
  - "point at the <colour> <shape>": the arm on the object's side points at it (within 10 deg,
    hand at least 0.3 m from the shoulder) while the other hand stays down (within 10 cm of rest);
  - "raise both arms": both hands above 1.0 m (they hang at 0.69 m);
  - "wave with your right hand": over the last 1.5 s the right hand stays above 0.9 m and sweeps
    at least 4 cm sideways (the expert's +/-7 cm command is tracked as about 5 cm).
  Touching and pointing need the image (where is the red cube?) and the words (which object, which
  hand); the other two need the words.

Pipeline
1. **Demonstrations.** A scripted expert drives the whole-body controller's hand targets along
   minimum-jerk paths to each task's goal, on random scenes. Every other 10 Hz step it records the
   head camera (96x96), the instruction, the arm joints' q and dq, and the next 10 hand-position
   targets (the targets of that step and the 9 after it). Touch/point frames are rendered once
   more in a relabelled scene (`relabel()`): same target place and motion, other colours, shapes
   and distractors, and the instruction to match.
2. **Training.** The model is trained in torch on CPU:
   - a small CNN whose layers are modulated by the instruction (FiLM), read out by a spatial
     soft-argmax;
   - a bag-of-words instruction embedding;
   - an MLP on proprioception;
   - a head that outputs a chunk of 10 hand-position targets for both hands (WBC targets);
   - in training only, an auxiliary head that says where the named object is (keypoints + words).
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
# Demonstrations per task: the two that need the image get more scenes.
TASK_WEIGHTS = (0.40, 0.30, 0.10, 0.20)
# Each touch/point frame is rendered once more with the scene relabelled: the target object keeps
# its place (so the arm's motion and its labels stay right) but gets another colour and shape, the
# instruction names it, and the other objects are drawn anew. The words and the pixels that decide
# the motion vary independently of the simulated motion, at the cost of a render.
SCENE_VARIANTS = 1
EXEC_NOISE_M = 0.02  # demonstrations: executed targets off the plan by this much (see collect())
NOISE_KEEP = 0.85   # ... a first-order random offset, correlated over about 0.6 s
AUX_WEIGHT = 0.5  # training: weight of the auxiliary loss (where is the named object?)
OBS_EVERY = 2  # demonstrations record every second policy step (more scenes for the same frames)
PROPRIO_NOISE = 0.15  # training: Gaussian noise on the normalised arm state ...
PROPRIO_DROP = 0.2    # ... and the share of samples whose arm state is zeroed
TOUCH_TOL_M = 0.04
POINT_TOL_DEG = 10.0
RAISED_Z_M = 1.0  # hands above the chest (they hang at 0.69 m; the shoulders are at 1.07 m)
WAVE_Z_M = 0.9    # the waving hand stays raised (the whole-body controller tracks the wave at 0.97-1.07 m)
WAVE_SWEEP_M = 0.04  # and sweeps sideways ...
WAVE_AMP_M = 0.10    # the expert's wave: +/-10 cm at 0.8 Hz, tracked as a 7.4 cm sweep (+/-7 cm at 1 Hz
WAVE_HZ = 0.8        # gave 5.5 cm, and the learned policy's wave fell short of the 4 cm)


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
        g[0] = np.array([0.22, 0.25, 1.12])
        g[1] = np.array([0.22, -0.25, 1.12])
    elif ep.task == "wave":
        phase = max(0.0, t - MOVE_S)
        g[1] = np.array([0.16, -0.33 + WAVE_AMP_M * math.sin(2 * math.pi * WAVE_HZ * phase), 1.10])
    return g


def min_jerk(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    s = min(max(s, 0.0), 1.0)
    return a + (b - a) * (s ** 3 * (10 - 15 * s + 6 * s * s))


def expert_targets(ep: Episode, t: float, start: list[np.ndarray], home: list[np.ndarray],
                   sh: list[np.ndarray]) -> np.ndarray:
    g = goal(ep, t, home, sh)
    out = [min_jerk(start[h], g[h], t / MOVE_S) if t < MOVE_S else g[h] for h in range(2)]
    return np.concatenate(out)


def measures(ep: Episode, hands_hist: list[np.ndarray], sh: list[np.ndarray], home: list[np.ndarray]) -> dict[str, float]:
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
        from vertebra.runtime.wbc import rotation_to_quat

        self.home = self.hands()
        q = self.q_full()
        self.home_quat = [rotation_to_quat(np.asarray(self.rt.model.frame_rotation(q, n))) for n in self.rt.cfg.hand_frames]
        self.sh = shoulders(self.rt.model, q, self.rt.cfg)
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


def collect(episodes: int, seed: int, say: Callable[[str], None], exec_noise_m: float | None = None) -> dict[str, np.ndarray]:
    """Demonstrations. exec_noise_m: the executed hand targets wander off the expert's plan by a
    smooth random offset of this standard deviation, while the labels stay the plan, so the data
    shows how to get back onto it (noise injection against compounding errors)."""
    from vertebra.policies.package import Tokenizer

    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1)  # its own stream: the scenes do not depend on the noise
    exec_noise_m = EXEC_NOISE_M if exec_noise_m is None else exec_noise_m
    sess = G1Session()
    tok = Tokenizer(list(VOCAB), TOKENS)
    imgs, toks, states, acts, goals = [], [], [], [], []
    t0 = time.monotonic()
    steps = int(EPISODE_S * RATE_HZ)
    episode_ids = []
    for k in range(episodes):
        ep = sample_episode(rng, TASKS[int(rng.choice(len(TASKS), p=TASK_WEIGHTS))])
        start = sess.hands()
        plan = [expert_targets(ep, (i + 1) / RATE_HZ, start, sess.home, sess.sh) for i in range(steps + CHUNK)]
        offset = np.zeros(6)
        for i in range(steps):
            if i % OBS_EVERY == 0:
                views = [ep] + [relabel(ep, rng) for _ in range(SCENE_VARIANTS if ep.target is not None else 0)]
                for view in views:
                    o = sess.observe(view)
                    imgs.append(o["images"]["head"])
                    toks.append(tok.encode(view.instruction))
                    states.append(np.concatenate([o["state"]["q"][sess.arm], o["state"]["dq"][sess.arm]]))
                    acts.append(np.asarray(plan[i:i + CHUNK]))
                    # where the named object is (NaN: the task names none), for the auxiliary loss
                    goals.append(view.target.pos if view.target is not None else np.full(3, np.nan))
                    episode_ids.append(k)
            offset = NOISE_KEEP * offset + math.sqrt(1 - NOISE_KEEP ** 2) * exec_noise_m * noise_rng.standard_normal(6)
            sess.set_hand_targets(plan[i] + offset)
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
            "state": np.asarray(states, np.float32), "actions": np.asarray(acts, np.float32),
            "goal": np.asarray(goals, np.float32), "episode": np.asarray(episode_ids, np.int64)}


def _collect_worker(episodes: int, seed: int, first_episode: int, out_path: str, worker: int, queue: Any) -> None:
    try:
        data = collect(episodes, seed, lambda m: queue.put((worker, m)))
        data["episode"] += first_episode
        np.savez(out_path, **data)
        queue.put((worker, None))
    except BaseException as e:  # reported to the parent, which stops the pipeline
        queue.put((worker, RuntimeError(f"demonstration worker {worker}: {type(e).__name__}: {e}")))


def collect_parallel(episodes: int, seed: int, say: Callable[[str], None], workers: int = 2) -> dict[str, np.ndarray]:
    """`collect()` split over `workers` processes (a simulator and a renderer each; one core each).
    Worker w collects its share of the episodes with seed 1000 * seed + 100 * w, so the data
    depends on (episodes, seed, workers) and nothing else."""
    import multiprocessing as mp
    import queue as queue_mod
    import tempfile

    if workers <= 1:
        return collect(episodes, seed, say)
    counts = [episodes // workers + (1 if w < episodes % workers else 0) for w in range(workers)]
    ctx = mp.get_context("spawn")  # a fresh interpreter each: no inherited GL or simulator state
    q = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="vertebra-vla-") as tmp:
        paths = [str(Path(tmp) / f"worker{w}.npz") for w in range(workers)]
        procs = [ctx.Process(target=_collect_worker, args=(counts[w], 1000 * seed + 100 * w, sum(counts[:w]), paths[w], w, q),
                             daemon=True) for w in range(workers)]
        for p in procs:
            p.start()
        done: set[int] = set()
        try:
            while len(done) < workers:
                try:
                    w, msg = q.get(timeout=1.0)
                except queue_mod.Empty:
                    dead = [w for w, p in enumerate(procs) if w not in done and not p.is_alive()]
                    if dead and q.empty():
                        raise RuntimeError(f"demonstration worker {dead[0]} exited with code {procs[dead[0]].exitcode}") from None
                    continue
                if msg is None:
                    done.add(w)
                elif isinstance(msg, BaseException):
                    raise msg
                else:
                    say(f"worker {w + 1}/{workers}: {msg}")
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
        parts = [dict(np.load(p)) for p in paths]
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


# ---------------------------------------------------------------------------------------------
# Model, training, export

def build_model(n_state: int, act_dim: int) -> Any:
    import torch
    from torch import nn

    class FiLMNet(nn.Module):
        """Instruction-modulated CNN -> spatial soft-argmax keypoints; + words; + proprioception."""

        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(len(VOCAB), 64)
            self.txt = nn.Sequential(nn.Linear(64, 128), nn.GELU())
            self.c1 = nn.Conv2d(3, 32, 5, 2, 2)
            self.c2 = nn.Conv2d(32, 64, 3, 2, 1)
            self.c3 = nn.Conv2d(64, 64, 3, 1, 1)
            self.f1, self.f2, self.f3 = nn.Linear(128, 64), nn.Linear(128, 128), nn.Linear(128, 128)
            self.st = nn.Sequential(nn.Linear(n_state, 128), nn.GELU())
            self.head = nn.Sequential(nn.Linear(128 + 128 + 128, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                                      nn.Linear(512, CHUNK * act_dim))
            # training only (not exported): where the named object is, from the image and the words
            self.aux = nn.Sequential(nn.Linear(128 + 128, 128), nn.GELU(), nn.Linear(128, 3))
            side = IMAGE // 4
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
            self.register_buffer("gx", xs.reshape(1, 1, -1))
            self.register_buffer("gy", ys.reshape(1, 1, -1))

        @staticmethod
        def film(x: Any, gb: Any) -> Any:
            g, b = gb.chunk(2, dim=1)
            return x * (1 + g[:, :, None, None]) + b[:, :, None, None]

        def forward(self, image: Any, tokens: Any, state: Any) -> Any:
            return self.forward_all(image, tokens, state)[0]

        def forward_all(self, image: Any, tokens: Any, state: Any) -> tuple[Any, Any]:
            mask = (tokens != 0).float()
            e = (self.emb(tokens) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
            t = self.txt(e)
            x = torch.nn.functional.gelu(self.film(self.c1(image), self.f1(t)))
            x = torch.nn.functional.gelu(self.film(self.c2(x), self.f2(t)))
            x = self.film(self.c3(x), self.f3(t))
            a = torch.softmax(x.flatten(2), dim=2)  # per channel: where in the image
            kp = torch.cat([(a * self.gx).sum(2), (a * self.gy).sum(2)], dim=1)
            actions = self.head(torch.cat([kp, t, self.st(state)], dim=1)).reshape(-1, CHUNK, act_dim)
            return actions, self.aux(torch.cat([kp, t], dim=1))

    return FiLMNet()


def train(data: dict[str, np.ndarray], epochs: int, seed: int, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    acts = data["actions"]
    stats = {"state_mean": data["state"].mean(0), "state_std": data["state"].std(0) + 1e-3,
             "act_mean": acts.reshape(-1, acts.shape[-1]).mean(0), "act_std": acts.reshape(-1, acts.shape[-1]).std(0) + 1e-3,
             "img_mean": np.array([0.5, 0.5, 0.5], np.float32), "img_std": np.array([0.25, 0.25, 0.25], np.float32)}
    img = torch.from_numpy(data["images"])  # uint8 N,H,W,3; normalised per batch
    tok = torch.from_numpy(data["tokens"])
    st = torch.from_numpy(((data["state"] - stats["state_mean"]) / stats["state_std"]).astype(np.float32))
    y = torch.from_numpy(((acts - stats["act_mean"]) / stats["act_std"]).astype(np.float32))
    goal = data["goal"] if "goal" in data else np.full((len(y), 3), np.nan, np.float32)
    has_goal = torch.from_numpy(np.isfinite(goal).all(1))
    known = goal[np.isfinite(goal).all(1)]
    g_mean, g_std = (known.mean(0), known.std(0) + 1e-3) if len(known) else (np.zeros(3), np.ones(3))
    g = torch.from_numpy(np.nan_to_num((goal - g_mean) / g_std).astype(np.float32))
    mean = torch.tensor(stats["img_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(stats["img_std"]).view(1, 3, 1, 1)

    def images(j: Any) -> Any:
        return (img[j].permute(0, 3, 1, 2).float() / 255.0 - mean) / std

    net = build_model(st.shape[1], y.shape[2])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    steps_per_epoch = max(1, len(y) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    # Validation on whole held-out episodes (unseen scenes), not on frames of training episodes.
    eps = data.get("episode", np.arange(len(y)))
    uniq = rng.permutation(np.unique(eps))
    val_eps = set(uniq[: max(1, len(uniq) // 10)].tolist())
    is_val = np.array([e in val_eps for e in eps])
    val, tr = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    losses: dict[str, float] = {}
    t0 = time.monotonic()
    for ep in range(epochs):
        net.train()
        perm = rng.permutation(tr)
        for b in range(steps_per_epoch):
            j = torch.from_numpy(perm[b * 128:(b + 1) * 128])
            if len(j) == 0:
                continue
            # Proprioception is noised and sometimes dropped, so the model cannot just continue
            # from where the arm is ("copycat") and has to find the object in the image.
            sj = st[j] + PROPRIO_NOISE * torch.randn_like(st[j])
            sj = sj * (torch.rand(len(j), 1) > PROPRIO_DROP).float()
            pred, where = net.forward_all(images(j), tok[j], sj)
            loss = act_loss = ((pred - y[j]) ** 2).mean()
            m = has_goal[j]
            if bool(m.any()):
                loss = loss + AUX_WEIGHT * ((where[m] - g[j][m]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            jv = torch.from_numpy(val)
            vl = float(((net(images(jv), tok[jv], st[jv]) - y[jv]) ** 2).mean())
        losses = {"train_mse": float(act_loss.detach()), "val_mse": vl}
        say(f"training: epoch {ep + 1}/{epochs}, batch mse {float(act_loss.detach()):.4f}, validation mse {vl:.4f} "
            f"({time.monotonic() - t0:.0f} s)")
    return net, {"stats": stats, "losses": losses, "samples": len(y)}


def export(net: Any, info: dict[str, Any], robot_cfg: Any, out_dir: Path, seed: int, episodes: int,
           workers: int = 1) -> Path:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    st = info["stats"]
    net.eval()
    arm = arm_joints(robot_cfg)
    dummy = (torch.zeros(1, 3, IMAGE, IMAGE), torch.zeros(1, TOKENS, dtype=torch.long), torch.zeros(1, 2 * len(arm)))
    torch.onnx.export(net, dummy, str(out_dir / "model.onnx"), input_names=["image", "tokens", "state"],
                      output_names=["actions"], dynamo=False, opset_version=17)
    hands = robot_cfg.hand_frames
    spec = {
        "name": f"{robot_cfg.name}_vla", "version": "1",
        "description": "Tabletop vision-language-action policy (vertebra train vla): touch, point, raise, wave.",
        "robots": [robot_cfg.name],
        "model": {"file": "model.onnx", "sha256": sha256_file(out_dir / "model.onnx")},
        "runtime": {"intra_op_threads": 1},
        "inputs": {
            "cameras": [{"name": "head", "height": IMAGE, "width": IMAGE, "input": "image"}],
            "state": {"input": "state", "fields": [{"kind": "q", "joints": arm}, {"kind": "dq", "joints": arm}]},
            "instruction": {"input": "tokens", "tokenizer": {"kind": "words", "vocab": list(VOCAB), "max_tokens": TOKENS}},
        },
        "outputs": {"output": "actions", "action_space": "wbc_targets",
                    "targets": [f"{h}.{a}" for h in hands for a in "xyz"], "chunk_length": CHUNK, "rate_hz": RATE_HZ},
        "normalization": {
            "state": {"mean": st["state_mean"].tolist(), "std": st["state_std"].tolist()},
            "actions": {"mean": st["act_mean"].tolist(), "std": st["act_std"].tolist()},
            "image": {"mean": st["img_mean"].tolist(), "std": st["img_std"].tolist()},
        },
        "training": {"pipeline": "vertebra train vla", "seed": seed, "episodes": episodes, "workers": workers,
                     "samples": info["samples"],
                     **{k: round(v, 5) for k, v in info["losses"].items()}},
    }
    (out_dir / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=120))
    return out_dir


def train_vla(robot: str = "g1", out: str | None = None, episodes: int = 560, epochs: int = 24, seed: int = 0,
              say: Callable[[str], None] | None = None, data_path: str | None = None, workers: int = 2) -> dict[str, Any]:
    from vertebra.runtime.config import REPO_ROOT, RobotConfig

    say = say or (lambda _m: None)
    if robot != "g1":
        raise ValueError("the tabletop tasks are defined for the humanoid (g1)")
    cfg = RobotConfig.load(robot)
    out_dir = Path(out) if out else REPO_ROOT / "policies" / "packages" / f"{robot}_vla"
    t0 = time.monotonic()
    if data_path and Path(data_path).exists():
        say(f"reusing demonstrations from {data_path}")
        data = dict(np.load(data_path))
    else:
        data = collect_parallel(episodes, seed, say, workers)
        if data_path:
            np.savez(data_path, **data)
    net, info = train(data, epochs, seed, say)
    export(net, info, cfg, out_dir, seed, episodes, workers)
    result = {"package": str(out_dir), "samples": info["samples"], **info["losses"],
              "minutes": round((time.monotonic() - t0) / 60, 2)}
    say(json.dumps(result))
    return result

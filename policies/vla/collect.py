"""Demonstrations: the scripted expert on random scenes, recorded as (head camera, instruction, arm
state) -> the next CHUNK hand-position targets and whether the instruction can be done;
touch/point frames rendered once more in a relabelled scene; split over worker processes by
`collect_parallel()`.

The robot stands at the table of COLLECT_TABLE (G1Session's table modes; with "keep_out" the expert
plans over the table from above its plane, with the hands' geometry as the controller aims them). Every other
10 Hz step records the head camera, the instruction tokens, the arm joints' q and dq, the plan's
targets of that step and the CHUNK - 1 after it, where the named object is (NaN when the task names
none; the training's auxiliary label) and whether it can be done (`feasible`: 0 when the named
object is absent, and the plan is then to stay). Each episode is drawn from the randomised
distribution (`randomise`): phrasings, placement, object count, colours, sizes, light and camera,
a new look for every relabelled render.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from vertebra.policies.vla import randomise
from vertebra.policies.vla.expert import G1Session, min_jerk
from vertebra.policies.vla.tasks import (
    CHUNK,
    EPISODE_S,
    RATE_HZ,
    RESET_S,
    TASKS,
    TOKENS,
    VOCAB,
    make_absent,
    relabel,
    sample_episode,
)

# Demonstrations per kind: touch, point, raise, wave, and a touch or point whose object is absent
# (the two that need the image get more scenes).
TASK_WEIGHTS = (0.34, 0.26, 0.10, 0.15, 0.15)
KINDS = (*TASKS, "absent")
ABSENT_S = 1.0  # an absent object's episode: this long (the plan is to stay)
# Each touch/point frame is rendered once more with the scene relabelled: the target object keeps
# its place (so the arm's motion and its labels stay right) but gets another colour and shape, the
# instruction names it, and the other objects are drawn anew. The words and the pixels that decide
# the motion vary independently of the simulated motion, at the cost of a render.
SCENE_VARIANTS = 1
EXEC_NOISE_M = 0.02  # demonstrations: executed targets off the plan by this much (see collect())
NOISE_KEEP = 0.85   # ... a first-order random offset, correlated over about 0.6 s
OBS_EVERY = 2  # demonstrations record every second policy step (more scenes for the same frames)
# The table the demonstrations are collected at (G1Session table modes): solid, and the whole-body
# controller keeps the hands out of it; the expert goes over it from above its plane.
COLLECT_TABLE = "keep_out"


def draw_episode(rng: np.random.Generator) -> Any:
    """One demonstration episode from the training distribution."""
    d = randomise.DISTRIBUTION
    kind = KINDS[int(rng.choice(len(KINDS), p=TASK_WEIGHTS))]
    task = kind if kind != "absent" else ("touch", "point")[int(rng.integers(0, 2))]
    ep = sample_episode(rng, task, spread=d["placement_spread"], n_objects=tuple(d["objects"]), phrasing_rng=rng)
    if kind == "absent":
        ep = make_absent(ep, rng, phrasing_rng=rng)
    return ep


def collect(episodes: int, seed: int, say: Callable[[str], None],
            exec_noise_m: float | None = None) -> dict[str, np.ndarray]:
    """Demonstrations. exec_noise_m: the executed hand targets wander off the expert's plan by a
    smooth random offset of this standard deviation, while the labels stay the plan, so the data
    shows how to get back onto it (noise injection against compounding errors)."""
    from vertebra.policies.package import Tokenizer

    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1)  # its own stream: the scenes do not depend on the noise
    exec_noise_m = EXEC_NOISE_M if exec_noise_m is None else exec_noise_m
    sess = G1Session(table=COLLECT_TABLE)
    tok = Tokenizer(list(VOCAB), TOKENS, stem=True)
    imgs, toks, states, acts, goals, feasible = [], [], [], [], [], []
    t0 = time.monotonic()
    episode_ids = []
    for k in range(episodes):
        ep = draw_episode(rng)
        steps = int((EPISODE_S if ep.feasible else ABSENT_S) * RATE_HZ)
        ep.objects = randomise.dress(ep.objects, rng, keep_size=ep.target)
        if ep.target is not None and ep.feasible:  # the dressed copy (an absent one stays unseen)
            ep.target = next(o for o in ep.objects if o.name == ep.target.name)
        start = sess.hands()
        plan = [sess.expert(ep, (i + 1) / RATE_HZ, start) for i in range(steps + CHUNK)]
        offset = np.zeros(6)
        for i in range(steps):
            if i % OBS_EVERY == 0:
                views = [ep] + [relabel(ep, rng, phrasing_rng=rng)
                                for _ in range(SCENE_VARIANTS if ep.target is not None else 0)]
                for j, view in enumerate(views):
                    if j:
                        view.objects = randomise.dress(view.objects, rng, keep_size=view.target)
                    sess.cam.set_look(randomise.random_look(rng))
                    o = sess.observe(view)
                    imgs.append(o["images"]["head"])
                    toks.append(tok.encode(view.instruction))
                    states.append(np.concatenate([o["state"]["q"][sess.arm], o["state"]["dq"][sess.arm]]))
                    acts.append(np.asarray(plan[i:i + CHUNK]))
                    # where the named object is (NaN: the task names none, or it is absent), for the auxiliary loss
                    goals.append(view.target.pos if view.target is not None and view.feasible else np.full(3, np.nan))
                    feasible.append(1.0 if view.feasible else 0.0)
                    episode_ids.append(k)
            offset = NOISE_KEEP * offset + math.sqrt(1 - NOISE_KEEP ** 2) * exec_noise_m * noise_rng.standard_normal(6)
            sess.set_hand_targets(plan[i] + (offset if ep.feasible else 0.0))
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
            "goal": np.asarray(goals, np.float32), "feasible": np.asarray(feasible, np.float32),
            "episode": np.asarray(episode_ids, np.int64)}


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
        procs = [ctx.Process(target=_collect_worker,
                             args=(counts[w], 1000 * seed + 100 * w, sum(counts[:w]), paths[w], w, q), daemon=True)
                 for w in range(workers)]
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
                        raise RuntimeError(f"demonstration worker {dead[0]} exited with code "
                                           f"{procs[dead[0]].exitcode}") from None
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

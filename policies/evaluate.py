"""`vertebra eval`: closed-loop rollouts of a policy package through the whole stack.

The stack:
1. A `vertebra serve` process loads the package.
2. The runtime's thin client sends observations and gets action chunks, over the same-host
   shared-memory channel (``--transport zmq``: over the socket).
3. The C++ chunk scheduler turns each chunk into one target per tick.
4. The supervisor and controller run on the simulated robot, in lockstep.

Each policy step, at the package's rate, goes as follows:
- take the robot's observation;
- do the round trip (the simulated clock stands still meanwhile, so results do not depend on this
  machine's speed; the measured latency is reported);
- push the chunk, time-stamped from the observation's time: action k is meant for
  t_obs + (k + 1) / rate.

The tasks depend on the package:
- A joint-target body-pose policy (``inputs.command`` roll/pitch/yaw/height) gets held-out random
  pose commands.
- Success: after ``SETTLE_S`` the base orientation is within ``ROT_TOL_DEG`` of the command on
  every axis, and the height within ``HEIGHT_TOL_M``, until the episode ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vertebra.runtime.numerics import rpy_from_quat, summary

EPISODE_S = 2.5
RESET_S = 1.0
SETTLE_S = 1.0
ROT_TOL_DEG = 2.0
HEIGHT_TOL_M = 0.015


class ServerProcess:
    """A `vertebra serve` process for packages {name: path} (the first is active) serving `robot`,
    on a private ipc:// endpoint (a folder removed on close, with the server's socket in it)."""

    def __init__(self, packages: dict[str, Path] | None = None, robot: str | None = None, *,
                 config: dict[str, Any] | None = None, prefix: str = "eval-"):
        """`packages` and `robot`, or a whole server `config` (a ServerConfig's mapping, package paths
        absolute; its bind is replaced by the private endpoint)."""
        from vertebra.policies.endpoint import runtime_dir

        self.dir = tempfile.mkdtemp(prefix=prefix, dir=runtime_dir())
        self.endpoint = f"ipc://{self.dir}/policy.sock"
        self.outages: list[dict[str, Any]] = []
        self._client: Any = None
        if config is not None:
            cfg = {**config, "bind": self.endpoint}
        else:
            assert packages is not None and robot is not None
            cfg = {"robot": robot, "bind": self.endpoint, "default": next(iter(packages)),
                   "policies": {n: {"kind": "package", "path": str(Path(p).resolve())} for n, p in packages.items()}}
        cfg_path = Path(self.dir) / "server.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        exe = os.path.join(os.path.dirname(sys.executable), "vertebra")
        self.transport = "zmq"
        self.proc = subprocess.Popen([exe, "serve", "--config", str(cfg_path), "--quiet"],
                                     env=dict(os.environ, OMP_NUM_THREADS="1"))

    def client(self, joint_names: list[str], timeout_s: float = 30.0, shared_memory: bool = True) -> Any:
        """A connected client; with shared_memory, observations and chunks go over the same-host
        shared-memory channel (vertebra.policies.shm), as the runtime's would next to its server."""
        from vertebra.policies.client import PolicyClient

        c = PolicyClient(self.endpoint)
        end = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the policy server exited with code {self.proc.returncode}")
            try:
                c.hello(joint_names=joint_names, timeout_s=0.5)
                break
            except TimeoutError:
                if time.monotonic() > end:
                    raise RuntimeError("the policy server did not answer within 30 s") from None
        if shared_memory:
            c.use_shared_memory()
        self.transport = "shared_memory" if shared_memory else "zmq"
        self._client = c
        return c

    def infer(self, client: Any, obs: dict[str, Any], step: int, say: Callable[[str], None]) -> dict[str, Any] | None:
        """One policy step's round trip; None when the server did not answer (an outage: no chunk is
        pushed, so the runtime holds on its starvation monitor, and the outage is reported)."""
        from vertebra.policies.client import PolicyError

        try:
            return client.infer(obs)
        except (TimeoutError, PolicyError) as e:
            if isinstance(e, PolicyError) and e.code in ("bad_observation", "bad_output", "incompatible"):
                raise
            self.outages.append({"step": step, "error": str(e)})
            say(f"policy server outage at step {step}: {e} (no chunk: the runtime holds)")
            if self.proc.poll() is not None:
                raise RuntimeError(f"the policy server exited with code {self.proc.returncode}") from None
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def record_metadata(pkg: Any, cfg: Any) -> dict[str, str]:
    """What an evaluation's recording carries: the software, the robot config's and the policy's hashes."""
    from vertebra.runtime.provenance import recording_metadata

    spec = pkg.spec
    actions = list(spec.targets) if spec.action_space == "wbc_targets" else list(cfg.joint_names)
    return {**recording_metadata({"robot": cfg.file}), "policy": spec.name, "sha256.policy_model": spec.model_sha256, "source": "vertebra eval",
            "action_names": ",".join(actions)}


def _episode_start(rt: Any, instruction: str, task: str, pkg: Any) -> None:
    if rt.recorder is not None:
        rt.recorder.episode_start(instruction, task=task, policy=pkg.spec.name, policy_sha256=pkg.spec.model_sha256)


def _episode_end(rt: Any, success: bool, snap: dict[str, Any], time_to_success_s: float | None = None) -> None:
    if rt.recorder is None:
        return
    if success:
        rt.recorder.episode_end("success", time_to_success_s=time_to_success_s)
    elif snap["faults"]:
        rt.recorder.episode_end("aborted", "faults: " + ", ".join(snap["faults"]))
    else:
        rt.recorder.episode_end("failure", "the task's success criterion was not met")


def evaluate(package: str, robot: str, episodes: int, seed: int,
             say: Callable[[str], None] | None = None, replan_steps: int = 1,
             shared_memory: bool = True, record: Any = None, table: str = "keep_out",
             perturb: Any = None) -> dict[str, Any]:
    """`record`: a RecordOptions (runtime/recorder.py): record the rollouts, one episode each.
    `table`: the tabletop tasks' table (vla.TABLE_MODES: visual, solid, keep_out). `perturb`: a
    condition (vla.perturb.Perturbation) the tabletop tasks run under."""
    from vertebra import _rt
    from vertebra.policies.package import PolicyPackage, check_against_robot
    from vertebra.policies.train_pose import LIMITS
    from vertebra.runtime.config import RobotConfig
    from vertebra.runtime.sim_runtime import SimRuntime

    say = say or (lambda _m: None)
    pkg = PolicyPackage.load(package)
    spec = pkg.spec
    cfg = RobotConfig.load(robot)
    from vertebra.policies.actions import wbc_target_names

    problems = check_against_robot(spec, cfg, wbc_targets=wbc_target_names(cfg))
    if problems:
        raise ValueError(f"{spec.name} does not fit {robot}: " + "; ".join(problems))
    if spec.action_space == "wbc_targets":
        return evaluate_vla(pkg, cfg, episodes, seed, say, replan_steps, shared_memory, record, table, perturb)
    if perturb is not None and perturb.text != "none":
        raise ValueError(f"{spec.name}: --perturb changes the tabletop tasks' scenes and words; this package's action "
                         f"space is {spec.action_space} (no camera or instruction to perturb)")
    if spec.action_space != "joint_targets" or len(spec.command_names) != 4:
        raise ValueError(f"{spec.name}: this evaluation runs joint-target body-pose policies (a 4-value command); "
                         f"the package has action space {spec.action_space} and command {spec.command_names}")
    server = ServerProcess({spec.name: pkg.path}, cfg.name)
    rt = SimRuntime(cfg, record=record, record_metadata=record_metadata(pkg, cfg))
    sched = _rt.ChunkScheduler(cfg.n_joints, mode="keep_prefix", prefix_s=0.0, blend_s=0.04)
    _rt.set_chunk_scheduler(rt.loop, sched)
    latency_us: list[float] = []
    results = []
    try:
        client = server.client(cfg.joint_names, shared_memory=shared_memory)
        say(f"server ready ({spec.name}); standing the robot up")
        rt.stand_up(hold_s=0.5)
        p0 = np.asarray(rt.loop.snapshot()["state"]["base_pos"], dtype=float)
        period = int(round(rt.rate_hz / spec.rate_hz))
        dt_ns = int(1e9 / spec.rate_hz)

        steps_done = [0]

        def policy_step(command: np.ndarray) -> None:
            s = rt.loop.snapshot()
            obs = {"state": {"q": np.asarray(s["state"]["q"], np.float32), "dq": np.asarray(s["state"]["dq"], np.float32)},
                   "command": command.astype(np.float32)}
            t = time.perf_counter_ns()
            steps_done[0] += 1
            reply = server.infer(client, obs, steps_done[0], say)
            if reply is None:
                return
            latency_us.append((time.perf_counter_ns() - t) / 1e3)
            t_obs = int(round(s["time_s"] * 1e9))
            sched.push(t_obs + dt_ns, dt_ns, np.asarray(reply["actions"], dtype=np.float64))

        policy_step(np.zeros(4))
        rt.request(_rt.Mode.JOINT_PD, stream=True)
        starved_before = int(rt.loop.snapshot()["chunks"]["starved_ticks"])  # the stand-up had no policy
        rng = np.random.default_rng(10_000 + seed)  # held out: training used seeds from 0
        for ep in range(episodes):
            for _ in range(int(RESET_S * spec.rate_hz)):  # each episode starts from the neutral stance
                policy_step(np.zeros(4))
                rt.run_ticks(period)
            c = rng.uniform(-1.0, 1.0, 4) * LIMITS * 0.9
            _episode_start(rt, "body pose " + " ".join(f"{v:.3f}" for v in c), "body_pose", pkg)
            steps = int(EPISODE_S * spec.rate_hz)
            ok_since = None
            errs = []
            for k in range(steps):
                policy_step(c)
                rt.run_ticks(period)
                st = rt.loop.snapshot()["state"]
                rot_err = np.degrees(np.abs(rpy_from_quat(st["base_quat"]) - c[:3]))
                h_err = abs(float(st["base_pos"][2]) - (p0[2] + c[3]))
                good = bool(np.all(rot_err < ROT_TOL_DEG) and h_err < HEIGHT_TOL_M)
                t = (k + 1) / spec.rate_hz
                if good and ok_since is None:
                    ok_since = t
                elif not good and t > SETTLE_S:
                    ok_since = None
                errs.append((float(rot_err.max()), h_err))
            snap = rt.loop.snapshot()
            success = ok_since is not None and not snap["faults"] and snap["safety_mode"] == "ACTIVE"
            _episode_end(rt, success, snap, ok_since)
            results.append({"episode": ep, "command": [round(float(v), 4) for v in c], "success": success,
                            "time_to_success_s": ok_since, "final_rot_err_deg": round(errs[-1][0], 3),
                            "final_height_err_m": round(errs[-1][1], 4)})
            say(f"episode {ep + 1}/{episodes}: {'success' if success else 'FAIL'} "
                f"(rot err {errs[-1][0]:.2f} deg, height err {errs[-1][1] * 100:.2f} cm)")
            if snap["faults"]:
                break
        chunks = rt.loop.snapshot()["chunks"]
    finally:
        rt.close()
        server.close()
    recording = rt.recorder.summary() if rt.recorder is not None else None
    succ = [r for r in results if r["success"]]
    lat = np.asarray(latency_us) if latency_us else np.zeros(1)
    return {
        "policy": spec.name, "robot": robot, "episodes": len(results), "seed": seed,
        "success_rate": {"body_pose": round(len(succ) / max(1, len(results)), 3)},
        "mean_time_to_success_s": {"body_pose": round(float(np.mean([r["time_to_success_s"] for r in succ])), 3)
                                   if succ else None},
        "inference_latency_us": summary(lat, ("p50", "p99")),
        "starvation_ticks": int(chunks["starved_ticks"]) - starved_before,
        "server_outages": server.outages,
        "transport": server.transport,
        "criteria": {"rot_tol_deg": ROT_TOL_DEG, "height_tol_m": HEIGHT_TOL_M, "settle_s": SETTLE_S,
                     "episode_s": EPISODE_S},
        "results": results,
        **({"recording": recording} if recording else {}),
    }


def hand_table_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The hands against the table over the episodes: the least clearance of any (m; negative: into
    the table), per task, and the episodes where a hand went into it."""
    if not results:
        return {"min_clearance_m": None, "per_task_min_m": {}, "episodes_penetrating": 0}
    per: dict[str, float] = {}
    for r in results:
        per[r["task"]] = min(per.get(r["task"], float("inf")), r["hand_table_clearance_m"])
    return {"min_clearance_m": min(per.values()), "per_task_min_m": per,
            "episodes_penetrating": sum(r["hand_table_clearance_m"] < 0 for r in results)}


def evaluate_vla(pkg: Any, cfg: Any, episodes: int, seed: int, say: Callable[[str], None],
                 replan_steps: int = 1, shared_memory: bool = True, record: Any = None,
                 table: str = "keep_out", perturb: Any = None) -> dict[str, Any]:
    """Tabletop vision-language tasks on the G1 (vertebra.policies.vla): held-out random scenes and
    instructions; success per task as defined there, checked after every policy step. Every policy
    step also measures how close the hands' collision geometry came to the table (negative: into it),
    whatever `table` (G1Session) makes of the table. `perturb` (vla.perturb.Perturbation): the
    condition the scenes, camera and words are changed by; with `absent`, only touch and point run and
    success is the policy saying it cannot comply (the package's outputs.feasibility) and the hands
    staying still. A policy that says it cannot comply is held where it is for the rest of the episode,
    as the runtime holds it; on a feasible task that is a failure. Every rate comes with its Wilson 95%
    interval."""
    from vertebra.policies import vla
    from vertebra.policies.package import CANNOT_COMPLY_REPLIES
    from vertebra.policies.vla.perturb import ABSENT_STILL_M, Perturbation, wilson

    perturb = perturb if perturb is not None else Perturbation.parse("none")
    tasks = ("touch", "point") if perturb.absent else vla.TASKS

    spec = pkg.spec
    server = ServerProcess({spec.name: pkg.path}, cfg.name)
    try:
        sess = vla.G1Session(chunk_scheduler=True, target_names=list(spec.targets), record=record,
                             record_metadata=record_metadata(pkg, cfg), table=table)
    except BaseException:
        server.close()  # never leave the server process behind (it holds our output pipe)
        raise
    latency_us: list[float] = []
    results: list[dict[str, Any]] = []
    try:
        perturb.apply_to_camera(sess.cam)
        client = server.client(cfg.joint_names, shared_memory=shared_memory)
        say(f"server ready ({spec.name}); G1 standing on the whole-body controller")
        dt_ns = int(1e9 / spec.rate_hz)
        home = np.concatenate(sess.home)
        starved_before = int(sess.rt.loop.snapshot()["chunks"]["starved_ticks"])
        rng = np.random.default_rng(20_000 + seed)  # held out: demonstrations used seed 0..
        step = 0
        for k in range(episodes):
            # back home between episodes (the environment's reset, not the policy)
            t_now = int(round(sess.rt.loop.snapshot()["time_s"] * 1e9))
            back = np.concatenate(sess.hands())
            n_reset = int(vla.RESET_S * spec.rate_hz)
            path = np.stack([np.concatenate([vla.min_jerk(back[3 * h:3 * h + 3], home[3 * h:3 * h + 3], (i + 1) / n_reset)
                                             for h in range(2)]) for i in range(n_reset)])
            sess.sched.push(t_now + dt_ns, dt_ns, path)
            sess.rt.run_ticks(n_reset * sess.period)
            ep = perturb.episode(rng, tasks[k % len(tasks)])
            start = np.concatenate(sess.hands())
            moved = 0.0
            _episode_start(sess.rt, ep.instruction, ep.task, pkg)
            hist: list[np.ndarray] = []
            clearance = float("inf")
            t_success = None
            cannot_comply_at = None  # the policy step at which it said it cannot comply
            doubtful = 0  # replies in a row that said it cannot (each one held, not acted on)
            feasible_min = None
            gap = None
            for i in range(int(vla.EPISODE_S * spec.rate_hz)):
                if i % replan_steps == 0 and cannot_comply_at is None:  # the action horizon: actions per inference
                    obs = sess.observe(ep)
                    t_obs = int(round(obs.pop("t_s") * 1e9))
                    if sess.rt.recorder is not None:  # the frame the policy saw, at the time it was taken
                        sess.rt.recorder.frame("head", obs["images"]["head"], t_obs)
                    t = time.perf_counter_ns()
                    step += 1
                    reply = server.infer(client, obs, step, say)
                    if reply is not None:
                        latency_us.append((time.perf_counter_ns() - t) / 1e3)
                        if "feasible" in reply:
                            f = float(reply["feasible"])
                            feasible_min = f if feasible_min is None else min(feasible_min, f)
                        if reply.get("cannot_comply"):
                            # as the runtime does: the chunk is not acted on, the hands hold where they
                            # are; CANNOT_COMPLY_REPLIES such replies in a row and it cannot comply
                            doubtful += 1
                            if doubtful >= CANNOT_COMPLY_REPLIES:
                                cannot_comply_at = i
                            here = np.concatenate(sess.hands())
                            sess.sched.push(t_obs, dt_ns, np.repeat(here[None], spec.chunk_length, axis=0))
                        else:
                            doubtful = 0
                            # action k is the hand target from t_obs + k * dt on (the expert's targets lead by a step)
                            sess.sched.push(t_obs, dt_ns, np.asarray(reply["actions"], np.float64))
                    if cannot_comply_at is not None:
                        say(f"episode {k + 1}: the policy cannot comply with {ep.instruction!r}")
                elif cannot_comply_at is not None and i % spec.chunk_length == 0:
                    sess.sched.push(int(round(sess.rt.loop.snapshot()["time_s"] * 1e9)), dt_ns,
                                    np.repeat(here[None], spec.chunk_length, axis=0))  # still holding
                sess.rt.run_ticks(sess.period)
                hist.append(np.concatenate(sess.hands()))
                clearance = min(clearance, sess.hand_table_clearance())
                moved = max(moved, float(np.abs(hist[-1] - start).reshape(2, 3).max(axis=1).max()))
                if not ep.feasible:  # nothing to do: success is saying so and not acting, judged at the end
                    continue
                gap = sess.touch_gap(ep)
                if t_success is None and vla.success(ep, hist, sess.sh, sess.home, gap):
                    t_success = (i + 1) / spec.rate_hz
            snap = sess.rt.loop.snapshot()
            if ep.feasible:
                done = cannot_comply_at is None and vla.success(ep, hist, sess.sh, sess.home, gap)
                measured = vla.measures(ep, hist, sess.sh, sess.home, gap)
            else:
                done = cannot_comply_at is not None and moved < ABSENT_STILL_M
                measured = {}
            ok = done and not snap["faults"]
            _episode_end(sess.rt, ok, snap, t_success)
            results.append({"episode": k, "task": ep.task, "instruction": ep.instruction, "success": ok,
                            "feasible": ep.feasible, "cannot_comply": cannot_comply_at is not None,
                            "cannot_comply_step": cannot_comply_at,
                            "feasible_min": None if feasible_min is None else round(feasible_min, 4),
                            "time_to_success_s": t_success if ok and ep.feasible else None,
                            "hand_table_clearance_m": round(clearance, 4), "hands_moved_m": round(moved, 4),
                            "measures": {name: round(v, 4) for name, v in measured.items()}})
            say(f"episode {k + 1}/{episodes}: {ep.instruction!r}: {'success' if ok else 'FAIL'} "
                f"{results[-1]['measures'] or ('cannot comply' if cannot_comply_at is not None else 'acted')}")
            if snap["faults"]:
                break
        chunks = sess.rt.loop.snapshot()["chunks"]
    finally:
        sess.close()
        server.close()
    recording = sess.rt.recorder.summary() if sess.rt.recorder is not None else None
    lat = np.asarray(latency_us) if latency_us else np.zeros(1)
    per_task: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    times: dict[str, Any] = {}
    for task in tasks:
        rs = [r for r in results if r["task"] == task]
        if rs:
            per_task[task] = round(sum(r["success"] for r in rs) / len(rs), 3)
            k = sum(r["success"] for r in rs)
            counts[task] = {"successes": k, "episodes": len(rs), "wilson95": [round(x, 3) for x in wilson(k, len(rs))]}
            ts = [r["time_to_success_s"] for r in rs if r["success"] and r["time_to_success_s"] is not None]
            times[task] = round(float(np.mean(ts)), 3) if ts else None
    return {
        "policy": spec.name, "robot": cfg.name, "episodes": len(results), "seed": seed,
        "success_rate": per_task,
        "success_rate_all": round(sum(r["success"] for r in results) / max(1, len(results)), 3),
        "success_counts": counts,
        "success_all": {"successes": sum(r["success"] for r in results), "episodes": len(results),
                        "wilson95": [round(x, 3) for x in wilson(sum(r["success"] for r in results), len(results))]},
        "perturb": perturb.text,
        "mean_time_to_success_s": times,
        "inference_latency_us": summary(lat, ("p50", "p99")),
        "starvation_ticks": int(chunks["starved_ticks"]) - starved_before,
        "server_outages": server.outages,
        "transport": server.transport,
        "replan_steps": replan_steps,
        "table": table,
        "hand_table": hand_table_summary(results),
        "cannot_comply": {"episodes": sum(r["cannot_comply"] for r in results),
                          "on_feasible": sum(r["cannot_comply"] and r["feasible"] for r in results),
                          "on_infeasible": sum(r["cannot_comply"] and not r["feasible"] for r in results),
                          "infeasible_episodes": sum(not r["feasible"] for r in results)},
        "criteria": {"touch_tol_m": vla.TOUCH_TOL_M, "point_tol_deg": vla.POINT_TOL_DEG, "point_reach_m": vla.POINT_REACH_M, "raised_z_m": vla.RAISED_Z_M, "wave_z_m": vla.WAVE_Z_M, "wave_sweep_m": vla.WAVE_SWEEP_M,
                     "episode_s": vla.EPISODE_S},
        "results": results,
        **({"recording": recording} if recording else {}),
    }

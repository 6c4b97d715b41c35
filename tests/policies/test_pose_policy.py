"""The shipped joint-target policy end to end (server process, client, chunk scheduler, JointPD,
sim), and its training pipeline."""

import json
import os
import subprocess
import sys

from vertebra.policies.package import PolicyPackage
from vertebra.runtime.config import REPO_ROOT

EXE = os.path.join(os.path.dirname(sys.executable), "vertebra")
PACKAGE = REPO_ROOT / "policies" / "packages" / "go2_pose"


def test_shipped_package_is_small_and_verified():
    pkg = PolicyPackage.load(PACKAGE)
    size = sum(f.stat().st_size for f in PACKAGE.iterdir())
    assert size < 20 * 1024 * 1024 and pkg.spec.action_space == "joint_targets" and pkg.spec.rate_hz == 50


def test_eval_through_the_whole_stack_meets_a_floor():
    r = subprocess.run([EXE, "eval", "--policy", str(PACKAGE), "--robot", "go2", "--episodes", "8", "--seed", "3",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["success_rate"]["body_pose"] >= 0.75, out
    assert out["starvation_ticks"] == 0 and out["inference_latency_us"]["p50"] > 0


def test_training_pipeline_reproduces_a_loadable_package(tmp_path):
    out = tmp_path / "pose"
    r = subprocess.run([EXE, "train", "pose", "--commands", "10", "--epochs", "2", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 10 * (60 - 10)
    r = subprocess.run([EXE, "policy", "check", str(out), "--robot", "go2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_swap_at_a_chunk_boundary_never_leaves_a_tick_without_a_target():
    import numpy as np
    from vertebra import _rt
    from vertebra.policies.evaluate import ServerProcess
    from vertebra.runtime.sim_runtime import SimRuntime

    server = ServerProcess({"pose_a": PACKAGE, "pose_b": PACKAGE}, "go2")
    rt = SimRuntime("go2")
    sched = _rt.ChunkScheduler(12, mode="keep_prefix", blend_s=0.04)
    _rt.set_chunk_scheduler(rt.loop, sched)
    try:
        client = server.client(rt.cfg.joint_names)
        rt.stand_up(hold_s=0.3)
        cmd_a, cmd_b = np.array([0.15, 0.0, 0.0, 0.0]), np.array([-0.15, 0.0, 0.0, 0.0])
        active, qs = [], []

        def step(c):
            s = rt.loop.snapshot()
            obs = {"state": {"q": np.asarray(s["state"]["q"], np.float32), "dq": np.asarray(s["state"]["dq"], np.float32)},
                   "command": c.astype(np.float32)}
            reply = client.infer(obs)
            active.append(reply["policy"])
            sched.push(int(s["time_s"] * 1e9) + 20_000_000, 20_000_000, np.asarray(reply["actions"], np.float64))
            for _ in range(10):
                rt.loop.run_ticks(1)
                qs.append(np.asarray(rt.loop.snapshot()["command"]["q"]))

        step(np.zeros(4))
        rt.request(_rt.Mode.JOINT_PD, stream=True)
        starved0 = rt.loop.snapshot()["chunks"]["starved_ticks"]  # the stand-up had no policy
        for _ in range(40):
            step(cmd_a)
        r = subprocess.run([EXE, "policy", "swap", "pose_b", "--server", server.endpoint], capture_output=True, text=True)
        assert r.returncode == 0 and "active: pose_b" in r.stdout, r.stderr
        for _ in range(60):
            step(cmd_b)
        s = rt.loop.snapshot()
        assert active[0] == "pose_a" and active[-1] == "pose_b"
        assert s["chunks"]["starved_ticks"] == starved0  # every tick had a target
        assert s["safety_mode"] == "ACTIVE" and s["faults"] == []
        steps = np.abs(np.diff(np.asarray(qs), axis=0)).max()
        assert steps < 0.05  # no tick jumps more than the limiter's rate (dq_max * dt ~ 0.06 rad)
    finally:
        rt.close()
        server.close()

"""`vertebra bench transport`: the round-trip overhead of the policy protocol with a no-op model,
against an openpi-style websocket + msgpack server and client measured in the same run.

Each side gets its own server process (no-op policy: zeros of a 50 x 32 chunk), over the same
kind of local transport (ZMQ ipc:// and a websocket on a unix socket). Vertebra is measured twice:
over the ZMQ socket, and over its same-host shared-memory channel (vertebra.policies.shm: frames and
images through shared memory, negotiated over the socket). The cases:
  (a) state only (29-D float32)
  (b) one 224x224x3 uint8 image + 29-D state
  (c) three such cameras + 29-D state
The time is client-side: encode, send, server decode/handle/encode, receive, decode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vertebra.policies.protocol import encode
from vertebra.runtime.config import CONFIG_DIR
from vertebra.runtime.numerics import summary

CASES = {"a_state": 0, "b_1cam": 1, "c_3cam": 3}


def _obs(n_cams: int, rng: np.random.Generator) -> dict[str, Any]:
    obs: dict[str, Any] = {"state": {"q": rng.standard_normal(29).astype(np.float32)}, "instruction": "pick up the red cube"}
    if n_cams:
        obs["images"] = {f"cam{i}": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for i in range(n_cams)}
    return obs


def _time(fn: Callable[[], Any], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def _wait_for(proc: subprocess.Popen, what: str, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the {what} exited with code {proc.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the {what} was not ready within {timeout_s:g} s")


def bench_transport(iterations: int = 2000, warmup: int = 200, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from vertebra.policies.client import PolicyClient
    from vertebra.policies.ws_baseline import WsClient

    say = progress or (lambda _m: None)
    tmp = tempfile.mkdtemp(prefix="vertebra-bench-")
    zmq_ep = f"ipc://{tmp}/zmq.sock"
    ws_path = f"{tmp}/ws.sock"
    exe = os.path.join(os.path.dirname(sys.executable), "vertebra")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    zsrv = subprocess.Popen([exe, "serve", "--config", str(CONFIG_DIR / "policies" / "noop.yaml"), "--bind", zmq_ep, "--quiet"],
                            env=env)
    wsrv = subprocess.Popen([sys.executable, "-m", "vertebra.policies.ws_baseline", "--unix", ws_path,
                             "--chunk-length", "50", "--action-dim", "32"], env=env, stdout=subprocess.DEVNULL)
    results: dict[str, Any] = {"transport": {"vertebra": "zmq ipc:// + msgpack ndarray ext",
                                             "vertebra_shm": "shared-memory channel (same host), opened over zmq ipc://",
                                             "baseline": "openpi-style websocket (unix socket) + msgpack"},
                               "iterations": iterations, "cases": {}}
    client = ws = shm = None
    try:
        client = PolicyClient(zmq_ep)

        def zmq_ready() -> bool:
            try:
                client.hello(timeout_s=0.2)
                return True
            except TimeoutError:
                return False

        _wait_for(zsrv, "policy server", zmq_ready)
        _wait_for(wsrv, "websocket baseline server", lambda: os.path.exists(ws_path))
        ws = WsClient(unix_path=ws_path)
        shm = PolicyClient(zmq_ep)
        shm.use_shared_memory()
        rng = np.random.default_rng(0)
        for case, n_cams in CASES.items():
            obs = _obs(n_cams, rng)
            reply = client.infer(obs)
            assert reply["actions"].shape == (50, 32), reply["actions"].shape
            assert ws.infer(obs)["actions"].shape == (50, 32)
            assert np.array_equal(shm.infer(obs)["actions"], reply["actions"])
            n = iterations if n_cams < 3 else max(100, iterations // 2)
            say(f"{case}: {n} round trips each")
            ours = _time(lambda o=obs: client.infer(o), n, warmup)
            ours_shm = _time(lambda o=obs: shm.infer(o), n, warmup)
            base = _time(lambda o=obs: ws.infer(o), n, warmup)
            server = [client.infer(obs)["timing"] for _ in range(50)]
            o, m, b = (summary(xs, ("p50", "p99", "mean")) for xs in (ours, ours_shm, base))
            results["cases"][case] = {
                "cameras": n_cams, "request_bytes": len(encode({"type": "infer", "obs": obs, "id": 1, "t_obs_ns": 0})),
                "vertebra_us": o, "vertebra_shm_us": m, "websocket_us": b,
                "ratio_p50": round(b["p50"] / o["p50"], 2), "ratio_p99": round(b["p99"] / o["p99"], 2),
                "ratio_p50_shm": round(b["p50"] / m["p50"], 2), "ratio_p99_shm": round(b["p99"] / m["p99"], 2),
                "server_decode_us_p50": round(float(np.median([s["decode_us"] for s in server])), 1),
            }
        bcase = results["cases"]["b_1cam"]
        results["goals"] = {"b_p50_le_60us_shm": bcase["vertebra_shm_us"]["p50"] <= 60.0,
                            "b_ratio_ge_4x_shm": bcase["ratio_p50_shm"] >= 4.0,
                            "b_p50_le_60us_zmq": bcase["vertebra_us"]["p50"] <= 60.0,
                            "b_ratio_ge_4x_zmq": bcase["ratio_p50"] >= 4.0}
    finally:
        for c in (shm, client, ws):
            if c is not None:
                c.close()
        for p in (zsrv, wsrv):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return results

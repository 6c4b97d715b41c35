"""`vertebra train pose --robot go2`: a joint-target body-pose policy distilled from the whole-body
controller, exported as a policy package.

Pipeline (reproducible; about two minutes on 2 cores; progress is shown):

1. **Demonstrations.** The Go2 stands through the deployment procedure. The whole-body controller
   is then given random base-pose commands (roll, pitch, yaw within +/-15 deg; height within
   +/-5 cm), each held for 1.2 s. Half the holds include a 20-40 N shove, so that the data also
   shows how the controller corrects off-nominal states.
   - Every 20 ms (the policy rate, 50 Hz) we record the observation: the command, and the joint
     positions and velocities.
   - The targets are the joint-position targets that, with the robot's stance PD gains, ask for
     the torque the whole-body controller asked for:
     ``q + (kp_wbc (q_wbc - q) + tau_ff) / kp_stance``.
     So a plain PD on the motor boards reproduces the controller's effort, gravity support included.
2. **Model.** An MLP maps (command, q, dq), normalised, to a chunk of the next 10 targets
   (0.2 s). It is trained in torch on CPU with an MSE loss.
3. **Export.** The model is exported to ONNX, with a ``policy.yaml`` that carries the
   normalisation statistics, the joint names, chunk length and rate, and the model's sha256.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vertebra.policies.package import sha256_file

CHUNK = 10
RATE_HZ = 50.0
HOLD_S = 1.2
COMMAND_NAMES = ["roll_rad", "pitch_rad", "yaw_rad", "height_offset_m"]
LIMITS = np.array([math.radians(15), math.radians(15), math.radians(15), 0.05])


def random_command(rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(-1.0, 1.0, 4) * LIMITS
    # a third of the commands move one axis only (the corners of the range are rarely asked for)
    if rng.random() < 0.33:
        keep = rng.integers(0, 4)
        c = np.where(np.arange(4) == keep, c, 0.0)
    return c


def collect(robot: str, n_commands: int, seed: int, say: Callable[[str], None]) -> dict[str, np.ndarray]:
    from vertebra import _rt
    from vertebra.runtime.numerics import quat_from_rpy
    from vertebra.runtime.sim_runtime import SimRuntime

    rng = np.random.default_rng(seed)
    rt = SimRuntime(robot, controller="wbc")
    rt.stand_up(hold_s=0.5)
    rt.engage_wbc()
    rt.wait(0.3)
    kp_stance = np.asarray(rt.cfg.column("kp"))
    p0 = np.asarray(rt.loop.snapshot()["state"]["base_pos"], dtype=float)
    period = int(round(rt.rate_hz / RATE_HZ))
    obs, tgt = [], []
    t0 = time.monotonic()
    for k in range(n_commands):
        c = random_command(rng)
        rt.wb.set_target("base", (p0 + np.array([0.0, 0.0, c[3]]), quat_from_rpy(*c[:3])))
        steps = int(HOLD_S * RATE_HZ)
        # Half the holds get a shove (20-40 N, 0.1 s, random direction and time): the robot leaves
        # the nominal path and the controller's correction back to it becomes part of the data.
        push_at = int(rng.integers(5, steps - 10)) if rng.random() < 0.5 else -1
        ep_obs, ep_tgt = [], []
        for i in range(steps):
            if i == push_at:
                a, f = rng.uniform(0, 2 * math.pi), rng.uniform(20.0, 40.0)
                rt.driver.push(f * math.cos(a), f * math.sin(a), 0.0, 0.1)
            s = rt.loop.snapshot()
            q, dq = np.asarray(s["state"]["q"]), np.asarray(s["state"]["dq"])
            cmd = s["command"]
            torque = np.asarray(cmd["kp"]) * (np.asarray(cmd["q"]) - q) + np.asarray(cmd["tau_ff"])
            ep_obs.append(np.concatenate([c, q, dq]))
            ep_tgt.append(q + torque / kp_stance)
            rt.loop.run_ticks(period)
        if rt.loop.snapshot()["faults"]:
            raise RuntimeError(f"the demonstration faulted: {rt.loop.snapshot()['faults']}")
        ep_obs_a, ep_tgt_a = np.asarray(ep_obs), np.asarray(ep_tgt)
        for i in range(steps - CHUNK):
            obs.append(ep_obs_a[i])
            tgt.append(ep_tgt_a[i + 1:i + 1 + CHUNK])
        if (k + 1) % 20 == 0 or k + 1 == n_commands:
            say(f"demonstrations: {k + 1}/{n_commands} commands ({time.monotonic() - t0:.0f} s)")
    rt.close()
    return {"obs": np.asarray(obs, np.float32), "targets": np.asarray(tgt, np.float32)}


def train(data: dict[str, np.ndarray], epochs: int, seed: int, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x, y = data["obs"], data["targets"].reshape(len(data["targets"]), -1)
    stats = {"obs_mean": x.mean(0), "obs_std": x.std(0) + 1e-3,
             "act_mean": data["targets"].reshape(-1, data["targets"].shape[-1]).mean(0),
             "act_std": data["targets"].reshape(-1, data["targets"].shape[-1]).std(0) + 1e-3}
    xn = (x - stats["obs_mean"]) / stats["obs_std"]
    yn = ((data["targets"] - stats["act_mean"]) / stats["act_std"]).reshape(len(x), -1)
    dim_in, dim_out = xn.shape[1], yn.shape[1]
    net = nn.Sequential(nn.Linear(dim_in, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, dim_out))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    X, Y = torch.from_numpy(xn.astype(np.float32)), torch.from_numpy(yn.astype(np.float32))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    n_val = max(1, len(X) // 10)
    val, tr = idx[:n_val], idx[n_val:]
    losses = {}
    for ep in range(epochs):
        net.train()
        perm = rng.permutation(tr)
        for b in range(0, len(perm), 256):
            j = perm[b:b + 256]
            loss = ((net(X[j]) - Y[j]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (ep + 1) % max(1, epochs // 10) == 0 or ep + 1 == epochs:
            net.eval()
            with torch.no_grad():
                vl = float(((net(X[val]) - Y[val]) ** 2).mean())
                tl = float(((net(X[tr]) - Y[tr]) ** 2).mean())
            losses = {"train_mse": tl, "val_mse": vl}
            say(f"training: epoch {ep + 1}/{epochs}, train mse {tl:.4f}, validation mse {vl:.4f} (normalised)")
    return net, {"stats": stats, "losses": losses, "samples": len(X)}


def export(net: Any, info: dict[str, Any], robot_cfg: Any, out_dir: Path, seed: int, n_commands: int) -> Path:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    st = info["stats"]
    n = robot_cfg.n_joints

    class Wrapped(torch.nn.Module):
        """The ONNX graph takes the three inputs the package names and returns [1, chunk, joints]."""

        def __init__(self, net: Any):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.from_numpy(st["obs_mean"].astype(np.float32)))
            self.register_buffer("std", torch.from_numpy(st["obs_std"].astype(np.float32)))

        def forward(self, command: Any, state: Any) -> Any:
            return self.net(torch.cat([command, state], dim=1)).reshape(-1, CHUNK, n)

    # The package normalises state and command itself (policy.yaml statistics); the graph receives
    # normalised inputs and returns normalised actions.
    model = Wrapped(net).eval()
    torch.onnx.export(model, (torch.zeros(1, 4), torch.zeros(1, 2 * n)), str(out_dir / "model.onnx"),
                      input_names=["command", "state"], output_names=["actions"], dynamo=False,
                      dynamic_axes=None, opset_version=17)
    names = robot_cfg.joint_names
    spec = {
        "name": f"{robot_cfg.name}_pose",
        "version": "1",
        "description": "Body-pose policy distilled from the whole-body controller (vertebra train pose).",
        "robots": [robot_cfg.name],
        "model": {"file": "model.onnx", "sha256": sha256_file(out_dir / "model.onnx")},
        "runtime": {"intra_op_threads": 1},
        "inputs": {
            "command": {"input": "command", "names": COMMAND_NAMES},
            "state": {"input": "state", "fields": [{"kind": "q", "joints": names}, {"kind": "dq", "joints": names}]},
        },
        "outputs": {"output": "actions", "action_space": "joint_targets", "targets": names,
                    "chunk_length": CHUNK, "rate_hz": RATE_HZ},
        "normalization": {
            "command": {"mean": st["obs_mean"][:4].tolist(), "std": st["obs_std"][:4].tolist()},
            "state": {"mean": st["obs_mean"][4:].tolist(), "std": st["obs_std"][4:].tolist()},
            "actions": {"mean": st["act_mean"].tolist(), "std": st["act_std"].tolist()},
        },
        "training": {"pipeline": "vertebra train pose", "seed": seed, "commands": n_commands,
                     "samples": info["samples"], **{k: round(v, 5) for k, v in info["losses"].items()}},
    }
    (out_dir / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=120))
    return out_dir


def train_pose(robot: str = "go2", out: str | None = None, commands: int = 1200, epochs: int = 150, seed: int = 0,
               say: Callable[[str], None] | None = None) -> dict[str, Any]:
    from vertebra.runtime.config import REPO_ROOT, RobotConfig

    say = say or (lambda _m: None)
    cfg = RobotConfig.load(robot)
    out_dir = Path(out) if out else REPO_ROOT / "policies" / "packages" / f"{robot}_pose"
    t0 = time.monotonic()
    data = collect(robot, commands, seed, say)
    say(f"{len(data['obs'])} samples from {commands} commands")
    net, info = train(data, epochs, seed, say)
    export(net, info, cfg, out_dir, seed, commands)
    result = {"package": str(out_dir), "samples": info["samples"], **info["losses"],
              "minutes": round((time.monotonic() - t0) / 60, 2)}
    say(json.dumps(result))
    return result

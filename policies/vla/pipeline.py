"""`vertebra train vla`: demonstrations -> training -> ONNX package, end to end and reproducible."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from vertebra.policies.vla.collect import collect_parallel
from vertebra.policies.vla.export import export
from vertebra.policies.vla.model import train


def train_vla(robot: str = "g1", out: str | None = None, episodes: int = 720, epochs: int = 22, seed: int = 0,
              say: Callable[[str], None] | None = None, data_path: str | None = None,
              workers: int = 2) -> dict[str, Any]:
    """Collect `episodes` demonstrations over `workers` processes (or reuse `data_path`, saving them
    there when it does not exist yet), train `epochs` epochs and write the package to `out` (default
    policies/packages/<robot>_vla). Returns the package path, sample count, losses and minutes."""
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

"""`vertebra bench record`: what recording costs the tick, and whether the writer keeps up.

One run, two phases on the same real-time loop setup (the in-process MuJoCo robot standing under
the runtime, 500 Hz by default): the baseline without a recorder, then with one. Reported:
- the record step's own cost per tick (filling one TickRecord in the ring, timed inside C++ around
  exactly that step: RtLoop::record_cost), p50/p99/p99.9/max;
- the tick's compute time in both phases (p50/p99) and their difference;
- the writer: records written, records lost to a full ring (the acceptance is 0), camera frames,
  MCAP bytes and fsyncs.
With `--camera NAME` the recording also names that simulated camera (`record.cameras`): its thread
renders it at `--fps` and every frame is recorded (JPEG), as a deployment recording its head camera.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEYS = ("p50", "p99", "p999", "max")


def _phase(robot: str, seconds: float, record_dir: str | None, camera: str | None, fps: float,
           say: Callable[[str], None]) -> dict[str, Any]:
    from vertebra.runtime.recorder import RecordOptions
    from vertebra.runtime.sim_runtime import SimRuntime

    opts = None
    if record_dir:
        opts = RecordOptions.from_dict({"dir": record_dir, "cameras": [{"name": camera, "fps": fps}] if camera else []})
    rt = SimRuntime(robot, lockstep=False, record=opts, record_metadata={"source": "vertebra bench record"})
    try:
        rt.stand_up(hold_s=0.5)
        rt.loop.reset_stats()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(1.0, seconds - (time.monotonic() - t0)))
            if seconds >= 30 and int(time.monotonic() - t0) % 30 == 0:
                say(f"  {time.monotonic() - t0:.0f}/{seconds:g} s")
        stats = rt.loop.stats()
        cost = rt.loop.record_cost() if rt.recorder is not None else None
        snap = rt.status()
    finally:
        rt.close()
    out: dict[str, Any] = {
        "ticks": int(stats["ticks"]),
        "compute_us": {k: round(stats["compute_us"][k], 2) for k in KEYS},
        "lateness_us": {k: round(stats["lateness_us"][k], 1) for k in KEYS},
        "overruns": int(stats["overruns"]),
        "safety_mode": snap["safety_mode"],
    }
    if rt.recorder is not None:
        s = rt.recorder.summary()
        out["record_cost_us"] = {k: round(cost[k], 3) for k in (*KEYS, "mean")} | {"count": int(cost["count"])}
        out["writer"] = {"records": s["records"], "lost": s["lost"], "frames": sum(f.frames for f in rt.camera_feeds),
                         "syncs": s["syncs"], "segments": len(s["segments"]),
                         "bytes": sum(Path(p).stat().st_size for p in s["segments"])}
    return out


def bench_record(robot: str, seconds: float, camera: str | None = None, fps: float = 30.0, keep: str | None = None,
                 progress: Callable[[str], None] | None = None, baseline_s: float | None = None) -> dict[str, Any]:
    """`baseline_s`: how long the baseline phase runs (default: `seconds`; a long soak of the recorder
    needs no equally long baseline)."""
    say = progress or (lambda _m: None)
    tmp = keep or tempfile.mkdtemp(prefix="vertebra-bench-record-")
    b_s = seconds if baseline_s is None else baseline_s
    try:
        say(f"baseline: {robot} standing in real time, no recorder, {b_s:g} s ...")
        base = _phase(robot, b_s, None, None, fps, say)
        say(f"recording: the same with the recorder{f' and the {camera} camera at {fps:g} fps' if camera else ''}, "
            f"{seconds:g} s ...")
        rec = _phase(robot, seconds, tmp, camera, fps, say)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "robot": robot, "seconds": seconds, "baseline_seconds": b_s, "camera": camera, "fps": fps if camera else None,
        "baseline": base, "recording": rec,
        "record_cost_us": rec["record_cost_us"],
        "compute_p99_delta_us": round(rec["compute_us"]["p99"] - base["compute_us"]["p99"], 2),
        "compute_p50_delta_us": round(rec["compute_us"]["p50"] - base["compute_us"]["p50"], 2),
        "lost": rec["writer"]["lost"],
        "budget": {"record_cost_p99_us_max": 2.0, "lost_max": 0},
        "ok": rec["record_cost_us"]["p99"] <= 2.0 and rec["writer"]["lost"] == 0,
        **({"kept": tmp} if keep else {}),
    }

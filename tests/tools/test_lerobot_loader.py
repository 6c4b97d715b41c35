"""Optional check: LeRobot's own loader (lerobot 0.4.4, `LeRobotDataset`) loads a dataset that
`vertebra data export --format lerobot --version 3.0` wrote, and iterates it with the recording's values.

LeRobot lives in a virtualenv of its own (scripts/setup_lerobot.sh builds .venv-lerobot/; another one can be
named with VERTEBRA_LEROBOT_VENV) and runs in another process. Without it this test skips, saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime

REPO = Path(__file__).resolve().parents[2]
LEROBOT_VENV = Path(os.environ.get("VERTEBRA_LEROBOT_VENV", REPO / ".venv-lerobot"))
SETUP_LOG = REPO / ".venv-lerobot.log"
STAMP = ".vertebra-lerobot.sha256"  # written by scripts/setup_lerobot.sh once the venv is complete
HOW = "make it with: bash scripts/setup_lerobot.sh"
CAMERA = "observation.images.head"

# Run in the LeRobot venv: load the dataset with LeRobot's loader and print what some items hold, as JSON.
LOADER = """
import json, sys
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, camera, indices = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3].split(",")]
# torchvision 0.28 (paired with torch 2.13) has no VideoReader, so LeRobot's "pyav" backend fails: torchcodec.
ds = LeRobotDataset("local/vertebra", root=root, video_backend="torchcodec")
out = {"len": len(ds), "num_episodes": ds.num_episodes, "video_keys": list(ds.meta.video_keys), "items": []}
for i in indices:
    it = ds[i]
    img = it[camera]
    out["items"].append({
        "index": int(it["index"]), "task": it["task"], "episode_index": int(it["episode_index"]),
        "frame_index": int(it["frame_index"]), "timestamp": float(it["timestamp"]),
        "state": it["observation.state"].tolist(), "motor3": it["action.motor"][:3].tolist(),
        "success": bool(it["next.success"]), "image_shape": list(img.shape), "image_dtype": str(img.dtype),
        "image_min": float(img.min()), "image_max": float(img.max()),
    })
print(json.dumps(out))
"""


def _env(tmp: Path) -> dict[str, str]:
    """The LeRobot venv's environment: offline, every Hugging Face cache in the test's folder (nothing in
    the home folder), and nothing of this interpreter's environment that would mix the two venvs."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    hf = tmp / "hf"
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(hf), HF_DATASETS_CACHE=str(hf / "datasets"),
               HF_LEROBOT_HOME=str(hf / "lerobot"), XDG_CACHE_HOME=str(tmp / "cache"))
    return env


def _setup_failure() -> str:
    """The setup script's last lines, when its last run failed."""
    try:
        lines = [ln for ln in SETUP_LOG.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if not any("FAILED" in ln for ln in lines[-3:]):
        return ""
    return "; last lines of " + SETUP_LOG.name + ": " + " | ".join(lines[-3:])


@pytest.fixture
def lerobot_python(tmp_path) -> Path:
    """The LeRobot venv's python, once it imports the loader; else the test skips with the reason."""
    py = LEROBOT_VENV / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no LeRobot virtualenv at {LEROBOT_VENV} ({HOW}){_setup_failure()}")
    if not (LEROBOT_VENV / STAMP).exists():
        pytest.skip(f"the LeRobot virtualenv {LEROBOT_VENV} is incomplete: its setup did not finish ({HOW})"
                    f"{_setup_failure()}")
    probe = subprocess.run([str(py), "-c", "from lerobot.datasets.lerobot_dataset import LeRobotDataset"],
                           capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"{py} cannot import lerobot: {why} ({HOW}){_setup_failure()}")
    return py


def _record(d: Path) -> Path:
    rt = SimRuntime("g1", record=RecordOptions.from_dict({"dir": str(d), "cameras": [{"name": "head", "fps": 10}]}))
    try:
        rt.stand_up(hold_s=0.2)
        rt.recorder.episode_start("wave", task="wave")
        rt.wait(0.6)
        rt.recorder.episode_end("success")
        rt.recorder.episode_start("touch", task="touch")
        rt.wait(0.6)
        rt.recorder.episode_end("failure")
    finally:
        rt.close()
    return rt.recorder.run_dir


def _tasks_by_index(path: Path) -> dict[int, str]:
    """meta/tasks.parquet: the task string is the pandas index (named in the schema's pandas metadata)."""
    t = pq.read_table(path)
    (index_col,) = t.schema.pandas_metadata["index_columns"]
    cols = t.to_pydict()
    return dict(zip(cols["task_index"], cols[index_col]))


def _scalar(v):
    return v[0] if isinstance(v, list) else v


def test_lerobot_loads_the_export(lerobot_python, tmp_path):
    run_dir = _record(tmp_path / "rec")
    ds_dir = tmp_path / "lerobot"
    res = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "data", "export", str(run_dir),
                          "--format", "lerobot", "--version", "3.0", "--out", str(ds_dir), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["version"] == "3.0" and summary["episodes"] == 2

    # What the exporter wrote, read with pyarrow.
    info = json.loads((ds_dir / "meta/info.json").read_text())
    data = pa.concat_tables([pq.read_table(p) for p in sorted((ds_dir / "data").glob("*/*.parquet"))])
    tasks = _tasks_by_index(ds_dir / "meta/tasks.parquet")
    assert sorted(tasks.values()) == ["touch", "wave"]
    cols = data.to_pydict()
    n = data.num_rows
    ep = cols["episode_index"]
    firsts = [ep.index(e) for e in sorted(set(ep))]
    lasts = [n - 1 - ep[::-1].index(e) for e in sorted(set(ep))]
    indices = sorted({*firsts, *lasts, n // 2})

    script = tmp_path / "load_with_lerobot.py"
    script.write_text(LOADER)
    out = subprocess.run([str(lerobot_python), str(script), str(ds_dir), CAMERA, ",".join(map(str, indices))],
                         capture_output=True, text=True, timeout=600, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr[-4000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])

    assert got["len"] == n == info["total_frames"]
    assert got["num_episodes"] == 2 == info["total_episodes"]
    assert got["video_keys"] == [CAMERA]
    h, w = info["features"][CAMERA]["shape"][:2]
    seen_tasks = set()
    for i, item in zip(indices, got["items"]):
        assert item["index"] == cols["index"][i] == i
        assert item["episode_index"] == ep[i]
        assert item["frame_index"] == cols["frame_index"][i]
        assert np.float32(item["timestamp"]) == np.float32(cols["timestamp"][i])
        assert item["task"] == tasks[cols["task_index"][i]] == ("wave" if ep[i] == 0 else "touch")
        seen_tasks.add(item["task"])
        np.testing.assert_array_equal(np.asarray(item["state"], np.float32),
                                      np.asarray(cols["observation.state"][i], np.float32))
        np.testing.assert_array_equal(np.asarray(item["motor3"], np.float32),
                                      np.asarray(cols["action.motor"][i][:3], np.float32))
        assert item["success"] == bool(_scalar(cols["next.success"][i]))
        assert item["image_shape"] == [3, h, w]
        assert item["image_dtype"] == "torch.float32"
        assert 0.0 <= item["image_min"] <= item["image_max"] <= 1.0
    assert seen_tasks == {"wave", "touch"}
    # the successful episode's last frame says so, the failed one's does not
    assert [got["items"][indices.index(i)]["success"] for i in lasts] == [True, False]

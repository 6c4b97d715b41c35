"""`vertebra data export --format lerobot`: the exported dataset read back by a reader written against
LeRobot's published format (pyarrow + PyAV, no lerobot code): info.json and its features, file
naming, episode index rows, timestamps, the video frames, stats; and the values are the recording's."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vertebra.runtime import record_schema as rs
from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.tools.data import reader

REPO = Path(__file__).resolve().parents[2]
VERTEBRA = [sys.executable, "-m", "vertebra.runtime.cli"]
DEFAULTS = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
            "task_index": "int64"}


def vertebra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*VERTEBRA, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def camera_run(tmp_path_factory):
    """A G1 with its head camera recorded at 10 fps: a successful episode with an intervention, then a failed one."""
    d = tmp_path_factory.mktemp("g1")
    rt = SimRuntime("g1", record=RecordOptions.from_dict({"dir": str(d), "cameras": [{"name": "head", "fps": 10}]}))
    try:
        rt.stand_up(hold_s=0.2)
        rec = rt.recorder
        rec.episode_start("wave", task="wave", policy="none")
        rt.wait(0.5)
        rec.intervention_start("teleop")
        rt.wait(0.3)
        rec.intervention_end()
        rt.wait(0.2)
        rec.episode_end("success")
        rec.episode_start("touch the red cube", task="touch", policy="none")
        rt.wait(0.6)
        rec.episode_end("failure", "no cube")
    finally:
        rt.close()
    return rt.recorder.run_dir


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("go2")
    out = vertebra("eval", "--policy", str(REPO / "policies/packages/go2_pose"), "--robot", "go2", "--episodes", "2",
                   "--record", str(d), "--json")
    assert out.returncode == 0, out.stderr
    (run_dir,) = reader.run_dirs(d)
    return run_dir


def export(run_dir: Path, out: Path, *extra: str) -> dict:
    res = vertebra("data", "export", str(run_dir), "--out", str(out), "--json", *extra)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def read_v3(root: Path):
    info = json.loads((root / "meta/info.json").read_text())
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    tasks = pq.read_table(root / "meta/tasks.parquet")
    return info, data, eps, tasks


def decode_mp4(path: Path) -> list[tuple[float, np.ndarray]]:
    import av

    with av.open(str(path)) as box:
        st = box.streams.video[0]
        return [(float(f.pts * st.time_base), f.to_ndarray(format="rgb24")) for f in box.decode(st)]


# -- v3.0 ----------------------------------------------------------------------------------------
def test_v3_info_features_and_files(camera_run, tmp_path):
    out = export(camera_run, tmp_path / "ds")
    root = Path(out["out"])
    info, data, eps, tasks = read_v3(root)
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "g1" and info["fps"] == 30
    assert info["total_episodes"] == 2 == len(eps) and info["total_frames"] == data.num_rows
    assert info["total_tasks"] == tasks.num_rows == 2 and info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["chunks_size"] == 1000 and "total_videos" not in info and "total_chunks" not in info
    feats = info["features"]
    for k, dt in DEFAULTS.items():
        assert feats[k] == {"dtype": dt, "shape": [1], "names": None}
    assert feats["observation.images.head"]["dtype"] == "video"
    assert feats["observation.images.head"]["names"] == ["height", "width", "channels"]
    n = 29
    assert feats["observation.state"]["shape"] == [3 * n + 10] and len(feats["observation.state"]["names"]) == 3 * n + 10
    assert {"intervention", "fault", "safety_mode", "next.success", "next.done", "action", "action.motor",
            "contact_wrench.left_ankle_roll_link"} <= set(feats)
    # every data column is a non-video feature and the reverse; vectors are fixed-size lists of their length
    assert set(data.column_names) == {k for k, f in feats.items() if f["dtype"] != "video"}
    for k, f in feats.items():
        if f["dtype"] != "video" and f["shape"] != [1]:
            assert data.schema.field(k).type.list_size == f["shape"][0], k
    assert (root / "videos/observation.images.head/chunk-000/file-000.mp4").is_file()


def test_v3_rows_tasks_and_episode_index(camera_run, tmp_path):
    root = Path(export(camera_run, tmp_path / "ds")["out"])
    info, data, eps, tasks = read_v3(root)
    d = data.to_pydict()
    assert d["index"] == list(range(data.num_rows))  # the global frame number is the row
    meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert meta["index_columns"] == ["__index_level_0__"]  # the task string is the pandas index
    task_names = tasks.column("__index_level_0__").to_pylist()
    assert tasks.column("task_index").to_pylist() == [0, 1] and task_names == ["wave", "touch the red cube"]
    run = reader.load_run(camera_run)
    for k, e in enumerate(eps):
        rows = range(e["dataset_from_index"], e["dataset_to_index"])
        assert e["episode_index"] == k and e["length"] == len(rows) and e["tasks"] == [task_names[k]]
        assert {d["episode_index"][i] for i in rows} == {k}
        ts = [d["timestamp"][i] for i in rows]
        assert ts == pytest.approx([i / 30 for i in range(len(rows))], abs=1e-6)
        assert [d["frame_index"][i] for i in rows] == list(range(len(rows)))
        assert e["length"] == pytest.approx((run.episodes[k].end_s - run.episodes[k].start_s) * 30 + 1, abs=1)
    ends = [d["next.success"][e["dataset_to_index"] - 1] for e in eps]
    assert ends == [True, False] and sum(d["next.success"]) == 1 and sum(d["next.done"]) == 2
    iv = run.episodes[0].interventions[0]
    t0 = run.episodes[0].start_s
    flags = [d["intervention"][i] for i in range(eps[0]["dataset_to_index"])]
    times = [t0 + i / 30 for i in range(len(flags))]
    assert all(f == (iv["start_s"] <= t <= iv["end_s"]) for f, t in zip(flags, times))
    assert not any(d["intervention"][eps[1]["dataset_from_index"]:])


def test_v3_values_are_the_recordings(camera_run, tmp_path):
    root = Path(export(camera_run, tmp_path / "ds")["out"])
    _, data, eps, _ = read_v3(root)
    ticks = reader.load_ticks(camera_run)
    run = reader.load_run(camera_run)
    t = ticks["driver_ns"] * 1e-9
    state = np.asarray(data.column("observation.state").to_pylist(), np.float32)
    motor = np.asarray(data.column("action.motor").to_pylist(), np.float32)
    for e, ep in zip(eps, run.episodes):
        for f in (0, e["length"] // 2, e["length"] - 1):
            row = e["dataset_from_index"] + f
            k = np.searchsorted(t, ep.start_s + f / 30 + 1e-9, side="right") - 1  # the newest tick at the frame time
            np.testing.assert_array_equal(state[row, :29], ticks["q"][k, :29])
            np.testing.assert_array_equal(state[row, 58:87], ticks["tau"][k, :29])
            np.testing.assert_array_equal(motor[row, :29], ticks["cmd_q"][k, :29])


def test_v3_video_frames_are_the_cameras(camera_run, tmp_path):
    from PIL import Image

    root = Path(export(camera_run, tmp_path / "ds")["out"])
    info, data, eps, _ = read_v3(root)
    frames = decode_mp4(root / "videos/observation.images.head/chunk-000/file-000.mp4")
    assert len(frames) == info["total_frames"]  # one video frame per dataset frame, back to back
    h, w, _ = info["features"]["observation.images.head"]["shape"]
    assert frames[0][1].shape == (h, w, 3)
    for e in eps:
        a, b = e["videos/observation.images.head/from_timestamp"], e["videos/observation.images.head/to_timestamp"]
        assert b - a == pytest.approx(e["length"] / 30)
        pts = [p for p, _ in frames if a - 1e-4 <= p < b - 1e-4]
        assert len(pts) == e["length"]  # LeRobot finds frame f at from_timestamp + timestamp
    assert eps[1]["videos/observation.images.head/from_timestamp"] == pytest.approx(
        eps[0]["videos/observation.images.head/to_timestamp"])
    # the first frame is the first recorded camera frame (H.264 is lossy: close, not equal)
    run = reader.load_run(camera_run)
    first = next(m for s in reader.segments_of(camera_run) for m in s.scan({rs.CAMERA_PREFIX + "head"})
                 if (m.log_time - run.clock_offset_ns) * 1e-9 <= run.episodes[0].start_s + 1e-9
                 and (m.log_time - run.clock_offset_ns) * 1e-9 > run.episodes[0].start_s - 0.1)
    want = np.asarray(Image.open(io.BytesIO(base64.b64decode(first.json()["data"]))).convert("RGB"), np.float64)
    assert np.abs(frames[0][1].astype(np.float64) - want).mean() < 6.0


def test_v3_stats(camera_run, tmp_path):
    root = Path(export(camera_run, tmp_path / "ds")["out"])
    info, data, _, _ = read_v3(root)
    stats = json.loads((root / "meta/stats.json").read_text())
    assert set(stats) == set(info["features"])
    for k, s in stats.items():
        assert {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"} <= set(s), k
        if info["features"][k]["dtype"] == "video":
            assert np.asarray(s["mean"]).shape == (3, 1, 1) and 0 <= np.min(s["min"]) <= np.max(s["max"]) <= 1
        else:
            assert s["count"] == [info["total_frames"]]
            assert len(s["mean"]) == info["features"][k]["shape"][0]
            if info["features"][k]["dtype"] == "float32":
                lo, q1, q5, q9, hi = (np.asarray(s[x]) for x in ("min", "q01", "q50", "q99", "max"))
                assert (lo <= q1 + 1e-6).all() and (q1 <= q5 + 1e-6).all() and (q5 <= q9 + 1e-6).all() and (q9 <= hi + 1e-6).all()
    state = np.asarray(data.column("observation.state").to_pylist(), np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(axis=0), rtol=1e-5, atol=1e-7)


def test_a_policys_actions_are_the_action(policy_run, tmp_path):
    root = Path(export(policy_run, tmp_path / "ds")["out"])
    info, data, eps, _ = read_v3(root)
    assert info["features"]["action"]["names"] == [n for n in reader.joint_names(reader.load_run(policy_run))]
    assert "observation.images.head" not in info["features"] and info["video_path"] is None
    action = np.asarray(data.column("action").to_pylist(), np.float32)
    motor = np.asarray(data.column("action.motor").to_pylist(), np.float32)
    assert np.abs(action).sum() > 0 and action.shape == (data.num_rows, 12)
    assert np.abs(action - motor[:, :12]).max() < 0.2  # the policy's joint targets, and the limited command near them
    assert [e["tasks"][0].startswith("body pose") for e in eps] == [True, True]


# -- v2.1 ----------------------------------------------------------------------------------------
def test_v21_layout(camera_run, tmp_path):
    root = Path(export(camera_run, tmp_path / "ds", "--version", "2.1")["out"])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_videos"] == 2 and info["total_chunks"] == 1
    assert "data_files_size_in_mb" not in info
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["video_path"] == "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    eps = [json.loads(x) for x in (root / "meta/episodes.jsonl").read_text().splitlines()]
    tasks = [json.loads(x) for x in (root / "meta/tasks.jsonl").read_text().splitlines()]
    stats = [json.loads(x) for x in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert [t["task"] for t in tasks] == ["wave", "touch the red cube"] and [t["task_index"] for t in tasks] == [0, 1]
    start = 0
    for k, e in enumerate(eps):
        assert e["episode_index"] == k == stats[k]["episode_index"]
        t = pq.read_table(root / f"data/chunk-000/episode_{k:06d}.parquet").to_pydict()
        assert len(t["index"]) == e["length"] and t["index"] == list(range(start, start + e["length"]))
        assert t["timestamp"] == pytest.approx([i / 30 for i in range(e["length"])], abs=1e-6)
        frames = decode_mp4(root / f"videos/chunk-000/observation.images.head/episode_{k:06d}.mp4")
        assert len(frames) == e["length"] and frames[0][0] == 0.0  # each file starts at 0
        assert stats[k]["stats"]["observation.images.head"]["count"][0] > 0
        start += e["length"]
    assert info["total_frames"] == start


# -- redaction and refusals ------------------------------------------------------------------------
def test_a_redacted_export_has_no_camera_data(camera_run, tmp_path):
    root = Path(export(camera_run, tmp_path / "ds", "--redact", "cameras,operator")["out"])
    info = json.loads((root / "meta/info.json").read_text())
    assert not (root / "videos").exists() and info["video_path"] is None
    assert not any("image" in k for k in info["features"]) and info["vertebra"]["redacted"] == ["cameras", "operator"]
    for p in root.rglob("*"):
        if p.is_file():
            blob = p.read_bytes()
            assert b"JFIF" not in blob and b"ftypisom" not in blob, p  # no JPEG, no MP4 anywhere
    assert "operator" not in json.dumps(info["vertebra"]["episodes"])


def test_export_refuses_what_it_cannot_do(camera_run, policy_run, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    r = vertebra("data", "export", str(camera_run), "--out", str(tmp_path / "busy"))
    assert r.returncode == 2 and "not empty" in r.stderr
    r = vertebra("data", "export", str(camera_run), str(policy_run), "--out", str(tmp_path / "mixed"))
    assert r.returncode == 2 and "different robots" in r.stderr
    r = vertebra("data", "export", str(camera_run), "--out", str(tmp_path / "o"), "--redact", "faces")
    assert r.returncode == 2 and "valid: cameras, operator" in r.stderr
    empty = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(tmp_path / "runs")}))
    empty.wait(0.1)
    empty.close()
    r = vertebra("data", "export", str(empty.recorder.run_dir), "--out", str(tmp_path / "o2"))
    assert r.returncode == 2 and "no episodes" in r.stderr

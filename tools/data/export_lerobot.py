"""`vertebra data export --format lerobot`: recorded episodes as a LeRobot dataset, codebase v3.0 (what
lerobot 0.4.x reads) or v2.1 (what GR00T-WBC and openpi still read).

Every recorded episode becomes a dataset episode, sampled at `fps` from the tick records (each frame
is the newest tick at or before its time). Cameras are the recording's /camera/<name> frames,
sample-and-hold, encoded to H.264 (yuv420p, constant rate, keyframe every 2 frames) with PyAV.

Features (names in info.json):
  observation.state        float32 [3n + 10]  q, dq, tau per joint, IMU quaternion (wxyz), gyro, accelerometer
  observation.base         float32 [13]       the base as the controller saw it: position, quaternion, velocity, rate
  observation.images.<cam> video [H, W, 3]
  action                   float32 [m]        the policy's action (its chunk sample, in its column order); the motor
                                              position command where no policy ran
  action.motor             float32 [5n]       the motor command: q, dq, kp, kd, tau_ff per joint
  intervention, fault      bool [1]           an operator had taken over; a fault condition was present
  safety_mode              int64 [1]          index into info.json's `vertebra.safety_modes`
  contact_wrench.<foot>    float32 [6]        the whole-body controller's contact wrench (force, torque)
  next.success, next.done  bool [1]           true on the last frame (success: of a successful episode)
  timestamp, frame_index, episode_index, index, task_index (LeRobot's own)

Layout facts (LeRobot's published format; lerobot 0.4.4 / 0.3.3 datasets/utils.py and lerobot_dataset.py):
v3.0 `data/chunk-000/file-000.parquet`, `videos/<key>/chunk-000/file-000.mp4` (episodes back to back, located by
`videos/<key>/from_timestamp`), `meta/episodes/chunk-000/file-000.parquet`, `meta/tasks.parquet` (the task string is
the pandas index, column task_index), `meta/stats.json` (min, max, mean, std, count, q01..q99; images per channel in
[0, 1], shape (3, 1, 1)); v2.1 `data/chunk-000/episode_000000.parquet`, `videos/chunk-000/<key>/episode_000000.mp4`,
`meta/episodes.jsonl`, `meta/episodes_stats.jsonl`, `meta/tasks.jsonl`. timestamp = frame_index / fps; index is the
global frame number. One data file and one video file per camera (no size rollover yet).
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vertebra.runtime import record_schema as rs
from vertebra.tools.data.reader import Run, joint_names, load_run, load_ticks

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
CHUNKS_SIZE = 1000
DATA_MB, VIDEO_MB = 100, 200
WRENCH = ["fx", "fy", "fz", "tx", "ty", "tz"]


class ExportError(ValueError):
    pass


def _stats(x: np.ndarray, quantiles: bool) -> dict[str, Any]:
    """LeRobot's per-feature stats over the frame axis (x: [frames, dims])."""
    xf = x.astype(np.float64)
    out: dict[str, Any] = {"min": x.min(axis=0).tolist(), "max": x.max(axis=0).tolist(),
                           "mean": xf.mean(axis=0).tolist(), "std": xf.std(axis=0).tolist(), "count": [int(len(x))]}
    if quantiles:
        for q in QUANTILES:
            out[f"q{int(round(q * 100)):02d}"] = np.quantile(xf, q, axis=0).tolist()
    return out


def _image_stats(frames: np.ndarray, quantiles: bool) -> dict[str, Any]:
    """Per channel over the frames, in [0, 1], each value shaped (3, 1, 1) as LeRobot stores them."""
    px = frames.reshape(-1, 3).astype(np.float64) / 255.0
    s = _stats(px, quantiles)
    return {k: ([int(len(frames))] if k == "count" else [[[float(v)]] for v in vals]) for k, vals in s.items()}


def _decode(msg_json: dict[str, Any]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(msg_json["data"]))).convert("RGB"))


class _Episode:
    def __init__(self, run: Run, ep: Any, ticks: np.ndarray, fps: float, cameras: dict[str, list[tuple[float, Any]]]):
        t = ticks["driver_ns"].astype(np.float64) * 1e-9
        end = ep.end_s if ep.end_s is not None else float(t[-1])
        n_frames = int(math.floor((end - ep.start_s) * fps + 1e-9)) + 1
        times = ep.start_s + np.arange(n_frames) / fps
        idx = np.searchsorted(t, times + 1e-9, side="right") - 1
        keep = idx >= 0
        self.times, self.rows = times[keep], ticks[idx[keep]]
        if not len(self.rows):
            raise ExportError(f"{run.id}: episode {ep.number} has no recorded ticks")
        self.ep, self.run = ep, run
        self.cameras = {}
        for name, frames in cameras.items():
            ft = np.asarray([f[0] for f in frames])
            j = np.clip(np.searchsorted(ft, self.times + 1e-9, side="right") - 1, 0, len(frames) - 1)
            self.cameras[name] = [frames[k][1] for k in j]
        self.intervention = np.zeros(len(self.times), bool)
        for iv in ep.interventions:
            stop = iv["end_s"] if iv["end_s"] is not None else end
            self.intervention |= (self.times >= iv["start_s"]) & (self.times <= stop)


def _load(run_dirs: list[Path], redact: set[str]) -> tuple[list[Run], list[np.ndarray], list[dict[str, list]]]:
    from vertebra.tools.data.reader import segments_of

    runs, ticks, cams = [], [], []
    for d in run_dirs:
        run = load_run(d)
        if not run.episodes:
            raise ExportError(f"{d}: the run has no episodes to export (an episode is started by the service, "
                              "vertebra eval, or Recorder.episode_start)")
        runs.append(run)
        ticks.append(load_ticks(d))
        frames: dict[str, list] = {}
        if "cameras" not in redact:
            for seg in segments_of(d):
                for m in seg.scan(None):
                    if m.topic.startswith(rs.CAMERA_PREFIX):
                        t = (m.log_time - run.clock_offset_ns) * 1e-9  # the robot time the frame shows
                        frames.setdefault(m.topic[len(rs.CAMERA_PREFIX):], []).append((t, m.json()))
        for f in frames.values():
            f.sort(key=lambda x: x[0])
        cams.append(frames)
    return runs, ticks, cams


def export(run_dirs: list[str | Path], out: str | Path, *, version: str = "3.0", fps: float = 30.0,
           redact: set[str] | None = None, progress: Any = None) -> dict[str, Any]:
    """Write the runs' episodes as a LeRobot dataset into `out` (a new or empty folder)."""
    say = progress or (lambda _m: None)
    redact = set(redact or ())
    if version not in ("3.0", "2.1"):
        raise ExportError(f"--version {version}: valid: 3.0, 2.1")
    if not 1 <= fps <= 1000 or fps != int(fps):
        raise ExportError(f"--fps {fps:g}: a whole number of frames per second in [1, 1000]")
    fps = int(fps)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; export into a new folder")
    dirs = [Path(d) for d in run_dirs]
    runs, ticks, cams = _load(dirs, redact)
    robots = {r.metadata.get("robot", "") for r in runs}
    joints = {tuple(joint_names(r)) for r in runs}
    if len(robots) != 1 or len(joints) != 1:
        raise ExportError(f"the runs are of different robots or joint sets ({', '.join(sorted(robots))}); export "
                          "one robot's runs together")
    names = list(next(iter(joints)))
    n = len(names)
    episodes: list[_Episode] = []
    for run, tk, cam in zip(runs, ticks, cams):
        for ep in run.episodes:
            episodes.append(_Episode(run, ep, tk, fps, cam))
    say(f"{len(episodes)} episodes from {len(runs)} runs at {fps} fps")
    cam_names = sorted({c for e in episodes for c in e.cameras})
    for c in cam_names:
        missing = [e.ep.number for e in episodes if c not in e.cameras]
        if missing:
            raise ExportError(f"camera {c!r} is missing from some episodes ({missing}); export them apart or "
                              "--redact cameras")
    adims = {int(d) for e in episodes for d in e.rows["action_dim"] if d > 0}
    if len(adims) > 1:
        raise ExportError(f"the episodes' policy actions have different sizes ({sorted(adims)})")
    adim = adims.pop() if adims else 0
    meta = runs[0].metadata
    action_names = [x for x in meta.get("action_names", "").split(",") if x] if adim else []
    if adim and len(action_names) != adim:
        action_names = [f"action_{k}" for k in range(adim)]
    if not adim:
        action_names = [f"{j}.q" for j in names]
    from vertebra.runtime.recorder import SAFETY_MODES

    feet = _feet(meta.get("robot", ""))

    # -- the frames -------------------------------------------------------------------------
    tasks: dict[str, int] = {}
    cols: dict[str, list[np.ndarray]] = {}
    ep_rows = []
    start = 0
    for k, e in enumerate(episodes):
        r = e.rows
        L = len(r)
        task = e.ep.instruction or e.ep.task or "unnamed"
        tasks.setdefault(task, len(tasks))
        feats = {
            "observation.state": np.hstack([r["q"][:, :n], r["dq"][:, :n], r["tau"][:, :n], r["imu_quat"], r["imu_gyro"],
                                            r["imu_acc"]]).astype(np.float32),
            "observation.base": np.hstack([r["base_pos"], r["base_quat"], r["base_lin_vel"], r["base_ang_vel"]]).astype(np.float32),
            "action": (r["action"][:, :adim] if adim else r["cmd_q"][:, :n]).astype(np.float32),
            "action.motor": np.hstack([r["cmd_q"][:, :n], r["cmd_dq"][:, :n], r["cmd_kp"][:, :n], r["cmd_kd"][:, :n],
                                       r["cmd_tau_ff"][:, :n]]).astype(np.float32),
            "intervention": e.intervention[:, None],
            "fault": (r["faults_active"] != 0)[:, None],
            "safety_mode": r["safety_mode"].astype(np.int64)[:, None],
        }
        for f, foot in enumerate(feet):
            feats[f"contact_wrench.{foot}"] = r["contact_wrench"][:, f, :].astype(np.float32)
        last = np.zeros((L, 1), bool)
        last[-1] = True
        feats["next.done"] = last
        feats["next.success"] = last & (e.ep.outcome == "success")
        feats["timestamp"] = (np.arange(L) / fps).astype(np.float32)[:, None]
        feats["frame_index"] = np.arange(L, dtype=np.int64)[:, None]
        feats["episode_index"] = np.full((L, 1), k, np.int64)
        feats["index"] = np.arange(start, start + L, dtype=np.int64)[:, None]
        feats["task_index"] = np.full((L, 1), tasks[task], np.int64)
        for key, v in feats.items():
            cols.setdefault(key, []).append(v)
        ep_rows.append({"episode_index": k, "tasks": [task], "length": L, "from": start, "to": start + L,
                        "stats": {key: _stats(v, version == "3.0") for key, v in feats.items()},
                        "vertebra": {"run": e.run.id, "episode": e.ep.number, "outcome": e.ep.outcome,
                                     "reason": e.ep.reason, "policy": e.ep.policy}})
        start += L
    total = start

    # -- features -----------------------------------------------------------------------------
    def vec(dt: str, names_: list[str]) -> dict[str, Any]:
        return {"dtype": dt, "shape": [len(names_)], "names": names_}

    state_names = ([f"{j}.q" for j in names] + [f"{j}.dq" for j in names] + [f"{j}.tau" for j in names]
                   + ["imu.qw", "imu.qx", "imu.qy", "imu.qz", "imu.gx", "imu.gy", "imu.gz", "imu.ax", "imu.ay", "imu.az"])
    features: dict[str, Any] = {
        "observation.state": vec("float32", state_names),
        "observation.base": vec("float32", ["x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "vz", "wx", "wy", "wz"]),
        "action": vec("float32", action_names),
        "action.motor": vec("float32", [f"{j}.{c}" for c in ("q", "dq", "kp", "kd", "tau_ff") for j in names]),
        "intervention": {"dtype": "bool", "shape": [1], "names": None},
        "fault": {"dtype": "bool", "shape": [1], "names": None},
        "safety_mode": {"dtype": "int64", "shape": [1], "names": None},
    }
    for key in cols:
        if key.startswith("contact_wrench."):
            features[key] = vec("float32", WRENCH)
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    video_shapes: dict[str, tuple[int, int]] = {}
    for c in cam_names:
        h, w = _decode(episodes[0].cameras[c][0]).shape[:2]
        video_shapes[c] = (h, w)
        features[f"observation.images.{c}"] = {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}
    for key in ("timestamp",):
        features[key] = {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}

    # -- write ------------------------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir()
    data_keys = [k for k in features if features[k]["dtype"] != "video"]

    def table(rows_from: int, rows_to: int) -> pa.Table:
        arrays, fields = [], []
        for key in data_keys:
            v = np.concatenate(cols[key])[rows_from:rows_to]
            f = features[key]
            if f["shape"] == [1]:
                arr = pa.array(v[:, 0])
            else:
                arr = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), f["shape"][0])
            arrays.append(arr)
            fields.append(key)
        return pa.Table.from_arrays(arrays, names=fields)

    video_stats: dict[str, dict[str, Any]] = {}
    if version == "3.0":
        p = out / "data" / "chunk-000" / "file-000.parquet"
        p.parent.mkdir(parents=True)
        pq.write_table(table(0, total), p)
        video_spans: dict[str, list[tuple[float, float]]] = {}
        for c in cam_names:
            vp = out / "videos" / f"observation.images.{c}" / "chunk-000" / "file-000.mp4"
            vp.parent.mkdir(parents=True)
            spans, stats_frames = _encode_video(vp, [e.cameras[c] for e in episodes], fps, video_shapes[c])
            video_spans[c] = spans
            video_stats[c] = stats_frames
            say(f"video {c}: {vp.stat().st_size / 1e6:.1f} MB")
        _write_v3_meta(out, ep_rows, tasks, cam_names, video_spans, video_stats)
    else:
        for row in ep_rows:
            k = row["episode_index"]
            p = out / "data" / f"chunk-{k // CHUNKS_SIZE:03d}" / f"episode_{k:06d}.parquet"
            p.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table(row["from"], row["to"]), p)
        for c in cam_names:
            for row, e in zip(ep_rows, episodes):
                k = row["episode_index"]
                vp = out / "videos" / f"chunk-{k // CHUNKS_SIZE:03d}" / f"observation.images.{c}" / f"episode_{k:06d}.mp4"
                vp.parent.mkdir(parents=True, exist_ok=True)
                _, st = _encode_video(vp, [e.cameras[c]], fps, video_shapes[c])
                row["stats"][f"observation.images.{c}"] = st["per_episode"][0]
                video_stats.setdefault(c, {"all": []})["all"].extend(st["all"])
        _write_v21_meta(out, ep_rows, tasks)
    # stats.json over the whole dataset (both versions: v2.1 readers that look for it find it)
    stats = {key: _stats(np.concatenate(cols[key]), True) for key in data_keys}
    for c in cam_names:
        stats[f"observation.images.{c}"] = _image_stats(np.stack(video_stats[c]["all"]), True)
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    info: dict[str, Any] = {"codebase_version": f"v{version}", "robot_type": meta.get("robot", ""),
                            "total_episodes": len(episodes), "total_frames": total, "total_tasks": len(tasks)}
    if version == "2.1":
        info.update(total_videos=len(episodes) * len(cam_names), total_chunks=math.ceil(len(episodes) / CHUNKS_SIZE))
    info["chunks_size"] = CHUNKS_SIZE
    if version == "3.0":
        info.update(data_files_size_in_mb=DATA_MB, video_files_size_in_mb=VIDEO_MB)
    info.update(fps=fps, splits={"train": f"0:{len(episodes)}"})
    if version == "3.0":
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        info["video_path"] = ("videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
                              if cam_names else None)
    else:
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        info["video_path"] = ("videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
                              if cam_names else None)
    info["features"] = features
    info["vertebra"] = {"runs": [r.id for r in runs], "safety_modes": SAFETY_MODES, "redacted": sorted(redact),
                        "episodes": [row["vertebra"] for row in ep_rows], "joints": names}
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return {"out": str(out), "version": version, "fps": fps, "episodes": len(episodes), "frames": total,
            "tasks": list(tasks), "cameras": cam_names, "runs": [r.id for r in runs]}


def _feet(robot: str) -> list[str]:
    """The robot's feet (its config's foot frames), else one name per slot of the record."""
    try:
        from vertebra.runtime.config import RobotConfig

        return list(RobotConfig.load(robot).foot_frames)
    except Exception:  # noqa: BLE001 - a robot config not in configs/robots
        return [f"foot{k}" for k in range(4)]


def _encode_video(path: Path, episodes: list[list[Any]], fps: int, shape: tuple[int, int]) -> tuple[list, dict]:
    """The episodes' frames back to back in one H.264 file at a constant `fps`; the (from, to) time of
    each episode in it and the frames for the stats (a sample, as LeRobot takes one)."""
    import av

    h, w = shape
    if h % 2 or w % 2:
        raise ExportError(f"{path.name}: H.264 in yuv420p needs an even frame size, found {w}x{h}")
    spans, sample, per_ep = [], [], []
    with av.open(str(path), "w") as box:
        st = box.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"g": "2", "crf": "18", "preset": "veryfast"}
        k = 0
        for frames in episodes:
            t0 = k / fps
            decoded = [_decode(f) for f in frames]
            step = max(1, len(decoded) // 100)
            per_ep.append(_image_stats(np.stack(decoded[::step]), True))
            sample.extend(decoded[::step])
            for img in decoded:
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = k
                for pkt in st.encode(vf):
                    box.mux(pkt)
                k += 1
            spans.append((t0, k / fps))
        for pkt in st.encode():
            box.mux(pkt)
    return spans, {"all": sample, "per_episode": per_ep}


def _pandas_index_metadata() -> bytes:
    """pandas' schema metadata that makes the string column the index (the pandas/pyarrow convention
    LeRobot's pd.read_parquet of meta/tasks.parquet relies on: the task string is the index)."""
    return json.dumps({
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}).encode()


def _write_v3_meta(out: Path, ep_rows: list[dict[str, Any]], tasks: dict[str, int], cams: list[str],
                   spans: dict[str, list[tuple[float, float]]], vstats: dict[str, dict[str, Any]]) -> None:
    names = sorted(tasks, key=lambda t: tasks[t])
    t = pa.Table.from_arrays([pa.array([tasks[x] for x in names], pa.int64()), pa.array(names, pa.large_string())],
                             names=["task_index", "__index_level_0__"])
    t = t.replace_schema_metadata({b"pandas": _pandas_index_metadata()})
    pq.write_table(t, out / "meta" / "tasks.parquet")
    cols: dict[str, list[Any]] = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [],
                                  "data/file_index": [], "dataset_from_index": [], "dataset_to_index": []}
    for c in cams:
        for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            cols[f"videos/observation.images.{c}/{k}"] = []
    stat_keys = [(f, s) for f, st in ep_rows[0]["stats"].items() for s in st]
    for c in cams:
        for s in vstats[c]["per_episode"][0]:
            stat_keys.append((f"observation.images.{c}", s))
    for f, s in stat_keys:
        cols[f"stats/{f}/{s}"] = []
    cols["meta/episodes/chunk_index"], cols["meta/episodes/file_index"] = [], []
    for i, row in enumerate(ep_rows):
        cols["episode_index"].append(row["episode_index"])
        cols["tasks"].append(row["tasks"])
        cols["length"].append(row["length"])
        cols["data/chunk_index"].append(0)
        cols["data/file_index"].append(0)
        cols["dataset_from_index"].append(row["from"])
        cols["dataset_to_index"].append(row["to"])
        for c in cams:
            a, b = spans[c][i]
            cols[f"videos/observation.images.{c}/chunk_index"].append(0)
            cols[f"videos/observation.images.{c}/file_index"].append(0)
            cols[f"videos/observation.images.{c}/from_timestamp"].append(a)
            cols[f"videos/observation.images.{c}/to_timestamp"].append(b)
        for f, s in stat_keys:
            src = vstats[f.split(".", 2)[2]]["per_episode"][i] if f.startswith("observation.images.") else row["stats"][f]
            cols[f"stats/{f}/{s}"].append(src[s])
        cols["meta/episodes/chunk_index"].append(0)
        cols["meta/episodes/file_index"].append(0)
    p = out / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    p.parent.mkdir(parents=True)
    pq.write_table(pa.table(cols), p)


def _write_v21_meta(out: Path, ep_rows: list[dict[str, Any]], tasks: dict[str, int]) -> None:
    with open(out / "meta" / "tasks.jsonl", "w") as f:
        for task, k in sorted(tasks.items(), key=lambda kv: kv[1]):
            f.write(json.dumps({"task_index": k, "task": task}) + "\n")
    with open(out / "meta" / "episodes.jsonl", "w") as f:
        for row in ep_rows:
            f.write(json.dumps({"episode_index": row["episode_index"], "tasks": row["tasks"], "length": row["length"]}) + "\n")
    with open(out / "meta" / "episodes_stats.jsonl", "w") as f:
        for row in ep_rows:
            f.write(json.dumps({"episode_index": row["episode_index"], "stats": row["stats"]}) + "\n")

"""`vertebra data list|plot`, recording from `vertebra sim` and `vertebra eval`, and a recording that
survives a real SIGKILL of the runtime (at most a second lost, the file readable, the episode listed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vertebra.tools.data import reader

REPO = Path(__file__).resolve().parents[2]
VERTEBRA = [sys.executable, "-m", "vertebra.runtime.cli"]

CHILD = """
import sys, time
from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime
rt = SimRuntime("go2", lockstep=False, record=RecordOptions.from_dict({"dir": sys.argv[1]}))
rt.recorder.episode_start("hang in the hoist", policy="none")
while True:
    print(f"{rt.time_s():.4f}", flush=True)
    time.sleep(0.01)
"""


def vertebra(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*VERTEBRA, *args], capture_output=True, text=True, timeout=300, **kw)


def test_sigkill_loses_at_most_a_second_and_the_run_stays_readable(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    last = 0.0
    try:
        assert p.stdout is not None
        for line in p.stdout:
            last = float(line)
            if last >= 2.5:  # robot time (real time: as much wall time)
                break
        p.send_signal(signal.SIGKILL)  # at once after the robot time it last said
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert last >= 2.5, "the child did not run"
    (run_dir,) = reader.run_dirs(tmp_path)
    run = reader.load_run(run_dir)
    assert run.truncated  # no footer: the writer never finished
    lost_s = last - run.end_s
    print(f"SIGKILL at robot time {last:.3f} s: last recorded tick at {run.end_s:.3f} s, {lost_s:.3f} s lost")
    assert lost_s <= 1.0, f"{lost_s:.3f} s of data lost"
    assert run.ticks >= 0.5 * 500 * run.end_s  # the rest is there
    (ep,) = run.episodes
    assert ep.instruction == "hang in the hoist" and ep.outcome == "aborted" and "killed" in ep.reason
    out = vertebra("data", "list", str(tmp_path))
    assert out.returncode == 0 and "TRUNCATED" in out.stdout and "hang in the hoist" in out.stdout, out.stdout + out.stderr


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    out = vertebra("sim", "--robot", "go2", "--lockstep", "--duration", "0.5", "--record", str(d), "--json")
    assert out.returncode == 0, out.stderr
    return d, json.loads(out.stdout)


def test_vertebra_sim_records_its_run(sim_run):
    d, rep = sim_run
    assert rep["recording"]["lost"] == 0 and rep["recording"]["records"] > 0
    (run_dir,) = reader.run_dirs(d)
    assert str(run_dir) == rep["recording"]["dir"]
    run = reader.load_run(run_dir)
    assert run.ticks == rep["recording"]["records"] and not run.truncated
    assert run.metadata["robot"] == "go2" and run.metadata["software.vertebra"]


def test_data_list_json(sim_run):
    d, rep = sim_run
    out = vertebra("data", "list", str(d), "--json")
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert len(runs) == 1 and runs[0]["ticks"] == rep["recording"]["records"] and runs[0]["lost"] == 0


def test_data_plot_draws_the_joints_asked_for(sim_run, tmp_path):
    d, _ = sim_run
    (run_dir,) = reader.run_dirs(d)
    png = tmp_path / "fig.png"
    out = vertebra("data", "plot", str(run_dir), "--joints", "^FR_", "--out", str(png), "--json")
    assert out.returncode == 0, out.stderr
    drawn = json.loads(out.stdout)
    assert drawn["joints"] == ["FR_hip_joint", "FR_thigh_joint", "FR_calf_joint"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    bad = vertebra("data", "plot", str(run_dir), "--joints", "elbow", "--out", str(png))
    assert bad.returncode == 2 and "matches no joint" in bad.stderr and "FR_hip_joint" in bad.stderr


def test_data_commands_say_what_is_wrong(tmp_path):
    out = vertebra("data", "list", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = vertebra("data", "plot", "no-such-run", "--out", str(tmp_path / "x.png"))
    assert out.returncode == 2 and "no run" in out.stderr
    help_ = vertebra("data", "--help")
    assert help_.returncode == 0 and "list" in help_.stdout and "plot" in help_.stdout


def test_vertebra_eval_records_each_episode_with_its_outcome(tmp_path):
    out = vertebra("eval", "--policy", str(REPO / "policies" / "packages" / "go2_pose"), "--robot", "go2",
                   "--episodes", "2", "--record", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    (run_dir,) = reader.run_dirs(tmp_path)
    run = reader.load_run(run_dir)
    assert [e.outcome for e in run.episodes] == ["success" if r["success"] else "failure" for r in res["results"]]
    assert all(e.policy == "go2_pose" and e.task == "body_pose" for e in run.episodes)
    assert run.metadata["sha256.policy_model"] and run.lost == 0
    assert res["recording"]["episodes"] == 2


def test_no_record_records_nothing(tmp_path):
    env = {**os.environ, "VERTEBRA_DATA_DIR": str(tmp_path)}
    out = vertebra("sim", "--robot", "go2", "--lockstep", "--duration", "0.2", "--no-record", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert "recording" not in json.loads(out.stdout) and not any(tmp_path.iterdir())


def test_an_eval_of_the_shipped_vla_records_its_episodes_and_what_the_policy_saw(tmp_path):
    out = vertebra("eval", "--policy", str(REPO / "policies" / "packages" / "g1_vla"), "--robot", "g1",
                   "--episodes", "2", "--record", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    (run_dir,) = reader.run_dirs(tmp_path)
    run = reader.load_run(run_dir)
    assert [e.instruction for e in run.episodes] == [r["instruction"] for r in res["results"]]
    assert [e.outcome for e in run.episodes] == ["success" if r["success"] else "failure" for r in res["results"]]
    assert all(e.policy == "g1_vla" and e.task == r["task"] for e, r in zip(run.episodes, res["results"]))
    frames = [m for s in reader.segments_of(run_dir) for m in s.scan({"/camera/head"})]
    ticks = reader.load_ticks(run_dir)
    assert len(frames) >= 2 * 10 * 3  # a frame per policy step (10 Hz), for each episode's seconds
    assert ticks["action_dim"].max() == 6  # the policy's hand targets, recorded with every tick they drove
    assert run.metadata["action_names"].count(",") == 5

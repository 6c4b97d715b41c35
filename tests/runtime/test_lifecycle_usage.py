"""Lifecycle records (runtime/lifecycle.py) and usage metering (runtime/usage.py), written by the
recorder at every run: `vertebra lifecycle` and `vertebra usage` count what the recordings hold."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vertebra.runtime import usage
from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.tools.data import reader

VERTEBRA = [sys.executable, "-m", "vertebra.runtime.cli"]


def vertebra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*VERTEBRA, *args], capture_output=True, text=True, timeout=120)


def one_run(folder, serial: str = "GO2-LIFE") -> SimRuntime:
    """A Go2 run: two episodes (one success with an intervention and two hot-motor faults, one failure)."""
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(folder)}),
                    record_metadata={"serial": serial}, fault_injection=True)
    try:
        rt.stand_up(hold_s=0.3)
        rec = rt.recorder
        rec.episode_start("hold still", task="hold", policy="none")
        rt.wait(0.2)
        rt.injector.set_motor_temp(0, 75.0)  # over the warning threshold: fault temperature_warn on FR_hip
        rt.wait(0.1)
        rt.injector.clear()
        rt.wait(0.4)  # below it again (hysteresis): cleared
        rec.intervention_start("teleop")
        rt.wait(0.2)
        rec.intervention_end()
        rt.injector.set_motor_temp(3, 75.0)  # and on FL_hip
        rt.wait(0.1)
        rt.injector.clear()
        rt.wait(0.4)
        rec.episode_end("success")
        rec.episode_start("hold still", task="hold", policy="none")
        rt.wait(0.2)
        rec.episode_end("failure", "the test says so")
        rt.wait(0.1)
    finally:
        rt.close()
    return rt


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rt = one_run(d)
    return d, rt


def test_lifecycle_counts_what_the_recording_holds(runs):
    d, rt = runs
    out = vertebra("lifecycle", "--dir", str(d), "--json")
    assert out.returncode == 0, out.stderr
    (robot,) = json.loads(out.stdout)["robots"]
    run = reader.load_run(rt.recorder.run_dir)
    ticks = reader.load_ticks(rt.recorder.run_dir)
    rb = robot["robot"]
    assert rb["robot_key"] == "GO2-LIFE" and rb["runs"] == 1
    assert rb["faults"] == len(run.faults) and rb["falls"] == 0
    assert rb["powered_h"] * 3600 == pytest.approx(len(ticks) / 500.0, rel=1e-9)
    assert 0 < rb["armed_h"] <= rb["powered_h"]
    joints = {j["joint"]: j for j in robot["joints"]}
    assert joints["FR_hip_joint"]["faults"] == 1 and joints["FL_hip_joint"]["faults"] == 1
    assert joints["FR_thigh_joint"]["faults"] == sum(f.get("joint_name") == "FR_thigh_joint" for f in run.faults)
    q = ticks["q"][:, :12].astype(np.float64)
    travel = np.abs(np.diff(q, axis=0)).sum(axis=0)
    tau = np.abs(ticks["tau"][:, :12].astype(np.float64))
    names = list(rt.cfg.joint_names)
    for i, n in enumerate(names):
        assert joints[n]["travel_rad"] == pytest.approx(travel[i], rel=1e-6, abs=1e-9)
        assert joints[n]["torque_integral_nms"] == pytest.approx(tau[:, i].sum() / 500.0, rel=1e-6)
        assert joints[n]["peak_torque_nm"] == pytest.approx(tau[:, i].max(), rel=1e-6)
    hot = joints["FR_hip_joint"]
    assert hot["peak_temp_c"] == pytest.approx(75.0) and hot["temp_h"]["70-80"] > 0
    assert all(j["interval"] is not None and 0 < j["share"] < 1 and not j["due"] for j in robot["joints"])
    text = vertebra("lifecycle", "--dir", str(d))
    assert text.returncode == 0 and "GO2-LIFE" in text.stdout and "due: nothing" in text.stdout


def test_usage_counts_the_runs_episodes_interventions_and_faults(runs):
    d, rt = runs
    run = reader.load_run(rt.recorder.run_dir)
    out = vertebra("usage", "--dir", str(d), "--json")
    assert out.returncode == 0, out.stderr
    u = json.loads(out.stdout)
    assert not u["problems"]
    (r,) = u["runs"]
    assert r["run"] == run.id and r["complete"] and r["serial"] == "GO2-LIFE"
    assert r["episodes"] == 2 and r["successes"] == 1 and r["interventions"] == 1
    assert r["tasks"] == {"hold": {"attempted": 2, "succeeded": 1}}
    assert r["fault_count"] == len(run.faults) and r["faults"]["temperature_warn"] == 2
    assert r["powered_s"] == pytest.approx(run.ticks / 500.0)
    (day,) = u["days"]
    assert day["runs"] == 1 and day["interventions"] == 1 and 0 < day["uptime"] <= 1
    csv = vertebra("usage", "--dir", str(d), "--csv")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("run,robot,serial,day,complete")
    assert vertebra("usage", "--dir", str(d), "--since", "soon").returncode == 2


def test_an_edited_usage_line_is_detected(runs, tmp_path):
    d, _ = runs
    lines = (d / usage.FILE).read_text().splitlines()
    edited = json.loads(lines[-1])
    edited["record"]["interventions"] = 0  # someone hides the intervention
    (tmp_path / usage.FILE).write_text("\n".join(lines[:-1] + [json.dumps(edited)]) + "\n")
    out = vertebra("usage", "--dir", str(tmp_path), "--json")
    assert out.returncode == 1 and f"line {len(lines)}" in out.stderr and "edited" in out.stderr
    good = tmp_path / "good"
    good.mkdir()
    (good / usage.FILE).write_text("\n".join(lines) + "\n")
    usage.append(good, {"type": "run", "run": "another", "started": 1.0e9})
    assert vertebra("usage", "--dir", str(good)).returncode == 0
    chained = (good / usage.FILE).read_text().splitlines()
    (good / usage.FILE).write_text("\n".join(chained[1:]) + "\n")  # the first line removed
    out = vertebra("usage", "--dir", str(good))
    assert out.returncode == 1 and "chain breaks" in out.stderr and "line 1" in out.stderr


def test_runs_add_up_and_a_crashed_run_keeps_its_last_checkpoint(tmp_path):
    one_run(tmp_path)
    one_run(tmp_path)
    usage.append(tmp_path, {"type": "checkpoint", "run": "crashed", "robot": "go2", "serial": "GO2-LIFE",
                            "started": 1.0e9, "powered_s": 10.0, "episodes": 1, "interventions": 0})
    u = json.loads(vertebra("usage", "--dir", str(tmp_path), "--json").stdout)
    assert len(u["runs"]) == 3 and [r["complete"] for r in u["runs"] if r["run"] == "crashed"] == [False]
    assert u["total"]["episodes"] == 5 and u["total"]["interventions"] == 2
    (robot,) = json.loads(vertebra("lifecycle", "--dir", str(tmp_path), "--json").stdout)["robots"]
    assert robot["robot"]["runs"] == 2 and robot["robot"]["episodes"] == 4


def test_the_commands_say_when_there_is_nothing(tmp_path):
    out = vertebra("lifecycle", "--dir", str(tmp_path))
    assert out.returncode == 2 and "no lifecycle records" in out.stderr
    out = vertebra("usage", "--dir", str(tmp_path))
    assert out.returncode == 0 and "no usage recorded" in out.stdout


def test_bench_rig_results_join_the_robots_lifecycle_records(runs, tmp_path):
    """`vertebra hil run` appends its result (LifecycleStore.write_hil): the robot's history, with what
    failed and why, beside its wear; a robot that has only been on the bench is listed too."""
    from vertebra.runtime.lifecycle import LifecycleStore
    from vertebra.tools.hil.results import Case, RunResult

    def bench(serial: str, knee: str, started: str) -> RunResult:
        r = RunResult(rig="bench_a", robot="go2", serial=serial, software={"vertebra": "0.1.0"}, config_hashes={},
                      started=started, duration_s=12.5)
        r.add(Case("bus", "lowstate", "passed", "", measured={"rate_hz": 500.0}))
        r.add(Case("identify", "FR_calf_joint", knee, "friction 3.1x its siblings'", measured={"viscous_nm_s_rad": 0.3}))
        return r

    d, _ = runs
    store = LifecycleStore(d)
    store.write_hil(bench("GO2-LIFE", "failed", "2026-12-01T10:00:00+00:00"))
    store.write_hil(bench("GO2-LIFE", "passed", "2026-12-01T11:00:00+00:00"))  # after the repair
    store.write_hil(bench("GO2-BENCH", "passed", "2026-12-01T12:00:00+00:00"))
    store.close()
    robots = {r["robot"]["robot_key"]: r for r in json.loads(vertebra("lifecycle", "--dir", str(d), "--json").stdout)["robots"]}
    assert set(robots) == {"GO2-LIFE", "GO2-BENCH"}
    first, second = robots["GO2-LIFE"]["hil"]
    assert not first["fit_to_run"] and first["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert first["failed"] == [{"case": "identify/FR_calf_joint", "message": "friction 3.1x its siblings'"}]
    assert second["fit_to_run"] and second["failed"] == [] and robots["GO2-LIFE"]["robot"]["runs"] == 1
    assert robots["GO2-BENCH"]["robot"]["runs"] == 0 and len(robots["GO2-BENCH"]["hil"]) == 1
    text = vertebra("lifecycle", "--dir", str(d)).stdout
    assert "GO2-BENCH (go2): no recorded runs" in text and "bench-rig checks (vertebra hil run): 2" in text
    assert "NOT FIT TO RUN, 1 passed, 1 failed" in text and "identify/FR_calf_joint: friction 3.1x" in text

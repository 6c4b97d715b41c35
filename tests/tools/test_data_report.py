"""`vertebra report`: the verification figures over recorded runs match what the runs hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.tools.data import reader

VERTEBRA = [sys.executable, "-m", "vertebra.runtime.cli"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A Go2: a successful 'hold' episode (time to success 0.25 s) with an intervention, a failed 'hold',
    a successful 'lean'; then an overheating motor that stops the robot (a stopping fault)."""
    d = tmp_path_factory.mktemp("rep")
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(d)}), fault_injection=True)
    try:
        rt.stand_up(hold_s=0.3)
        rec = rt.recorder
        rec.episode_start("hold still", task="hold")
        rt.wait(0.2)
        rec.intervention_start("teleop")
        rt.wait(0.2)
        rec.intervention_end()
        rec.episode_end("success", time_to_success_s=0.25)
        rec.episode_start("hold still", task="hold")
        rt.wait(0.3)
        rec.episode_end("failure", "too slow")
        rec.episode_start("lean left", task="lean")
        rt.wait(0.3)
        rec.episode_end("success")
        rt.injector.set_motor_temp(2, 95.0)  # above temp_stop: the supervisor stops the robot
        rt.wait(1.0)
    finally:
        rt.close()
    return rt.recorder.run_dir


def test_the_figures_match_the_run(run_dir, tmp_path):
    out = subprocess.run([*VERTEBRA, "report", str(run_dir), "--html", str(tmp_path / "r.html"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    run = reader.load_run(run_dir)
    ticks = reader.load_ticks(run_dir)
    tasks = {t["task"]: t for t in rep["tasks"]}
    assert (tasks["hold"]["attempted"], tasks["hold"]["succeeded"], tasks["lean"]["succeeded"]) == (2, 1, 1)
    assert tasks["hold"]["success_rate"] == 0.5 and tasks["hold"]["mean_time_to_success_s"] == pytest.approx(0.25)
    lean = next(e for e in run.episodes if e.task == "lean")
    assert tasks["lean"]["mean_time_to_success_s"] == pytest.approx(lean.end_s - lean.start_s)
    powered_h = len(ticks) / 500 / 3600
    episode_h = sum(e.end_s - e.start_s for e in run.episodes) / 3600
    assert rep["powered_h"] == pytest.approx(powered_h) and rep["episode_h"] == pytest.approx(episode_h)
    assert rep["interventions"] == 1 and rep["interventions_per_hour"] == pytest.approx(1 / episode_h)
    assert rep["faults"] == len(run.faults) and rep["faults_per_hour"] == pytest.approx(len(run.faults) / powered_h)
    stopping = [f for f in run.faults if f.get("response") not in ("warn", "none")]
    assert stopping and rep["mtbf_h"] == pytest.approx(powered_h / len(stopping))
    modes = [m for m in ("STOPPING", "FAULT", "ESTOP")]
    names = __import__("vertebra")._rt.safety_mode_names()
    down = np.isin(ticks["safety_mode"], [names.index(m) for m in modes]).sum()
    assert 0 < down and rep["uptime"] == pytest.approx(1 - down / len(ticks))
    page = (tmp_path / "r.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)) == 2
    assert "<td>hold</td>" in page and "50.0%" in page


def test_report_says_what_is_wrong(tmp_path):
    out = subprocess.run([*VERTEBRA, "report", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no recorded run" in out.stderr

import json
import subprocess
import sys

import pytest
from vertebra.runtime.cli import main


def _commands() -> list[list[str]]:
    """Every command and subcommand of the parser (a help text with a stray % only breaks when
    printed, so each one is printed)."""
    import argparse

    from vertebra.runtime.cli import build_parser

    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        out.append(path)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])

    walk(build_parser(), [])
    return out


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a) or "vertebra")
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: vertebra" in out and len(out) > 100


def test_bad_arguments_are_refused_with_a_message(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sim", "--robot", "atlas"])
    assert e.value.code == 2
    assert "invalid choice: 'atlas'" in capsys.readouterr().err
    assert main(["sim", "--robot", "go2", "--duration", "-1"]) == 2


def test_bench_loop_prints_both_loops_and_their_ratios():
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "loop", "--rate", "500",
                        "--seconds", "0.5", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for side in ("cpp", "python_sleep"):
        lat = out[side]["lateness_us"]
        assert lat["count"] >= 200
        assert lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert set(out["ratios"]) == {"p50_python_over_cpp", "p99_python_over_cpp", "p999_python_over_cpp",
                                  "max_python_over_cpp"}
    assert "sched_fifo" in out["cpp"]["os"]


def test_config_check(capsys):
    assert main(["config", "check", "go2"]) == 0
    assert "12 joints" in capsys.readouterr().out


def test_bench_wbc_reports_both_implementations_on_the_same_states():
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "wbc", "--robot", "go2", "--ticks", "300",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["qp"] == {"variables": 30, "equalities": 18, "inequalities": 28, "box_bounds": 30,
                         # base (6) and contact (12) rows eliminated; the legs' bounds become rows
                         "solver_sees": {"variables": 12, "equalities": 0, "inequalities": 28 + 12, "box_bounds": 12}}
    assert out["cpp_solves_on_fast_path"] == 300
    for side in ("cpp_us", "cpp_called_from_python_us", "python_us"):
        assert out[side]["p50"] <= out[side]["p99"] <= out[side]["max"]
    assert out["solve_failures"]["cpp"] == 0
    assert out["same_solution_max_ddq_diff"] < 1e-2  # both solve the same problem


def test_bench_wbc_python_reference_is_the_g1_controller_too():
    """The G1's controller scales its arms' posture weight and aims its hands (wbc.hand_posture_scale,
    wbc.hand_aim): the Python reference QP solves that problem too, on moving hand targets."""
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "wbc", "--robot", "g1", "--ticks", "300",
                        "--python-ticks", "100", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["solve_failures"]["cpp"] == 0
    assert out["same_solution_max_ddq_diff"] < 1e-2


def test_view_needs_a_display_and_opens_the_viewer_on_one(tmp_path):
    import os
    import shutil

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "sim", "--robot", "go2", "--lockstep", "--view",
                        "--duration", "0.5"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "--view needs a display" in r.stderr
    assert shutil.which("xvfb-run"), "xvfb-run is installed by scripts/setup.sh"
    r = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "vertebra.runtime.cli", "sim", "--robot", "go2",
                        "--lockstep", "--view", "--duration", "0.5"], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "go2: mode=hold" in r.stdout


def test_bench_loop_with_the_recorder_reports_the_record_steps_cost():
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "loop", "--rate", "500",
                        "--seconds", "0.5", "--recorder", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)["recorder"]
    assert rec["records_lost"] == 0 and 0 < rec["record_cost_us"]["mean"] <= rec["record_cost_us"]["max"]
    assert set(rec["compute_us_with"]) == set(rec["compute_us_without"]) == {"p50", "p99", "max"}

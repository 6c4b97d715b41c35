"""Acceptance: in lockstep, G1 and Go2 go through the deployment procedure and hold 10 s standing."""

import json

import pytest
from vertebra.runtime.cli import main


def assert_stood(out):
    """The deployment procedure ran its phases and the robot then stood on its own for the whole
    10 s hold: height within 5 cm of the model's standing height (pinocchio, default pose, feet on
    the ground), tilt under 5 degrees, no fault, no overrun."""
    assert [p["phase"] for p in out["phases"]] == [
        "hanging limp in the hoist (zero torque)", "interpolate to the default pose", "hold", "lower the hoist",
        "release the hoist", "hold standing for 10 s"]
    hold = out["phases"][-1]
    assert hold["end_s"] - hold["start_s"] == pytest.approx(10.0, abs=0.01)
    assert out["hoist_engaged"] is False
    lo, hi = out["hold_base_height_range_m"]
    assert abs(lo - out["standing_height_m"]) < 0.05 and abs(hi - out["standing_height_m"]) < 0.05
    assert abs(out["base_height_m"] - out["standing_height_m"]) < 0.05
    assert out["max_tilt_deg"] < 5.0
    assert out["faults"] == [] and out["mode"] == "hold"
    assert out["loop"]["overruns"] == 0


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_robot_stands_through_the_deployment_procedure(robot, capsys):
    rc = main(["sim", "--robot", robot, "--lockstep", "--duration", "10", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["robot"] == robot
    assert_stood(out)
    loop = out["loop"]
    assert loop["rate_hz"] == 500
    assert set(loop["lateness_us"]) == {"p50", "p99", "p999", "max"}
    assert loop["ticks"] == pytest.approx(out["sim_time_s"] * 500, abs=2)

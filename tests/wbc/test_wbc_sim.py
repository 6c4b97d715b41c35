"""Acceptance in lockstep simulation: pushes, hand reaching, centre-of-mass shifts, base pose."""

import json

import pytest

from vertebra.runtime.cli import main


def run(capsys, robot, scenario, *extra):
    rc = main(["sim", "--robot", robot, "--lockstep", "--controller", "wbc", "--scenario", scenario, "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    assert out["controller"] == "wbc" and out["scenario"] == scenario
    assert out["fell"] is False and out["faults"] == [] and out["mode"] == "wbc", out
    assert out["solver"]["failures"] == 0
    assert rc == 0
    return out


def test_g1_survives_30N_pushes_from_every_direction_without_stepping(capsys):
    out = run(capsys, "g1", "push", "--push-n", "30")
    assert out["survived_all"] and len(out["pushes"]) == 8
    assert {round(p["direction_deg"]) for p in out["pushes"]} == {0, 45, 90, 135, 180, 225, 270, 315}
    feet = out["contact_forces"]
    assert all(f["fz_min_n"] >= 10.0 - 1e-6 for f in feet.values())  # both feet stay loaded: no step


def test_g1_hands_reach_their_targets(capsys):
    out = run(capsys, "g1", "reach")
    assert len(out["reach"]) == 4
    assert out["max_hand_pos_err_m"] < 0.02
    assert out["max_hand_rot_err_deg"] < 5.0


def test_g1_tracks_lateral_centre_of_mass_shifts(capsys):
    out = run(capsys, "g1", "pose")
    assert [p["com_shift_y_m"] for p in out["pose"]] == [0.05, -0.05, 0.0]
    assert out["max_com_err_m"] < 0.01


def test_go2_tracks_base_pose_with_four_feet_planted(capsys):
    out = run(capsys, "go2", "pose")
    assert len(out["pose"]) == 9
    assert out["max_base_rot_err_deg"] < 1.0
    assert out["max_base_height_err_m"] < 0.01
    assert all(f["fz_min_n"] > 0 for f in out["contact_forces"].values())


def test_go2_survives_pushes(capsys):
    out = run(capsys, "go2", "push", "--push-n", "30")
    assert out["survived_all"]


def test_scenario_needs_the_wbc_controller(capsys):
    assert main(["sim", "--robot", "g1", "--lockstep", "--scenario", "push"]) == 2

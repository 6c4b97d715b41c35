"""Acceptance in lockstep simulation: pushes, hand reaching, centre-of-mass shifts, base pose, with the
same thresholds on three bases: the simulator's truth, the state estimator (``--estimator``), and the
robot's own DDS driver against a sim bridge in another process (``--driver unitree_dds``: no truth at
all, as on hardware)."""

import itertools
import json
import os

import pytest
from vertebra.runtime.cli import main

_domains = itertools.count(0)
BASES = ["truth", "estimate", "dds"]


def base_flags(base):
    if base == "estimate":
        return ["--estimator"]
    if base == "dds":  # a DDS domain of its own per run (and per concurrent test run)
        return ["--driver", "unitree_dds", "--domain", str(100 + (os.getpid() * 7 + next(_domains) + 60) % 120)]
    return []


def run(capsys, robot, scenario, *extra, base="truth"):
    rc = main(["sim", "--robot", robot, "--lockstep", "--controller", "wbc", "--scenario", scenario, "--json", *extra,
               *base_flags(base)])
    out = json.loads(capsys.readouterr().out)
    assert out["controller"] == "wbc" and out["scenario"] == scenario
    assert out["fell"] is False and out["faults"] == [] and out["mode"] == "wbc", out
    assert out["solver"]["failures"] == 0
    assert rc == 0
    assert out["base"] == ("truth" if base == "truth" else "estimate"), out["base"]
    if base != "truth":  # the estimate the controller ran on, against the simulator's truth
        est = out["estimator"]
        assert est["samples"] > 100
        assert est["vel_rmse_m_s"] < 0.05, est
        assert est["height_err_max_m"] < 0.01, est
    return out


@pytest.mark.parametrize("base", BASES)
def test_g1_survives_30N_pushes_from_every_direction_without_stepping(capsys, base):
    out = run(capsys, "g1", "push", "--push-n", "30", base=base)
    assert out["survived_all"] and len(out["pushes"]) == 8
    assert {round(p["direction_deg"]) for p in out["pushes"]} == {0, 45, 90, 135, 180, 225, 270, 315}
    feet = out["contact_forces"]
    assert all(f["fz_min_n"] >= 10.0 - 1e-6 for f in feet.values())  # both feet stay loaded: no step


@pytest.mark.parametrize("base", BASES)
def test_g1_hands_reach_their_targets(capsys, base):
    out = run(capsys, "g1", "reach", base=base)
    assert len(out["reach"]) == 4
    assert out["max_hand_pos_err_m"] < 0.02
    assert out["max_hand_rot_err_deg"] < 5.0


@pytest.mark.parametrize("base", BASES)
def test_g1_tracks_lateral_centre_of_mass_shifts(capsys, base):
    out = run(capsys, "g1", "pose", base=base)
    assert [p["com_shift_y_m"] for p in out["pose"]] == [0.05, -0.05, 0.0]
    assert out["max_com_err_m"] < 0.01


@pytest.mark.parametrize("base", BASES)
def test_go2_tracks_base_pose_with_four_feet_planted(capsys, base):
    out = run(capsys, "go2", "pose", base=base)
    assert len(out["pose"]) == 9
    assert out["max_base_rot_err_deg"] < 1.0
    assert out["max_base_height_err_m"] < 0.01
    assert all(f["fz_min_n"] > 0 for f in out["contact_forces"].values())


@pytest.mark.parametrize("base", BASES)
def test_go2_survives_pushes(capsys, base):
    out = run(capsys, "go2", "push", "--push-n", "30", base=base)
    assert out["survived_all"]


def test_scenario_needs_the_wbc_controller(capsys):
    assert main(["sim", "--robot", "g1", "--lockstep", "--scenario", "push"]) == 2


def test_g1_releases_a_foot_with_a_force_ramp_lifts_it_and_steps_back_down():
    import numpy as np
    from vertebra.runtime.numerics import tilt_deg
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="wbc")
    rt.stand_up(hold_s=0.5)
    rt.engage_wbc()
    rt.wait(0.3)

    def frame_z(name):
        s = rt.loop.snapshot()["state"]
        q = rt.model.full_configuration(s["base_pos"], s["base_quat"], s["q"])
        return np.asarray(rt.model.frame_translation(q, name))

    left, right = frame_z("left_ankle_roll_link"), frame_z("right_ankle_roll_link")
    com0 = np.array(rt.wb.status()["com"])
    rt.wb.set_target("com", [com0[0] + 0.03, left[1] - 0.01, com0[2]])  # over the left foot
    rt.wait(2.0)
    rt.wb.set_contact("right_ankle_roll_link", False)
    # the swing target goes out with the release, while the force is still ramping out
    lifted = right + np.array([0.035, 0.0, -0.035 + 0.05])  # sole 5 cm up
    rt.wb.set_target("right_ankle_roll_link", (lifted, [1.0, 0.0, 0.0, 0.0]))
    fz = []
    for _ in range(70):
        rt.loop.run_ticks(1)
        fz.append(rt.wb.status()["contact_wrench"][1][2])
    fz = np.array(fz)
    assert fz[0] > 30.0 and abs(fz[-1]) < 1e-3  # loaded at release, unloaded at the end
    assert np.all(np.diff(fz) <= 1e-6)  # monotonic ramp ...
    assert np.max(-np.diff(fz)) < 0.1 * fz[0]  # ... with no jump: ramp_s = 0.1 s = 50 ticks
    rt.wait(2.0)
    assert frame_z("right_ankle_roll_link")[2] - right[2] > 0.04  # standing on one leg, foot up
    assert tilt_deg(rt.loop.snapshot()["state"]["base_quat"]) < 5.0
    rt.wb.set_target("right_ankle_roll_link", (right + np.array([0.035, 0.0, -0.035 + 0.002]), [1.0, 0.0, 0.0, 0.0]))
    rt.wait(1.5)
    rt.wb.set_contact("right_ankle_roll_link", True)
    rt.wait(0.5)
    rt.wb.set_target("com", com0)
    rt.wait(2.0)
    st = rt.wb.status()
    assert rt.loop.snapshot()["faults"] == [] and st["failures"] == 0
    weight = 33.34 * 9.81
    assert all(abs(w[2] - weight / 2) < 0.1 * weight for w in st["contact_wrench"])  # back on two feet


def test_hand_targets_out_of_reach_never_tip_the_g1():
    # The cost is weighted: without the balance guard, both hands pulled 0.8 m forward (or one hand
    # 0.5 m) walked the capture point off the soles and the G1 fell. With it the robot leans as far
    # as its feet allow and stays there.
    import numpy as np
    from vertebra.runtime.numerics import rotation_to_quat, tilt_deg
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="wbc")
    rt.stand_up(hold_s=0.3)
    rt.engage_wbc()
    rt.wait(0.2)
    hands = list(rt.cfg.hand_frames)
    s = rt.loop.snapshot()["state"]
    q = rt.model.full_configuration(s["base_pos"], s["base_quat"], s["q"])
    home = {h: np.asarray(rt.model.frame_translation(q, h)) for h in hands}
    quat = {h: rotation_to_quat(np.asarray(rt.model.frame_rotation(q, h))) for h in hands}
    guard = []
    for targets in ({hands[0]: [2.0, 0.05, 0.85]}, {h: [0.8, 0.0, 0.85] for h in hands},
                    {h: [-0.6, 0.0, 0.9] for h in hands}, {h: [0.3, 0.0, 0.1] for h in hands}):
        for h, x in targets.items():
            rt.wb.set_target(h, (x, quat[h]))
        for _ in range(30):
            rt.wait(0.05)
            guard.append(rt.wb.status()["balance_guard"])
        snap = rt.loop.snapshot()
        assert snap["faults"] == [] and tilt_deg(snap["state"]["base_quat"]) < 20.0, (targets, snap["faults"])
        for h in hands:
            rt.wb.set_target(h, (home[h], quat[h]))
        rt.wait(1.0)
    st = rt.wb.status()
    assert st["failures"] == 0 and rt.loop.snapshot()["faults"] == []
    assert max(guard) > 2.0  # the guard did the work: the centre-of-mass weight went up
    assert st["balance_guard"] < 1.5  # and let go once the hands were back
    rt.close()

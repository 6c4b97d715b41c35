"""Zero heap allocations per tick: the whole-body update, the state estimator and the loop tick, under a
counting allocator."""

import json
import subprocess
from pathlib import Path

import pytest
import vertebra._rt
from vertebra.runtime.config import RobotConfig

SELFTEST = Path(vertebra._rt.__file__).parent / "vertebra_alloc_selftest"


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_tick_path_allocates_nothing(robot):
    assert SELFTEST.exists(), f"{SELFTEST} was not built (scripts/setup.sh builds it)"
    cfg = RobotConfig.load(robot)
    from vertebra import _rt

    rm = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    h = rm.standing_base_height(cfg.column("default_rad"), cfg.foot_frames, cfg.sole_offset_m)
    args = [str(SELFTEST), str(cfg.urdf_path), "--joints", ",".join(cfg.joint_names), "--feet", ",".join(cfg.foot_frames),
            "--base", cfg.base_frame, "--sole", ",".join(map(str, cfg.wbc.sole_offset_m)),
            "--pose", ",".join(map(str, cfg.column("default_rad"))), "--height", str(h), "--imu", cfg.imu_frame]
    if cfg.hand_frames:
        args += ["--hands", ",".join(cfg.hand_frames)]
    if cfg.wbc.hand_aim:
        args += ["--aim", ",".join(cfg.wbc.hand_aim)]
    if cfg.wbc.torso_frame:
        args += ["--torso", cfg.wbc.torso_frame]
    if not cfg.wbc.flat_feet:
        args += ["--point"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["wbc_allocations"] == 0, out
    assert out["wbc_keep_out_rows"] == len(cfg.hand_frames), out  # the keep-out rows were on the counted ticks
    assert out["loop_allocations"] == 0, out
    assert out["failed_updates"] == 0, out
    assert out["estimator_updates"] == 2000 and out["estimator_allocations"] == 0, out
    assert out["estimator_failed_updates"] == 0, out
    if robot == "g1":  # the walk mode (bipeds): walked, re-planned, stopped, allocating nothing
        assert out["walk_allocations"] == 0 and out["walk_failed_updates"] == 0, out
        assert out["walk_steps"] >= 3 and out["walk_replans"] >= 3 and out["walk_phase"] == 0, out
    else:
        assert out["walk_allocations"] == -1, out  # not a biped: not run
    assert r.returncode == 0

"""The MuJoCo driver: motor-board emulation, latency, noise, hoist, cameras, and its errors."""

import math

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.sim_model import build_mjcf
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.sim_runtime import SimRuntime

from tests.conftest import arm


@pytest.fixture(scope="module")
def go2():
    cfg = RobotConfig.load("go2")
    return cfg, str(build_mjcf(cfg))


def make_driver(go2, **kw):
    cfg, path = go2
    o = _rt.SimOptions()
    o.mjcf_path = path
    o.base_pos = [0, 0, 0.6]
    o.initial_joint_q = cfg.column("default_rad")
    for k, v in kw.items():
        setattr(o, k, v)
    d = _rt.MujocoDriver(o)
    d.init(cfg.joint_names, 500.0)
    return cfg, d


def loop_for(cfg, driver):
    from vertebra.runtime.config import robot_params

    lc = _rt.LoopConfig()
    lc.lockstep = True
    return _rt.RtLoop(driver, robot_params(cfg), lc)


def test_reads_joints_in_motor_order_and_imu(go2):
    cfg, d = make_driver(go2)
    s = d.read()
    assert s["status"] == "ok"
    assert np.allclose(s["q"], cfg.column("default_rad"))
    assert np.allclose(s["imu_quat"], [1, 0, 0, 0], atol=1e-9)
    assert s["has_base_truth"] and s["base_pos"][2] == pytest.approx(0.6)
    assert d.steps_per_tick == 4 and d.sim_timestep == pytest.approx(0.0005)
    assert d.total_mass == pytest.approx(16.085, rel=1e-3)  # Go2 URDF mass


def test_motor_board_clamps_torque_to_the_effort_limit(go2):
    cfg, d = make_driver(go2)
    loop = loop_for(cfg, d)
    target = cfg.column("default_rad")
    target[2] = -0.86  # calf (motor 2) far from where it is (inside its soft limit)
    arm(loop)
    loop.request_mode(_rt.Mode.JOINT_PD)
    loop.run_ticks(1)  # targets count from the switch on
    loop.set_targets(target, [0.0] * 12, [120.0] * 12, [0.0] * 12, [0.0] * 12, 1)
    loop.run_ticks(1)  # kp * 0.64 rad = 77 N·m asked
    tau = d.read()["tau"]
    assert tau[2] == pytest.approx(45.43, rel=1e-6)  # Go2 calf effort limit from the URDF
    assert abs(tau[0]) < 45.0  # the others are near their targets


def test_command_latency_delays_the_motor_board(go2):
    cfg, fast = make_driver(go2, hoist_engaged=True, hoist_anchor_z_m=0.6 + 16 * 9.81 / 4000)
    _, slow = make_driver(go2, hoist_engaged=True, hoist_anchor_z_m=0.6 + 16 * 9.81 / 4000, command_latency_s=0.02)
    results = []
    for d in (fast, slow):
        loop = loop_for(cfg, d)
        arm(loop)
        q0 = d.read()["q"][1]
        target = cfg.column("default_rad")
        target[1] += 0.5
        loop.request_mode(_rt.Mode.JOINT_PD)
        loop.run_ticks(1)
        loop.set_targets(target, [0.0] * 12, [80.0] * 12, [2.0] * 12, [0.0] * 12, 1)
        moved_at = None
        for tick in range(40):
            loop.run_ticks(1)
            if moved_at is None and d.read()["q"][1] - q0 > 0.01:
                moved_at = tick
        results.append(moved_at)
    assert results[0] is not None and results[1] is not None
    assert results[1] - results[0] >= 9  # 20 ms at 500 Hz = 10 ticks later (within one tick)


def test_noise_is_off_by_default_and_seeded_when_on(go2):
    _, quiet = make_driver(go2)
    assert np.array_equal(quiet.read()["q"], quiet.read()["q"])
    _, a = make_driver(go2, noise_q_rad=0.01, noise_seed=7)
    _, b = make_driver(go2, noise_q_rad=0.01, noise_seed=7)
    qa, qb = a.read()["q"], b.read()["q"]
    assert np.array_equal(qa, qb)
    assert 0.001 < np.std(qa - np.array(quiet.read()["q"])) < 0.05


def test_hoist_carries_a_limp_robot_and_release_drops_it(go2):
    cfg, d = make_driver(go2, hoist_anchor_z_m=0.6 + 16.085 * 9.81 / 3000, hoist_stiffness_n_m=3000)
    loop = loop_for(cfg, d)
    loop.run_ticks(500)  # 1 s limp in the hoist
    z = d.read()["base_pos"][2]
    assert z == pytest.approx(0.6, abs=0.03)
    assert d.hoist_tension_n == pytest.approx(16.085 * 9.81, rel=0.1)
    d.hoist_release()
    loop.run_ticks(500)
    assert d.read()["base_pos"][2] < 0.25  # limp on the ground
    assert d.hoist_tension_n == 0.0


def test_init_once_and_hoist_inputs_validated(go2):
    cfg, d = make_driver(go2)
    with pytest.raises(RuntimeError, match=r"configure\(\) needs state unconfigured"):
        d.init(cfg.joint_names, 500.0)
    for bad in ((math.nan, 0.1), (math.inf, 0.1), (0.2, -1.0)):
        with pytest.raises(ValueError, match="hoist_lower_to"):
            d.hoist_lower_to(*bad)
    # a driver whose init failed is safe: it answers not_ready instead of crashing
    o = _rt.SimOptions()
    o.mjcf_path = go2[1]
    broken = _rt.MujocoDriver(o)
    with pytest.raises(ValueError):
        broken.init(["no_such_joint"], 500.0)
    assert broken.read()["status"] == "not_ready"


def test_configuration_errors_are_explicit(go2):
    cfg, path = go2
    o = _rt.SimOptions()
    o.mjcf_path = "/nonexistent.xml"
    with pytest.raises(ValueError, match="cannot load MJCF"):
        _rt.MujocoDriver(o).init(cfg.joint_names, 500.0)
    o.mjcf_path = path
    with pytest.raises(ValueError, match="not in the MJCF; its joints are: .*FR_hip_joint"):
        _rt.MujocoDriver(o).init(["FR_hip"] + cfg.joint_names[1:], 500.0)
    o.sim_rate_hz = 1300
    with pytest.raises(ValueError, match="integer multiple"):
        _rt.MujocoDriver(o).init(cfg.joint_names, 500.0)


def test_real_time_clock_runs_the_simulator_in_step_with_the_wall():
    with SimRuntime("go2", lockstep=False) as rt:
        rt.wait(0.5)
        assert rt.loop.running
        assert rt.sim_time() >= 0.5
    stats = rt.loop.stats()  # read once stopped: the counters are final
    assert stats["ticks"] >= 250
    assert stats["lateness_us"]["count"] == stats["ticks"] == stats["compute_us"]["count"]
    assert abs(rt.sim_time() - stats["ticks"] / 500.0) < 1e-6  # the simulator advanced one period per tick


def test_head_camera_renders_offscreen():
    from vertebra.drivers.camera import OffscreenCamera

    rt = SimRuntime("g1")
    rt.wait(0.1)
    cam = OffscreenCamera(rt.mjcf_path, "head", 96, 64)
    try:
        img = cam.render_driver(rt.driver)
        assert img.shape == (64, 96, 3) and img.dtype == np.uint8
        assert img.std() > 5  # not a blank frame: the floor's checker pattern is in view
        with pytest.raises(ValueError, match="cameras are: head"):
            OffscreenCamera(rt.mjcf_path, "chest")
    finally:
        cam.close()
    assert math.isfinite(float(img.mean()))

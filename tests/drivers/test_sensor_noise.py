"""The simulator's sensor noise (``vertebra sim --noise``): the model the robot configs set (encoder
counts, velocity noise, IMU white noise, per-run biases and the attitude error they cause), its
reproducibility, and the acceptance procedures (stand, push, reach) run with it on."""

import json
import math

import numpy as np
import pytest
from vertebra import _rt
from vertebra.drivers.registry import driver_config
from vertebra.runtime.cli import main
from vertebra.runtime.config import RobotConfig
from vertebra.runtime.sim_runtime import SimRuntime

from .test_sim_stand import assert_stood

_LOOPS: list = []
N_READS = 4000  # samples per statistic: a std estimate within ~3 % (1 sigma), a mean within std / 63


@pytest.fixture(scope="module")
def g1():
    return RobotConfig.load("g1")


def build(cfg, noise, limp_ticks=0):
    """The mujoco driver as the runtime builds it from the robot config; with `limp_ticks`, stepped
    that long hanging limp in the hoist (zero torque: the motion does not depend on the readings),
    so that the joints are off the encoder grid."""
    d = driver_config("mujoco", noise=noise).build(cfg, cfg.control_rate_hz)
    if limp_ticks:
        from vertebra.runtime.config import robot_params

        d.activate()
        lc = _rt.LoopConfig()
        lc.lockstep = True
        loop = _rt.RtLoop(d, robot_params(cfg), lc)
        loop.run_ticks(limp_ticks)
        _LOOPS.append(loop)  # kept for the module's lifetime
    return d


def reads(driver, n=N_READS):
    """`n` reads of a driver that is not stepped: the truth is the same each time, only noise moves."""
    out = {k: [] for k in ("q", "dq", "imu_gyro", "imu_acc", "imu_quat", "base_pos", "base_quat")}
    for _ in range(n):
        s = driver.read()
        assert s["status"] == "ok"
        for k in out:
            out[k].append(np.array(s[k], dtype=np.float64))
    return {k: np.array(v) for k, v in out.items()}


def quat_to_matrix(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_robot_configs_set_noise_and_the_schema_keeps_it_off_by_default():
    from vertebra.runtime.config import NoiseConfig

    off = NoiseConfig()
    assert all(getattr(off, f) == 0.0 for f in ("q_rad", "q_resolution_rad", "dq_rad_s", "gyro_rad_s",
                                                "gyro_bias_rad_s", "acc_m_s2", "acc_bias_m_s2"))
    for robot in ("g1", "go2"):
        sim = RobotConfig.load(robot).sim
        assert sim.noise_q_resolution_rad > 0 and sim.noise_dq_rad_s > 0
        assert sim.noise_gyro_rad_s > 0 and sim.noise_gyro_bias_rad_s > 0
        assert sim.noise_acc_m_s2 > 0 and sim.noise_acc_bias_m_s2 > 0
    # the values the yaml comments derive (BMI088 data sheet at 500 Hz; encoder counts)
    g1 = RobotConfig.load("g1").sim
    assert g1.noise_q_resolution_rad == pytest.approx(2 * math.pi / 2 ** 14, rel=1e-3)
    assert g1.noise_gyro_rad_s == pytest.approx(math.radians(0.014) * math.sqrt(250), rel=0.01)
    assert g1.noise_acc_m_s2 == pytest.approx(175e-6 * 9.80665 * math.sqrt(250), rel=0.01)
    go2 = RobotConfig.load("go2").sim
    assert go2.noise_q_resolution_rad == pytest.approx(2 * math.pi / (32768 * 6.33), rel=1e-3)


def test_noisy_readings_match_the_configured_model(g1):
    n = g1.sim.noise
    quiet, noisy = build(g1, False, limp_ticks=100), build(g1, True, limp_ticks=100)
    truth, got = reads(quiet, 50), reads(noisy)
    # the same physical state in both (the base ground truth is never noised)
    assert got["base_pos"][0].tobytes() == truth["base_pos"][0].tobytes()
    assert got["base_quat"][0].tobytes() == truth["base_quat"][0].tobytes()
    # without noise: the truth, the same at every read, and no bias drawn
    for k, v in truth.items():
        assert np.array_equal(v, np.broadcast_to(v[0], v.shape)), k
    assert quiet.gyro_bias == [0.0, 0.0, 0.0] and quiet.acc_bias == [0.0, 0.0, 0.0]
    t = {k: v[0] for k, v in truth.items()}

    # joint encoders: multiples of one count, the nearest one to the truth (no white q noise configured)
    res = n.q_resolution_rad
    assert n.q_rad == 0.0
    counts = got["q"] / res
    assert np.max(np.abs(counts - np.round(counts))) < 1e-6
    assert np.max(np.abs(got["q"] - t["q"])) <= res / 2 + 1e-12
    assert not np.array_equal(got["q"][0], t["q"])  # the truth is not on the grid

    # joint velocity: zero-mean white noise of the configured std (every joint)
    e = got["dq"] - t["dq"]
    assert np.all(np.abs(e.mean(axis=0)) < 5 * n.dq_rad_s / math.sqrt(N_READS))
    assert np.all((0.9 * n.dq_rad_s < e.std(axis=0)) & (e.std(axis=0) < 1.1 * n.dq_rad_s))

    # IMU: a constant bias per axis (drawn from the configured std) plus white noise of the configured std
    for key, bias, white, bias_std in (("imu_gyro", noisy.gyro_bias, n.gyro_rad_s, n.gyro_bias_rad_s),
                                       ("imu_acc", noisy.acc_bias, n.acc_m_s2, n.acc_bias_m_s2)):
        bias = np.array(bias)
        assert np.all(bias != 0.0) and np.all(np.abs(bias) < 5 * bias_std), (key, bias)
        e = got[key] - t[key]
        assert np.allclose(e.mean(axis=0), bias, atol=5 * white / math.sqrt(N_READS)), key
        std = e.std(axis=0)
        assert np.all((0.9 * white < std) & (std < 1.1 * white)), (key, std)

    # orientation: constant, tilted from the truth by the levelling error the accelerometer bias causes
    q = got["imu_quat"]
    assert np.array_equal(q, np.broadcast_to(q[0], q.shape))
    b = np.array(noisy.acc_bias)
    g = 9.81
    r_true, r_meas = quat_to_matrix(t["imu_quat"]), quat_to_matrix(q[0])
    r_err = r_true.T @ r_meas
    angle = math.acos(max(-1.0, min(1.0, (np.trace(r_err) - 1) / 2)))
    axis = np.array([r_err[2, 1] - r_err[1, 2], r_err[0, 2] - r_err[2, 0], r_err[1, 0] - r_err[0, 1]])
    axis /= 2 * math.sin(angle)
    assert np.allclose(angle * axis, [b[1] / g, -b[0] / g, 0.0], rtol=1e-6, atol=1e-12)
    # the sign is the levelling filter's: with the IMU upright at rest, "up" through the error
    # rotation points where the biased accelerometer says it does
    up = r_err.T @ np.array([0.0, 0.0, 1.0])
    f = np.array([0.0, 0.0, g]) + b
    assert np.allclose(up[:2], f[:2] / np.linalg.norm(f), atol=2e-4)


def test_same_seed_reads_the_same_noise_another_seed_does_not(g1):
    a, b = reads(build(g1, True), 200), reads(build(g1, True), 200)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    other = RobotConfig.load("g1")
    other.sim.noise.seed = 2
    c_driver = build(other, True)
    c = reads(c_driver, 200)
    assert a["imu_gyro"].tobytes() != c["imu_gyro"].tobytes()
    assert c_driver.gyro_bias != build(g1, True).gyro_bias


def test_noise_options_are_checked_when_the_driver_is_configured(g1):
    d = driver_config("mujoco")
    d.build(g1, g1.control_rate_hz)  # writes the model file
    o = _rt.SimOptions()
    o.mjcf_path = d.mjcf_path
    o.noise_gyro_bias_rad_s = -0.1
    with pytest.raises(ValueError, match="noise_gyro_bias_rad_s must be a finite number >= 0"):
        _rt.MujocoDriver(o).init(g1.joint_names, 500.0)
    o.noise_gyro_bias_rad_s = 0.0
    o.noise_q_resolution_rad = math.nan
    with pytest.raises(ValueError, match="noise_q_resolution_rad"):
        _rt.MujocoDriver(o).init(g1.joint_names, 500.0)


def test_lockstep_runs_with_noise_reproduce_bit_for_bit_and_differ_from_quiet_runs():
    def run(noise):
        rt = SimRuntime("go2", lockstep=True, noise=noise)
        try:
            rt.stand_up(hold_s=0.5)
            s = rt.loop.snapshot()["state"]
            return {k: np.asarray(s[k]).tobytes() for k in ("q", "dq", "imu_gyro", "base_pos", "base_quat")}
        finally:
            rt.close()

    first, second, quiet = run(True), run(True), run(False)
    assert first == second
    assert all(first[k] != quiet[k] for k in ("q", "dq", "imu_gyro"))
    assert first["base_pos"] != quiet["base_pos"]  # the noise reached the controller and moved the robot


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_robot_stands_through_the_deployment_procedure_with_noise(robot):
    # The criteria of tests/drivers/test_sim_stand.py, with the robot config's sensor noise on.
    rt = SimRuntime(robot, lockstep=True, noise=True)
    try:
        res = rt.stand_up(hold_s=10.0)
        out = rt.report(res)
        state = rt.loop.snapshot()["state"]
        bias = rt.driver.gyro_bias
    finally:
        rt.close()
    res_rad = rt.cfg.sim.noise_q_resolution_rad
    counts = np.asarray(state["q"]) / res_rad
    assert np.max(np.abs(counts - np.round(counts))) < 1e-6  # the loop saw the encoder counts
    assert any(v != 0.0 for v in bias)
    assert_stood(out)


def wbc_scenario(capsys, scenario, *extra):
    # The procedure and criteria of tests/wbc/test_wbc_sim.py's run(), with --noise.
    rc = main(["sim", "--robot", "g1", "--lockstep", "--controller", "wbc", "--scenario", scenario, "--json",
               "--noise", *extra])
    out = json.loads(capsys.readouterr().out)
    assert out["controller"] == "wbc" and out["scenario"] == scenario
    assert out["fell"] is False and out["faults"] == [] and out["mode"] == "wbc", out
    assert out["solver"]["failures"] == 0
    assert rc == 0
    return out


def test_g1_survives_30N_pushes_from_every_direction_with_noise(capsys):
    out = wbc_scenario(capsys, "push", "--push-n", "30")
    assert out["survived_all"] and len(out["pushes"]) == 8
    assert {round(p["direction_deg"]) for p in out["pushes"]} == {0, 45, 90, 135, 180, 225, 270, 315}
    feet = out["contact_forces"]
    assert all(f["fz_min_n"] >= 10.0 - 1e-6 for f in feet.values())  # both feet stay loaded: no step


def test_g1_hands_reach_their_targets_with_noise(capsys):
    out = wbc_scenario(capsys, "reach")
    assert len(out["reach"]) == 4
    assert out["max_hand_pos_err_m"] < 0.02
    assert out["max_hand_rot_err_deg"] < 5.0

"""Driver lifecycle (cpp/drivers/driver.hpp): configure -> activate -> (ticks) -> deactivate, the
loop refusing to tick an inactive driver, the hand-back damped, and a driver registered from this
test module selected by a config's `driver: {type: ...}` without editing Vertebra's files."""

from __future__ import annotations

import pytest
from vertebra import _rt

from tests.conftest import N, RATE, make_params


def test_transitions_and_wrong_state_errors():
    d = _rt.MockDriver()
    assert d.lifecycle_state == "unconfigured"
    assert d.read()["status"] == "not_ready"
    with pytest.raises(RuntimeError, match="activate\\(\\) needs state inactive, the driver is unconfigured"):
        d.activate()
    d.configure([f"j{i}" for i in range(N)], RATE, [3.0] * N)
    assert d.lifecycle_state == "inactive"
    d.activate()
    assert d.lifecycle_state == "active"
    d.deactivate()
    assert d.lifecycle_state == "inactive"
    cmd = d.last_command  # handed back damped: kp = 0, kd = the damping gains
    assert all(k == 0.0 for k in cmd["kp"]) and all(k == 3.0 for k in cmd["kd"])
    d.cleanup()
    assert d.lifecycle_state == "unconfigured"
    d.shutdown()
    assert d.lifecycle_state == "finalized"


def test_the_loop_never_ticks_an_inactive_driver_and_write_refuses():
    d = _rt.MockDriver()
    d.configure([f"j{i}" for i in range(N)], RATE)
    cfg = _rt.LoopConfig()
    cfg.rate_hz, cfg.lockstep = RATE, True
    loop = _rt.RtLoop(d, make_params(), cfg)
    with pytest.raises(RuntimeError, match="driver 'mock' is inactive; configure\\(\\) and activate\\(\\) it"):
        loop.run_ticks(1)
    d.activate()
    loop.run_ticks(3)
    assert d.writes == 3
    d.deactivate()  # a tick racing the deactivation gets not_ready, never a motor command
    with pytest.raises(RuntimeError, match="is inactive"):
        loop.run_ticks(1)
    assert d.writes == 3


def test_a_fault_injector_follows_the_driver_it_wraps():
    inner = _rt.MockDriver()
    inner.init([f"j{i}" for i in range(N)], RATE)
    inj = _rt.FaultInjector(inner)
    assert inj.lifecycle_state == "active"
    inj.deactivate()
    assert inner.lifecycle_state == "inactive"


def test_a_driver_registered_from_a_test_module_is_chosen_by_config():
    from vertebra.drivers.registry import DriverConfig, available_drivers, register_driver
    from vertebra.runtime.runtime import Runtime
    from vertebra.runtime.schema import field

    @register_driver("test_heavy_mock")
    class HeavyMock(DriverConfig):
        """A mock whose joints sag under a load (registered by this test only)."""

        load_nm = field(float, default=5.0, lo=0.0, hi=100.0, doc="constant load torque")

        def build(self, robot, control_rate_hz):
            return _rt.MockDriver(0.05, 0.1, self.load_nm)

    assert "test_heavy_mock" in available_drivers()
    from vertebra.drivers.registry import driver_types

    cfg = driver_types()["test_heavy_mock"].from_dict({"load_nm": 7.5}, "test.yaml", path="driver")
    rt = Runtime("go2", cfg, lockstep=True)
    assert rt.driver.lifecycle_state == "active" and rt.driver.name == "mock"
    rt.wait(0.2)
    assert rt.status()["safety_mode"] == "PASSIVE"
    assert rt.status()["state"]["q"][0] < -0.05  # limp under the configured load: the config reached the driver
    rt.close()
    assert rt.driver.lifecycle_state == "inactive"

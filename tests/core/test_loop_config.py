"""The loop's configuration checks name the one field that is wrong, with the value found."""

from __future__ import annotations

import pytest
from vertebra import _rt

from tests.conftest import N, RATE


def params(**override):
    base = dict(kp=[40.0] * N, kd=[2.0] * N, kd_damping=[3.0] * N, kp_max=[60.0] * N, kd_max=[3.0] * N,
                q_lower=[-2.0] * N, q_upper=[2.0] * N, dq_max=[10.0] * N, tau_max=[30.0] * N, default_pose=[0.3] * N)
    base.update(override)
    return _rt.RobotParams(**base)


@pytest.mark.parametrize("field,value,match", [
    ("tau_max", [30.0] * (N - 1) + [-1.0], r"joint 5: tau_max: found -1\.0+; valid: a finite number >= 0"),
    ("kd_damping", [float("nan")] + [3.0] * (N - 1), r"joint 0: kd_damping: found nan; valid: a finite number >= 0"),
    ("q_lower", [float("inf")] + [-2.0] * (N - 1), r"joint 0: q_lower: found inf; valid: a finite number$"),
])
def test_a_bad_joint_parameter_is_named_with_its_value(field, value, match):
    d = _rt.MockDriver()
    d.init([f"j{i}" for i in range(N)], RATE)
    cfg = _rt.LoopConfig()
    cfg.rate_hz, cfg.lockstep = RATE, True
    with pytest.raises(ValueError, match=match):
        _rt.RtLoop(d, params(**{field: value}), cfg)

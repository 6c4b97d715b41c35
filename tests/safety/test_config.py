"""configs/safety/*.yaml are validated on load, naming the file, the field and what is valid."""

import copy

import pytest
import yaml
from vertebra.runtime.config import ConfigError, RobotConfig
from vertebra.safety.config import SAFETY_DIR, SafetySettings


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_shipped_configs_load_and_convert(robot):
    cfg = RobotConfig.load(robot)
    s = SafetySettings.load(cfg)
    c = s.to_cpp(cfg)
    assert c.state_timeout_ms == 50 and c.n_settle == len(s.settle) >= 1
    assert s.response("fall") == "damp" and s.response("state_loss") == "stop"


@pytest.mark.parametrize("path,value,match", [
    (("robot",), "go2", "'g1'"),
    (("state", "timeout_msec"), 5, "a known field: enabled, frozen_ms, timeout_ms"),
    (("motors", "temp_stop_c"), 65, "warn < derate < stop"),
    (("battery", "stop_v"), 50.0, "> stop_v"),
    (("policy", "starvation_stop_ms"), 50, "> starvation_hold_ms"),
    (("estop",), "category2", "damp .category 1. or cut"),
    (("responses",), {"fall": "panic"}, "one of warn"),
    (("responses",), {"falling": "damp"}, "a fault name"),
    (("joints", "soft_limit_margin_rad"), 0.3, "inside"),
])
def test_bad_fields_are_named(g1, raw, path, value, match):
    d = copy.deepcopy(raw)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=match):
        SafetySettings.from_dict(d, g1, "g1.yaml")


def test_settle_keyframes_are_checked(g1, raw):
    d = copy.deepcopy(raw)
    d["settle"]["keyframes"][0]["pose"] = {"kneee": 1.0}
    with pytest.raises(ConfigError, match="a substring of some joint name"):
        SafetySettings.from_dict(d, g1, "g1.yaml")
    d["settle"]["keyframes"][0]["pose"] = {"knee": 3.5}
    with pytest.raises(ConfigError, match="soft limits"):
        SafetySettings.from_dict(d, g1, "g1.yaml")
    d["settle"]["keyframes"][0]["duration_s"] = 0
    with pytest.raises(ConfigError, match="duration_s"):
        SafetySettings.from_dict(d, g1, "g1.yaml")

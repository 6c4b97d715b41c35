"""Fixtures shared by the safety config tests: the G1 robot config and its safety YAML as loaded."""

import pytest
import yaml
from vertebra.runtime.config import RobotConfig
from vertebra.safety.config import SAFETY_DIR


@pytest.fixture(scope="module")
def g1():
    return RobotConfig.load("g1")


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((SAFETY_DIR / "g1.yaml").read_text())

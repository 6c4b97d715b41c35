"""A policy with `action_space: base_velocity` drives the walk controller: its chunk's columns are the
velocity command (base_velocity.vx/.vy/.wz), checked against the robot (a biped, all three columns)
and streamed through the walk mode's target sink. The model here is a real ONNX graph: a "joystick"
policy whose every chunk row is its command input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from vertebra import _rt
from vertebra.policies.package import OnnxPolicy, PolicyPackage, check_against_robot, sha256_file
from vertebra.runtime.config import RobotConfig

MS = 1_000_000
TARGETS = ["base_velocity.vx", "base_velocity.vy", "base_velocity.wz"]


def joystick_package(tmp_path, targets=TARGETS, robot="g1", chunk=10):
    n = len(targets)
    graph = helper.make_graph(
        [helper.make_node("Tile", ["command", "reps"], ["flat"]),
         helper.make_node("Reshape", ["flat", "shape"], ["actions"])],
        "joystick",
        [helper.make_tensor_value_info("command", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, [1, chunk, n])],
        [helper.make_tensor("reps", TensorProto.INT64, [2], [1, chunk]),
         helper.make_tensor("shape", TensorProto.INT64, [3], [1, chunk, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pkg = tmp_path / "joystick"
    pkg.mkdir(parents=True)
    onnx.save(model, str(pkg / "model.onnx"))
    spec = {"name": "joystick", "version": "1", "robots": [robot],
            "model": {"file": "model.onnx", "sha256": sha256_file(pkg / "model.onnx")},
            "inputs": {"command": {"input": "command", "names": [t.split(".")[1] for t in targets]}},
            "outputs": {"output": "actions", "action_space": "base_velocity", "targets": targets,
                        "chunk_length": chunk, "rate_hz": 10},
            "normalization": {"command": {"mean": [0.0] * n, "std": [1.0] * n},
                              "actions": {"mean": [0.0] * n, "std": [1.0] * n}}}
    (pkg / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return PolicyPackage.load(pkg)


def test_a_base_velocity_package_fits_a_biped_with_all_three_columns(tmp_path):
    g1, go2 = RobotConfig.load("g1"), RobotConfig.load("go2")
    pkg = joystick_package(tmp_path)
    assert pkg.spec.action_space == "base_velocity"
    assert check_against_robot(pkg.spec, g1) == []
    assert any("for bipeds" in p for p in check_against_robot(pkg.spec, go2))
    short = joystick_package(tmp_path / "short", targets=TARGETS[:2])
    assert any("missing base_velocity.wz" in p for p in check_against_robot(short.spec, g1))
    wrong = joystick_package(tmp_path / "wrong", targets=["base_velocity.vx", "base_velocity.vy", "com.z"])
    assert any("'com.z' is not a whole-body target" in p for p in check_against_robot(wrong.spec, g1))


def test_the_joystick_policy_walks_the_g1_through_the_walk_modes_sink(tmp_path):
    from vertebra.runtime.sim_runtime import SimRuntime

    pol = OnnxPolicy(joystick_package(tmp_path))
    rt = SimRuntime("g1", controller="walk")
    sched = _rt.ChunkScheduler(3, blend_s=0.0)
    _rt.set_chunk_scheduler(rt.loop, sched, "walk", TARGETS)
    rt.stand_up(hold_s=0.3)
    rt.activate_controller()
    rt.wait(0.2)
    x0 = rt.truth()["base_pos"][0]
    for _ in range(40):  # 10 Hz: each step a chunk of 10 rows at 0.1 s, from now
        chunk = pol.infer({"command": np.array([0.25, 0.0, 0.0], np.float32)})
        assert chunk.shape == (10, 3) and np.allclose(chunk, [0.25, 0.0, 0.0])
        sched.push(int(rt.time_s() * 1e9), 100 * MS, chunk.astype(np.float64))
        rt.wait(0.1)
    st = rt.handle.status()
    assert rt.loop.snapshot()["faults"] == [] and st["refused_commands"] == 0
    assert st["steps"] >= 4 and rt.truth()["base_pos"][0] - x0 > 0.5

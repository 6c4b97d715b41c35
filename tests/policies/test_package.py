"""Policy packages: loading, hash check, compatibility errors, pre/post-processing through ONNX."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from vertebra.policies.package import OnnxPolicy, PackageError, PolicyPackage, check_against_robot, sha256_file
from vertebra.runtime.config import RobotConfig

EXE = os.path.join(os.path.dirname(sys.executable), "vertebra")


def make_package(tmp_path, robot="go2", chunk=4, rate=50, cameras=(), extra=None, feasible=False):
    """A real ONNX model: actions[0, k, j] = state[0, j] * (k + 1) (the first 12 state values); with
    `feasible`, a second output feasible = sigmoid(-1000 * command[0]) (declared in outputs.feasibility)."""
    cfg = RobotConfig.load(robot)
    n = cfg.n_joints
    w = np.zeros((2 * n, chunk * n), np.float32)
    for k in range(chunk):
        for j in range(n):
            w[j, k * n + j] = k + 1
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["state", "W"], ["flat"]),
         helper.make_node("Reshape", ["flat", "shape"], ["actions"])],
        "toy",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 2 * n]),
         helper.make_tensor_value_info("command", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, [1, chunk, n])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.flatten().tolist()),
         helper.make_tensor("shape", TensorProto.INT64, [3], [1, chunk, n])])
    if feasible:
        graph.node.extend([helper.make_node("MatMul", ["command", "Wf"], ["logit"]),
                           helper.make_node("Sigmoid", ["logit"], ["feasible"])])
        graph.initializer.append(helper.make_tensor("Wf", TensorProto.FLOAT, [4, 1], [-1000.0, 0.0, 0.0, 0.0]))
        graph.output.append(helper.make_tensor_value_info("feasible", TensorProto.FLOAT, [1, 1]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    onnx.save(model, str(pkg / "model.onnx"))
    names = cfg.joint_names
    spec = {"name": "toy", "version": "1", "robots": [robot],
            "model": {"file": "model.onnx", "sha256": sha256_file(pkg / "model.onnx")},
            "inputs": {"command": {"input": "command", "names": ["a", "b", "c", "d"]},
                       "state": {"input": "state", "fields": [{"kind": "q", "joints": names}, {"kind": "dq", "joints": names}]},
                       "cameras": [{"name": c, "height": 8, "width": 8, "input": "img"} for c in cameras]},
            "outputs": {"output": "actions", "action_space": "joint_targets", "targets": names, "chunk_length": chunk,
                        "rate_hz": rate},
            "normalization": {"state": {"mean": [1.0] * 2 * n, "std": [2.0] * 2 * n},
                              "command": {"mean": [0.0] * 4, "std": [1.0] * 4},
                              "actions": {"mean": [0.5] * n, "std": [10.0] * n},
                              "image": {"mean": [0.5] * 3, "std": [0.25] * 3}}}
    if feasible:
        spec["outputs"]["feasibility"] = {"output": "feasible", "threshold": 0.5}
    if extra:
        spec.update(extra)
    (pkg / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return pkg, cfg


def test_package_runs_with_its_normalisation(tmp_path):
    pkg, cfg = make_package(tmp_path)
    pol = OnnxPolicy(PolicyPackage.load(pkg))
    pol.set_joint_names(list(reversed(cfg.joint_names)))  # the client's order differs from the package's
    q = np.arange(12, dtype=np.float32)
    out = pol.infer({"state": {"q": q, "dq": np.zeros(12, np.float32)}, "command": np.zeros(4, np.float32)})
    # package order = reversed client order; normalised (q - 1)/2; action k = that * (k + 1); de-normalised
    expect = np.stack([((q[::-1] - 1.0) / 2.0) * (k + 1) * 10.0 + 0.5 for k in range(4)])
    assert out.shape == (4, 12) and np.allclose(out, expect, atol=1e-5)
    with pytest.raises(ValueError, match="'command' must be an array of 4"):
        pol.infer({"state": {"q": q, "dq": q}})


def test_a_changed_model_is_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    with open(pkg / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PackageError, match="does not match policy.yaml"):
        PolicyPackage.load(pkg)


def test_compatibility_errors_name_the_field(tmp_path):
    pkg, go2 = make_package(tmp_path, rate=30, cameras=("belly",))
    spec = PolicyPackage.load(pkg).spec
    g1 = RobotConfig.load("g1")
    problems = check_against_robot(spec, g1)
    text = "\n".join(problems)
    assert "the package is for go2, not 'g1'" in text
    assert "is not a joint of g1" in text
    assert "12 joint targets (DoF), g1 has 29 joints" in text
    assert "30 Hz does not divide the control rate 500 Hz" in text
    assert "camera 'belly' is not on g1" in text
    spec.targets = list(reversed(spec.targets))
    assert any("outputs.targets[0]" in p and "motor order" in p for p in check_against_robot(spec, go2))


def test_policy_check_command(tmp_path):
    pkg, _ = make_package(tmp_path)
    r = subprocess.run([EXE, "policy", "check", str(pkg), "--robot", "go2"], capture_output=True, text=True)
    assert r.returncode == 0 and "sha256 verified" in r.stdout
    r = subprocess.run([EXE, "policy", "check", str(pkg), "--robot", "g1", "--json"], capture_output=True, text=True)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and not out["compatible"] and len(out["problems"]) >= 3
    r = subprocess.run([EXE, "policy", "check", str(tmp_path), "--robot", "go2"], capture_output=True, text=True)
    assert r.returncode == 1 and "not a policy package" in r.stderr


@pytest.mark.parametrize("field,value,match", [
    ("outputs", {"output": "actions", "action_space": "torques", "targets": [], "chunk_length": 1, "rate_hz": 50},
     "action_space 'torques'"),
    ("robots", "go2", "must be list"),
])
def test_bad_specs_are_refused(tmp_path, field, value, match):
    pkg, _ = make_package(tmp_path, extra={field: value})
    with pytest.raises(PackageError, match=match):
        PolicyPackage.load(pkg)


def test_the_feasibility_output_is_read_and_checked(tmp_path):
    pkg, cfg = make_package(tmp_path, feasible=True)
    pol = OnnxPolicy(PolicyPackage.load(pkg))
    pol.set_joint_names(cfg.joint_names)
    obs = {"state": {"q": np.zeros(12, np.float32), "dq": np.zeros(12, np.float32)}}
    _, yes = pol.infer_all({**obs, "command": np.array([-0.01, 0, 0, 0], np.float32)})
    _, no = pol.infer_all({**obs, "command": np.array([0.01, 0, 0, 0], np.float32)})
    assert yes > 0.99 and no < 0.01
    meta = yaml.safe_load((pkg / "policy.yaml").read_text())
    for bad, match in ((None, "a mapping with 'output'"), ({"output": "actions"}, "is the actions' output"),
                       ({"output": "feasible", "threshold": 1.5}, r"a number in \(0, 1\)"),
                       ({"output": "nope"}, "'nope' is not an output of the model")):
        meta["outputs"]["feasibility"] = bad
        (pkg / "policy.yaml").write_text(yaml.safe_dump(meta))
        with pytest.raises(PackageError, match=match):
            OnnxPolicy(PolicyPackage.load(pkg))


def test_the_server_says_when_the_policy_cannot_comply(tmp_path):
    from vertebra.policies.served import PackagePolicy

    pkg, cfg = make_package(tmp_path, feasible=True)
    pol = PackagePolicy("toy", pkg, 1)
    obs = {"state": {"q": np.zeros(12, np.float32), "dq": np.zeros(12, np.float32)}}
    _, p = pol.infer_all({**obs, "command": np.array([0.5, 0, 0, 0], np.float32)}, list(cfg.joint_names))
    assert p < 0.5


def test_an_instruction_too_long_is_refused_never_cut():
    from vertebra.policies.package import InstructionError, Tokenizer

    tok = Tokenizer(["<pad>", "<unk>", "touch", "the", "red", "cube", "point", "wave"], 4, stem=True)
    assert tok.encode("touch the red cube").tolist() == [2, 3, 4, 5]
    assert tok.encode("pointing").tolist() == [6, 0, 0, 0] and tok.encode("waving").tolist() == [7, 0, 0, 0]
    assert tok.encode("cubes").tolist() == [5, 0, 0, 0] and tok.encode("touched").tolist() == [2, 0, 0, 0]
    assert tok.encode("grab").tolist() == [1, 0, 0, 0]
    with pytest.raises(InstructionError, match="5 words, this policy reads at most 4"):
        tok.encode("touch the red cube now")
    with pytest.raises(PackageError, match="listed twice"):
        Tokenizer(["<pad>", "<unk>", "a", "a"], 4)

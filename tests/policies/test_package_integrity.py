"""Policy package integrity: the manifest covers external data, paths stay in the package, the model
matches policy.yaml (checked by onnxruntime in `policy check` and the server alike), safe YAML."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from vertebra.policies.package import OnnxPolicy, PackageError, PolicyPackage, check_model, sha256_file
from vertebra.policies.package_integrity import MAX_POLICY_YAML_BYTES, ORT_MEMORY_ADDRESS_TAG
from vertebra.runtime.config import RobotConfig

from tests.policies.test_package import make_package

EXE = os.path.join(os.path.dirname(sys.executable), "vertebra")
SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "packages"


def edit_yaml(pkg, change):
    d = yaml.safe_load((pkg / "policy.yaml").read_text())
    change(d)
    (pkg / "policy.yaml").write_text(yaml.safe_dump(d, sort_keys=False))


def rehash(pkg, files=None):
    """policy.yaml's model.sha256 from the model file as it now is; model.files from ``files`` (key: path)."""
    def change(d):
        d["model"]["sha256"] = sha256_file(pkg / d["model"]["file"])
        if files:
            d["model"]["files"] = {k: sha256_file(v) for k, v in files.items()}
    edit_yaml(pkg, change)


def externalise(pkg, location="weights.bin", listed=True):
    """Re-save the package's model with its weights in an external-data file (and hash both)."""
    save_external(pkg / "model.onnx", location)
    rehash(pkg, {location: pkg / location} if listed else None)


def save_external(path, location):
    model = onnx.load(str(path))
    for i, t in enumerate(model.graph.initializer):  # as raw bytes: onnx externalises only raw_data
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)  # W; Reshape's shape stays inline
    assert (path.parent / location).is_file()


def relocate(pkg, location):
    """Point the model's external data at ``location`` (and re-hash model.onnx)."""
    model = onnx.load(str(pkg / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(model, str(pkg / "model.onnx"))
    rehash(pkg)


def replace_model(pkg, inputs, output_shape, output_type):
    """A model with these inputs [(name, elem type, shape)] (unused) and a constant 'actions' output."""
    const = helper.make_tensor("c", output_type, output_shape, [0] * int(np.prod(output_shape)))
    graph = helper.make_graph([helper.make_node("Constant", [], ["actions"], value=const)], "stub",
                              [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info("actions", output_type, output_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(pkg / "model.onnx"))
    rehash(pkg)


def infer_zero(pkg):
    pol = OnnxPolicy(PolicyPackage.load(pkg))
    pol.set_joint_names(RobotConfig.load("go2").joint_names)
    z = np.zeros(12, np.float32)
    return pol.infer({"state": {"q": z + 1, "dq": z}, "command": np.zeros(4, np.float32)})


def check(pkg, robot="go2", *extra):
    return subprocess.run([EXE, "policy", "check", str(pkg), "--robot", robot, *extra], capture_output=True, text=True)


# ------------------------------------------------------------------ 1. the manifest covers external data

def test_external_weights_are_covered_by_the_manifest(tmp_path):
    pkg, _ = make_package(tmp_path)
    before = infer_zero(pkg)
    externalise(pkg)
    spec = PolicyPackage.load(pkg).spec
    assert spec.model_files == {"weights.bin": sha256_file(pkg / "weights.bin")}
    assert np.array_equal(infer_zero(pkg), before)
    r = check(pkg)
    assert r.returncode == 0 and "sha256 verified (model.onnx + 1 external-data file(s))" in r.stdout, r.stderr
    data = bytearray((pkg / "weights.bin").read_bytes())
    data[-1] ^= 0x40  # model.onnx and its sha256 unchanged: only the weights
    (pkg / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"does not match policy.yaml's model.files\['weights.bin'\]"):
        PolicyPackage.load(pkg)


def test_external_data_the_manifest_does_not_cover_is_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    externalise(pkg, listed=False)
    with pytest.raises(PackageError, match=r"model.files: 'model.onnx' loads external data from 'weights.bin', "
                                           r"which model.files does not cover"):
        PolicyPackage.load(pkg)
    r = check(pkg)
    assert r.returncode == 1 and "does not cover" in r.stderr and "ok:" not in r.stdout


def test_a_manifest_entry_the_model_does_not_load_is_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    (pkg / "extra.bin").write_bytes(b"x")
    rehash(pkg, {"extra.bin": pkg / "extra.bin"})
    with pytest.raises(PackageError, match="model.files: 'extra.bin' is not external data of 'model.onnx'"):
        PolicyPackage.load(pkg)


def test_external_data_in_a_model_subfolder_is_keyed_by_its_package_path(tmp_path):
    pkg, _ = make_package(tmp_path)
    (pkg / "net").mkdir()
    (pkg / "model.onnx").rename(pkg / "net" / "model.onnx")
    edit_yaml(pkg, lambda d: d["model"].update(file="net/model.onnx"))
    save_external(pkg / "net" / "model.onnx", "w.bin")
    rehash(pkg, {"net/w.bin": pkg / "net" / "w.bin"})
    assert PolicyPackage.load(pkg).spec.model_files.keys() == {"net/w.bin"}
    infer_zero(pkg)


def test_truncated_external_weights_are_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    externalise(pkg)
    w = pkg / "weights.bin"
    w.write_bytes(w.read_bytes()[:100])
    rehash(pkg, {"weights.bin": w})
    with pytest.raises(PackageError, match=r"tensor 'W' needs bytes up to \d+ of 'weights.bin', which has 100"):
        PolicyPackage.load(pkg)


# ------------------------------------------------------------------ 2. every loaded path stays in the package

@pytest.mark.parametrize("where,match", [
    ("absolute", r"tensor 'W' external data: '.*/outside.bin' is an absolute path; it must be relative to the package"),
    ("parent", r"tensor 'W' external data: '../outside.bin' contains '..'; it must stay inside the package folder"),
    ("memory", r"tensor 'W' external data: location '\*/_ORT_MEM_ADDR_/\*' does not name a file"),
], ids=["absolute", "parent", "memory-tag"])
def test_external_data_locations_stay_in_the_package(tmp_path, where, match):
    pkg, _ = make_package(tmp_path)
    externalise(pkg)
    outside = tmp_path / "outside.bin"
    outside.write_bytes((pkg / "weights.bin").read_bytes())
    location = {"absolute": str(outside), "parent": "../outside.bin", "memory": ORT_MEMORY_ADDRESS_TAG}[where]
    relocate(pkg, location)
    with pytest.raises(PackageError, match=match):
        PolicyPackage.load(pkg)


def test_external_weights_linked_out_of_the_package_are_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    externalise(pkg)
    outside = tmp_path / "outside.bin"
    (pkg / "weights.bin").rename(outside)
    (pkg / "weights.bin").symlink_to(outside)
    rehash(pkg, {"weights.bin": outside})
    with pytest.raises(PackageError, match=r"model.files: 'weights.bin' resolves to .*outside.bin, outside the"):
        PolicyPackage.load(pkg)


def _fifo(pkg):
    (pkg / "model.onnx").unlink()
    os.mkfifo(pkg / "model.onnx")


def _folder(pkg):
    (pkg / "model.onnx").unlink()
    (pkg / "model.onnx").mkdir()


def _passwd(pkg):
    (pkg / "model.onnx").unlink()
    (pkg / "model.onnx").symlink_to("/etc/passwd")
    edit_yaml(pkg, lambda d: d["model"].update(sha256=sha256_file("/etc/passwd")))


def _rewrite(data):
    def change(pkg):
        (pkg / "model.onnx").write_bytes(data((pkg / "model.onnx").read_bytes()))
        rehash(pkg)
    return change


def _model_file(value):
    def change(pkg):
        outside = pkg.parent / "outside"
        outside.mkdir()
        (outside / "model.onnx").write_bytes((pkg / "model.onnx").read_bytes())
        edit_yaml(pkg, lambda d: d["model"].update(file=value.replace("OUTSIDE", str(outside))))
    return change


@pytest.mark.parametrize("make_bad,match", [
    (_model_file("OUTSIDE/model.onnx"), "model.file: '.*/outside/model.onnx' is an absolute path"),
    (_model_file("../outside/model.onnx"), r"model.file: '../outside/model.onnx' contains '..'"),
    (_passwd, "model.file: 'model.onnx' resolves to /etc/passwd, outside the package folder"),
    (_fifo, r"model.file: 'model.onnx' \(.*\) is a FIFO, not a regular file"),
    (_folder, r"model.file: 'model.onnx' \(.*\) is a directory, not a regular file"),
    (_rewrite(lambda b: b""), r"model.file: 'model.onnx' \(.*\) is empty \(0 bytes\)"),
    (_rewrite(lambda b: b[: len(b) // 2]), "model.file: 'model.onnx' is not an ONNX model"),
    (_rewrite(lambda b: b"root:x:0:0:root:/root:/bin/bash\n"), "model.file: 'model.onnx' is not an ONNX model"),
], ids=["absolute", "dotdot", "etc-passwd-link", "fifo", "directory", "empty", "truncated", "text"])
def test_a_model_file_that_is_not_the_packages_model_is_refused(tmp_path, make_bad, match):
    pkg, _ = make_package(tmp_path)
    make_bad(pkg)
    with pytest.raises(PackageError, match=match):
        PolicyPackage.load(pkg)


def test_links_and_folders_inside_the_package_are_fine(tmp_path):
    pkg, _ = make_package(tmp_path)
    (pkg / "blobs").mkdir()
    (pkg / "model.onnx").rename(pkg / "blobs" / "v3.onnx")
    (pkg / "model.onnx").symlink_to("blobs/v3.onnx")
    link = tmp_path / "current"
    link.symlink_to(pkg)  # the package folder itself may be a link (a deployment's "current")
    assert PolicyPackage.load(link).path == pkg.resolve()
    infer_zero(link)


# ------------------------------------------------------------------ 3. `policy check` opens the model as serve does

def _wrong_input(pkg):
    edit_yaml(pkg, lambda d: d["inputs"]["state"].update(input="obs"))


@pytest.mark.parametrize("make_bad,message", [
    (_passwd, "resolves to /etc/passwd, outside the package folder"),
    (_rewrite(lambda b: b""), "is empty (0 bytes)"),
    (_rewrite(lambda b: b[: len(b) // 2]), "is not an ONNX model"),
    (_wrong_input, "inputs.state.input: 'obs' is not an input of the model; its inputs: state, command"),
], ids=["etc-passwd-link", "empty", "truncated", "wrong-input-name"])
def test_policy_check_refuses_what_the_server_would(tmp_path, make_bad, message):
    pkg, _ = make_package(tmp_path)
    assert check(pkg).returncode == 0
    make_bad(pkg)
    r = check(pkg)
    assert r.returncode == 1 and "ok:" not in r.stdout and "sha256 verified" not in r.stdout
    assert r.stderr.startswith("invalid: ") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = check(pkg, "go2", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["valid"] is False and message in out["problems"][0]


STATE, COMMAND = ("state", TensorProto.FLOAT, [1, 24]), ("command", TensorProto.FLOAT, [1, 4])
FLOAT_OUT = ([1, 4, 12], TensorProto.FLOAT)


@pytest.mark.parametrize("change,model,match", [
    (lambda d: d["outputs"].update(chunk_length=5), None,
     r"outputs.chunk_length: 5 x 12 targets = 60 values, the model's output 'actions' has shape \[1, 4, 12\]"),
    (lambda d: d["outputs"].update(output="act"), None,
     "outputs.output: 'act' is not an output of the model; its outputs: actions"),
    (lambda d: (d["inputs"]["command"].update(names=["a", "b", "c"]),
                d["normalization"].update(command={"mean": [0.0] * 3, "std": [1.0] * 3})), None,
     r"inputs.command.input: 'command' is fed float32 \[1, 3\] \(3 command names\), the model's input 'command' "
     r"is float32 \[1, 4\]"),
    (lambda d: d["inputs"].update(cameras=[{"name": "head", "height": 8, "width": 8, "input": "state"}]), None,
     r"inputs.state.input: 'state' is also inputs.cameras\[0\].input"),
    (None, ([COMMAND, ("state", TensorProto.DOUBLE, [1, 24])], *FLOAT_OUT),
     r"inputs.state.input: 'state' is fed float32 \[1, 24\] \(24 state values\), the model's input 'state' is "
     r"float64 \[1, 24\]"),
    (None, ([COMMAND, STATE, ("mask", TensorProto.FLOAT, [1, 2])], *FLOAT_OUT),
     "inputs: the model's input 'mask' is not fed by any field of policy.yaml"),
    (None, ([COMMAND, STATE], [2, 4, 12], TensorProto.FLOAT),
     r"48 values, the model's output 'actions' has shape \[2, 4, 12\]"),
    (None, ([COMMAND, STATE], [1, 4, 12], TensorProto.INT64),
     "outputs.output: 'actions' must be float32, the model's output is int64"),
], ids=["chunk-length", "output-name", "command-size", "input-twice", "dtype", "unfed-input", "batch-of-2",
        "output-int64"])
def test_the_server_refuses_a_model_that_does_not_match_policy_yaml(tmp_path, change, model, match):
    pkg, _ = make_package(tmp_path)
    if change:
        edit_yaml(pkg, change)
    if model:
        replace_model(pkg, *model)
    package = PolicyPackage.load(pkg)  # the package itself is well-formed: the model disagrees with it
    with pytest.raises(PackageError, match=match):
        OnnxPolicy(package)


def test_a_dynamic_batch_is_accepted(tmp_path):
    pkg, _ = make_package(tmp_path)
    model = onnx.load(str(pkg / "model.onnx"))
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, str(pkg / "model.onnx"))
    rehash(pkg)
    pol = OnnxPolicy(PolicyPackage.load(pkg))
    assert pol.session.get_inputs()[0].shape == ["batch", 24]
    assert infer_zero(pkg).shape == (4, 12)


def _session(output_shape, state_shape=("batch", 24)):
    """What check_model reads of an onnxruntime session: NodeArgs with name, type and shape (int, str or None)."""
    def arg(name, shape):
        return SimpleNamespace(name=name, type="tensor(float)", shape=list(shape))
    return SimpleNamespace(get_inputs=lambda: [arg("state", state_shape), arg("command", [None, 4])],
                           get_outputs=lambda: [arg("actions", output_shape)])


@pytest.mark.parametrize("output_shape,problem", [
    (["batch", 4, 12], None),
    ([None, 48], None),
    ([4, 12], None),
    (["batch", "n"], "the model's output 'actions' has shape [batch, n] (dynamic dims count as a batch of 1)"),
    (["batch", 4, "joints"], "48 values, the model's output 'actions' has shape [batch, 4, joints]"),
])
def test_dynamic_output_dims_count_as_a_batch_of_one(tmp_path, output_shape, problem):
    pkg, _ = make_package(tmp_path)
    problems = check_model(PolicyPackage.load(pkg).spec, _session(output_shape))
    assert problems == [] if problem is None else len(problems) == 1 and problem in problems[0]
    problems = check_model(PolicyPackage.load(pkg).spec, _session([1, 4, 12], state_shape=("batch", 20)))
    assert problems == ["inputs.state.input: 'state' is fed float32 [1, 24] (24 state values), the model's input "
                        "'state' is float32 [batch, 20]"]


@pytest.mark.parametrize("name", ["g1_vla", "go2_pose"])
def test_the_shipped_packages_pass_every_check(name):
    pkg = PolicyPackage.load(SHIPPED / name)  # their policy.yaml use aliases for the repeated joint lists
    assert pkg.spec.model_files == {}
    OnnxPolicy(pkg)


# ------------------------------------------------------------------ 4. policy.yaml is read safely

def _laughs(levels=9):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ndescription: *a{levels - 1}\n"


def test_a_billion_laughs_policy_yaml_is_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    bomb = _laughs()
    assert len(bomb) < 1024
    (pkg / "policy.yaml").write_text((pkg / "policy.yaml").read_text().replace("name: toy\n", "name: toy\n" + bomb))
    with pytest.raises(PackageError, match=r"YAML aliases expand the document by \d+ nodes; at most 10000"):
        PolicyPackage.load(pkg)
    r = check(pkg)
    assert r.returncode == 1 and "aliases" in r.stderr


@pytest.mark.parametrize("text,match", [
    ("loop: &l [*l]\n", "a recursive YAML alias"),
    ("name: other\n", r"key 'name' appears twice in one mapping \(line \d+\)"),
    ("model: [unclosed\n", "not valid YAML"),
    ("#" * MAX_POLICY_YAML_BYTES + "\n", f"bytes; a policy.yaml may be at most {MAX_POLICY_YAML_BYTES} bytes"),
], ids=["recursive-alias", "duplicate-key", "syntax", "too-large"])
def test_a_policy_yaml_that_is_not_a_plain_document_is_refused(tmp_path, text, match):
    pkg, _ = make_package(tmp_path)
    with open(pkg / "policy.yaml", "a") as f:
        f.write(text)
    with pytest.raises(PackageError, match=match):
        PolicyPackage.load(pkg)


def test_policy_yaml_linked_out_of_the_package_is_refused(tmp_path):
    pkg, _ = make_package(tmp_path)
    (pkg / "policy.yaml").rename(tmp_path / "elsewhere.yaml")
    (pkg / "policy.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with pytest.raises(PackageError, match="'policy.yaml' resolves to .*elsewhere.yaml, outside the package folder"):
        PolicyPackage.load(pkg)


def test_a_huge_value_in_a_wrong_field_gives_a_short_message(tmp_path):
    pkg, _ = make_package(tmp_path, extra={"name": [list(range(i, i + 1000)) for i in range(100)]})
    with pytest.raises(PackageError, match="field 'name' must be str") as e:
        PolicyPackage.load(pkg)
    assert len(str(e.value)) < 400


# ------------------------------------------------------------------ 5. counts are integers >= 1

def _instruction(max_tokens):
    return lambda d: d["inputs"].update(instruction={"input": "tokens", "tokenizer": {
        "kind": "words", "vocab": ["<pad>", "<unk>"], "max_tokens": max_tokens}})


def _camera(**size):
    return lambda d: d["inputs"].update(cameras=[{"name": "head", "height": 8, "width": 8, "input": "img", **size}])


@pytest.mark.parametrize("change,match", [
    (_camera(height=0), r"inputs.cameras\[0\]: field 'height' must be an integer >= 1, found 0"),
    (_camera(width=True), r"inputs.cameras\[0\]: field 'width' must be int, found True"),
    (_camera(width=2.5), r"inputs.cameras\[0\]: field 'width' must be int, found 2.5"),
    (lambda d: d["outputs"].update(chunk_length=0), "outputs: field 'chunk_length' must be an integer >= 1, found 0"),
    (lambda d: d["outputs"].update(chunk_length=True), "outputs: field 'chunk_length' must be int, found True"),
    (_instruction(0), "inputs.instruction.tokenizer: field 'max_tokens' must be an integer >= 1, found 0"),
    (_instruction(False), "inputs.instruction.tokenizer: field 'max_tokens' must be int, found False"),
    (lambda d: d["outputs"].update(rate_hz=float("inf")),
     "outputs: field 'rate_hz' must be a finite number > 0, found inf"),
    (lambda d: d.update(runtime={"intra_op_threads": "2"}), "runtime: field 'intra_op_threads' must be int, found '2'"),
    (lambda d: d["normalization"]["state"].update(mean=[[1, 2], [3]]), "normalization.state: 'mean' must be 24 finite"),
], ids=["height-0", "width-bool", "width-float", "chunk-0", "chunk-bool", "max-tokens-0", "max-tokens-bool",
        "rate-inf", "threads-str", "ragged-mean"])
def test_counts_must_be_integers_of_at_least_one(tmp_path, change, match):
    pkg, _ = make_package(tmp_path)
    edit_yaml(pkg, change)
    with pytest.raises(PackageError, match=match):
        PolicyPackage.load(pkg)

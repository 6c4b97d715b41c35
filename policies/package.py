"""Policy packages: ``policy.yaml`` + ``model.onnx`` (+ its external-data files) + their sha256.

A package says what it needs and what it produces:

  - inputs: cameras (name, size), state fields (by joint name), the instruction and its tokenizer;
  - outputs: the action space (joint targets or whole-body task targets), chunk length, rate;
  - normalisation statistics, and the robots it is compatible with.

``policy.yaml``, in outline (every count is an integer >= 1; booleans are not integers)::

    name: go2_pose
    version: '1'
    robots: [go2]
    model: {file: model.onnx, sha256: <hex>, files: {weights.bin: <hex>}}  # files: external data only
    runtime: {intra_op_threads: 1}
    inputs:
      cameras: [{name: head, height: 96, width: 96, input: image}]  # model input float32 [1, 3, H, W]
      state: {input: state, fields: [{kind: q, joints: [...]}]}     # float32 [1, state_dim]
      instruction: {input: tokens, tokenizer: {kind: words, vocab: [...], max_tokens: 16, stem: true}}  # int64 [1, max_tokens]
      command: {input: command, names: [vx, vy, wz]}                # float32 [1, len(names)]
    outputs: {output: actions, action_space: joint_targets, targets: [...], chunk_length: 10, rate_hz: 50,
              range: {min: [...], max: [...]},   # optional: the actions' bounds, one per target
              feasibility: {output: feasible, threshold: 0.5}}  # optional: P(can be done), 1 value
    normalization: {state: {mean, std}, actions: {mean, std}, image: {mean, std}, command: {mean, std}}

The instruction's words are read in order; a word outside the vocabulary is folded onto one by
common inflections (``stem``) or becomes ``<unk>``; more than ``max_tokens`` words is an error, never
a cut. Where ``outputs.feasibility`` is declared, the server's reply says ``cannot_comply`` when the
model's feasibility output is below the threshold, and the runtime does not act on that chunk;
CANNOT_COMPLY_REPLIES such replies in a row and the runtime reports that the policy cannot comply.

Actions leave the server within ``outputs.range`` (clipped), by default the training distribution's
``normalization.actions`` mean ± 5 std (RANGE_STDS): a model output beyond it is out of what the
policy was trained on, whatever the input.

:func:`PolicyPackage.load` reads ``policy.yaml`` safely, checks the schema and verifies the hash of
every file the model loads (:mod:`vertebra.policies.package_integrity` has the manifest format and
what it refuses). :func:`check_model` compares the model's inputs and outputs (names, dtypes, shapes)
with ``policy.yaml``; :class:`OnnxPolicy` runs it on construction, so ``vertebra serve`` and
``vertebra policy check`` refuse the same packages. :func:`check_against_robot` compares the package
with a robot config and names exactly what disagrees. :class:`OnnxPolicy` runs the model with its
pre- and post-processing.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from vertebra.policies.package_integrity import PackageError, read_policy_yaml, show, verify_model
from vertebra.policies.package_integrity import sha256_file as sha256_file  # re-exported for the exporters

ACTION_SPACES = ("joint_targets", "wbc_targets", "base_velocity")
RANGE_STDS = 5.0  # the default outputs.range: normalization.actions mean +- this many std
# A runtime declares "cannot comply" after this many replies in a row below the feasibility
# threshold; each of them is held, not acted on (one doubtful frame pauses, it does not abort).
CANNOT_COMPLY_REPLIES = 3
STATE_KINDS = ("q", "dq")

@dataclass
class CameraSpec:
    name: str
    height: int
    width: int
    input: str


# Inflections the word tokenizer folds onto a vocabulary word when the word itself is unknown
# ("pointing" -> "point", "waving" -> "wave", "hands" -> "hand", "raised" -> "raise"): (suffix, what
# replaces it), tried in order.
STEMS = (("ing", ""), ("ing", "e"), ("es", ""), ("s", ""), ("ed", ""), ("d", ""))


class InstructionError(ValueError):
    """An instruction the policy cannot read as given (too long): refused, never cut."""


@dataclass
class Tokenizer:
    """Word tokenizer over a fixed vocabulary (lower-cased, punctuation stripped), in word order.

    A word not in the vocabulary is first folded onto one that is by `STEMS` (when `stem`), else it
    becomes the unknown token, whose embedding the training teaches by word dropout. An instruction
    of more than `max_tokens` words is refused (`InstructionError`), never silently cut."""

    vocab: list[str]
    max_tokens: int
    pad: str = "<pad>"
    unknown: str = "<unk>"
    stem: bool = False
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.vocab)}
        for special in (self.pad, self.unknown):
            if special not in self.index:
                raise PackageError(f"tokenizer: the vocabulary must contain '{special}'")
        if len(self.index) != len(self.vocab):
            raise PackageError("tokenizer: a word is listed twice in the vocabulary")

    def words(self, text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def word_id(self, w: str) -> int:
        i = self.index.get(w)
        if i is None and self.stem:
            for suffix, repl in STEMS:
                if w.endswith(suffix) and len(w) > len(suffix) + 1:
                    i = self.index.get(w[: -len(suffix)] + repl)
                    if i is not None:
                        break
        return self.index[self.unknown] if i is None else i

    def encode(self, text: str) -> np.ndarray:
        words = self.words(text)
        if len(words) > self.max_tokens:
            raise InstructionError(f"instruction: {len(words)} words, this policy reads at most {self.max_tokens} "
                                   f"(nothing is cut): {text[:120]!r}")
        ids = [self.word_id(w) for w in words]
        ids += [self.index[self.pad]] * (self.max_tokens - len(ids))
        return np.asarray(ids, dtype=np.int64)

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` that become the unknown token."""
        return [w for w in self.words(text) if self.word_id(w) == self.index[self.unknown]]


@dataclass
class PolicySpec:
    name: str
    version: str
    robots: list[str]
    model_file: str
    model_sha256: str
    cameras: list[CameraSpec]
    state_input: str | None
    state_fields: list[tuple[str, list[str]]]  # (kind, joint names)
    instruction_input: str | None
    tokenizer: Tokenizer | None
    command_input: str | None
    command_names: list[str]
    output: str
    action_space: str
    targets: list[str]
    chunk_length: int
    rate_hz: float
    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    image_mean: np.ndarray
    image_std: np.ndarray
    command_mean: np.ndarray
    command_std: np.ndarray
    intra_op_threads: int = 1
    model_files: dict[str, str] = field(default_factory=dict)  # external-data file -> sha256
    action_min: np.ndarray | None = None  # outputs.range (set by load: declared, or the default)
    action_max: np.ndarray | None = None
    feasibility_output: str | None = None  # outputs.feasibility.output: P(the instruction can be done)
    feasibility_threshold: float = 0.5     # ... below it the policy cannot comply

    @property
    def state_dim(self) -> int:
        return sum(len(j) for _, j in self.state_fields)

    @property
    def action_dim(self) -> int:
        return len(self.targets)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "robots": self.robots, "action_space": self.action_space,
            "targets": self.targets, "chunk_length": self.chunk_length, "rate_hz": self.rate_hz,
            "cameras": [{"name": c.name, "height": c.height, "width": c.width} for c in self.cameras],
            "state_fields": [{"kind": k, "joints": j} for k, j in self.state_fields],
            "instruction": self.tokenizer is not None,
            "command": self.command_names,
            "feasibility": self.feasibility_output is not None,
        }


def _need(d: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise PackageError(f"{where}: field '{key}' is required")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise PackageError(f"{where}: field '{key}' must be {getattr(kind, '__name__', kind)}, found {show(v)}")
    return v


def _count(d: Any, key: str, where: str, default: int | None = None) -> int:
    """An integer >= 1 (not a boolean); ``default`` when given and the field is absent."""
    if default is not None and not (isinstance(d, dict) and key in d):
        return default
    v = _need(d, key, int, where)
    if v < 1:
        raise PackageError(f"{where}: field '{key}' must be an integer >= 1, found {v}")
    return v


def _vec(d: Any, key: str, n: int, where: str, positive: bool = False) -> np.ndarray:
    v = _need(d, key, list, where)
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.shape != (n,) or not np.all(np.isfinite(a)) or (positive and not np.all(a > 0)):
        raise PackageError(f"{where}: '{key}' must be {n} finite{' positive' if positive else ''} numbers")
    return a.astype(np.float32)


@dataclass
class PolicyPackage:
    path: Path
    spec: PolicySpec

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify_hash: bool = True) -> PolicyPackage:
        root = Path(path).resolve()
        yml = root / "policy.yaml"
        if not os.path.lexists(yml):
            raise PackageError(f"{root}: not a policy package (no policy.yaml)")
        where = str(yml)
        d = read_policy_yaml(root, where)
        if not isinstance(d, dict):
            raise PackageError(f"{where}: a mapping of fields is required")
        mfile, sha, model_files = verify_model(root, _need(d, "model", dict, where), where, verify_hash)
        inputs = _need(d, "inputs", dict, where)
        cams = []
        for i, c in enumerate(inputs.get("cameras", []) or []):
            w = f"{where}: inputs.cameras[{i}]"
            cams.append(CameraSpec(_need(c, "name", str, w), _count(c, "height", w), _count(c, "width", w),
                                   _need(c, "input", str, w)))
        st = inputs.get("state")
        fields: list[tuple[str, list[str]]] = []
        st_input = None
        if st is not None:
            st_input = _need(st, "input", str, where + ": inputs.state")
            for i, fd in enumerate(_need(st, "fields", list, where + ": inputs.state")):
                w = f"{where}: inputs.state.fields[{i}]"
                kind = _need(fd, "kind", str, w)
                if kind not in STATE_KINDS:
                    raise PackageError(f"{w}: kind '{kind}' is not one of {', '.join(STATE_KINDS)}")
                fields.append((kind, [str(j) for j in _need(fd, "joints", list, w)]))
        ins = inputs.get("instruction")
        tok = None
        ins_input = None
        if ins is not None:
            w = where + ": inputs.instruction"
            ins_input = _need(ins, "input", str, w)
            t = _need(ins, "tokenizer", dict, w)
            kind = _need(t, "kind", str, w + ".tokenizer")
            if kind != "words":
                raise PackageError(f"{w}.tokenizer: kind '{kind}' is not supported (supported: words)")
            stem = t.get("stem", False)
            if not isinstance(stem, bool):
                raise PackageError(f"{w}.tokenizer: field 'stem' must be true or false, found {show(stem)}")
            tok = Tokenizer([str(x) for x in _need(t, "vocab", list, w + ".tokenizer")],
                            _count(t, "max_tokens", w + ".tokenizer"), stem=stem)
        cmd = inputs.get("command")
        cmd_input, cmd_names = None, []
        if cmd is not None:
            cmd_input = _need(cmd, "input", str, where + ": inputs.command")
            cmd_names = [str(x) for x in _need(cmd, "names", list, where + ": inputs.command")]
        out = _need(d, "outputs", dict, where)
        w = where + ": outputs"
        space = _need(out, "action_space", str, w)
        if space not in ACTION_SPACES:
            raise PackageError(f"{w}: action_space '{space}' is not one of {', '.join(ACTION_SPACES)}")
        targets = [str(x) for x in _need(out, "targets", list, w)]
        chunk = _count(out, "chunk_length", w)
        rate = float(_need(out, "rate_hz", (int, float), w))
        if not (rate > 0 and math.isfinite(rate)):
            raise PackageError(f"{w}: field 'rate_hz' must be a finite number > 0, found {rate}")
        rt = d.get("runtime") or {}
        if not isinstance(rt, dict):
            raise PackageError(f"{where}: field 'runtime' must be a mapping, found {show(rt)}")
        norm = d.get("normalization", {}) or {}
        sdim, adim = sum(len(j) for _, j in fields), len(targets)
        ns, na, ni = norm.get("state", {}), norm.get("actions", {}), norm.get("image", {})
        nc = norm.get("command", {})
        spec = PolicySpec(
            name=_need(d, "name", str, where), version=str(d.get("version", "0")),
            robots=[str(r) for r in _need(d, "robots", list, where)], model_file=mfile, model_sha256=sha,
            cameras=cams, state_input=st_input, state_fields=fields, instruction_input=ins_input, tokenizer=tok,
            command_input=cmd_input, command_names=cmd_names,
            output=_need(out, "output", str, w), action_space=space, targets=targets, chunk_length=chunk, rate_hz=rate,
            state_mean=_vec(ns, "mean", sdim, where + ": normalization.state") if sdim else np.zeros(0, np.float32),
            state_std=_vec(ns, "std", sdim, where + ": normalization.state", True) if sdim else np.ones(0, np.float32),
            action_mean=_vec(na, "mean", adim, where + ": normalization.actions"),
            action_std=_vec(na, "std", adim, where + ": normalization.actions", True),
            image_mean=_vec(ni, "mean", 3, where + ": normalization.image") if cams else np.zeros(3, np.float32),
            image_std=_vec(ni, "std", 3, where + ": normalization.image", True) if cams else np.ones(3, np.float32),
            command_mean=(_vec(nc, "mean", len(cmd_names), where + ": normalization.command") if cmd_names
                          else np.zeros(0, np.float32)),
            command_std=(_vec(nc, "std", len(cmd_names), where + ": normalization.command", True) if cmd_names
                         else np.ones(0, np.float32)),
            intra_op_threads=_count(rt, "intra_op_threads", where + ": runtime", default=1),
            model_files=model_files,
        )
        spec.action_min, spec.action_max = _action_range(out.get("range"), spec, w)
        if "feasibility" in out:  # declared (an empty one is an error, not "none")
            spec.feasibility_output, spec.feasibility_threshold = _feasibility(out["feasibility"], spec, w)
        return cls(root, spec)


def _feasibility(f: Any, spec: PolicySpec, where: str) -> tuple[str | None, float]:
    """outputs.feasibility: {output: <model output, 1 value: P(the instruction can be done)>,
    threshold: <below it: cannot comply; default 0.5>}."""
    w = where + ".feasibility"
    if not isinstance(f, dict) or not set(f) <= {"output", "threshold"}:
        raise PackageError(f"{w}: a mapping with 'output' (and 'threshold') is required, found {show(f)}")
    name = _need(f, "output", str, w)
    if name == spec.output:
        raise PackageError(f"{w}: output '{name}' is the actions' output; the feasibility needs its own")
    th = f.get("threshold", 0.5)
    if isinstance(th, bool) or not isinstance(th, (int, float)) or not 0.0 < th < 1.0:
        raise PackageError(f"{w}: field 'threshold' must be a number in (0, 1), found {show(th)}")
    return name, float(th)


def _action_range(r: Any, spec: PolicySpec, where: str) -> tuple[np.ndarray, np.ndarray]:
    if r is None:
        return (spec.action_mean - RANGE_STDS * spec.action_std, spec.action_mean + RANGE_STDS * spec.action_std)
    if not isinstance(r, dict) or set(r) != {"min", "max"}:
        raise PackageError(f"{where}: 'range' must be a mapping with 'min' and 'max', found {show(r)}")
    lo = _vec(r, "min", spec.action_dim, where + ".range")
    hi = _vec(r, "max", spec.action_dim, where + ".range")
    if not np.all(lo <= hi):
        i = int(np.argmax(lo > hi))
        raise PackageError(f"{where}.range: min {lo[i]:g} > max {hi[i]:g} for target '{spec.targets[i]}'")
    return lo, hi


def check_against_robot(spec: PolicySpec, robot: Any, control_rate_hz: float | None = None,
                        wbc_targets: list[str] | None = None) -> list[str]:
    """Everything that disagrees between a policy package and a robot config (empty: compatible)."""
    problems = []
    names = list(robot.joint_names)
    if robot.name not in spec.robots:
        problems.append(f"robots: the package is for {', '.join(spec.robots)}, not '{robot.name}'")
    for kind, joints in spec.state_fields:
        for j in joints:
            if j not in names:
                problems.append(f"inputs.state ({kind}): joint '{j}' is not a joint of {robot.name}")
    if spec.action_space == "joint_targets":
        if len(spec.targets) != len(names):
            problems.append(f"outputs.targets: {len(spec.targets)} joint targets (DoF), {robot.name} has {len(names)} joints")
        for i, (a, b) in enumerate(zip(spec.targets, names)):
            if a != b:
                problems.append(f"outputs.targets[{i}]: '{a}' where {robot.name}'s motor order has '{b}'")
                break
    else:
        from vertebra.policies.actions import BASE_VELOCITY_TARGETS, walk_target_names

        valid = walk_target_names(robot) if spec.action_space == "base_velocity" else (wbc_targets or [])
        if spec.action_space == "base_velocity":
            if len(list(robot.foot_frames)) != 2:
                problems.append(f"outputs.action_space: base_velocity drives the walk controller, for bipeds; "
                                f"{robot.name} has {len(list(robot.foot_frames))} feet")
            missing = [t for t in BASE_VELOCITY_TARGETS if t not in spec.targets]
            if missing:
                problems.append(f"outputs.targets: base_velocity needs all of {', '.join(BASE_VELOCITY_TARGETS)}; "
                                f"missing {', '.join(missing)}")
        for t in spec.targets:
            if t not in valid:
                problems.append(f"outputs.targets: '{t}' is not a whole-body target of {robot.name}; valid: {', '.join(valid)}")
                break
        # The controller takes a position target whole (the loop refuses a stream with only some axes).
        axes: dict[str, set[str]] = {}
        for t in spec.targets:
            if t in valid and not t.startswith("base_velocity."):
                base, _, axis = t.rpartition(".")
                axes.setdefault(base, set()).add(axis)
        for base, got in axes.items():
            if got != {"x", "y", "z"}:
                problems.append(f"outputs.targets: '{base}' needs all of {base}.x, {base}.y and {base}.z; "
                                f"found {', '.join(sorted(got))}")
        if len(set(spec.targets)) != len(spec.targets):
            problems.append("outputs.targets: a target is listed twice; each takes one column")
    rate = control_rate_hz or robot.control_rate_hz
    if abs(rate / spec.rate_hz - round(rate / spec.rate_hz)) > 1e-9:
        problems.append(f"outputs.rate_hz: {spec.rate_hz:g} Hz does not divide the control rate {rate:g} Hz")
    cams = {c.name: c for c in robot.sim.cameras} if getattr(robot, "sim", None) else {}
    for c in spec.cameras:
        if c.name not in cams:
            problems.append(f"inputs.cameras: camera '{c.name}' is not on {robot.name}; cameras: {', '.join(cams) or 'none'}")
    return problems


_ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(double)": "float64",
              "tensor(float16)": "float16", "tensor(int32)": "int32"}


def _dims(shape: Any) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _declared_inputs(spec: PolicySpec) -> list[tuple[str, str, str, list[int], str]]:
    """(policy.yaml field, model input name, ORT type, shape, where the shape comes from) per input."""
    out = [(f"inputs.cameras[{i}].input", c.input, "tensor(float)", [1, 3, c.height, c.width],
            f"camera '{c.name}' {c.height}x{c.width}") for i, c in enumerate(spec.cameras)]
    if spec.state_input:
        out.append(("inputs.state.input", spec.state_input, "tensor(float)", [1, spec.state_dim],
                    f"{spec.state_dim} state values"))
    if spec.instruction_input and spec.tokenizer:
        out.append(("inputs.instruction.input", spec.instruction_input, "tensor(int64)",
                    [1, spec.tokenizer.max_tokens], f"max_tokens {spec.tokenizer.max_tokens}"))
    if spec.command_input:
        out.append(("inputs.command.input", spec.command_input, "tensor(float)", [1, len(spec.command_names)],
                    f"{len(spec.command_names)} command names"))
    return out


def check_model(spec: PolicySpec, session: Any) -> list[str]:
    """Everything that disagrees between ``policy.yaml`` and the model an onnxruntime ``session``
    opened (empty: consistent): each declared input must be a model input of the right dtype and
    shape (a dynamic dim accepts the size fed), every model input must be fed, and the output must
    be float32 with ``chunk_length x len(targets)`` values; a dynamic output dim counts as a batch of 1."""
    problems = []
    model_inputs = {i.name: i for i in session.get_inputs()}
    fed: dict[str, str] = {}
    for fld, name, dtype, shape, why in _declared_inputs(spec):
        if name in fed:
            problems.append(f"{fld}: '{name}' is also {fed[name]}; each field feeds its own model input")
            continue
        fed[name] = fld
        arg = model_inputs.get(name)
        if arg is None:
            problems.append(f"{fld}: '{name}' is not an input of the model; its inputs: "
                            f"{', '.join(model_inputs) or 'none'}")
            continue
        fits = len(arg.shape) == len(shape) and all(not isinstance(m, int) or m == e for m, e in zip(arg.shape, shape))
        if arg.type != dtype or not fits:
            problems.append(f"{fld}: '{name}' is fed {_ORT_TYPES[dtype]} {_dims(shape)} ({why}), the model's input "
                            f"'{name}' is {_ORT_TYPES.get(arg.type, arg.type)} {_dims(arg.shape)}")
    for name in model_inputs:
        if name not in fed:
            problems.append(f"inputs: the model's input '{name}' is not fed by any field of policy.yaml")
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(spec.output)
    if out is None:
        problems.append(f"outputs.output: '{spec.output}' is not an output of the model; its outputs: "
                        f"{', '.join(outputs) or 'none'}")
        return problems
    if out.type != "tensor(float)":
        problems.append(f"outputs.output: '{spec.output}' must be float32, the model's output is "
                        f"{_ORT_TYPES.get(out.type, out.type)}")
    if spec.feasibility_output is not None:
        fo = outputs.get(spec.feasibility_output)
        if fo is None:
            problems.append(f"outputs.feasibility.output: '{spec.feasibility_output}' is not an output of the model; "
                            f"its outputs: {', '.join(outputs)}")
        elif fo.type != "tensor(float)" or math.prod(d for d in fo.shape if isinstance(d, int)) != 1:
            problems.append(f"outputs.feasibility.output: '{spec.feasibility_output}' must be one float32 value, the "
                            f"model's is {_ORT_TYPES.get(fo.type, fo.type)} {_dims(fo.shape)}")
    want = spec.chunk_length * spec.action_dim
    static = [d for d in out.shape if isinstance(d, int)]
    if math.prod(static) != want:
        dynamic = " (dynamic dims count as a batch of 1)" if len(static) < len(out.shape) else ""
        problems.append(f"outputs.chunk_length: {spec.chunk_length} x {spec.action_dim} targets = {want} values, the "
                        f"model's output '{spec.output}' has shape {_dims(out.shape)}{dynamic}")
    return problems


class OnnxPolicy:
    """A package's model with its pre-processing (image resize/normalise, tokenisation, state
    normalisation) and post-processing (action de-normalisation). Construction opens the model with
    onnxruntime and refuses it (:class:`PackageError`) where :func:`check_model` finds a problem."""

    def __init__(self, package: PolicyPackage, intra_op_threads: int | None = None):
        s = package.spec
        model = package.path / s.model_file
        try:
            import onnxruntime as ort
        except ImportError:
            raise PackageError(f"{model}: onnxruntime is not installed (pip install 'vertebra[serve]')") from None
        self.package = package
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_op_threads or s.intra_op_threads
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's errors (Fail, InvalidProtobuf, InvalidGraph...) derive from Exception
            raise PackageError(f"{model}: onnxruntime cannot load the model: {' '.join(str(e).split())}") from None
        problems = check_model(s, self.session)
        if problems:
            raise PackageError(f"{package.path / 'policy.yaml'}: " + "; ".join(problems))
        self.joint_index: dict[str, int] = {}

    @property
    def spec(self) -> PolicySpec:
        return self.package.spec

    def set_joint_names(self, names: list[str]) -> None:
        self.joint_index = {n: i for i, n in enumerate(names)}

    def preprocess(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        s = self.spec
        feeds: dict[str, np.ndarray] = {}
        images = obs.get("images", {}) or {}
        for c in s.cameras:
            img = images.get(c.name)
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"observation: camera '{c.name}' must be a HxWx3 uint8 image")
            if img.shape[:2] != (c.height, c.width):
                img = resize_nearest(img, c.height, c.width)
            x = (img.astype(np.float32) / 255.0 - s.image_mean) / s.image_std
            feeds[c.input] = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        if s.state_input:
            state = obs.get("state", {}) or {}
            parts = []
            for kind, joints in s.state_fields:
                v = state.get(kind)
                if not isinstance(v, np.ndarray):
                    raise ValueError(f"observation: state field '{kind}' (an array) is required")
                if not self.joint_index:  # never by position: the first N values may be other joints
                    raise ValueError("observation: no joint mapping (the client's hello joint_names) to read "
                                     f"state '{kind}' by name")
                idx = [self.joint_index[j] for j in joints]
                with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below
                    parts.append(np.asarray(v, dtype=np.float32)[idx])
            x = (np.concatenate(parts) - s.state_mean) / s.state_std
            feeds[s.state_input] = x[None].astype(np.float32)
        if s.command_input:
            c = obs.get("command")
            if not isinstance(c, np.ndarray) or c.shape != (len(s.command_names),):
                raise ValueError(f"observation: 'command' must be an array of {len(s.command_names)} values "
                                 f"({', '.join(s.command_names)})")
            feeds[s.command_input] = ((c.astype(np.float32) - s.command_mean) / s.command_std)[None].astype(np.float32)
        if s.instruction_input and s.tokenizer:
            text = obs.get("instruction", "")
            if not isinstance(text, str):
                raise ValueError("observation: 'instruction' must be a string")
            feeds[s.instruction_input] = s.tokenizer.encode(text)[None]
        for name, x in feeds.items():  # what the model reads (float32 copies: a 1e300 became inf here)
            if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise ValueError(f"observation: input '{name}' is not finite after conversion to float32 "
                                 "(NaN, infinity or beyond +-3.4e38)")
        return feeds

    def infer(self, obs: dict[str, Any]) -> np.ndarray:
        """De-normalised actions [chunk, dim], not yet limited (the server checks them, then limits)."""
        return self.infer_all(obs)[0]

    def infer_all(self, obs: dict[str, Any]) -> tuple[np.ndarray, float | None]:
        """(de-normalised actions [chunk, dim], the feasibility output or None where none is declared)."""
        s = self.spec
        names = [s.output] + ([s.feasibility_output] if s.feasibility_output else [])
        outs = self.session.run(names, self.preprocess(obs))
        a = np.asarray(outs[0], dtype=np.float32).reshape(s.chunk_length, s.action_dim)
        feasible = float(np.asarray(outs[1], dtype=np.float64).reshape(-1)[0]) if s.feasibility_output else None
        return a * s.action_std + s.action_mean, feasible


def resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize (the camera and the model disagree on size)."""
    ys = (np.arange(h) * img.shape[0] / h).astype(np.int64)
    xs = (np.arange(w) * img.shape[1] / w).astype(np.int64)
    return img[ys][:, xs]

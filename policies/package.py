"""Policy packages: ``policy.yaml`` + ``model.onnx`` + the model's sha256.

A package says what it needs and what it produces:

  - inputs: cameras (name, size), state fields (by joint name), the instruction and its tokenizer;
  - outputs: the action space (joint targets or whole-body task targets), chunk length, rate;
  - normalisation statistics, and the robots it is compatible with.

:func:`PolicyPackage.load` checks the file, the hash and the schema. :func:`check_against_robot`
compares the package with a robot config and names exactly what disagrees (see ``vertebra policy
check``). :class:`OnnxPolicy` runs the model with its pre- and post-processing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ACTION_SPACES = ("joint_targets", "wbc_targets")
STATE_KINDS = ("q", "dq")


class PackageError(ValueError):
    """A policy package is unreadable or inconsistent; the message names the file and field."""


@dataclass
class CameraSpec:
    name: str
    height: int
    width: int
    input: str


@dataclass
class Tokenizer:
    """Whitespace word tokenizer over a fixed vocabulary (lower-cased, punctuation stripped)."""

    vocab: list[str]
    max_tokens: int
    pad: str = "<pad>"
    unknown: str = "<unk>"
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.vocab)}
        for special in (self.pad, self.unknown):
            if special not in self.index:
                raise PackageError(f"tokenizer: the vocabulary must contain '{special}'")

    def encode(self, text: str) -> np.ndarray:
        words = re.findall(r"[a-z0-9]+", text.lower())[: self.max_tokens]
        ids = [self.index.get(w, self.index[self.unknown]) for w in words]
        ids += [self.index[self.pad]] * (self.max_tokens - len(ids))
        return np.asarray(ids, dtype=np.int64)


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
        }


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _need(d: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise PackageError(f"{where}: field '{key}' is required")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise PackageError(f"{where}: field '{key}' must be {getattr(kind, '__name__', kind)}, found {v!r}")
    return v


def _vec(d: Any, key: str, n: int, where: str, positive: bool = False) -> np.ndarray:
    v = _need(d, key, list, where)
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (n,) or not np.all(np.isfinite(a)) or (positive and not np.all(a > 0)):
        raise PackageError(f"{where}: '{key}' must be {n} finite{' positive' if positive else ''} numbers")
    return a.astype(np.float32)


@dataclass
class PolicyPackage:
    path: Path
    spec: PolicySpec

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify_hash: bool = True) -> PolicyPackage:
        root = Path(path)
        yml = root / "policy.yaml"
        if not yml.is_file():
            raise PackageError(f"{root}: not a policy package (no policy.yaml)")
        where = str(yml)
        with open(yml) as f:
            d = yaml.safe_load(f)
        if not isinstance(d, dict):
            raise PackageError(f"{where}: a mapping of fields is required")
        model = _need(d, "model", dict, where)
        mfile = _need(model, "file", str, where + ": model")
        sha = _need(model, "sha256", str, where + ": model")
        mpath = root / mfile
        if not mpath.is_file():
            raise PackageError(f"{where}: model file {mpath} is missing")
        if verify_hash:
            found = sha256_file(mpath)
            if found != sha.lower():
                raise PackageError(f"{mpath}: sha256 {found} does not match policy.yaml's {sha} (corrupted or replaced)")
        inputs = _need(d, "inputs", dict, where)
        cams = []
        for i, c in enumerate(inputs.get("cameras", []) or []):
            w = f"{where}: inputs.cameras[{i}]"
            cams.append(CameraSpec(_need(c, "name", str, w), int(_need(c, "height", int, w)), int(_need(c, "width", int, w)),
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
            tok = Tokenizer([str(x) for x in _need(t, "vocab", list, w + ".tokenizer")],
                            int(_need(t, "max_tokens", int, w + ".tokenizer")))
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
        chunk = int(_need(out, "chunk_length", int, w))
        rate = float(_need(out, "rate_hz", (int, float), w))
        if chunk < 1 or not rate > 0:
            raise PackageError(f"{w}: chunk_length must be >= 1 and rate_hz > 0")
        norm = d.get("normalization", {}) or {}
        sdim, adim = sum(len(j) for _, j in fields), len(targets)
        ns, na, ni = norm.get("state", {}), norm.get("actions", {}), norm.get("image", {})
        nc = norm.get("command", {})
        spec = PolicySpec(
            name=_need(d, "name", str, where), version=str(d.get("version", "0")),
            robots=[str(r) for r in _need(d, "robots", list, where)], model_file=mfile, model_sha256=sha.lower(),
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
            intra_op_threads=int((d.get("runtime") or {}).get("intra_op_threads", 1)),
        )
        return cls(root, spec)


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
        valid = wbc_targets or []
        for t in spec.targets:
            if t not in valid:
                problems.append(f"outputs.targets: '{t}' is not a whole-body target of {robot.name}; valid: {', '.join(valid)}")
                break
        # The controller takes a position target whole (the loop refuses a stream with only some axes).
        axes: dict[str, set[str]] = {}
        for t in spec.targets:
            if t in valid:
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


class OnnxPolicy:
    """A package's model with its pre-processing (image resize/normalise, tokenisation, state
    normalisation) and post-processing (action de-normalisation)."""

    def __init__(self, package: PolicyPackage, intra_op_threads: int | None = None):
        import onnxruntime as ort

        self.package = package
        s = package.spec
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_op_threads or s.intra_op_threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(package.path / s.model_file), so, providers=["CPUExecutionProvider"])
        names_in = {i.name for i in self.session.get_inputs()}
        wanted = [c.input for c in s.cameras] + [x for x in (s.state_input, s.instruction_input, s.command_input) if x]
        missing = [w for w in wanted if w not in names_in]
        if missing:
            raise PackageError(f"{package.path}: model has no input(s) {', '.join(missing)}; it has {', '.join(sorted(names_in))}")
        if s.output not in {o.name for o in self.session.get_outputs()}:
            raise PackageError(f"{package.path}: model has no output '{s.output}'")
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
                if self.joint_index:
                    idx = [self.joint_index[j] for j in joints]
                    parts.append(np.asarray(v, dtype=np.float32)[idx])
                else:
                    parts.append(np.asarray(v, dtype=np.float32)[: len(joints)])
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
        return feeds

    def infer(self, obs: dict[str, Any]) -> np.ndarray:
        out = self.session.run([self.spec.output], self.preprocess(obs))[0]
        a = np.asarray(out, dtype=np.float32).reshape(self.spec.chunk_length, self.spec.action_dim)
        return a * self.spec.action_std + self.spec.action_mean


def resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize (the camera and the model disagree on size)."""
    ys = (np.arange(h) * img.shape[0] / h).astype(np.int64)
    xs = (np.arange(w) * img.shape[1] / w).astype(np.int64)
    return img[ys][:, xs]

"""Validated configuration classes for robots (``configs/robots/<name>.yaml``).

Every field is checked on load. A bad field raises :class:`ConfigError` naming the file, the
field (dotted path), the value found and what is valid. Units are in field names.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class ConfigError(ValueError):
    """A configuration value is missing or invalid."""

    def __init__(self, file: str | os.PathLike[str], field_path: str, found: Any, valid: str):
        self.file = str(file)
        self.field = field_path
        self.found = found
        self.valid = valid
        super().__init__(f"{self.file}: field '{field_path}': found {found!r}; valid: {valid}")


_MISSING = object()


class _Reader:
    """Typed access to a YAML mapping that reports errors with file and dotted field path."""

    def __init__(self, file: str | os.PathLike[str], data: Any, prefix: str = ""):
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            raise ConfigError(file, prefix or "<root>", data, "a mapping of fields")
        self.data = data

    def path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.prefix}[{key}]"
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str | int, found: Any, valid: str) -> ConfigError:
        return ConfigError(self.file, self.path(key), found, valid)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "<missing>", "a value is required")
            return default
        return self.data[key]

    def sub(self, key: str, default: Any = _MISSING) -> _Reader:
        return _Reader(self.file, self.get(key, default), self.path(key))

    def string(self, key: str, default: Any = _MISSING, pattern: str | None = None) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or not v or (pattern and not re.fullmatch(pattern, v)):
            raise self.error(key, v, f"a non-empty string{' matching ' + pattern if pattern else ''}")
        return v

    def number(self, key: str, default: Any = _MISSING, lo: float = -math.inf, hi: float = math.inf,
               lo_open: bool = False) -> float:
        v = self.get(key, default)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if ok:
            ok = (v > lo if lo_open else v >= lo) and v <= hi
        if not ok:
            lo_s = f"{'>' if lo_open else '>='} {lo}" if lo != -math.inf else ""
            hi_s = f"<= {hi}" if hi != math.inf else ""
            raise self.error(key, v, "a finite number " + " and ".join(s for s in (lo_s, hi_s) if s))
        return float(v)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, v, "true or false")
        return v

    def vector(self, key: str, size: int, default: Any = _MISSING) -> list[float]:
        v = self.get(key, default)
        if (not isinstance(v, list) or len(v) != size
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise self.error(key, v, f"a list of {size} finite numbers")
        return [float(x) for x in v]

    def items(self, key: str, default: Any = _MISSING) -> list[_Reader]:
        v = self.get(key, default)
        if not isinstance(v, list) or not v:
            raise self.error(key, v, "a non-empty list")
        return [_Reader(self.file, item, f"{self.path(key)}[{i}]") for i, item in enumerate(v)]

    def reject_unknown(self, known: set[str]) -> None:
        for k in self.data:
            if k not in known:
                raise self.error(str(k), self.data[k], f"a known field: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class JointConfig:
    name: str
    motor_index: int
    q_min_rad: float
    q_max_rad: float
    dq_max_rad_s: float
    tau_max_nm: float
    default_rad: float
    kp: float
    kd: float
    kd_damping: float


@dataclass(frozen=True)
class JointDynamics:
    """Simulator joint properties for the joints whose name matches ``match`` (regex)."""

    match: str
    armature_kg_m2: float
    damping_nm_s_rad: float
    frictionloss_nm: float


@dataclass(frozen=True)
class CameraConfig:
    name: str
    body: str
    pos_m: list[float]
    xyaxes: list[float]  # camera x and y axes in the body frame (MuJoCo convention, looks along -z)
    fovy_deg: float
    width_px: int
    height_px: int


@dataclass(frozen=True)
class HoistConfig:
    clearance_m: float
    stiffness_n_m: float
    damping_n_s_m: float
    lateral_stiffness_n_m: float
    rot_stiffness_nm_rad: float
    rot_damping_nms_rad: float
    lower_speed_m_s: float


@dataclass(frozen=True)
class SimConfig:
    sim_rate_hz: float
    friction: float
    joint_dynamics: list[JointDynamics]
    hoist: HoistConfig
    cameras: list[CameraConfig]
    noise_q_rad: float = 0.0
    noise_dq_rad_s: float = 0.0
    noise_gyro_rad_s: float = 0.0
    noise_acc_m_s2: float = 0.0
    command_latency_ms: float = 0.0


@dataclass(frozen=True)
class WbcTaskConfig:
    kp: float
    kd: float
    weight: list[float]  # per axis [x, y, z, rx, ry, rz] (3-D tasks: first 3; posture: one value)


@dataclass(frozen=True)
class WbcConfig:
    flat_feet: bool
    sole_offset_m: list[float]
    sole_half_length_m: float
    sole_half_width_m: float
    friction: float
    min_normal_force_n: float
    max_normal_force_n: float
    ramp_s: float
    torso_frame: str
    tasks: dict[str, WbcTaskConfig]
    output_kp_scale: float
    output_kd_scale: float


@dataclass(frozen=True)
class RobotConfig:
    """A robot: its description, joints in motor-index order, limits, gains, frames, simulator."""

    file: str
    name: str
    description: str
    urdf_path: Path
    control_rate_hz: float
    max_gain_scale: float
    joints: list[JointConfig]
    base_frame: str
    imu_frame: str
    foot_frames: list[str]
    sole_offset_m: float
    hand_frames: list[str]
    sim: SimConfig
    wbc: WbcConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def column(self, attr: str) -> list[float]:
        return [float(getattr(j, attr)) for j in self.joints]

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> RobotConfig:
        """Load ``configs/robots/<name>.yaml`` or a YAML file path and validate it."""
        path = Path(name_or_path)
        if not path.suffix:
            path = CONFIG_DIR / "robots" / f"{name_or_path}.yaml"
            if not path.exists():
                raise ConfigError(path, "<file>", str(name_or_path), "one of: " + ", ".join(available_robots()))
        if not path.exists():
            raise ConfigError(path, "<file>", str(path), "an existing YAML file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(path, "<file>", "invalid YAML", str(e).replace("\n", " ")) from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, file: str | os.PathLike[str] = "<dict>") -> RobotConfig:
        r = _Reader(file, data)
        r.reject_unknown({"name", "description", "urdf", "control_rate_hz", "max_gain_scale", "joints", "frames",
                          "sim", "wbc", "extra"})
        urdf_path = _resolve_urdf(r.sub("urdf"))
        joints = _read_joints(r)
        frames = r.sub("frames")
        frames.reject_unknown({"base", "imu", "feet", "sole_offset_m", "hands"})
        cfg = cls(
            file=str(file),
            name=r.string("name", pattern=r"[a-z0-9_]+"),
            description=r.string("description", ""),
            urdf_path=urdf_path,
            control_rate_hz=r.number("control_rate_hz", 500.0, lo=50, hi=2000),
            max_gain_scale=r.number("max_gain_scale", 1.5, lo=1.0, hi=10.0),
            joints=joints,
            base_frame=frames.string("base"),
            imu_frame=frames.string("imu"),
            foot_frames=[_str_item(frames, "feet", i, v) for i, v in enumerate(_list(frames, "feet"))],
            sole_offset_m=frames.number("sole_offset_m", lo=0.0, hi=0.2),
            hand_frames=[_str_item(frames, "hands", i, v) for i, v in enumerate(frames.get("hands", []) or [])],
            sim=_read_sim(r.sub("sim"), [j.name for j in joints]),
            wbc=(_read_wbc(r.sub("wbc"), list(frames.get("hands", []) or []))
                 if r.get("wbc", None) is not None else None),
            extra=dict(r.get("extra", {}) or {}),
        )
        _check_against_urdf(cfg, r)
        for i, j in enumerate(cfg.joints):  # the limiter would clamp damping above the gain ceiling
            if j.kd_damping > cfg.max_gain_scale * j.kd + 1e-12:
                raise ConfigError(file, f"joints[{i}].kd_damping", j.kd_damping,
                                  f"<= max_gain_scale x kd = {cfg.max_gain_scale * j.kd:g} (the kd ceiling)")
        return cfg


def available_robots() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "robots").glob("*.yaml"))


def example_robot_data_dir() -> Path:
    """Where the example-robot-data wheel put its robots (``<site>/cmeel.prefix/share/example-robot-data``)."""
    import sys

    for entry in sys.path:
        candidate = Path(entry) / "cmeel.prefix" / "share" / "example-robot-data"
        if (candidate / "robots").is_dir():
            return candidate
    raise FileNotFoundError("example-robot-data is not installed (pip install example-robot-data; scripts/setup.sh does)")


def _list(r: _Reader, key: str) -> list[Any]:
    v = r.get(key)
    if not isinstance(v, list) or not v:
        raise r.error(key, v, "a non-empty list")
    return v


def _str_item(r: _Reader, key: str, i: int, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(r.file, f"{r.path(key)}[{i}]", v, "a frame name")
    return v


def _resolve_urdf(u: _Reader) -> Path:
    u.reject_unknown({"package", "path"})
    package = u.string("package")
    rel = u.string("path")
    if package == "example-robot-data":
        base = example_robot_data_dir()
    elif package == "repo":
        base = REPO_ROOT
    else:
        raise u.error("package", package, "example-robot-data or repo")
    path = base / rel
    if not path.is_file():
        raise u.error("path", rel, f"a URDF file under {base}")
    return path


def _read_joints(r: _Reader) -> list[JointConfig]:
    joints = []
    names = set()
    for i, j in enumerate(r.items("joints")):
        j.reject_unknown({"name", "motor", "q_min_rad", "q_max_rad", "dq_max_rad_s", "tau_max_nm", "default_rad",
                          "kp", "kd", "kd_damping"})
        name = j.string("name")
        if name in names:
            raise j.error("name", name, "a joint name not already listed")
        names.add(name)
        motor = j.get("motor")
        if motor != i or isinstance(motor, bool):
            raise j.error("motor", motor, f"{i}: joints are listed in motor-index order")
        q_min = j.number("q_min_rad", lo=-2 * math.pi, hi=2 * math.pi)
        q_max = j.number("q_max_rad", lo=-2 * math.pi, hi=2 * math.pi)
        if q_max <= q_min:
            raise j.error("q_max_rad", q_max, f"greater than q_min_rad ({q_min})")
        default = j.number("default_rad", lo=q_min, hi=q_max)
        kp = j.number("kp", lo=0.0, hi=2000.0)
        joints.append(JointConfig(
            name=name, motor_index=i, q_min_rad=q_min, q_max_rad=q_max,
            dq_max_rad_s=j.number("dq_max_rad_s", lo=0.0, hi=100.0, lo_open=True),
            tau_max_nm=j.number("tau_max_nm", lo=0.0, hi=1000.0, lo_open=True),
            default_rad=default, kp=kp, kd=j.number("kd", lo=0.0, hi=200.0),
            kd_damping=j.number("kd_damping", lo=0.0, hi=200.0),
        ))
    return joints


def _read_sim(s: _Reader, joint_names: list[str]) -> SimConfig:
    s.reject_unknown({"sim_rate_hz", "friction", "joint_dynamics", "hoist", "cameras", "noise", "command_latency_ms"})
    dyn = []
    covered: set[str] = set()
    for d in s.items("joint_dynamics"):
        d.reject_unknown({"match", "armature_kg_m2", "damping_nm_s_rad", "frictionloss_nm"})
        pattern = d.string("match")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise d.error("match", pattern, f"a valid regular expression ({e})") from None
        hits = [n for n in joint_names if rx.search(n)]
        if not hits:
            raise d.error("match", pattern, "a regex matching at least one joint: " + ", ".join(joint_names))
        covered.update(hits)
        dyn.append(JointDynamics(pattern, d.number("armature_kg_m2", lo=0.0, hi=1.0),
                                 d.number("damping_nm_s_rad", lo=0.0, hi=10.0), d.number("frictionloss_nm", lo=0.0, hi=10.0)))
    missing = [n for n in joint_names if n not in covered]
    if missing:
        raise s.error("joint_dynamics", "<no entry for " + ", ".join(missing) + ">", "entries covering every joint")
    h = s.sub("hoist")
    h.reject_unknown({"clearance_m", "stiffness_n_m", "damping_n_s_m", "lateral_stiffness_n_m", "rot_stiffness_nm_rad",
                      "rot_damping_nms_rad", "lower_speed_m_s"})
    hoist = HoistConfig(
        clearance_m=h.number("clearance_m", lo=0.02, hi=1.0),
        stiffness_n_m=h.number("stiffness_n_m", lo=100.0, hi=1e5),
        damping_n_s_m=h.number("damping_n_s_m", lo=0.0, hi=1e4),
        lateral_stiffness_n_m=h.number("lateral_stiffness_n_m", lo=0.0, hi=1e5),
        rot_stiffness_nm_rad=h.number("rot_stiffness_nm_rad", lo=0.0, hi=1e4),
        rot_damping_nms_rad=h.number("rot_damping_nms_rad", lo=0.0, hi=1e3),
        lower_speed_m_s=h.number("lower_speed_m_s", lo=0.01, hi=1.0),
    )
    cams = []
    for c in (s.items("cameras") if s.get("cameras", None) else []):
        c.reject_unknown({"name", "body", "pos_m", "xyaxes", "fovy_deg", "width_px", "height_px"})
        cams.append(CameraConfig(c.string("name"), c.string("body"), c.vector("pos_m", 3), c.vector("xyaxes", 6),
                                 c.number("fovy_deg", lo=10, hi=170), int(c.number("width_px", 224, lo=16, hi=4096)),
                                 int(c.number("height_px", 224, lo=16, hi=4096))))
    noise = s.sub("noise", {})
    noise.reject_unknown({"q_rad", "dq_rad_s", "gyro_rad_s", "acc_m_s2"})
    sim_rate = s.number("sim_rate_hz", 2000.0, lo=100.0, hi=10000.0)
    return SimConfig(
        sim_rate_hz=sim_rate, friction=s.number("friction", 1.0, lo=0.05, hi=3.0), joint_dynamics=dyn, hoist=hoist,
        cameras=cams,
        noise_q_rad=noise.number("q_rad", 0.0, lo=0.0, hi=0.1), noise_dq_rad_s=noise.number("dq_rad_s", 0.0, lo=0.0, hi=5.0),
        noise_gyro_rad_s=noise.number("gyro_rad_s", 0.0, lo=0.0, hi=5.0),
        noise_acc_m_s2=noise.number("acc_m_s2", 0.0, lo=0.0, hi=10.0),
        command_latency_ms=s.number("command_latency_ms", 0.0, lo=0.0, hi=100.0),
    )


_WBC_TASKS = {"com": 3, "base": 6, "torso": 6, "hands": 6, "swing_foot": 6, "posture": 1}


def _read_wbc(w: _Reader, hands: list[str]) -> WbcConfig:
    w.reject_unknown({"contacts", "torso_frame", "tasks", "output"})
    c = w.sub("contacts")
    c.reject_unknown({"type", "sole_offset_m", "sole_half_length_m", "sole_half_width_m", "friction",
                      "min_normal_force_n", "max_normal_force_n", "ramp_s"})
    kind = c.string("type")
    if kind not in ("flat", "point"):
        raise c.error("type", kind, "flat (6-D sole contacts) or point (3-D foot contacts)")
    fmin = c.number("min_normal_force_n", lo=0.0, hi=1000.0)
    fmax = c.number("max_normal_force_n", lo=1.0, hi=1e5)
    if fmax <= fmin:
        raise c.error("max_normal_force_n", fmax, f"greater than min_normal_force_n ({fmin})")
    t = w.sub("tasks")
    t.reject_unknown(set(_WBC_TASKS))
    tasks = {}
    for name in t.data:
        tr = t.sub(name)
        tr.reject_unknown({"kp", "kd", "weight"})
        size = _WBC_TASKS[name]
        weight = tr.get("weight")
        if not isinstance(weight, list) or len(weight) != size or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in weight):
            raise tr.error("weight", weight, f"a list of {size} finite numbers >= 0")
        tasks[name] = WbcTaskConfig(tr.number("kp", lo=0.0, hi=1e4), tr.number("kd", lo=0.0, hi=1e3),
                                    [float(x) for x in weight])
    required = ["com", "base", "posture", "swing_foot"]
    if w.get("torso_frame", None):
        required.append("torso")
    if hands:
        required.append("hands")
    for name in required:
        if name not in tasks:
            raise t.error(name, "<missing>", "a task entry: com, base, posture and swing_foot are required, torso with "
                                             "torso_frame, hands when frames.hands lists hands")
    o = w.sub("output")
    o.reject_unknown({"kp_scale", "kd_scale"})
    flat = kind == "flat"
    return WbcConfig(
        flat_feet=flat, sole_offset_m=c.vector("sole_offset_m", 3),
        sole_half_length_m=c.number("sole_half_length_m", 0.0 if not flat else _MISSING, lo=0.0 if not flat else 0.01, hi=0.5),
        sole_half_width_m=c.number("sole_half_width_m", 0.0 if not flat else _MISSING, lo=0.0 if not flat else 0.005, hi=0.5),
        friction=c.number("friction", lo=0.05, hi=2.0), min_normal_force_n=fmin, max_normal_force_n=fmax,
        ramp_s=c.number("ramp_s", 0.1, lo=0.002, hi=5.0), torso_frame=w.get("torso_frame", "") or "",
        tasks=tasks, output_kp_scale=o.number("kp_scale", lo=0.0, hi=1.0), output_kd_scale=o.number("kd_scale", lo=0.0, hi=1.0),
    )


def _check_against_urdf(cfg: RobotConfig, r: _Reader) -> None:
    """The YAML may tighten the URDF's limits, never widen them; frames must exist."""
    from vertebra import _rt

    try:
        model = _rt.RobotModel(str(cfg.urdf_path), cfg.joint_names)
    except ValueError as e:
        raise ConfigError(cfg.file, "joints", [j.name for j in cfg.joints], str(e)) from None
    lim = model.limits
    for i, j in enumerate(cfg.joints):
        jr = f"joints[{i}]"
        tol = 1e-6
        if j.q_min_rad < lim["lower"][i] - tol:
            raise ConfigError(cfg.file, f"{jr}.q_min_rad", j.q_min_rad, f">= URDF lower limit {lim['lower'][i]}")
        if j.q_max_rad > lim["upper"][i] + tol:
            raise ConfigError(cfg.file, f"{jr}.q_max_rad", j.q_max_rad, f"<= URDF upper limit {lim['upper'][i]}")
        if j.dq_max_rad_s > lim["velocity"][i] + tol:
            raise ConfigError(cfg.file, f"{jr}.dq_max_rad_s", j.dq_max_rad_s, f"<= URDF velocity limit {lim['velocity'][i]}")
        if j.tau_max_nm > lim["effort"][i] + tol:
            raise ConfigError(cfg.file, f"{jr}.tau_max_nm", j.tau_max_nm, f"<= URDF effort limit {lim['effort'][i]}")
    frames = set(model.frame_names)
    checks: list[tuple[str, str]] = [("frames.base", cfg.base_frame), ("frames.imu", cfg.imu_frame)]
    checks += [(f"frames.feet[{i}]", f) for i, f in enumerate(cfg.foot_frames)]
    checks += [(f"frames.hands[{i}]", f) for i, f in enumerate(cfg.hand_frames)]
    checks += [(f"sim.cameras[{i}].body", c.body) for i, c in enumerate(cfg.sim.cameras)]
    if cfg.wbc is not None and cfg.wbc.torso_frame:
        checks.append(("wbc.torso_frame", cfg.wbc.torso_frame))
    for where, name in checks:
        if name not in frames:
            raise ConfigError(cfg.file, where, name, "a frame of the URDF: " + ", ".join(sorted(frames)))


def robot_params(cfg: RobotConfig) -> Any:
    """The C++ RobotParams (motor order) for a robot config."""
    from vertebra import _rt

    return _rt.RobotParams(
        kp=cfg.column("kp"), kd=cfg.column("kd"), kd_damping=cfg.column("kd_damping"),
        kp_max=[cfg.max_gain_scale * j.kp for j in cfg.joints], kd_max=[cfg.max_gain_scale * j.kd for j in cfg.joints],
        q_lower=cfg.column("q_min_rad"), q_upper=cfg.column("q_max_rad"), dq_max=cfg.column("dq_max_rad_s"),
        tau_max=cfg.column("tau_max_nm"), default_pose=cfg.column("default_rad"),
    )




def loop_config(rate_hz: float, lockstep: bool = False, realtime_priority: bool = True) -> Any:
    """The runtime's C++ loop settings: in real time the loop thread gets its own core (the last
    one, when there is more than one), SCHED_FIFO and the loop's default 100 µs final spin."""
    from vertebra import _rt

    cfg = _rt.LoopConfig()
    cfg.rate_hz = rate_hz
    cfg.lockstep = lockstep
    cfg.realtime_priority = realtime_priority
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not lockstep and len(cpus) > 1:
        cfg.cpu = cpus[-1]
    return cfg

"""Safety configuration (``configs/safety/<robot>.yaml``): monitor thresholds, the response each
fault gets, the e-stop category and the settle-then-cut keyframes.

Validated on load like the robot config (:class:`vertebra.runtime.config.ConfigError` names the file,
the field, what was found and what is valid), then turned into the C++ ``SafetyConfig``.
Settle keyframes name joints by substring of their names (``knee`` matches both knees); joints not
named keep the robot's default pose; every keyframe must lie inside the joints' soft limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from vertebra import _rt
from vertebra.runtime.config import CONFIG_DIR, ConfigError, RobotConfig, _Reader

SAFETY_DIR = CONFIG_DIR / "safety"
RESPONSES = ("warn", "derate", "hold", "stop", "damp", "cut")
FAULTS: tuple[str, ...] = tuple(_rt.fault_names())


@dataclass
class SettleKeyframe:
    duration_s: float
    pose: dict[str, float]


@dataclass
class SafetySettings:
    robot: str
    file: str
    state_timeout_ms: float
    frozen_ms: float
    tilt_warn_deg: float
    fall_tilt_deg: float
    fall_height_m: float
    fall_rate_rad_s: float
    soft_limit_margin_rad: float
    hard_limit_tolerance_rad: float
    joint_limit_monitor: bool
    velocity_fault_scale: float
    torque_fault_scale: float
    temp_warn_c: float
    temp_derate_c: float
    temp_stop_c: float
    temp_hysteresis_c: float
    derate_scale: float
    motor_error_monitor: bool
    battery_warn_v: float
    battery_stop_v: float
    battery_hysteresis_v: float
    battery_sim_v: float
    starvation_hold_ms: float
    starvation_stop_ms: float
    overrun_window_ticks: int
    overrun_max: int
    rate_limit_scale: float
    estop: str
    responses: dict[str, str] = field(default_factory=dict)
    settle: list[SettleKeyframe] = field(default_factory=list)
    settle_hold_s: float = 0.5

    @classmethod
    def load(cls, robot: str | RobotConfig, path: str | os.PathLike[str] | None = None) -> SafetySettings:
        rcfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        p = Path(path) if path is not None else SAFETY_DIR / f"{rcfg.name}.yaml"
        if not p.is_file():
            have = sorted(x.stem for x in SAFETY_DIR.glob("*.yaml"))
            raise ConfigError(p, "<file>", str(p), f"an existing safety config; configs/safety has: {', '.join(have)}")
        with open(p) as f:
            data = yaml.safe_load(f)
        return cls.from_dict(data, rcfg, p)

    @classmethod
    def from_dict(cls, data: Any, rcfg: RobotConfig, file: str | os.PathLike[str] = "<dict>") -> SafetySettings:
        r = _Reader(file, data)
        r.reject_unknown({"robot", "state", "attitude", "joints", "motors", "battery", "policy", "loop", "limiter",
                          "estop", "responses", "settle"})
        robot = r.string("robot")
        if robot != rcfg.name:
            raise r.error("robot", robot, f"'{rcfg.name}' (this safety config is loaded for that robot)")
        st = r.sub("state")
        st.reject_unknown({"timeout_ms", "frozen_ms"})
        at = r.sub("attitude")
        at.reject_unknown({"tilt_warn_deg", "fall_tilt_deg", "fall_height_m", "fall_rate_rad_s"})
        jt = r.sub("joints")
        jt.reject_unknown({"soft_limit_margin_rad", "hard_limit_tolerance_rad", "limit_monitor", "velocity_fault_scale",
                           "torque_fault_scale"})
        mo = r.sub("motors")
        mo.reject_unknown({"temp_warn_c", "temp_derate_c", "temp_stop_c", "temp_hysteresis_c", "derate_scale",
                           "error_monitor"})
        ba = r.sub("battery")
        ba.reject_unknown({"warn_v", "stop_v", "hysteresis_v", "sim_v"})
        po = r.sub("policy")
        po.reject_unknown({"starvation_hold_ms", "starvation_stop_ms"})
        lo = r.sub("loop")
        lo.reject_unknown({"overrun_window_ticks", "overrun_max"})
        li = r.sub("limiter")
        li.reject_unknown({"rate_limit_scale"})

        temps = [mo.number(k, 0.0, lo=0.0) for k in ("temp_warn_c", "temp_derate_c", "temp_stop_c")]
        on = [t for t in temps if t > 0]
        if on != sorted(on) or len(set(on)) != len(on):
            raise mo.error("temp_warn_c", temps, "warn < derate < stop (0 turns a level off)")
        warn_v, stop_v = ba.number("warn_v", 0.0, lo=0.0), ba.number("stop_v", 0.0, lo=0.0)
        if warn_v and stop_v and not warn_v > stop_v:
            raise ba.error("warn_v", warn_v, f"> stop_v ({stop_v})")
        hold_ms, stop_ms = po.number("starvation_hold_ms", 0.0, lo=0.0), po.number("starvation_stop_ms", 0.0, lo=0.0)
        if hold_ms and stop_ms and not stop_ms > hold_ms:
            raise po.error("starvation_stop_ms", stop_ms, f"> starvation_hold_ms ({hold_ms})")
        estop = r.string("estop", "damp")
        if estop not in ("damp", "cut"):
            raise r.error("estop", estop, "damp (category 1) or cut (category 0)")

        responses: dict[str, str] = {}
        rr = r.sub("responses", {})
        for k, v in rr.data.items():
            if k not in FAULTS:
                raise rr.error(str(k), k, "a fault name: " + ", ".join(FAULTS))
            if v not in RESPONSES:
                raise rr.error(str(k), v, "one of " + ", ".join(RESPONSES))
            responses[str(k)] = str(v)

        margin = jt.number("soft_limit_margin_rad", 0.0, lo=0.0, hi=0.5)
        se = r.sub("settle", {"keyframes": [], "hold_s": 0.5})
        se.reject_unknown({"keyframes", "hold_s"})
        frames: list[SettleKeyframe] = []
        names = rcfg.joint_names
        for i, k in enumerate(se.items("keyframes", [])):
            k.reject_unknown({"duration_s", "pose"})
            dur = k.number("duration_s", lo=0.0, lo_open=True, hi=30.0)
            pose_r = k.sub("pose")
            pose: dict[str, float] = {}
            for pat in pose_r.data:
                val = pose_r.number(str(pat))
                if not any(str(pat) in n for n in names):
                    raise pose_r.error(str(pat), pat, "a substring of some joint name; joints are: " + ", ".join(names))
                pose[str(pat)] = val
            frames.append(SettleKeyframe(dur, pose))
        if len(frames) > 4:
            raise se.error("keyframes", len(frames), "at most 4 keyframes")

        s = cls(
            robot=robot, file=str(file),
            state_timeout_ms=st.number("timeout_ms", 0.0, lo=0.0),
            frozen_ms=st.number("frozen_ms", 0.0, lo=0.0),
            tilt_warn_deg=at.number("tilt_warn_deg", 0.0, lo=0.0, hi=90.0),
            fall_tilt_deg=at.number("fall_tilt_deg", 0.0, lo=0.0, hi=90.0),
            fall_height_m=at.number("fall_height_m", 0.0, lo=0.0),
            fall_rate_rad_s=at.number("fall_rate_rad_s", 0.0, lo=0.0),
            soft_limit_margin_rad=margin,
            hard_limit_tolerance_rad=jt.number("hard_limit_tolerance_rad", 0.05, lo=0.0),
            joint_limit_monitor=jt.boolean("limit_monitor", True),
            velocity_fault_scale=jt.number("velocity_fault_scale", 0.0, lo=0.0),
            torque_fault_scale=jt.number("torque_fault_scale", 0.0, lo=0.0),
            temp_warn_c=temps[0], temp_derate_c=temps[1], temp_stop_c=temps[2],
            temp_hysteresis_c=mo.number("temp_hysteresis_c", 5.0, lo=0.0),
            derate_scale=mo.number("derate_scale", 0.5, lo=0.0, lo_open=True, hi=1.0),
            motor_error_monitor=mo.boolean("error_monitor", True),
            battery_warn_v=warn_v, battery_stop_v=stop_v,
            battery_hysteresis_v=ba.number("hysteresis_v", 0.5, lo=0.0),
            battery_sim_v=ba.number("sim_v", 0.0, lo=0.0),
            starvation_hold_ms=hold_ms, starvation_stop_ms=stop_ms,
            overrun_window_ticks=int(lo.number("overrun_window_ticks", 0, lo=0, hi=1024)),
            overrun_max=int(lo.number("overrun_max", 0, lo=0, hi=1024)),
            rate_limit_scale=li.number("rate_limit_scale", 0.0, lo=0.0),
            estop=estop, responses=responses, settle=frames,
            settle_hold_s=se.number("hold_s", 0.5, lo=0.0, hi=30.0),
        )
        # The robot's standing pose and every settle keyframe must lie inside the soft limits.
        for i, j in enumerate(rcfg.joints):
            lo_q, hi_q = j.q_min_rad + margin, j.q_max_rad - margin
            if not lo_q <= j.default_rad <= hi_q:
                raise jt.error("soft_limit_margin_rad", margin,
                               f"a margin that keeps {j.name}'s default {j.default_rad} inside [{lo_q:.4f}, {hi_q:.4f}]")
        for k, pose in enumerate(s.settle_poses(rcfg)):
            for j, q in zip(rcfg.joints, pose):
                if not j.q_min_rad + margin <= q <= j.q_max_rad - margin:
                    raise se.error("keyframes", f"keyframe {k}: {j.name} = {q}",
                                   f"inside the soft limits [{j.q_min_rad + margin:.4f}, {j.q_max_rad - margin:.4f}]")
        return s

    def settle_poses(self, rcfg: RobotConfig) -> list[list[float]]:
        """Full joint poses (motor order) of the keyframes: each builds on the one before."""
        pose = list(rcfg.column("default_rad"))
        out = []
        for k in self.settle:
            for pat, v in k.pose.items():
                for i, n in enumerate(rcfg.joint_names):
                    if pat in n:
                        pose[i] = v
            out.append(list(pose))
        return out

    def response(self, fault: str) -> str:
        return self.responses.get(fault) or _rt.SafetyConfig().response(fault)

    def to_cpp(self, rcfg: RobotConfig) -> Any:
        c = _rt.SafetyConfig()
        for name in ("state_timeout_ms", "frozen_ms", "tilt_warn_deg", "fall_tilt_deg", "fall_height_m", "fall_rate_rad_s",
                     "soft_limit_margin_rad", "hard_limit_tolerance_rad", "joint_limit_monitor", "velocity_fault_scale",
                     "torque_fault_scale", "temp_warn_c", "temp_derate_c", "temp_stop_c", "temp_hysteresis_c",
                     "derate_scale", "motor_error_monitor", "battery_warn_v", "battery_stop_v", "battery_hysteresis_v",
                     "starvation_hold_ms", "starvation_stop_ms", "overrun_window_ticks", "overrun_max",
                     "rate_limit_scale", "settle_hold_s"):
            setattr(c, name, getattr(self, name))
        c.estop_cut = self.estop == "cut"
        for f, resp in self.responses.items():
            c.set_response(f, resp)
        c.set_settle(self.settle_poses(rcfg), [k.duration_s for k in self.settle])
        return c

    def settle_duration_s(self) -> float:
        return sum(k.duration_s for k in self.settle) + self.settle_hold_s

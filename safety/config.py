"""Safety configuration (``configs/safety/<robot>.yaml``): monitor thresholds, the response each
fault gets, the e-stop category and the settle-then-cut keyframes, declared once with
:mod:`vertebra.runtime.schema` and turned into the C++ ``SafetyConfig`` by :meth:`SafetySettings.to_cpp`.

Fail closed: every monitor threshold is required. There is no silent "0 = off": a monitor group
(``state``, ``attitude``, ``joints``, ``motors``, ``battery``, ``policy``, ``loop``, ``limiter``,
``event_log``) is turned off only by ``enabled: false`` in its section, and
:meth:`SafetySettings.disabled_monitors` names what is off. A file that leaves thresholds out is refused
with every missing one listed. The ``event_log`` section needs no threshold, so a file without it has
its write monitor on (and the default rotation: 64 MiB, 5 files kept).

Settle keyframes name joints by substring of their names (``knee`` matches both knees); joints not
named keep the robot's default pose; every keyframe must lie inside the joints' soft limits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from vertebra import _rt
from vertebra.runtime.config import CONFIG_DIR, RobotConfig
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.schema import Section, field, read_yaml
from vertebra.safety.events import MAX_ROTATED_FILES

SAFETY_DIR = CONFIG_DIR / "safety"
RESPONSES = ("warn", "derate", "hold", "stop", "damp", "cut")
FAULTS: tuple[str, ...] = tuple(_rt.fault_names())
# The hottest temp_stop_c accepted. Unitree publishes no winding temperature rating for the G1/Go2
# joint motors in its developer documentation, so the bound comes from the insulation: 130 C is the
# hot-spot limit of thermal class B (IEC 60085), the lowest class used for servo-motor windings; the
# motor reports a housing/winding sensor that lags the hot spot, hence 10 C of margin. A robot whose
# motors are rated lower must use a lower temp_stop_c.
MOTOR_TEMP_RATING_C = 120.0
MAX_OVERRUN_WINDOW_TICKS = 1024  # the C++ supervisor's overrun ring
MIN_EVENT_LOG_ROTATE_BYTES = 4096  # the C++ supervisor refuses smaller (cpp/safety/safety.hpp)
MAX_EVENT_LOG_KEEP_FILES = MAX_ROTATED_FILES  # what `vertebra events --all` looks for


class StateMonitors(Section):
    """State freshness: state loss (no new sample) and frozen state (samples that stop changing)."""

    enabled = field(bool, default=True, doc="false turns the state-loss and frozen-state monitors off")
    timeout_ms = field(float, lo=0.0, lo_open=True, hi=1000.0, off=0.0, doc="state loss: no new sample for this long")
    frozen_ms = field(float, lo=0.0, lo_open=True, hi=1000.0, off=0.0,
                      doc="frozen: samples advance but q, dq and gyro stay bit-identical this long")


class AttitudeMonitors(Section):
    """Attitude (armed modes only): tilt warning and fall detection."""

    enabled = field(bool, default=True, doc="false turns the tilt and fall monitors off")
    tilt_warn_deg = field(float, lo=0.0, lo_open=True, hi=90.0, off=0.0, doc="base tilt that warns")
    fall_tilt_deg = field(float, lo=0.0, lo_open=True, hi=90.0, off=0.0,
                          doc="base tilt that is a fall (> tilt_warn_deg)")
    fall_height_m = field(float, lo=0.0, lo_open=True, hi=5.0, off=0.0,
                          doc="base below this height is a fall (drivers that know the base height)")
    fall_rate_rad_s = field(float, lo=0.0, lo_open=True, hi=100.0, off=0.0,
                            doc="|base angular rate| above this is a fall")

    def check(self, context: Any) -> None:
        if self.enabled and not self.fall_tilt_deg > self.tilt_warn_deg:
            raise self.error("fall_tilt_deg", self.fall_tilt_deg, f"> tilt_warn_deg ({self.tilt_warn_deg:g})")


class JointMonitors(Section):
    """Joints: the soft limits of the limiter, and the limit, velocity and torque monitors."""

    enabled = field(bool, default=True, doc="false turns the joint limit, velocity and torque monitors off")
    soft_limit_margin_rad = field(float, lo=0.0, hi=0.5,
                                  doc="soft limits = URDF/YAML limits shrunk by this (limiter and monitor)")
    hard_limit_tolerance_rad = field(float, lo=0.0, hi=0.5, off=0.05,
                                     doc="a joint measured beyond its hard limit by more than this is a fault")
    limit_monitor = field(bool, default=True, switch=True, doc="joint soft/hard limit monitor")
    velocity_fault_scale = field(float, lo=1.0, hi=10.0, off=0.0, doc="|dq| above this x the velocity limit is a fault")
    torque_fault_scale = field(float, lo=1.0, hi=10.0, off=0.0, doc="|tau| above this x the effort limit is a fault")


class MotorMonitors(Section):
    """Motors: temperature levels (warn, derate, stop) and motor error flags."""

    enabled = field(bool, default=True, doc="false turns the temperature and motor-error monitors off")
    temp_warn_c = field(float, lo=0.0, lo_open=True, hi=MOTOR_TEMP_RATING_C, off=0.0, doc="temperature that warns")
    temp_derate_c = field(float, lo=0.0, lo_open=True, hi=MOTOR_TEMP_RATING_C, off=0.0,
                          doc="temperature that derates the joint (> temp_warn_c)")
    temp_stop_c = field(float, lo=0.0, lo_open=True, hi=MOTOR_TEMP_RATING_C, off=0.0,
                        doc=f"temperature that stops (> temp_derate_c; <= {MOTOR_TEMP_RATING_C:g} C, the rating)")
    temp_hysteresis_c = field(float, default=5.0, lo=0.0, hi=30.0, doc="a level clears this far below its threshold")
    derate_scale = field(float, default=0.5, lo=0.0, lo_open=True, hi=1.0,
                         doc="a derated joint's tau and kp limits x this")
    error_monitor = field(bool, default=True, switch=True, doc="motor error flags monitor")

    def check(self, context: Any) -> None:
        if not self.enabled:
            return
        if not self.temp_derate_c > self.temp_warn_c:
            raise self.error("temp_derate_c", self.temp_derate_c,
                             f"> temp_warn_c ({self.temp_warn_c:g}): warn < derate < stop")
        if not self.temp_stop_c > self.temp_derate_c:
            raise self.error("temp_stop_c", self.temp_stop_c,
                             f"> temp_derate_c ({self.temp_derate_c:g}): warn < derate < stop")


class BatteryMonitors(Section):
    """Battery: low (warn) and critical (stop) pack voltage."""

    enabled = field(bool, default=True, doc="false turns the battery monitors off")
    warn_v = field(float, lo=0.0, lo_open=True, hi=200.0, off=0.0, doc="pack voltage that warns (> stop_v)")
    stop_v = field(float, lo=0.0, lo_open=True, hi=200.0, off=0.0, doc="pack voltage that stops")
    hysteresis_v = field(float, default=0.5, lo=0.0, hi=10.0, doc="a level clears this far above its threshold")
    sim_v = field(float, default=0.0, lo=0.0, hi=200.0, doc="what the simulator reports (0: no battery)")

    def check(self, context: Any) -> None:
        if self.enabled and not self.warn_v > self.stop_v:
            raise self.error("warn_v", self.warn_v, f"> stop_v ({self.stop_v:g})")


class PolicyMonitors(Section):
    """Policy stream starvation (ACTIVE entered with a stream request)."""

    enabled = field(bool, default=True, doc="false turns the starvation monitors off")
    starvation_hold_ms = field(float, lo=0.0, lo_open=True, hi=10000.0, off=0.0, doc="a stream silent this long: HOLD")
    starvation_stop_ms = field(float, lo=0.0, lo_open=True, hi=60000.0, off=0.0,
                               doc="and this long: settle-then-cut (> starvation_hold_ms)")

    def check(self, context: Any) -> None:
        if self.enabled and not self.starvation_stop_ms > self.starvation_hold_ms:
            raise self.error("starvation_stop_ms", self.starvation_stop_ms,
                             f"> starvation_hold_ms ({self.starvation_hold_ms:g})")


class LoopMonitors(Section):
    """Loop overruns: too many ticks over their period inside a sliding window."""

    enabled = field(bool, default=True, doc="false turns the overrun monitor off")
    overrun_window_ticks = field(int, lo=2, hi=MAX_OVERRUN_WINDOW_TICKS, off=0, doc="the sliding window")
    overrun_max = field(int, lo=1, hi=MAX_OVERRUN_WINDOW_TICKS - 1, off=0,
                        doc="this many overruns inside the window is a fault (< overrun_window_ticks)")

    def check(self, context: Any) -> None:
        if self.enabled and not self.overrun_max < self.overrun_window_ticks:
            raise self.error("overrun_max", self.overrun_max, f"< overrun_window_ticks ({self.overrun_window_ticks})")


class LimiterSettings(Section):
    """The command limiter's rate limit on stiff position targets."""

    enabled = field(bool, default=True, doc="false turns the rate limit off")
    rate_limit_scale = field(float, lo=0.0, lo_open=True, hi=10.0, off=0.0,
                             doc="a stiff position target moves at most this x dq_max x dt per tick")


class EventLogSettings(Section):
    """Event log: the write monitor (a log that cannot be written is a warning) and size rotation."""

    enabled = field(bool, default=True, doc="false turns the event-log write monitor off")
    write_monitor = field(bool, default=True, switch=True,
                          doc="event_log_write (warn) while the log's writer cannot write: the run goes unrecorded")
    rotate_bytes = field(int, default=64 * 1024 * 1024, lo=MIN_EVENT_LOG_ROTATE_BYTES, hi=1 << 40,
                         doc="the log file is renamed <log>.1 (older ones shift up) before it passes this size")
    keep_files = field(int, default=5, lo=1, hi=MAX_EVENT_LOG_KEEP_FILES,
                       doc="rotated files kept: <log>.1 (newest) .. <log>.<keep_files>; older ones are deleted")


class SettleKeyframe(Section):
    """One settle-then-cut keyframe: joints (by name substring) -> angle, reached in duration_s."""

    duration_s = field(float, lo=0.0, lo_open=True, hi=30.0, doc="time to reach this keyframe from the previous one")
    pose = field(dict, item=float, doc="joint name substring -> angle (rad)")


class SettleSettings(Section):
    """Settle-then-cut: keyframes (at most 4), a hold, then damping. Reads as its list of keyframes
    (``len(settings.settle)``, ``for k in settings.settle``)."""

    keyframes = field(list, item=SettleKeyframe, default=[], doc="keyframes (none: a stop goes straight to damping)")
    hold_s = field(float, default=0.5, lo=0.0, hi=30.0, doc="hold the last keyframe this long before damping")

    def __len__(self) -> int:
        return len(self.keyframes)

    def __iter__(self) -> Any:
        return iter(self.keyframes)

    def check(self, context: Any) -> None:
        if len(self.keyframes) > 4:
            raise self.error("keyframes", len(self.keyframes), "at most 4 keyframes")


class BaseVelocityBounds(Section):
    """The base velocity commands a walking controller accepts (from the control API, teleop, a policy's
    ``base_velocity`` chunk). A command beyond them is refused with an error and the robot keeps the
    command it had; nothing is clamped silently. A walking controller does not start without them."""

    max_vx_m_s = field(float, lo=0.0, lo_open=True, hi=3.0, doc="|forward| and |backward| speed")
    max_vy_m_s = field(float, lo=0.0, lo_open=True, hi=2.0, doc="|sideways| speed")
    max_wz_rad_s = field(float, lo=0.0, lo_open=True, hi=6.0, doc="|yaw rate|")

    def refusal(self, vx: float, vy: float, wz: float) -> str:
        """'' when (vx, vy, wz) is within the bounds, else what is beyond them."""
        out = []
        for name, v, lim, unit in (("vx", vx, self.max_vx_m_s, "m/s"), ("vy", vy, self.max_vy_m_s, "m/s"),
                                   ("wz", wz, self.max_wz_rad_s, "rad/s")):
            if not math.isfinite(v):
                out.append(f"{name} {v} is not a number")
            elif abs(v) > lim + 1e-12:
                out.append(f"|{name}| {abs(v):g} {unit} > {lim:g} {unit}")
        return "; ".join(out)


class SafetySettings(Section):
    """Safety supervisor settings of one robot."""

    robot = field(str, doc="the robot this file is for (configs/robots/<robot>.yaml)")
    state = field(StateMonitors, doc="state freshness monitors")
    attitude = field(AttitudeMonitors, doc="tilt and fall monitors")
    joints = field(JointMonitors, doc="joint limits, velocity and torque")
    motors = field(MotorMonitors, doc="motor temperature and errors")
    battery = field(BatteryMonitors, doc="battery voltage")
    policy = field(PolicyMonitors, doc="policy stream starvation")
    loop = field(LoopMonitors, doc="loop overruns")
    limiter = field(LimiterSettings, doc="command rate limit")
    estop = field(str, default="damp", choices={"damp": "category 1", "cut": "category 0"}, doc="operator e-stop")
    responses = field(dict, item=str, keys=FAULTS, key_doc="a fault name", choices=RESPONSES, default={},
                      doc="overrides of the default fault -> response table")
    settle = field(SettleSettings, default={}, doc="settle-then-cut keyframes")
    event_log = field(EventLogSettings, default={}, doc="event log write monitor and rotation (on when absent)")
    base_velocity = field(BaseVelocityBounds, default=None,
                          doc="walking: the velocity commands accepted (required by a walking controller)")

    @classmethod
    def load(cls, robot: str | RobotConfig, path: str | os.PathLike[str] | None = None) -> SafetySettings:
        rcfg = robot if isinstance(robot, RobotConfig) else RobotConfig.load(robot)
        p = Path(path) if path is not None else SAFETY_DIR / f"{rcfg.name}.yaml"
        if not p.is_file():
            have = sorted(x.stem for x in SAFETY_DIR.glob("*.yaml"))
            raise ConfigError(p, "<file>", str(p), f"an existing safety config; configs/safety has: {', '.join(have)}")
        return cls.from_dict(read_yaml(p), rcfg, p)

    @classmethod
    def from_dict(cls, data: Any, rcfg: RobotConfig, file: str | os.PathLike[str] = "<dict>",  # type: ignore[override]
                  *, path: str = "", context: Any = None) -> SafetySettings:
        """Parse a safety YAML mapping for robot `rcfg` (the checks need its joints)."""
        return super().from_dict(data, file, path=path, context=rcfg)

    def check(self, context: Any) -> None:
        if not isinstance(context, RobotConfig):
            raise TypeError("SafetySettings are checked against a robot: use SafetySettings.load(robot) or "
                            "SafetySettings.from_dict(data, robot, file)")
        rcfg = context
        if self.robot != rcfg.name:
            raise self.error("robot", self.robot, f"'{rcfg.name}' (this safety config is loaded for that robot)")
        margin = self.joints.soft_limit_margin_rad
        # The robot's standing pose and every settle keyframe must lie inside the soft limits.
        for j in rcfg.joints:
            lo_q, hi_q = j.q_min_rad + margin, j.q_max_rad - margin
            if not lo_q <= j.default_rad <= hi_q:
                raise self.joints.error(
                    "soft_limit_margin_rad", margin,
                    f"a margin that keeps {j.name}'s default {j.default_rad} inside [{lo_q:.4f}, {hi_q:.4f}]")
        names = rcfg.joint_names
        for k in self.settle.keyframes:
            for pat in k.pose:
                if not any(pat in n for n in names):
                    raise ConfigError(self.file, k.field_path("pose") + f".{pat}", pat,
                                      "a substring of some joint name; joints are: " + ", ".join(names))
        for k, pose in enumerate(self.settle_poses(rcfg)):
            for j, q in zip(rcfg.joints, pose):
                if not j.q_min_rad + margin <= q <= j.q_max_rad - margin:
                    raise self.settle.error(
                        "keyframes", f"keyframe {k}: {j.name} = {q}",
                        f"inside the soft limits [{j.q_min_rad + margin:.4f}, {j.q_max_rad - margin:.4f}]")

    # -- what is off -----------------------------------------------------------------------------
    def disabled_monitors(self) -> list[str]:
        """Every monitor that is off: a group turned off by ``enabled: false`` (``"policy"``) or a switch
        of an enabled group (``"joints.limit_monitor"``). Empty when every monitor is on."""
        return self.disabled()

    # -- the flat view the supervisor and the fault harness read ---------------------------------
    @property
    def state_timeout_ms(self) -> float:
        return float(self.state.timeout_ms)

    @property
    def frozen_ms(self) -> float:
        return float(self.state.frozen_ms)

    @property
    def tilt_warn_deg(self) -> float:
        return float(self.attitude.tilt_warn_deg)

    @property
    def fall_tilt_deg(self) -> float:
        return float(self.attitude.fall_tilt_deg)

    @property
    def fall_height_m(self) -> float:
        return float(self.attitude.fall_height_m)

    @property
    def fall_rate_rad_s(self) -> float:
        return float(self.attitude.fall_rate_rad_s)

    @property
    def soft_limit_margin_rad(self) -> float:
        return float(self.joints.soft_limit_margin_rad)

    @property
    def hard_limit_tolerance_rad(self) -> float:
        return float(self.joints.hard_limit_tolerance_rad)

    @property
    def joint_limit_monitor(self) -> bool:
        return bool(self.joints.enabled and self.joints.limit_monitor)

    @property
    def velocity_fault_scale(self) -> float:
        return float(self.joints.velocity_fault_scale)

    @property
    def torque_fault_scale(self) -> float:
        return float(self.joints.torque_fault_scale)

    @property
    def temp_warn_c(self) -> float:
        return float(self.motors.temp_warn_c)

    @property
    def temp_derate_c(self) -> float:
        return float(self.motors.temp_derate_c)

    @property
    def temp_stop_c(self) -> float:
        return float(self.motors.temp_stop_c)

    @property
    def temp_hysteresis_c(self) -> float:
        return float(self.motors.temp_hysteresis_c)

    @property
    def derate_scale(self) -> float:
        return float(self.motors.derate_scale)

    @property
    def motor_error_monitor(self) -> bool:
        return bool(self.motors.enabled and self.motors.error_monitor)

    @property
    def battery_warn_v(self) -> float:
        return float(self.battery.warn_v)

    @property
    def battery_stop_v(self) -> float:
        return float(self.battery.stop_v)

    @property
    def battery_hysteresis_v(self) -> float:
        return float(self.battery.hysteresis_v)

    @property
    def battery_sim_v(self) -> float:
        return float(self.battery.sim_v)

    @property
    def starvation_hold_ms(self) -> float:
        return float(self.policy.starvation_hold_ms)

    @property
    def starvation_stop_ms(self) -> float:
        return float(self.policy.starvation_stop_ms)

    @property
    def overrun_window_ticks(self) -> int:
        return int(self.loop.overrun_window_ticks)

    @property
    def overrun_max(self) -> int:
        return int(self.loop.overrun_max)

    @property
    def rate_limit_scale(self) -> float:
        return float(self.limiter.rate_limit_scale)

    @property
    def event_log_monitor(self) -> bool:
        return bool(self.event_log.enabled and self.event_log.write_monitor)

    @property
    def event_log_rotate_bytes(self) -> int:
        return int(self.event_log.rotate_bytes)

    @property
    def event_log_keep_files(self) -> int:
        return int(self.event_log.keep_files)

    @property
    def settle_hold_s(self) -> float:
        return float(self.settle.hold_s)

    def settle_poses(self, rcfg: RobotConfig) -> list[list[float]]:
        """Full joint poses (motor order) of the keyframes: each builds on the one before."""
        pose = list(rcfg.column("default_rad"))
        out = []
        for k in self.settle.keyframes:
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
                     "rate_limit_scale", "settle_hold_s", "event_log_monitor", "event_log_rotate_bytes",
                     "event_log_keep_files"):
            setattr(c, name, getattr(self, name))
        c.estop_cut = self.estop == "cut"
        for f, resp in self.responses.items():
            c.set_response(f, resp)
        c.set_settle(self.settle_poses(rcfg), [k.duration_s for k in self.settle.keyframes])
        return c

    def settle_duration_s(self) -> float:
        return sum(k.duration_s for k in self.settle.keyframes) + self.settle_hold_s

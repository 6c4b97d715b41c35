"""Rig configs (``configs/hil/<rig>.yaml``): one bench rig, the robot hung in its gantry or hoist, feet
off the ground, connected to the onboard computer as in service. The file says which robot (and its
serial), which deploy config reaches it (driver, DDS interface and domain, safety, guard), which
joints may move and how far, the pass/fail thresholds, and the scenarios to run::

    robot: g1
    serial: G1-2024-0042
    deploy: g1_dds                    # configs/deploy/g1_dds.yaml (or a path)
    bench:                            # first match wins; a joint no entry matches never moves (held)
      joints:
        - {match: "hip|knee", amplitude_rad: 0.15, velocity_rad_s: 1.5, torque_fraction: 0.7}
    scenarios: [bus, identify, wiring, limits, thermal, safety, policy]
    bus: {duration_s: 5, ...}         # each scenario's settings and thresholds (the sections below)

A sim rig adds ``sim:``: the harness then starts ``vertebra sim-bridge`` itself (a separate process,
on the deploy config's domain) for every scenario group, with the hardware faults ``sim.faults``
injects (``drivers/bridge_faults.py``), and runs the characterisation in lockstep.

Every threshold is required where its scenario is listed (fail closed: a missing threshold is an
error, never "no check"); ``quick:`` overrides any section's fields for ``--quick`` (CI).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from vertebra.runtime.config import CONFIG_DIR
from vertebra.runtime.schema import Section, config_file, field, read_yaml

HIL_DIR = CONFIG_DIR / "hil"
SCENARIOS = {
    "bus": "lowstate rate and jitter, lowcmd -> lowstate latency, CRC errors, dropped samples",
    "identify": "per joint: chirp, step, friction sweeps, torque check: bandwidth, delay, friction, torque constant",
    "wiring": "per joint: sign and offset against the kinematic model (IMU reaction, gravity torque)",
    "limits": "a target beyond the soft limit is clamped by the limiter; the joint stays inside",
    "thermal": "hold a loaded posture: temperatures logged, derate/stop thresholds exercised if reached",
    "safety": "e-stop (API, remote), lowstate loss, runtime SIGKILL -> guard, policy starvation -> HOLD",
    "policy": "a named policy runs N episodes on the hoist with no fault",
}


class BenchJoint(Section):
    """How far the joints whose name matches ``match`` may move on the bench (well inside the robot's limits)."""

    match = field(str, doc="regular expression searched in joint names")
    amplitude_rad = field(float, lo=0.005, hi=0.6, doc="largest excursion from the hold pose")
    velocity_rad_s = field(float, lo=0.05, hi=10.0, doc="largest commanded joint speed (also the limiter's cap)")
    torque_fraction = field(float, lo=0.05, hi=0.9,
                            doc="largest torque, as a fraction of the joint's rating (also the limiter's cap)")

    def check(self, context: Any) -> None:
        self.check_regex("match")


class Bench(Section):
    """What the bench lets move."""

    joints = field(list, item=BenchJoint, min_size=1, doc="per joint group: amplitude, velocity and torque caps")
    hold_s = field(float, default=2.0, lo=0.5, hi=30.0, doc="the move from hanging to the hold pose")
    settle_s = field(float, default=0.3, lo=0.0, hi=10.0, doc="rest between two programs")


class SimRig(Section):
    """A simulated rig: the harness starts the DDS sim bridge itself."""

    faults = field(dict, item=None, default={}, doc="hardware faults injected on the bridge (drivers/bridge_faults.py)")
    lockstep = field(bool, default=True, doc="characterise in lockstep (deterministic); the service scenarios run in real time")


class BusSettings(Section):
    """The bus scenario: N seconds of lowstate, and torque steps on one joint timed to their echo in the state."""

    duration_s = field(float, lo=0.5, hi=600.0, doc="how long lowstate is watched")
    probe_joint = field(str, doc="the joint whose torque steps time the lowcmd -> lowstate round trip")
    probe_torque_nm = field(float, lo=0.1, hi=20.0, doc="the torque step (feed-forward)")
    rate_tolerance = field(float, lo=0.0, hi=0.5, doc="lowstate rate within this fraction of the control rate")
    jitter_ms_max = field(float, lo=0.0, hi=100.0, doc="the p99 of |interval - period|")
    latency_ms_max = field(float, lo=0.1, hi=1000.0, doc="the largest command -> state round trip")
    crc_error_rate_max = field(float, lo=0.0, hi=1.0, doc="CRC errors per sample")
    drop_rate_max = field(float, lo=0.0, hi=1.0, doc="missing samples per expected sample")


class IdentifySettings(Section):
    """Per-joint identification, each joint in turn with the others held."""

    chirp_s = field(float, lo=0.5, hi=120.0, doc="the chirp's length")
    chirp_f0_hz = field(float, lo=0.05, hi=20.0, doc="the chirp's start frequency")
    chirp_f1_hz = field(float, lo=0.1, hi=50.0, doc="the chirp's end frequency")
    step_s = field(float, lo=0.1, hi=10.0, doc="how long each step is held")
    sweep_speeds_rad_s = field(list, item=float, size=2, doc="the two constant speeds of the friction sweeps")
    sweep_cycles = field(int, default=2, lo=1, hi=20, doc="back-and-forth passes per speed")
    torque_check_s = field(float, default=0.006, lo=0.002, hi=0.1, doc="each half of the torque doublet")
    # thresholds
    tracking_rms_rad_max = field(float, lo=0.0, hi=1.0, doc="chirp tracking error (RMS)")
    bandwidth_hz_min = field(float, lo=0.0, hi=50.0, doc="the -3 dB bandwidth must reach this")
    delay_ms_max = field(float, lo=0.0, hi=1000.0, doc="command -> torque response delay")
    friction_ratio_max = field(float, lo=1.0, hi=100.0,
                               doc="friction (viscous or Coulomb) at most this x the robot config's and the siblings' median")
    friction_floor = field(list, item=float, size=2, default=[0.02, 0.02],
                           doc="viscous (N·m·s/rad) and Coulomb (N·m) values below which a ratio is not judged")
    torque_constant_error_max = field(float, lo=0.0, hi=1.0, doc="|measured / commanded torque - 1|")

    def check(self, context: Any) -> None:
        if self.chirp_f1_hz <= self.chirp_f0_hz:
            raise self.error("chirp_f1_hz", self.chirp_f1_hz, f"> chirp_f0_hz ({self.chirp_f0_hz:g})")
        if not all(v > 0 for v in self.sweep_speeds_rad_s) or self.sweep_speeds_rad_s[0] >= self.sweep_speeds_rad_s[1]:
            raise self.error("sweep_speeds_rad_s", self.sweep_speeds_rad_s, "two increasing speeds > 0")


class WiringSettings(Section):
    """Sign, offset and wiring against the kinematic model."""

    reaction_correlation_min = field(float, lo=0.0, hi=1.0,
                                     doc="measured vs predicted IMU reaction: correlation at least this (below -it: reversed)")
    reaction_min_rad_s = field(float, lo=0.0, hi=1.0,
                               doc="a predicted reaction (RMS) below this is not observable on this rig")
    offset_rad_max = field(float, lo=0.001, hi=0.5, doc="the gravity-torque offset estimate must stay within this")
    gravity_slope_min_nm_rad = field(float, lo=0.0, hi=100.0,
                                     doc="joints whose gravity torque changes less than this per rad: offset not observable")


class LimitsSettings(Section):
    """The limiter on the real bus: a target beyond a soft limit."""

    joints = field(list, item=str, min_size=1, doc="joints driven towards a soft limit (within the bench's reach)")
    overshoot_rad = field(float, lo=0.01, hi=0.5, doc="how far beyond the soft limit the target goes")
    tolerance_rad = field(float, lo=0.0, hi=0.2, doc="the joint may end this far beyond the soft limit")
    hold_s = field(float, default=0.5, lo=0.1, hi=10.0, doc="how long the target stays beyond the limit")


class ThermalSettings(Section):
    """The thermal soak: a loaded posture held for a while."""

    duration_s = field(float, lo=1.0, hi=7200.0, doc="how long the posture is held")
    posture = field(dict, item=float, default={}, doc="joint-name regex -> position (rad) of the loaded posture "
                                                     "(others: the hold pose)")
    sample_s = field(float, default=0.5, lo=0.01, hi=60.0, doc="temperature sampling interval")
    rise_c_max = field(float, lo=0.0, hi=100.0, doc="largest temperature rise allowed over the soak")


class SafetyScenarioSettings(Section):
    """Safety reactions on the bus (the service and the guard as deployed)."""

    reactions = field(list, item=str, min_size=1, doc="estop_api, estop_remote, state_loss, runtime_kill, policy_starvation")
    estop_ticks_max = field(int, lo=1, hi=100, doc="the e-stop's damping command within this many ticks")
    state_loss_margin_ticks = field(int, lo=0, hi=100, doc="state loss raised within the timeout + this")
    takeover_ms_max = field(float, lo=1.0, hi=5000.0, doc="the guard commands the motors within this after a SIGKILL")
    starvation_margin_ms = field(float, lo=0.0, hi=5000.0,
                                 doc="HOLD within starvation_hold_ms + this of the policy stream going silent (the "
                                     "chunk already in hand plays out first and is not counted)")
    state_loss_method = field(str, default="bridge",
                              choices={"bridge": "the sim bridge stops sending lowstate (sim rigs)",
                                       "operator": "the engineer pulls the cable when asked"},
                              doc="how lowstate loss is caused")

    def check(self, context: Any) -> None:
        valid = ("estop_api", "estop_remote", "state_loss", "runtime_kill", "policy_starvation")
        for r in self.reactions:
            if r not in valid:
                raise self.error("reactions", r, "one of " + ", ".join(valid))


class PolicySettings(Section):
    """Policy smoke: a named policy runs N episodes on the hoist with no fault."""

    policy = field(str, default=None, doc="a policy of the deploy config's server (null: its active one)")
    episodes = field(int, lo=1, hi=1000, doc="episodes to run")
    episode_s = field(float, lo=0.5, hi=600.0, doc="length of each episode")
    instruction = field(str, default="hold still", doc="the instruction each episode carries")


class RigConfig(Section):
    """A bench rig: the robot in its hoist, how to reach it, what may move, and what passes."""

    robot = field(str, pattern=r"[a-z0-9_]+", doc="robot config name (configs/robots/)")
    serial = field(str, doc="the robot's serial number (reports and lifecycle records)")
    deploy = field(str, doc="the deploy config that reaches the robot (driver, safety, guard): a name or a path")
    description = field(str, default="", doc="one line for people")
    sim = field(SimRig, default=None, doc="a simulated rig (the harness starts the sim bridge)")
    bench = field(Bench, doc="what may move and how far")
    scenarios = field(list, item=str, min_size=1, doc="scenarios to run, in order: " + ", ".join(SCENARIOS))
    bus = field(BusSettings, default=None, doc="the bus scenario")
    identify = field(IdentifySettings, default=None, doc="per-joint identification")
    wiring = field(WiringSettings, default=None, doc="sign, offset and wiring")
    limits = field(LimitsSettings, default=None, doc="soft limits and the limiter")
    thermal = field(ThermalSettings, default=None, doc="thermal soak")
    safety = field(SafetyScenarioSettings, default=None, doc="safety reactions on the bus")
    policy = field(PolicySettings, default=None, doc="policy smoke")
    quick = field(dict, item=None, default={}, doc="--quick: per scenario section, fields that override it")

    def check(self, context: Any) -> None:
        for s in self.scenarios:
            if s not in SCENARIOS:
                raise self.error("scenarios", s, "one of " + ", ".join(SCENARIOS))
            section = "safety" if s == "safety" else s
            if getattr(self, section) is None:
                raise self.error(section, "<missing>", f"a '{section}:' section: scenario '{s}' is listed")
        for key in self.quick:
            if key not in SCENARIOS:
                raise self.error("quick", key, "a scenario section name: " + ", ".join(SCENARIOS))

    @property
    def name(self) -> str:
        f = Path(self.file)
        return f.stem if f.suffix in (".yaml", ".yml") else "rig"

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], quick: bool = False) -> RigConfig:
        """Load ``configs/hil/<name>.yaml`` or a path; `quick`: with its ``quick:`` overrides applied."""
        path = config_file(name_or_path, HIL_DIR)
        data = read_yaml(path)
        if quick and isinstance(data, dict):
            for section, over in (data.get("quick") or {}).items():
                if isinstance(over, dict) and isinstance(data.get(section), dict):
                    data[section] = {**data[section], **over}
        rig = cls.from_dict(data, path)
        rig.profile = "quick" if quick else "full"
        rig.path = path.resolve()
        return rig

    def deploy_path(self) -> Path:
        p = Path(self.deploy)
        if not p.suffix:
            return CONFIG_DIR / "deploy" / f"{self.deploy}.yaml"
        return p if p.is_absolute() else Path(self.file).resolve().parent / p

    def bench_joint(self, name: str) -> BenchJoint | None:
        """The bench entry of a joint (first match), None: it never moves."""
        for b in self.bench.joints:
            if re.search(b.match, name):
                return b
        return None

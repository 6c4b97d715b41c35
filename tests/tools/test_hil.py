"""`vertebra hil run` against the DDS sim bridge in a separate process, as on a bench rig: a healthy
rig passes; each hardware fault injected on the bridge fails exactly the checks that should catch it,
naming the joint or the link. Lockstep (deterministic); the service scenarios are tested in
test_hil_reactions.py."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vertebra.runtime.config import CONFIG_DIR
from vertebra.tools.hil import harness
from vertebra.tools.hil.report import validate_junit
from vertebra.tools.hil.results import RunResult
from vertebra.tools.hil.rig import RigConfig

VERTEBRA = os.path.join(os.path.dirname(sys.executable), "vertebra")
_domains = itertools.count(900)
CHARS = ["bus", "identify", "wiring", "limits", "thermal"]


def domain() -> int:
    return 100 + (os.getpid() * 7 + next(_domains)) % 120


def rig_with(tmp_path: Path, base: str, faults: dict, **sections) -> RigConfig:
    d = yaml.safe_load((CONFIG_DIR / "hil" / f"{base}.yaml").read_text())
    d["deploy"] = str(CONFIG_DIR / "deploy" / f"{d['deploy']}.yaml")
    d["sim"] = {"faults": faults}
    d.update(sections)
    p = tmp_path / f"{base}_faulty.yaml"
    p.write_text(yaml.safe_dump(d))
    return RigConfig.load(p, quick=True)


def verdicts(r: RunResult, scenario: str) -> dict[str, str]:
    return {c.name: c.verdict for c in r.cases if c.scenario == scenario}


@pytest.mark.parametrize("rig", ["sim_g1", "sim_go2"])
def test_healthy_sim_rig_passes_every_characterisation(rig, tmp_path):
    r = harness.run(RigConfig.load(rig, quick=True), only=CHARS, domain_id=domain(), workdir=tmp_path)
    assert not r.stopped, r.stopped
    bad = [(c.id, c.message) for c in r.failed()]
    assert not bad, bad
    per_joint = [c for c in r.cases if c.scenario == "identify"]
    assert len(per_joint) == (29 if rig == "sim_g1" else 12)
    # every joint's delay is the bus's one control period, measured on the torque's answer
    assert all(c.measured["delay_ms"] == pytest.approx(2.0) for c in per_joint)
    bus = r.case("bus/lowstate").measured
    assert bus["dropped"] == 0 and bus["crc_errors"] == 0 and bus["latency_ms_max"] == pytest.approx(2.0)
    assert all(c.measured["position_clamps"] > 0 for c in r.cases if c.scenario == "limits")
    wiring = verdicts(r, "wiring")
    assert sum(v == "passed" for v in wiring.values()) >= len(wiring) // 2  # most joints observable
    # identification recovers the bridge's model on every joint: viscous and Coulomb friction within
    # 20% of the robot config's, and the torque report's lead is the simulator's: the motor board
    # reports its torque at the period's last physics step, (steps - 1) / 2 steps after its mean
    cfg = harness.ScenarioContext(RigConfig.load(rig), tmp_path / "c").robot
    nominal = {n: next(d for d in cfg.sim.joint_dynamics if __import__("re").search(d.match, n)) for n in cfg.joint_names}
    steps = round(cfg.sim.sim_rate_hz / cfg.control_rate_hz)
    lead_ms = 0.5 * (steps - 1) * 1e3 / cfg.sim.sim_rate_hz
    for c in per_joint:
        m, nom = c.measured, nominal[c.name]
        assert m["coulomb_nm"] == pytest.approx(nom.frictionloss_nm, rel=0.2), c.name
        assert m["viscous_nm_s_rad"] == pytest.approx(nom.damping_nm_s_rad, rel=0.2), c.name
        assert m["torque_report_lead_ms"] == pytest.approx(lead_ms, rel=0.2), c.name


JOINT_FAULTS = [
    # (joint, fault, the joints run: the faulty one and its sibling, the scenario and words that name it)
    ("left_hip_yaw_joint", {"sign": -1}, "wiring", "REVERSED"),
    ("right_knee_joint", {"offset_rad": 0.1}, "wiring", "OFFSET"),
    ("right_hip_roll_joint", {"friction_scale": 3.0}, "identify", "friction"),
    ("right_hip_pitch_joint", {"torque_limit_scale": 0.5}, "identify", "commanded"),
]


@pytest.mark.parametrize("joint, fault, scenario, words", JOINT_FAULTS, ids=[f[0] + "-" + next(iter(f[1])) for f in JOINT_FAULTS])
def test_a_joint_fault_fails_exactly_its_check_naming_the_joint(joint, fault, scenario, words, tmp_path):
    sibling = joint.replace("right_", "left_") if joint.startswith("right_") else joint.replace("left_", "right_")
    rig = rig_with(tmp_path, "sim_g1", {"joints": {joint: fault}})
    r = harness.run(rig, only=CHARS, joints=f"^({joint}|{sibling})$", domain_id=domain(), workdir=tmp_path)
    assert not r.stopped, r.stopped
    failed = {c.id for c in r.failed()}
    hit = r.case(f"{scenario}/{joint}")
    assert hit.verdict == "failed" and words in hit.message, hit.message
    allowed = {hit.id}
    if "sign" in fault:  # a reversed joint's own sweeps do not move the leg as the model says
        allowed.add(f"identify/{joint}")
    assert failed <= allowed, [(c.id, c.message) for c in r.failed()]
    assert r.case(f"identify/{sibling}").verdict == "passed" and r.case("bus/lowstate").verdict == "passed"
    m = hit.measured
    if "offset_rad" in fault:
        assert m["offset_rad"] == pytest.approx(0.1, abs=0.02)
    if "friction_scale" in fault:
        # identification recovers the bridge's model: 3 x the robot config's 0.1 N·m·s/rad viscous
        assert m["viscous_nm_s_rad"] == pytest.approx(0.3, rel=0.2)
        # the healthy sibling reads its own, untouched by the other leg's fault
        assert r.case(f"identify/{sibling}").measured["viscous_nm_s_rad"] == pytest.approx(0.1, rel=0.2)
        assert r.case(f"identify/{sibling}").measured["coulomb_nm"] == pytest.approx(0.05, rel=0.2)
        assert m["coulomb_nm"] == pytest.approx(0.15, rel=0.2)  # 3 x 0.05 N·m
        assert m["coulomb_nm"] > 2.0 * r.case(f"identify/{sibling}").measured["coulomb_nm"]
    if "torque_limit_scale" in fault:
        assert m["torque_ratio"] < 0.8


@pytest.mark.parametrize("fault, words", [({"state_drop_probability": 0.05}, "dropped"),
                                          ({"crc_corrupt_probability": 0.01}, "CRC"),
                                          ({"command_latency_ms": 20.0}, "round trip")])
def test_bus_faults_are_caught_and_named(fault, words, tmp_path):
    rig = rig_with(tmp_path, "sim_g1", {**fault, "seed": 3})
    r = harness.run(rig, only=["bus", "identify"], joints="left_elbow_joint", domain_id=domain(), workdir=tmp_path)
    bus = r.case("bus/lowstate")
    assert bus.verdict == "failed" and words in bus.message, bus.message
    ident = r.case("identify/left_elbow_joint")
    if "command_latency_ms" in fault:
        # identification recovers the injected delay: one control period (2 ms) + 20 ms
        assert ident.verdict == "failed" and "delay" in ident.message
        assert ident.measured["delay_ms"] - 2.0 == pytest.approx(20.0, rel=0.2)
        assert bus.measured["latency_ms_max"] - 2.0 == pytest.approx(20.0, rel=0.2)
    else:
        assert ident.verdict == "passed", ident.message
    if "state_drop_probability" in fault:
        assert bus.measured["drop_rate"] == pytest.approx(0.05, abs=0.025)
    if "crc_corrupt_probability" in fault:
        assert bus.measured["crc_errors"] > 0


def test_cli_reports_and_compare(tmp_path):
    env = {**os.environ}
    out = tmp_path / "a.json"
    args = [VERTEBRA, "hil", "run", "sim_g1", "--quick", "--only", "bus,limits", "--domain", str(domain()),
            "--junit", str(tmp_path / "a.xml"), "--html", str(tmp_path / "a.html"), "--json-out", str(out), "--json",
            "--data-dir", str(tmp_path / "data")]
    # without --yes and without a terminal nothing moves
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 1 and "confirm at a terminal, or pass --yes" in p.stderr
    assert "left_ankle_roll_joint, waist_roll_joint driven to their soft limit" in p.stderr  # the plan came first
    p = subprocess.run(args + ["--yes"], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads(p.stdout)
    assert summary["fit_to_run"] and summary["counts"]["passed"] == 3
    # the result joined the robot's lifecycle records (the run that was not confirmed did not)
    assert summary["lifecycle"] == str(tmp_path / "data" / "lifecycle.sqlite")
    p = subprocess.run([VERTEBRA, "lifecycle", "--dir", str(tmp_path / "data"), "--json"], capture_output=True, text=True,
                       timeout=60)
    (robot,) = json.loads(p.stdout)["robots"]
    (h,) = robot["hil"]
    assert robot["robot"]["robot_key"] == "SIM-G1-0001" and h["fit_to_run"] and h["counts"]["passed"] == 3
    assert h["rig"] == "sim_g1" and h["profile"] == "quick"
    assert validate_junit(tmp_path / "a.xml") == []
    html = (tmp_path / "a.html").read_text()
    assert "FIT TO RUN" in html and "data:image/png;base64," in html and "SIM-G1-0001" in html
    a = RunResult.load(out)
    a.cases[0].measured["latency_ms_max"] = 30.0
    a.cases[0].verdict = "failed"
    a.save(tmp_path / "b.json")
    p = subprocess.run([VERTEBRA, "hil", "compare", str(out), str(tmp_path / "b.json")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "bus/lowstate" in p.stdout and "latency_ms_max" in p.stdout, p.stdout
    p = subprocess.run([VERTEBRA, "hil", "run", str(tmp_path / "missing.yaml"), "--yes"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "missing.yaml" in p.stderr


def test_ctrl_c_stops_the_run_with_the_configured_stop(tmp_path):
    import signal
    import time

    p = subprocess.Popen([VERTEBRA, "hil", "run", "sim_g1", "--quick", "--only", "identify", "--yes", "--json",
                          "--domain", str(domain()), "--workdir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    end = time.monotonic() + 120
    while "identify left_hip_roll_joint" not in seen and time.monotonic() < end:  # the second joint's program
        line = p.stderr.readline()
        if not line:
            break
        seen += line
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err[-2000:]
    summary = json.loads(out)
    assert not summary["fit_to_run"] and "stopped by the operator" in summary["stopped"]
    assert "Ctrl-C: stopping" in err
    events = [json.loads(x) for x in (tmp_path / "bench-events.jsonl").read_text().splitlines()]
    assert any(e.get("to") == "STOPPING" for e in events)  # the configured stop: settle-then-cut, then damping

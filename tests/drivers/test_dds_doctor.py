"""`vertebra dds doctor` over real Cyclone DDS on the loopback interface: against the sim bridge (in
another process, as the robot would be, or in this one where a test injects faults), a second
rt/lowcmd publisher, an empty domain, and bad arguments. Windows are short and no assertion is on
wall-clock timing (rates are only checked to be there): this machine is loaded and shared."""

import json
import subprocess
import sys

import pytest
from vertebra import _rt
from vertebra.drivers.registry import UnitreeDdsDriverConfig
from vertebra.drivers.sim_bridge import SimBridge
from vertebra.runtime.cli import main
from vertebra.runtime.commands.dds import diagnose
from vertebra.runtime.config import RobotConfig

from tests.drivers.test_unitree_dds import domain

HG_STATE, GO_STATE = "unitree_hg::msg::dds_::LowState_", "unitree_go::msg::dds_::LowState_"
HG_CMD = "unitree_hg::msg::dds_::LowCmd_"


def doctor(capsys, dom, *extra, seconds="0.7"):
    """Run the command in this process; (exit code, stdout, stderr)."""
    code = main(["dds", "doctor", "--domain", str(dom), "--interface", "lo", "--seconds", seconds, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def codes(report):
    return {f["code"]: f for f in report["findings"]}


def traffic(report, topic, type_name):
    return next(t for t in report["traffic"] if t["topic"] == topic and t["type"] == type_name)


def test_the_doctor_finds_a_bridge_in_another_process_and_its_lowstate(capsys):
    dom = domain()
    bridge = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", "g1",
                               "--domain", str(dom)], stderr=subprocess.PIPE, text=True)
    try:
        assert "vertebra sim-bridge: g1 on DDS domain" in bridge.stderr.readline()  # it is publishing
        code, out, err = doctor(capsys, dom, "--robot", "g1", "--json", seconds="1")
    finally:
        bridge.terminate()
        bridge.communicate(timeout=30)
    assert f"listening 1 s on domain {dom}, interface lo" in err  # progress on stderr
    r = json.loads(out)
    assert [p["pid"] for p in r["participants"]] == [str(bridge.pid)]  # the bridge, and not the doctor itself
    bridge_guid = r["participants"][0]["guid"]
    assert r["own_guid"] != bridge_guid and r["participants"][0]["process"]
    pubs = [(e["topic"], e["type"]) for e in r["endpoints"] if e["kind"] == "publication"]
    subs = [(e["topic"], e["type"]) for e in r["endpoints"] if e["kind"] == "subscription"]
    assert ("rt/lowstate", HG_STATE) in pubs and ("rt/lowcmd", HG_CMD) in subs  # (and whatever else it serves)
    assert not [t for t, _ in pubs if t == "rt/lowcmd"]
    assert all(e["participant_guid"] == bridge_guid for e in r["endpoints"])
    hg, go = traffic(r, "rt/lowstate", HG_STATE), traffic(r, "rt/lowstate", GO_STATE)
    assert hg["samples"] > 0 and hg["crc_errors"] == 0 and hg["matched_writers"] == 1
    assert go["samples"] == 0 and go["matched_writers"] == 0  # a reader matches only its own type name
    # Nothing wrong with the bus; the bridge may emulate the robot as it boots, its motion service running.
    blocking = {f["code"] for f in r["findings"] if f["severity"] == "blocking"}
    assert blocking <= {"motion_service_active"} and code == (1 if blocking else 0) and r["ready"] == (not blocking)


def test_a_running_motion_service_blocks(capsys):
    dom = domain()
    with SimBridge("go2", domain_id=dom, lockstep=True, motion_service=True):
        code, out, _ = doctor(capsys, dom, "--robot", "go2", "--json", seconds="0.5")
    f = codes(json.loads(out))["motion_service_active"]
    assert f["severity"] == "blocking" and "rt/sportmodestate is published by" in f["message"]
    assert "ReleaseMode" in f["action"] and code == 1


def test_the_doctor_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["dds", "doctor", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert e.value.code == 0 and "--interface" in out and "Exit code 0 when nothing blocks" in out


def test_the_human_report_names_participant_topics_and_verdict(capsys):
    dom = domain()
    with SimBridge("g1", domain_id=dom):
        code, out, _ = doctor(capsys, dom)
    assert code == 0
    assert "participants (1 besides this doctor):" in out
    assert f"publishes  rt/lowstate  {HG_STATE}" in out and f"subscribes rt/lowcmd  {HG_CMD}" in out
    assert "rt/lowcmd publishers: none" in out
    assert f"rt/lowstate as {HG_STATE}: " in out and "CRC errors 0" in out
    assert "messages_seen: rt/lowstate speaks unitree_hg (G1 messages)" in out  # no --robot: reported, not checked
    assert "verdict: nothing here stops Vertebra from driving" in out


def test_corrupted_states_are_counted_as_crc_errors(capsys):
    dom = domain()
    with SimBridge("g1", domain_id=dom) as bridge:
        bridge.bridge.corrupt_states(10**6)  # every state from now on has a wrong CRC
        code, out, _ = doctor(capsys, dom, "--json")
        sent = bridge.counters()["corrupted_sent"]
    r = json.loads(out)
    hg = traffic(r, "rt/lowstate", HG_STATE)
    assert 0 < hg["crc_errors"] <= sent and hg["crc_errors"] == hg["samples"]
    f = codes(r)["lowstate_crc_errors"]
    assert f["severity"] == "blocking" and "message definitions differ" in f["action"]
    assert code == 1 and not r["ready"]


def test_a_go2_on_the_wire_with_a_g1_config_is_the_wrong_messages(capsys):
    dom = domain()
    with SimBridge("go2", domain_id=dom, lockstep=True):
        code, out, _ = doctor(capsys, dom, "--robot", "g1", "--json", seconds="0.5")
    r = json.loads(out)
    f = codes(r)["wrong_messages"]
    assert GO_STATE in f["message"] and "unitree_go (Go2 messages)" in f["message"]
    assert "expects unitree_hg (G1 messages)" in f["message"] and code == 1


def test_another_lowcmd_publisher_is_listed_and_blocks(capsys):
    dom = domain()
    cfg = RobotConfig.load("g1")
    with SimBridge(cfg, domain_id=dom, lockstep=True):
        other = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom}).build(
            cfg, cfg.control_rate_hz)  # a second controller (or the motion service) with a writer on rt/lowcmd
        try:
            code, out, _ = doctor(capsys, dom, "--robot", "g1", "--json", seconds="0.5")
            code_text, text, _ = doctor(capsys, dom, seconds="0.5")
        finally:
            other.cleanup()
    r = json.loads(out)
    lc = [e for e in r["endpoints"] if e["kind"] == "publication" and e["topic"] == "rt/lowcmd"]
    assert len(lc) == 1 and lc[0]["type"] == HG_CMD
    f = codes(r)["lowcmd_publishers"]
    assert f["severity"] == "blocking" and "1 participant(s) publish rt/lowcmd" in f["message"]
    assert "motion_switcher's ReleaseMode" in f["action"] and "refuses to activate" in f["action"]
    assert code == 1 and code_text == 1
    assert "rt/lowcmd publishers: \n  " in text and "BLOCKING  lowcmd_publishers" in text
    assert "verdict: 1 blocking finding(s)" in text


def test_an_empty_domain_is_wrong_interface_or_domain(capsys):
    code, out, _ = doctor(capsys, domain(), seconds="0.5")
    assert code == 1
    assert "participants (0 besides this doctor):" in out
    assert "no_participants: no other DDS participant on domain" in out
    assert "wrong interface or wrong domain" in out and "lo (up, loopback: this machine only" in out


@pytest.mark.parametrize("argv, text", [
    (["--domain", "999"], "--domain: found 999; valid: an integer 0 to 232"),
    (["--domain", "x"], "--domain: found 'x'; valid"),
    (["--seconds", "0"], "--seconds: found 0; valid: seconds > 0"),
    (["--robot", "nao"], "--robot: invalid choice: 'nao'"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, argv, text):
    with pytest.raises(SystemExit) as e:
        main(["dds", "doctor", *argv])
    assert e.value.code == 2 and text in capsys.readouterr().err


def test_an_unknown_interface_exits_2_naming_the_valid_ones(capsys):
    code = main(["dds", "doctor", "--interface", "nope0", "--seconds", "0.1"])
    err = capsys.readouterr().err
    assert code == 2 and "network_interface: found 'nope0'; valid: an interface of this machine (" in err
    with pytest.raises(ValueError, match="seconds: found"):
        _rt.dds_survey(0, "lo", 0.0)


def survey(**over):
    """A survey dict as _rt.dds_survey returns it: one robot publishing rt/lowstate at 500 Hz."""
    s = {"domain_id": 0, "network_interface": "eth0", "seconds": 1.0, "lowstate_topic": "rt/lowstate",
         "lowcmd_topic": "rt/lowcmd", "listened_s": 1.0, "own_guid": "me",
         "participants": [{"guid": "r", "entity_name": "", "hostname": "robot", "process": "lowlevel", "pid": "7",
                           "addresses": "", "alive": True}],
         "endpoints": [{"kind": "publication", "guid": "w", "participant_guid": "r", "topic": "rt/lowstate",
                        "type": HG_STATE, "reliable": False, "alive": True}],
         "traffic": [{"topic": "rt/lowstate", "type": HG_STATE, "matched_writers": 1, "samples": 500,
                      "crc_errors": 0, "rate_hz": 500.0, "gap_p50_ms": 2.0, "gap_p99_ms": 2.5, "gap_max_ms": 3.0}],
         "interfaces": [{"name": "eth0", "up": True, "multicast": True, "loopback": False, "ipv4": ["10.0.0.2"]},
                        {"name": "eth1", "up": True, "multicast": True, "loopback": False,
                         "ipv4": ["192.168.123.99"]}]}
    s.update(over)
    return s


def test_findings_on_surveys_the_bus_cannot_easily_produce():
    assert diagnose(survey(), "hg", state_timeout_ms=50.0) == []  # a healthy robot: nothing to say
    slow = survey(traffic=[{**survey()["traffic"][0], "rate_hz": 120.0, "gap_max_ms": 80.0}])
    got = {f.code: f.severity for f in diagnose(slow, "hg", state_timeout_ms=50.0)}
    assert got == {"lowstate_slow": "warning", "lowstate_gaps": "warning"}
    odd = survey(endpoints=[{**survey()["endpoints"][0], "type": "my_pkg::msg::LowState"}])
    assert [f.code for f in diagnose(odd, "hg")] == ["unknown_lowstate_type"]
    dotted = survey(endpoints=[{**survey()["endpoints"][0], "type": "unitree_hg.msg.dds_.LowState_"}])
    assert diagnose(dotted, "hg") == []  # a Python SDK's spelling of the same type
    silent = survey(traffic=[{**survey()["traffic"][0], "samples": 0, "matched_writers": 0, "rate_hz": 0.0}])
    assert "definition differs" in diagnose(silent, "hg")[0].message
    nobody = diagnose(survey(participants=[], endpoints=[]), "hg")
    assert [f.code for f in nobody] == ["no_participants"] and "try --interface eth1" in nobody[0].action

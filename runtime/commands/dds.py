"""`vertebra dds doctor`: what is on the robot's DDS domain, and what stops Vertebra from driving it.

It joins the domain through one interface and only listens (no writer, so it cannot disturb a robot)
for a window of ``--seconds`` (``_rt.dds_survey``, cpp/drivers/unitree/dds_doctor.hpp), then prints
the participants with their topics, the topics with their type names, who publishes rt/lowcmd, how
rt/lowstate arrives (rate, gaps, CRC errors), and findings, each with what to do. Exit code 0 when
nothing blocks driving (warnings allowed), 1 when a finding does, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from vertebra.runtime.commands import progress, robot_names

# Unitree's low-level loop runs at 500 Hz on both robots: unitree_sdk2's examples
# g1/low_level/g1_ankle_swing_example.cpp and go2/go2_low_level.cpp both use a 0.002 s period.
EXPECTED_LOWSTATE_HZ = 500.0
SLOW_FRACTION = 0.5  # a rate below this fraction of the expected one is "far below"
HG, GO = "unitree_hg::msg::dds_::", "unitree_go::msg::dds_::"
FAMILY_TEXT = {"hg": "unitree_hg (G1 messages)", "go": "unitree_go (Go2 messages)"}
# Unitree's RPC services take requests on rt/api/<service>/request (unitree_sdk2 robot clients;
# motion_switcher is the one that releases the built-in motion control, sport the Go2's locomotion).
SERVICE_TOPIC = "rt/api/{}/request"
SERVICES = ("motion_switcher", "sport", "loco")
# Published by Unitree's built-in motion (sport) service while it runs (unitree_sdk2 example
# go2/go2_sport_client.cpp, TOPIC_HIGHSTATE); the unitree_dds driver refuses to activate while it has a
# publisher (cpp/drivers/unitree/motion_switcher.hpp, kSportModeStateTopic).
SPORTMODESTATE_TOPIC = "rt/sportmodestate"
# DDSI-RTPS 2.x, 9.6.1.1 (default port mapping): a domain's ports start at PB + DG * domain_id.
RTPS_PORT_BASE, RTPS_DOMAIN_GAIN = 7400, 250
# The robot's own network (Unitree G1 and Go2 developer docs: the robot computers sit on 192.168.123.0/24).
ROBOT_SUBNET = "192.168.123."
RELEASE_TEXT = ("release Unitree's built-in motion service first (G1: with the remote, L2+B then L2+R2 for debug "
                "mode, or from the Unitree app; Go2: motion_switcher's ReleaseMode, as unitree_sdk2's "
                "go2_low_level example does, or from the Unitree app), and stop any other controller; Vertebra's "
                "unitree_dds driver refuses to activate until the service is released and nothing else publishes "
                "rt/lowcmd")


@dataclass
class Finding:
    code: str      # a stable name (tests and --json consumers match on it)
    severity: str  # "blocking": do not drive; "warning": drive with care; "info"
    message: str   # what was seen
    action: str    # what to do about it

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def type_family(type_name: str, message: str) -> str | None:
    """'hg' or 'go' when `type_name` is that family's `message` ("LowState_"), else None. Python SDKs may
    spell the scope with dots (unitree_sdk2py's "unitree_go.msg.dds_.LowCmd_"); both spellings count."""
    t = type_name.replace(".", "::")
    for family, scope in (("hg", HG), ("go", GO)):
        if t == scope + message:
            return family
    return None


def participant_label(p: dict[str, Any] | None, guid: str = "") -> str:
    """'host: process (pid N)', the entity name, or the GUID of a participant that announces neither."""
    if p is None:
        return f"participant {guid} (not in the participant list yet)"
    if p["hostname"] or p["process"]:
        text = f"{p['hostname'] or '?'}: {p['process'] or '?'}" + (f" (pid {p['pid']})" if p["pid"] else "")
    elif p["entity_name"]:
        text = p["entity_name"]
    else:
        text = f"participant {p['guid']} (announces no host or process: not Cyclone DDS)"
    return text + ("" if p["alive"] else " [left]")


def _interfaces_text(survey: dict[str, Any]) -> str:
    parts = []
    for n in survey["interfaces"]:
        flags = ["up" if n["up"] else "down"]
        flags.append("loopback: this machine only" if n["loopback"] else
                     ("multicast" if n["multicast"] else "no multicast"))
        parts.append(f"{n['name']} ({', '.join(flags + n['ipv4'])})")
    return "; ".join(parts) or "none found"


def diagnose(survey: dict[str, Any], messages: str | None = None, *, expected_hz: float = EXPECTED_LOWSTATE_HZ,
             state_timeout_ms: float | None = None) -> list[Finding]:
    """The findings on a survey (``_rt.dds_survey``'s dict). `messages`: "hg"/"go", what the robot config
    expects (None: not checked); `state_timeout_ms`: its safety config's state-loss timeout (None: not checked)."""
    out: list[Finding] = []
    dom, nic = survey["domain_id"], survey["network_interface"] or "(Cyclone's choice)"
    ls_topic, lc_topic = survey["lowstate_topic"], survey["lowcmd_topic"]
    by_guid = {p["guid"]: p for p in survey["participants"]}
    alive = [p for p in survey["participants"] if p["alive"]]
    eps = [e for e in survey["endpoints"] if e["alive"]]

    if not alive:
        hint = ""
        robot_nics = [n["name"] for n in survey["interfaces"] if n["name"] != survey["network_interface"]
                      and any(a.startswith(ROBOT_SUBNET) for a in n["ipv4"])]
        if robot_nics:
            hint = (f"; {', '.join(robot_nics)} has an address on the robot's {ROBOT_SUBNET}x network: "
                    f"try --interface {robot_nics[0]}")
        elif survey["network_interface"] == "lo":
            hint = "; lo reaches only programs on this machine: a robot on a cable needs that cable's interface"
        out.append(Finding(
            "no_participants", "blocking",
            f"no other DDS participant on domain {dom} through interface {nic} in {survey['listened_s']:.1f} s",
            f"wrong interface or wrong domain (Unitree robots use domain 0), the robot is off, or a firewall "
            f"drops DDS traffic (UDP ports from {RTPS_PORT_BASE + RTPS_DOMAIN_GAIN * dom} on domain {dom}); this "
            f"machine's interfaces: {_interfaces_text(survey)}{hint}"))
        return out

    def publishers(topic: str) -> list[dict[str, Any]]:
        return [e for e in eps if e["kind"] == "publication" and e["topic"] == topic]

    def traffic(topic: str, family: str, message: str) -> dict[str, Any] | None:
        want = (HG if family == "hg" else GO) + message
        return next((t for t in survey["traffic"] if t["topic"] == topic and t["type"] == want), None)

    # rt/lowstate: who publishes it, as which type, and how it arrives.
    ls_pubs = publishers(ls_topic)
    if not ls_pubs:
        out.append(Finding(
            "no_lowstate", "blocking",
            f"nobody publishes {ls_topic} on domain {dom} ({len(alive)} participant(s) are there, none the robot's "
            f"low-level state)",
            "the robot is off or still booting, or it is on another domain or network; with the simulator, start "
            f"`vertebra sim-bridge --robot ROBOT --domain {dom} --interface {survey['network_interface'] or 'IF'}`"))
    owners = {e["participant_guid"] for e in ls_pubs}
    if len(owners) > 1:
        out.append(Finding(
            "several_lowstate_publishers", "blocking",
            f"{len(owners)} participants publish {ls_topic}: "
            + "; ".join(participant_label(by_guid.get(g), g) for g in sorted(owners)),
            "one robot (or one simulator bridge) per domain: stop the extra one or move it to another domain"))
    for ptype in sorted({e["type"] for e in ls_pubs}):
        family = type_family(ptype, "LowState_")
        if family is None:
            out.append(Finding(
                "unknown_lowstate_type", "blocking",
                f"{ls_topic} is published as type '{ptype}', neither {HG}LowState_ (G1) nor {GO}LowState_ (Go2)",
                "Vertebra reads only Unitree's own message definitions; publish those (unitree_sdk2's IDL)"))
            continue
        if messages is not None and family != messages:
            out.append(Finding(
                "wrong_messages", "blocking",
                f"the robot publishes {ls_topic} as {ptype}, {FAMILY_TEXT[family]}, but the robot config expects "
                f"{FAMILY_TEXT[messages]}",
                f"use the robot config of the robot that is there (a G1 speaks unitree_hg, a Go2 unitree_go), or set "
                f"the driver's `messages: {family}` if this robot really speaks that"))
        elif messages is None:
            out.append(Finding("messages_seen", "info", f"{ls_topic} speaks {FAMILY_TEXT[family]}",
                               "pass --robot to check it against a robot config"))
        t = traffic(ls_topic, family, "LowState_")
        if t is None:
            continue
        if t["samples"] == 0:
            why = ("its definition differs from Vertebra's under the same name, or its QoS is incompatible (this "
                   "reader did not match it)") if t["matched_writers"] == 0 else "it matched but wrote nothing"
            out.append(Finding(
                "no_lowstate_samples", "blocking",
                f"{ls_topic} is announced as {ptype} but no sample arrived in {survey['listened_s']:.1f} s: {why}",
                "check that the robot's low-level service runs and that nothing filters UDP between here and it"))
            continue
        if t["crc_errors"]:
            out.append(Finding(
                "lowstate_crc_errors", "blocking",
                f"{t['crc_errors']} of {t['samples']} {ls_topic} samples failed their CRC",
                "the message definitions differ (an IDL from another robot, firmware or SDK version, or a publisher "
                "that does not zero the padding before its CRC): use unitree_sdk2's definitions for this robot"))
        if t["samples"] >= 10 and t["rate_hz"] < SLOW_FRACTION * expected_hz:
            out.append(Finding(
                "lowstate_slow", "warning",
                f"{ls_topic} arrives at {t['rate_hz']:.0f} Hz, far below the robot's {expected_hz:.0f} Hz",
                "a network problem: Wi-Fi instead of the cable, a congested switch, the wrong interface routing "
                "through another one; or a loaded publisher"))
        if state_timeout_ms is not None and t["gap_max_ms"] > state_timeout_ms:
            out.append(Finding(
                "lowstate_gaps", "warning",
                f"gaps between {ls_topic} samples reach {t['gap_max_ms']:.0f} ms, longer than the safety config's "
                f"state-loss timeout ({state_timeout_ms:g} ms)",
                "driving would stop with state_loss: fix the link (cable, switch, interface) before driving"))

    # The built-in motion service, running: it commands the motors itself.
    sport = sorted({e["participant_guid"] for e in publishers(SPORTMODESTATE_TOPIC)})
    if sport:
        out.append(Finding(
            "motion_service_active", "blocking",
            f"Unitree's built-in motion service is running ({SPORTMODESTATE_TOPIC} is published by "
            + "; ".join(participant_label(by_guid.get(g), g) for g in sport) + ")",
            RELEASE_TEXT))

    # rt/lowcmd: anyone else publishing it holds the motors.
    lc_pubs = publishers(lc_topic)
    if lc_pubs:
        holders = []
        for g in sorted({e["participant_guid"] for e in lc_pubs}):
            p = by_guid.get(g)
            types = sorted({e["type"] for e in lc_pubs if e["participant_guid"] == g})
            serves = [s for s in SERVICES if any(e["kind"] == "subscription" and e["participant_guid"] == g
                                                 and e["topic"] == SERVICE_TOPIC.format(s) for e in eps)]
            holders.append(participant_label(p, g) + f" as {', '.join(types)}"
                           + (f", serving {', '.join(serves)}" if serves else ""))
        out.append(Finding(
            "lowcmd_publishers", "blocking",
            f"{len(holders)} participant(s) publish {lc_topic}, so something else holds the motors: "
            + "; ".join(holders),
            RELEASE_TEXT))
        if messages is not None:
            wrong = sorted({e["type"] for e in lc_pubs if type_family(e["type"], "LowCmd_") not in (messages,)})
            if wrong:
                out.append(Finding(
                    "lowcmd_other_messages", "info",
                    f"{lc_topic} is also published as {', '.join(wrong)}, not {FAMILY_TEXT[messages]}",
                    "a controller for another robot, or an SDK with other definitions"))
    return out


def _print_report(survey: dict[str, Any], findings: list[Finding]) -> None:
    by_part: dict[str, list[dict[str, Any]]] = {}
    for e in survey["endpoints"]:
        by_part.setdefault(e["participant_guid"], []).append(e)
    print(f"DDS domain {survey['domain_id']} through interface {survey['network_interface'] or '(Cyclone chose)'}, "
          f"listened {survey['listened_s']:.1f} s")
    print(f"\nparticipants ({len(survey['participants'])} besides this doctor):")
    known = {p["guid"] for p in survey["participants"]}
    for p in survey["participants"]:
        serves = [s for s in SERVICES if any(e["kind"] == "subscription" and e["topic"] == SERVICE_TOPIC.format(s)
                                             for e in by_part.get(p["guid"], []))]
        print(f"  {participant_label(p)}  [{p['guid']}]" + (f"  addresses {p['addresses']}" if p["addresses"] else "")
              + (f"  (serves {', '.join(serves)})" if serves else ""))
        for e in by_part.get(p["guid"], []):
            verb = "publishes " if e["kind"] == "publication" else "subscribes"
            print(f"    {verb} {e['topic']}  {e['type']}{'' if e['alive'] else ' [left]'}")
    for g in sorted(set(by_part) - known):  # endpoints whose participant is not announced (yet)
        print(f"  participant {g} (endpoints only)")
        for e in by_part[g]:
            print(f"    {'publishes ' if e['kind'] == 'publication' else 'subscribes'} {e['topic']}  {e['type']}")
    topics: dict[tuple[str, str], list[int]] = {}
    for e in survey["endpoints"]:
        if e["alive"]:
            topics.setdefault((e["topic"], e["type"]), [0, 0])[0 if e["kind"] == "publication" else 1] += 1
    print("\ntopics:" if topics else "\ntopics: none")
    w = max((len(t) for t, _ in topics), default=0)
    wt = max((len(t) for _, t in topics), default=0)
    for (topic, typ), (pubs, subs) in sorted(topics.items()):
        print(f"  {topic:<{w}}  {typ:<{wt}}  {pubs} publisher(s), {subs} subscriber(s)")
    lc = [e for e in survey["endpoints"] if e["alive"] and e["kind"] == "publication"
          and e["topic"] == survey["lowcmd_topic"]]
    parts = {p["guid"]: p for p in survey["participants"]}
    print(f"\n{survey['lowcmd_topic']} publishers: " + ("none" if not lc else ""))
    for e in lc:
        print(f"  {participant_label(parts.get(e['participant_guid']), e['participant_guid'])}  {e['type']}")
    for topic in (survey["lowstate_topic"], survey["lowcmd_topic"]):
        seen = [t for t in survey["traffic"] if t["topic"] == topic and (t["samples"] or t["matched_writers"])]
        if not seen:
            print(f"{topic}: no samples")
        for t in seen:
            gaps = (f"; gaps p50 {t['gap_p50_ms']:.2f} ms, p99 {t['gap_p99_ms']:.2f} ms, max {t['gap_max_ms']:.2f} ms"
                    if t["samples"] >= 2 else "")
            print(f"{topic} as {t['type']}: {t['samples']} samples from {t['matched_writers']} writer(s), "
                  f"{t['rate_hz']:.1f} Hz{gaps}; CRC errors {t['crc_errors']}")
    print("\nfindings:" if findings else "\nfindings: none")
    for f in findings:
        print(f"  {f.severity.upper() if f.severity == 'blocking' else f.severity:<9} {f.code}: {f.message}")
        print(f"  {'':<9} -> {f.action}")
    blocking = sum(f.severity == "blocking" for f in findings)
    print(f"\nverdict: {blocking} blocking finding(s): do not drive until they are fixed" if blocking else
          "\nverdict: nothing here stops Vertebra from driving"
          + (f" ({sum(f.severity == 'warning' for f in findings)} warning(s))"
             if any(f.severity == "warning" for f in findings) else ""))


def domain_id(text: str) -> int:
    """argparse type of --domain: a DDS domain id, 0 to 232."""
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"found '{text}'; valid: an integer 0 to 232 (Unitree robots use 0)") from None
    if not 0 <= d <= 232:
        raise argparse.ArgumentTypeError(f"found {d}; valid: an integer 0 to 232 (Unitree robots use 0)")
    return d


def window_seconds(text: str) -> float:
    """argparse type of --seconds: a listening window > 0 and <= 3600 s."""
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"found '{text}'; valid: seconds > 0 and <= 3600") from None
    if not 0 < s <= 3600:
        raise argparse.ArgumentTypeError(f"found {text}; valid: seconds > 0 and <= 3600")
    return s


def run_doctor(args: argparse.Namespace) -> int:
    from vertebra import _rt

    if not hasattr(_rt, "dds_survey"):
        print("vertebra dds doctor: this build has no DDS (built with -DVERTEBRA_WITH_DDS=OFF)", file=sys.stderr)
        return 1
    messages, timeout_ms = None, None
    if args.robot:
        from vertebra.drivers.registry import UnitreeDdsDriverConfig
        from vertebra.runtime.config import RobotConfig
        from vertebra.runtime.errors import VertebraError
        from vertebra.safety.config import SafetySettings

        try:
            rcfg = RobotConfig.load(args.robot)
            messages = UnitreeDdsDriverConfig.default_messages(rcfg)
            timeout_ms = SafetySettings.load(rcfg).state_timeout_ms
        except VertebraError as e:
            print(f"vertebra dds doctor: {e}", file=sys.stderr)
            return 2
    say = progress(True)
    assert say is not None
    say(f"vertebra dds doctor: listening {args.seconds:g} s on domain {args.domain}, interface "
        f"{args.interface or '(Cyclone chooses)'} ...")
    try:
        survey = _rt.dds_survey(args.domain, args.interface, args.seconds, args.lowstate_topic, args.lowcmd_topic)
    except ValueError as e:  # a bad interface (or domain, window, topic): the arguments
        print(f"vertebra dds doctor: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"vertebra dds doctor: {e}", file=sys.stderr)
        return 1
    findings = diagnose(survey, messages, state_timeout_ms=timeout_ms)
    blocking = any(f.severity == "blocking" for f in findings)
    if args.json:
        print(json.dumps({**survey, "robot": args.robot, "expected_messages": messages,
                          "findings": [f.to_dict() for f in findings], "ready": not blocking}))
    else:
        _print_report(survey, findings)
    return 1 if blocking else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = subparsers.add_parser("dds", help="DDS tools for Unitree robots (doctor)",
                              description="Tools for the DDS network a Unitree robot speaks.")
    dsub = d.add_subparsers(dest="dds", metavar="<action>")
    dsub.required = True
    doc = dsub.add_parser(
        "doctor", help="what is on the robot's DDS domain, and what stops Vertebra from driving it",
        description="Join a DDS domain through an interface and listen (no writer: it cannot disturb the robot): "
                    "participants with their host, process and topics; topics with their type names; who publishes "
                    "rt/lowcmd; rt/lowstate's rate, gaps between samples and CRC errors; then findings with what to "
                    "do (wrong interface or domain, robot off, hg/go message mismatch, the built-in motion service "
                    "or another controller on rt/lowcmd, CRC errors, a slow link). Exit code 0 when nothing blocks "
                    "driving, 1 when a finding does, 2 on bad arguments.")
    doc.add_argument("--domain", type=domain_id, default=0, help="DDS domain id, 0 to 232 (default 0, as on the robot)")
    doc.add_argument("--interface", default="",
                     help="network interface: the one on the robot's network (a 192.168.123.x address), lo for a "
                          "simulator bridge on this machine (default: Cyclone DDS chooses)")
    doc.add_argument("--seconds", type=window_seconds, default=3.0, help="listening window in seconds (default 3)")
    doc.add_argument("--robot", choices=robot_names(), default=None,
                     help="the robot expected (checks its message type, hg for g1 / go for go2, and its safety "
                          "config's state-loss timeout against the gaps seen)")
    doc.add_argument("--lowstate-topic", default="rt/lowstate", help="the robot's state topic (default rt/lowstate)")
    doc.add_argument("--lowcmd-topic", default="rt/lowcmd", help="the motor command topic (default rt/lowcmd)")
    doc.add_argument("--json", action="store_true", help="print one JSON object: the survey, findings and ready")
    doc.set_defaults(func=run_doctor)

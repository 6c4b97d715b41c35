"""vertebra status: the renderer on real-shaped status maps, the CLI's --json/--once against an
in-process control API, the live view's keys, and the terminal's cbreak mode restored on every exit."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import termios
from collections.abc import Iterator
from typing import Any

import pytest
from vertebra.runtime.cli import main
from vertebra.runtime.service.client import ServiceUnreachable
from vertebra.tools.status import live_view, render_status, worst_joints
from vertebra.tools.terminal import KeyReader, Screen

from .conftest import write_deploy


def text(lines: list[str]) -> str:
    return "\n".join(lines)


# -- render_status -------------------------------------------------------------------------------
def test_faults_are_shown_with_their_causes(status: dict[str, Any]) -> None:
    lines = render_status(status, 200)
    faults = [ln for ln in lines if "joint_position_limit" in ln or "motor_overtemp" in ln]
    assert len(faults) == 2 and all(ln.startswith("!") for ln in faults)
    limit = next(ln for ln in faults if "joint_position_limit" in ln)
    assert "LATCHED, present" in limit and "joint left_knee_joint" in limit
    assert "value 2.013" in limit and "response damp" in limit
    temp = next(ln for ln in faults if "motor_overtemp" in ln)
    assert "latched (cause gone" in temp and "response settle_then_cut" in temp
    mode = next(ln for ln in lines if ln[1:].startswith("mode"))
    assert mode.startswith("!") and "FAULT (hold)" in mode


def test_a_fault_naming_its_joint_by_index_shows_the_name(status: dict[str, Any]) -> None:
    status["faults"] = [{"fault": "joint_hard_limit", "latched": True, "present": False, "joint": 3,
                         "value": 0.588, "response": "stop"}]
    line = next(ln for ln in render_status(status, 200) if "joint_hard_limit" in ln)
    assert "joint left_knee_joint" in line and "response stop" in line


def test_no_faults_says_none(status: dict[str, Any]) -> None:
    status["faults"] = []
    status["safety_mode"] = "HOLD"
    lines = render_status(status, 120)
    assert any(ln[1:].startswith("faults") and ln.endswith("none") for ln in lines)
    assert not any(ln.startswith("!") and "mode" in ln for ln in lines)


def test_lease_holder_and_freshness_are_shown(status: dict[str, Any]) -> None:
    lease = next(ln for ln in render_status(status, 200) if ln[1:].startswith("lease"))
    assert "alice@teleop  held for 31.2 s" in lease and "0.21 s ago" in lease and "timeout 1 s" in lease
    assert not lease.startswith("!")
    status["lease"]["state"] = "stale"
    stale = next(ln for ln in render_status(status, 200) if ln[1:].startswith("lease"))
    assert stale.startswith("!") and "STALE" in stale
    status["lease"] = None
    free = next(ln for ln in render_status(status, 200) if ln[1:].startswith("lease"))
    assert "free" in free


def test_worst_joints_are_flagged(status: dict[str, Any]) -> None:
    worst = worst_joints(status["joints"])
    assert worst == {"limit": 3, "torque": 10, "temp": 3}
    lines = render_status(status, 90)  # one column
    knee = next(ln for ln in lines if "left_knee_joint" in ln and "*" in ln and "(" not in ln)
    assert knee.startswith(">") and knee.count("*") == 2  # limit margin and temperature
    ankle = next(ln for ln in lines if "right_ankle_pitch_joint" in ln and "(" not in ln)
    assert ankle.startswith(">") and "8%*" in ankle
    for w in (90, 200):  # one summary line when it fits, else one per column
        lines = render_status(status, w)
        at = next(i for i, ln in enumerate(lines) if ln[1:].startswith("worst"))
        summary = text(lines[at:at + 3])
        assert "limit margin 0.012 rad (left_knee_joint)" in summary and "temp 71.5 C (left_knee_joint)" in summary
        assert "torque margin 8% (right_ankle_pitch_joint)" in summary
    lines = render_status(status, 90)
    waist = next(ln for ln in lines if ln.startswith("!") and "waist_yaw_joint" in ln and "error" not in ln)
    assert waist.rstrip().endswith("3")
    assert any("error flags on waist_yaw_joint" in ln for ln in lines)


def test_policy_starvation_episode_loop_guard(status: dict[str, Any]) -> None:
    t = text(render_status(status, 220))
    assert "pick_cube running" in t and "outages 2" in t and "latency p50 31.2 ms max 90.5 ms" in t
    chunks = next(ln for ln in render_status(status, 220) if ln[1:].startswith("chunks"))
    assert chunks.startswith("!") and "STARVED" in chunks and "starved ticks 37" in chunks
    assert '#7 "pick up the red cube"' in t and "INTERVENTION by alice@teleop (policy paused)" in t
    assert "lateness p50 12 p99 84 max 412 us" in t and "overruns 3" in t and "clamps 12" in t
    assert "49.87 V" in t and "watching  takeovers 0" in t and "pings 1624" in t
    status["policy"]["running"] = False
    chunks = next(ln for ln in render_status(status, 220) if ln[1:].startswith("chunks"))
    assert not chunks.startswith("!")  # starved without a running policy is no alarm


def test_guard_not_watching_is_an_alert(status: dict[str, Any]) -> None:
    status["guard"] = {"state": "not running", "watching": False}
    guard = next(ln for ln in render_status(status, 120) if ln[1:].startswith("guard"))
    assert guard.startswith("!") and "not running  NOT WATCHING" in guard


@pytest.mark.parametrize("width", [1, 2, 7, 20, 39, 80, 123, 400])
def test_any_width_renders_within_it(status: dict[str, Any], width: int) -> None:
    lines = render_status(status, width)
    assert lines and all(len(ln) <= width for ln in lines)


def test_narrow_terminal_keeps_the_margins(status: dict[str, Any]) -> None:
    lines = render_status(status, 50)
    knee = next(ln for ln in lines if ln.startswith(">") and "left_kne" in ln)
    assert "71.5*" in knee and "0.012*" in knee and len(knee) <= 50


def test_wide_terminal_lays_joints_out_in_two_columns(status: dict[str, Any]) -> None:
    narrow, wide = render_status(status, 90), render_status(status, 250)
    assert len(wide) < len(narrow)
    for j in status["joints"]:
        assert j["name"] in text(wide)


def test_a_starting_service_renders(status: dict[str, Any]) -> None:
    starting = {k: status[k] for k in ("api", "service", "deploy", "robot", "pid", "uptime_s", "lease",
                                        "previous_run", "job")}
    starting["service"] = "starting"
    starting["previous_run"] = {"end": "killed or crashed (no clean stop recorded)", "clean": False}
    lines = render_status(starting, 80)
    assert any(ln.startswith("!") and "starting" in ln for ln in lines)
    assert any(ln.startswith("!") and "killed or crashed" in ln for ln in lines)
    assert render_status({}, 30)  # nothing at all: still lines, no exception


# -- the CLI against an in-process control API ------------------------------------------------------
def test_json_prints_one_snapshot(fake_service: Any, capsys: pytest.CaptureFixture[str]) -> None:
    svc, deploy = fake_service
    assert main(["status", "--config", str(deploy), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == svc.status and "type" not in out and "id" not in out


def test_once_prints_the_rendered_view(fake_service: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, deploy = fake_service
    assert main(["status", "--config", str(deploy), "--once"]) == 0
    out = capsys.readouterr().out
    assert "g1_bench (g1)" in out and "HOLD (hold)" in out and "left_knee_joint" in out


def test_unreachable_service_exits_1_naming_the_socket(sock_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    deploy = write_deploy(sock_dir, sock_dir / "nobody.sock")
    assert main(["status", "--config", str(deploy), "--json", "--timeout-s", "0.2"]) == 1
    err = capsys.readouterr().err
    assert f"ipc://{sock_dir / 'nobody.sock'}" in err and "does not answer" in err


def test_bad_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--config", "no_such_deploy", "--json"]) == 2
    assert "no_such_deploy" in capsys.readouterr().err


def test_live_view_from_the_stream_with_the_estop_key(fake_service: Any) -> None:
    from vertebra.runtime.service.client import ControlClient

    svc, deploy = fake_service
    client = ControlClient.for_deploy(str(deploy), client="test@status")
    keys = ScriptedKeys([[], ["e"], [], ["q"]])
    out = io.StringIO()
    try:
        assert live_view(client, keys, Screen(out, tty=False), interval_s=0.0) == 0
    finally:
        client.close()
    assert [r["type"] for r in svc.requests].count("estop") == 1
    frames = out.getvalue().split("\n\n")
    assert len(frames) == 4 and "g1_bench (g1)" in frames[0]
    assert "e-stop sent" in frames[2] and "ESTOP" in frames[3]


# -- the live view, with a scripted client -----------------------------------------------------------
class ScriptedKeys:
    """A KeyReader stand-in: each read() returns the next batch of keys."""

    enabled = True

    def __init__(self, batches: list[list[str]]):
        self.batches = list(batches)

    def read(self, timeout_s: float) -> list[str]:
        return self.batches.pop(0) if self.batches else []


class FlakyClient:
    """A stream that fails once (the service restarting), then works; an e-stop that cannot go out."""

    endpoint = "ipc:///tmp/flaky.sock"

    def __init__(self, status: dict[str, Any]):
        self.status = status
        self.streams = 0

    def stream(self, endpoint: str | None = None, timeout_s: float = 2.0) -> Iterator[dict[str, Any]]:
        self.streams += 1
        if self.streams == 1:
            raise ServiceUnreachable("no status from ipc:///tmp/flaky.pub.sock within 2 s")
        while True:
            yield {"type": "status", **self.status}

    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        raise ServiceUnreachable(f"no answer to '{type_}'")


def test_live_view_shows_a_lost_stream_and_an_undelivered_estop(status: dict[str, Any]) -> None:
    client = FlakyClient(status)
    out = io.StringIO()
    assert live_view(client, ScriptedKeys([[" "], [], [], ["q"]]), Screen(out, tty=False), interval_s=0.0) == 0
    frames = out.getvalue().split("\n\n")
    assert "no status from ipc:///tmp/flaky.pub.sock within 2 s; retrying" in frames[0]
    assert "waiting for the service" in frames[0]
    assert "E-STOP NOT DELIVERED" in frames[1] and "g1_bench (g1)" in frames[1]
    assert client.streams == 2


def test_tty_screen_redraws_in_place(status: dict[str, Any]) -> None:
    out = io.StringIO()
    with Screen(out, tty=True) as screen:
        screen.draw(render_status(status, 100)[:5])
    s = out.getvalue()
    assert s.startswith("\x1b[?25l\x1b[H") and "\x1b[J" in s and s.endswith("\x1b[?25h\n")
    assert "\x1b[1;31m!" in s  # the FAULT mode line in red


# -- cbreak mode, restored on every exit path ----------------------------------------------------------
@pytest.fixture
def tty_stdin() -> Iterator[tuple[int, Any]]:
    master, slave = pty.openpty()
    f = os.fdopen(slave, "r")
    try:
        yield master, f
    finally:
        f.close()
        os.close(master)


def lflag(f: Any) -> int:
    return termios.tcgetattr(f.fileno())[3]


def test_keys_in_cbreak_mode_and_the_terminal_restored(tty_stdin: tuple[int, Any]) -> None:
    master, f = tty_stdin
    before = termios.tcgetattr(f.fileno())
    with KeyReader(f) as keys:
        assert keys.enabled and not lflag(f) & termios.ICANON and not lflag(f) & termios.ECHO
        os.write(master, b"e q")
        assert keys.read(5.0) == ["e", " ", "q"]
        assert keys.read(0.0) == []
    assert termios.tcgetattr(f.fileno()) == before


def test_terminal_restored_after_an_exception(tty_stdin: tuple[int, Any]) -> None:
    _, f = tty_stdin
    before = termios.tcgetattr(f.fileno())
    with pytest.raises(RuntimeError), KeyReader(f):
        raise RuntimeError("boom")
    assert termios.tcgetattr(f.fileno()) == before


def test_terminal_restored_on_sigterm(tty_stdin: tuple[int, Any]) -> None:
    _, f = tty_stdin
    before = termios.tcgetattr(f.fileno())
    old = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc, KeyReader(f):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # a bytecode boundary for the handler
        for _ in range(1000):
            pass
    assert exc.value.code == 128 + signal.SIGTERM
    assert termios.tcgetattr(f.fileno()) == before
    assert signal.getsignal(signal.SIGTERM) is old


def test_no_tty_no_cbreak() -> None:
    keys = KeyReader(io.StringIO("q"))
    with keys:
        assert not keys.enabled and keys.read(0.0) == []

"""The safety event log: checksummed JSON lines, crash-safe under SIGKILL, read by `vertebra events`."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from vertebra import _rt
from vertebra.safety.events import parse_line, parse_since, read_events

from tests.conftest import RATE, N, make_params


def _loop_with_log(path, damp: bool = False):
    """A mock loop logging to `path`; `damp`: the operator enables and requests DAMP (3 events)."""
    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(N)], RATE)
    lc = _rt.LoopConfig()
    lc.rate_hz = RATE
    lc.lockstep = True
    loop = _rt.RtLoop(mock, make_params(), lc, _rt.SafetyConfig())
    log = _rt.EventLog(loop, str(path))
    if damp:
        loop.set_enabled(True)
        loop.run_ticks(1)
        loop.request_mode(_rt.Mode.DAMPING)
        loop.run_ticks(1)
    return loop, log


def test_lines_carry_a_checksum_and_a_torn_line_is_reported_not_used(tmp_path):
    path = tmp_path / "events.jsonl"
    loop, log = _loop_with_log(path, damp=True)
    log.note("operator note", '"who":"test"', 0)
    log.flush()
    good = read_events(path)
    assert [e["kind"] for e in good.events] == ["operator", "operator", "mode", "note"]
    assert good.events[2]["from"] == "PASSIVE" and good.events[2]["to"] == "DAMP"
    assert good.events[3]["who"] == "test" and good.bad_lines == []
    lines = path.read_text().splitlines()
    with open(path, "a") as f:
        f.write(lines[2][: len(lines[2]) // 2])  # a write torn by a crash
    with open(path, "a") as f:
        f.write("\n" + lines[0].replace("enable", "enablE") + "\n")  # a corrupted line
    torn = read_events(path)
    assert len(torn.events) == 4 and torn.bad_lines == [5, 6]
    assert parse_line(lines[0]) == good.events[0]


CHILD = textwrap.dedent("""
    import sys, time
    from vertebra import _rt
    n = 6
    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(n)], 500.0)
    params = _rt.RobotParams(kp=[40.0]*n, kd=[2.0]*n, kd_damping=[3.0]*n, kp_max=[60.0]*n, kd_max=[3.0]*n,
                             q_lower=[-2.0]*n, q_upper=[2.0]*n, dq_max=[10.0]*n, tau_max=[30.0]*n, default_pose=[0.0]*n)
    lc = _rt.LoopConfig()
    lc.rate_hz = 500.0
    lc.realtime_priority = False
    lc.lock_memory = False
    loop = _rt.RtLoop(mock, params, lc, _rt.SafetyConfig())
    log = _rt.EventLog(loop, sys.argv[1], 50, 1000)
    log.start()
    loop.start()
    loop.set_enabled(True)
    i = 0
    while True:  # an operator toggling modes every 10 ms: a steady stream of events
        loop.request_mode(_rt.Mode.DAMPING if i % 2 == 0 else _rt.Mode.ZERO_TORQUE)
        i += 1
        time.sleep(0.01)
""")


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    path = tmp_path / "events.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().count("\n") >= 300:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the child runtime never wrote 300 events")
        time.sleep(0.3)
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    log = read_events(path)
    assert len(log.bad_lines) <= 1 and (not log.bad_lines or log.bad_lines[0] == path.read_text().count("\n") + 1)
    newest = max(e["wall_ns"] for e in log.events) / 1e9
    assert newest >= killed_at - 1.0, f"the last {killed_at - newest:.2f} s of events were lost"
    seqs = [e["seq"] for e in log.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_vertebra_events_filters_and_reports(tmp_path):
    path = tmp_path / "events.jsonl"
    loop, log = _loop_with_log(path, damp=True)
    log.flush()
    exe = os.path.join(os.path.dirname(sys.executable), "vertebra")
    r = subprocess.run([exe, "events", "--log", str(path), "--json", "--since", "1h", "--kind", "mode"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(e["from"], e["to"]) for e in out["events"]] == [("PASSIVE", "DAMP")]
    r = subprocess.run([exe, "events", "--log", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and "PASSIVE -> DAMP" in r.stdout and "enable" in r.stdout
    r = subprocess.run([exe, "events", "--log", str(path), "--since", "yesterday"], capture_output=True, text=True)
    assert r.returncode == 2 and "neither a duration" in r.stderr
    r = subprocess.run([exe, "events", "--log", str(tmp_path / "none.jsonl")], capture_output=True, text=True)
    assert r.returncode == 1 and "no event log" in r.stderr
    r = subprocess.run([exe, "events", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--since" in r.stdout


def test_since_parses_durations_and_iso_times():
    import datetime as dt

    now = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.timezone.utc)
    assert parse_since("10m", now) == now - dt.timedelta(minutes=10)
    assert parse_since("1.5h", now) == now - dt.timedelta(hours=1.5)
    assert parse_since("2026-11-21T07:00:00Z", now) == now - dt.timedelta(hours=1)
    assert parse_since("2026-11-21T07:00:00", now) == now - dt.timedelta(hours=1)


def test_events_the_ring_dropped_are_reported_where_they_were_lost(tmp_path):
    path = tmp_path / "events.jsonl"
    loop, log = _loop_with_log(path)
    loop.set_enabled(True)
    for k in range(3000):  # ~6000 events without draining: more than the ring holds
        loop.request_mode(_rt.Mode.DAMPING if k % 2 == 0 else _rt.Mode.ZERO_TORQUE)
        loop.run_ticks(1)
    log.flush()  # the ring's first 4096; the rest were dropped
    loop.request_mode(_rt.Mode.DAMPING)  # the next event shows where the loss was
    loop.run_ticks(1)
    log.flush()
    evs = read_events(path).events
    dropped = [e for e in evs if e["kind"] == "dropped"]
    assert len(dropped) == 1 and dropped[0]["lost"] > 1000
    seqs = [e["seq"] for e in evs if e["kind"] != "note"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    i = evs.index(dropped[0])
    assert evs[i + 1]["seq"] == dropped[0]["seq"] + dropped[0]["lost"]  # exactly the gap
    assert loop.snapshot()["events_dropped"] == dropped[0]["lost"]
    with pytest.raises(RuntimeError, match="already have a log"):
        _rt.EventLog(loop, "")

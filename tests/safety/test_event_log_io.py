"""The event log under I/O trouble: write failures are counted, reported and raise a warning fault
(read by the tick from the ring, no I/O there) that never stops the robot; the log rotates by size;
`vertebra events` streams, reads --tail from the end, bounds line length and survives odd fields."""

import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from vertebra import _rt
from vertebra.runtime.config import ConfigError, RobotConfig
from vertebra.safety.config import SafetySettings
from vertebra.safety.events import BLOCK_BYTES, BadLines, format_event, iter_events, read_events, tail_events

from tests.conftest import RATE, N, make_params

CLI = [sys.executable, "-m", "vertebra.runtime.cli"]


def _mock_loop(safety=None):
    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(N)], RATE)
    lc = _rt.LoopConfig()
    lc.rate_hz = RATE
    lc.lockstep = True
    return _rt.RtLoop(mock, make_params(), lc, safety if safety is not None else _rt.SafetyConfig())


def _toggle(loop, times):
    """An operator toggling DAMP / zero torque: three events a toggle."""
    loop.set_enabled(True)
    for k in range(times):
        loop.request_mode(_rt.Mode.DAMPING if k % 2 == 0 else _rt.Mode.ZERO_TORQUE)
        loop.run_ticks(1)


def _line(**fields):
    """One log line as the C++ EventLog writes it: JSON, then the CRC-32 of the text before it."""
    body = json.dumps(fields, separators=(",", ":"))[:-1]
    return body + f',"crc":"{zlib.crc32(body.encode()):08x}"}}\n'


def _event(seq, **extra):
    return _line(seq=seq, time="2026-11-21T08:00:00.000000Z", wall_ns=1795248000000000000 + seq, tick=seq,
                 robot_time_ns=0, robot_time_s=0.0, kind="note", text=f"event {seq}", run="4242-1795248000000", **extra)


# -- write failures ------------------------------------------------------------------------------
def test_a_log_that_cannot_be_written_raises_a_warning_fault_and_the_robot_keeps_going():
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("go2", lockstep=True, event_log="/dev/full")
    try:
        rt.events.note("start", "", 0)  # the first write fails: the disk is full
        rt.enable()
        rt.request(_rt.Mode.INTERPOLATE, 0.5, rt.default_pose)
        rt.wait(0.6)
        rt.request(_rt.Mode.HOLD)  # arming is not blocked by a warning
        rt.wait(0.2)
        s = rt.status()
        assert s["tick"] >= 300
        assert "event_log_write" in s["active_faults"] and "event_log_write" in s["raised_tick"]
        assert "event_log_write" not in s["faults"]  # not latched: a warning
        assert s["safety_mode"] == "HOLD" and s["mode"] == "hold"
        assert rt.events.io_errors > 0
        [fault] = [e for e in rt.event_list() if e.get("fault") == "event_log_write"]  # kept in memory
        assert fault["kind"] == "fault" and fault["response"] == "warn" and fault["value"] >= 1
    finally:
        rt.close()


def test_in_real_time_the_writer_thread_reports_and_the_tick_raises():
    import time

    mock = _rt.MockDriver()
    mock.init([f"j{i}" for i in range(N)], RATE)
    lc = _rt.LoopConfig()
    lc.rate_hz = RATE
    lc.realtime_priority = False
    lc.lock_memory = False
    loop = _rt.RtLoop(mock, make_params(), lc, _rt.SafetyConfig())
    log = _rt.EventLog(loop, "/dev/full", 20, 1000)
    log.start()
    loop.start()
    try:
        loop.set_enabled(True)  # an operator event: the writer thread fails to write it
        deadline = time.monotonic() + 30
        while "event_log_write" not in loop.snapshot()["active_faults"] and time.monotonic() < deadline:
            time.sleep(0.01)
        s = loop.snapshot()
        assert "event_log_write" in s["active_faults"] and s["faults"] == [] and log.io_errors > 0
    finally:
        loop.stop()
        log.stop()


def test_the_monitor_is_on_by_default_and_off_only_by_enabled_false(tmp_path):
    g1 = RobotConfig.load("g1")
    s = SafetySettings.load(g1)
    c = s.to_cpp(g1)
    assert c.event_log_monitor and c.event_log_rotate_bytes == 64 << 20 and c.event_log_keep_files == 5
    assert c.response("event_log_write") == "warn"
    assert _rt.SafetyConfig().event_log_monitor  # needs no threshold: on in the C++ default too
    import yaml

    raw = yaml.safe_load(Path(s.file).read_text())
    del raw["event_log"]  # a file without the section: the monitor is on
    assert SafetySettings.from_dict(raw, g1, "g1.yaml").to_cpp(g1).event_log_monitor
    raw["event_log"] = {"enabled": False}
    off = SafetySettings.from_dict(raw, g1, "g1.yaml")
    assert off.disabled_monitors() == ["event_log"] and not off.to_cpp(g1).event_log_monitor
    raw["event_log"] = {"write_monitor": False}
    assert SafetySettings.from_dict(raw, g1, "g1.yaml").disabled_monitors() == ["event_log.write_monitor"]
    raw["event_log"] = {"rotate_bytes": 100}
    with pytest.raises(ConfigError) as ei:
        SafetySettings.from_dict(raw, g1, "g1.yaml")
    assert ei.value.field == "event_log.rotate_bytes" and ">= 4096" in ei.value.valid

    loop = _mock_loop(_monitor_off())
    log = _rt.EventLog(loop, "/dev/full")
    log.note("x", "", 0)
    loop.run_ticks(5)
    assert log.io_errors > 0 and "event_log_write" not in loop.snapshot()["active_faults"]
    small = _rt.SafetyConfig()
    small.event_log_rotate_bytes = 100
    with pytest.raises(ValueError, match="event_log_rotate_bytes must be >= 4096, found 100"):
        _mock_loop(small)


def _monitor_off():
    c = _rt.SafetyConfig()
    c.event_log_monitor = False
    return c


CLEARS = textwrap.dedent("""
    import json, resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from vertebra import _rt
    from tests.safety.test_events import _loop_with_log
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    loop, log = _loop_with_log(sys.argv[1])
    def toggle(n):
        loop.set_enabled(True)
        for k in range(n):
            loop.request_mode(_rt.Mode.DAMPING if k % 2 == 0 else _rt.Mode.ZERO_TORQUE)
            loop.run_ticks(1)
        log.flush()
        loop.run_ticks(2)
        return loop.snapshot()["active_faults"]
    out = {"healthy": toggle(4), "errors_healthy": log.io_errors}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    import os
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1]), hard))  # the disk is full
    out["full"] = toggle(4)
    out["errors_full"] = log.io_errors
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
    out["freed"] = toggle(4)
    log.flush()
    print(json.dumps(out))
""")


def test_the_warning_clears_when_the_log_writes_again(tmp_path):
    path = tmp_path / "events.jsonl"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", CLEARS, str(path), root], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "event_log_write" not in out["healthy"] and out["errors_healthy"] == 0
    assert "event_log_write" in out["full"] and out["errors_full"] > 0
    assert "event_log_write" not in out["freed"]
    log = read_events(path)
    assert log.bad_lines == []
    kinds = [(e["kind"], e.get("fault")) for e in log.events]
    assert ("fault_cleared", "event_log_write") in kinds  # written once the disk had space again


def test_vertebra_sim_reports_write_failures(tmp_path):
    env = {**os.environ, "VERTEBRA_LOG_DIR": str(tmp_path)}
    r = subprocess.run(CLI + ["sim", "--robot", "go2", "--lockstep", "--duration", "0.2", "--event-log", "/dev/full",
                              "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1, r.stderr[-2000:]  # the run is not recorded: not a success
    out = json.loads(r.stdout)
    assert out["event_log"]["path"] == "/dev/full" and out["event_log"]["io_errors"] > 0
    assert out["event_log"]["dropped"] == 0 and out["event_log"]["events"] > 0
    assert "event_log_write" in out["active_faults"] and out["faults"] == [] and out["mode"] == "hold"
    assert "event log /dev/full is incomplete" in r.stderr and "Traceback" not in r.stderr


# -- rotation ------------------------------------------------------------------------------------
def test_the_log_rotates_by_size_keeping_n_files_and_losing_nothing_in_them(tmp_path):
    path = tmp_path / "events.jsonl"
    c = _rt.SafetyConfig()
    c.event_log_rotate_bytes = 4096
    c.event_log_keep_files = 3
    loop = _mock_loop(c)
    log = _rt.EventLog(loop, str(path))
    for _ in range(20):
        _toggle(loop, 10)
        log.flush()
    assert log.io_errors == 0 and log.written * 200 > 5 * 4096  # more generations than are kept
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    files = [path.with_name(f"events.jsonl.{k}") for k in (3, 2, 1)] + [path]
    seqs = []
    for f in files:
        assert f.stat().st_size <= 4096
        got = read_events(f)
        assert got.bad_lines == [] and got.events
        seqs += [e["seq"] for e in got.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # oldest first, no gap inside the kept files
    assert seqs[0] > 1 and seqs[-1] == log.written  # the oldest generations were dropped
    r = subprocess.run(CLI + ["events", "--log", str(path), "--json"], capture_output=True, text=True, timeout=60)
    assert [e["seq"] for e in json.loads(r.stdout)["events"]] == [e["seq"] for e in read_events(path).events]
    r = subprocess.run(CLI + ["events", "--log", str(path), "--all", "--json"], capture_output=True, text=True,
                       timeout=60)
    out = json.loads(r.stdout)
    assert [e["seq"] for e in out["events"]] == seqs and out["files"] == [str(f) for f in files]
    r = subprocess.run(CLI + ["events", "--log", str(path), "--all", "--tail", "3", "--json"], capture_output=True,
                       text=True, timeout=60)
    assert [e["seq"] for e in json.loads(r.stdout)["events"]] == seqs[-3:]


def test_devices_are_never_rotated(tmp_path):
    c = _rt.SafetyConfig()
    c.event_log_rotate_bytes = 4096
    loop = _mock_loop(c)
    log = _rt.EventLog(loop, "/dev/null")
    for _ in range(10):
        _toggle(loop, 20)
        log.flush()
    assert log.io_errors == 0 and os.path.exists("/dev/null") and not os.path.exists("/dev/null.1")
    assert "event_log_write" not in loop.snapshot()["active_faults"]


# -- reading -------------------------------------------------------------------------------------
def _big_log(path, target_bytes):
    n = 0
    with open(path, "w") as f:
        while f.tell() < target_bytes:
            chunk = "".join(_event(n + k + 1) for k in range(1000))
            n += 1000
            f.write(chunk)
    return n


def test_tail_reads_only_the_end_of_a_big_log(tmp_path):
    path = tmp_path / "events.jsonl"
    n = _big_log(path, 20 << 20)
    res = tail_events([path], 5)
    assert [e["seq"] for e in res.events] == list(range(n - 4, n + 1))
    assert res.bytes_read <= 2 * BLOCK_BYTES and res.bad == {}
    kind = tail_events([path], 2, lambda e: e["seq"] % 1000 == 0)
    assert [e["seq"] for e in kind.events] == [n - 1000, n]


MEMORY = textwrap.dedent("""
    import contextlib, io, os, resource, sys
    from vertebra.runtime.cli import main
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        rc = main(["events", "--log", sys.argv[1]] + sys.argv[2:])
    print(rc, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


@pytest.mark.parametrize("flags", [["--tail", "5"], ["--json"], [], ["--since", "1h", "--kind", "mode"]])
def test_vertebra_events_memory_does_not_grow_with_the_log(tmp_path, flags):
    path = tmp_path / "events.jsonl"
    _big_log(path, 20 << 20)
    size = path.stat().st_size
    r = subprocess.run([sys.executable, "-c", MEMORY, str(path)] + flags, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rc, grew = map(int, r.stdout.split())
    assert rc == 0
    assert grew < size // 4, f"peak memory grew by {grew / 2**20:.0f} MiB reading a {size / 2**20:.0f} MiB log"


def test_an_overlong_line_is_reported_as_bad_not_buffered(tmp_path):
    path = tmp_path / "events.jsonl"
    with open(path, "w") as f:
        f.write(_event(1))
        f.write("x" * (3 << 20) + "\n")  # 3 MiB without a checksum: garbage
        f.write(_event(3))
        f.write("y" * (2 << 20))  # a torn, overlong last line
    bad = BadLines()
    assert [e["seq"] for e in iter_events(path, bad)] == [1, 3] and bad.lines == [2, 4]
    res = tail_events([path], 10)
    assert [e["seq"] for e in res.events] == [1, 3] and res.bad[str(path)].lines == [-1, -3]
    r = subprocess.run(CLI + ["events", "--log", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "event 1" in r.stdout and "event 3" in r.stdout
    assert "2 line(s) failed their checksum or were too long" in r.stderr and "lines 2, 4" in r.stderr


def test_text_output_survives_missing_and_mistyped_fields_and_shows_the_run(tmp_path):
    path = tmp_path / "events.jsonl"
    odd = [
        _line(seq=1, kind="mode", run="1-2"),  # from/to/cause missing
        _line(seq=2, kind="fault", fault=["a"], joint={"x": 1}, tick={"t": 1}),
        _line(seq=3, kind="operator", action=None, still_active="tilt", requested=4),
        _line(seq=4, kind="clamp", burst="end", clamped=7),
        _line(seq=5, kind="fault_cleared"),
        _line(seq=6, kind="dropped", lost="many"),
        _line(seq=7, kind=["mode"], wall_ns="yesterday"),
        _line(seq=8, kind="note", text=5, time=12),
    ]
    path.write_text("".join(odd))
    for raw in odd:
        ev = json.loads(raw[: raw.rindex(',"crc"')] + "}")
        assert isinstance(format_event(ev), str)
    r = subprocess.run(CLI + ["events", "--log", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(odd) and "Traceback" not in r.stderr
    assert "run 1-2" in lines[0] and "? -> ?" in lines[0]
    assert "run ?" in lines[1]
    good = tmp_path / "good.jsonl"
    good.write_text(_event(1))
    r = subprocess.run(CLI + ["events", "--log", str(good)], capture_output=True, text=True, timeout=60)
    assert "run 4242-1795248000000" in r.stdout and "event 1" in r.stdout


def test_since_skips_and_counts_events_without_a_valid_time(tmp_path):
    import time

    now_ns = time.time_ns()
    path = tmp_path / "events.jsonl"
    walls = [now_ns, "abc", 1e300, None, True, now_ns - 7200 * 10**9]  # 2-5: not a time; 6: two hours ago
    path.write_text("".join(_line(seq=i + 1, kind="note", run="r", **({} if w is None else {"wall_ns": w}))
                            for i, w in enumerate(walls)))
    r = subprocess.run(CLI + ["events", "--log", str(path), "--since", "1h", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [e["seq"] for e in out["events"]] == [1] and out["since_skipped"] == 4
    assert "4 event(s) have no valid wall_ns" in r.stderr
    r = subprocess.run(CLI + ["events", "--log", str(path), "--since", "1h", "--tail", "5"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1 and "Traceback" not in r.stderr

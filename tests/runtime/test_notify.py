"""sd_notify without libsystemd: Notifier and WatchdogPinger against a fake $NOTIFY_SOCKET (NotifyListener)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from vertebra.runtime.service.notify import (
    MAX_STATUS_CHARS,
    NotifyError,
    Notifier,
    NotifyListener,
    WatchdogPinger,
    sanitize_status,
)


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def listener(request):
    with NotifyListener(abstract=request.param) as nl:
        yield nl


def test_ready_status_stopping_and_watchdog_arrive_as_one_datagram_each(listener):
    n = Notifier(listener.env(watchdog_usec=1_000_000, watchdog_pid=os.getpid()))
    assert n.enabled and n.watchdog_interval_s == 1.0
    assert n.ready("PASSIVE, no faults")
    assert n.status("HOLD")
    assert n.watchdog()
    assert n.extend_timeout(2.5)
    assert n.mainpid(4242)
    assert n.stopping("controlled stop")
    listener.wait_for("STOPPING", "1")
    got = [dict(m) for m in listener.messages()]
    assert got == [{"READY": "1", "STATUS": "PASSIVE, no faults"}, {"STATUS": "HOLD"}, {"WATCHDOG": "1"},
                   {"EXTEND_TIMEOUT_USEC": "2500000"}, {"MAINPID": "4242"},
                   {"STOPPING": "1", "STATUS": "controlled stop"}]
    assert all(m.pid == os.getpid() for m in listener.messages())  # what NotifyAccess=main checks
    assert n.sent == 6 and n.errors == 0


def test_status_is_one_line_and_bounded(listener):
    n = Notifier(listener.env())
    n.send(READY=True, STATUS="FAULT\nstate_loss\r\n\tjoint 3")
    assert listener.wait_for("READY")["STATUS"] == "FAULT state_loss joint 3"
    assert len(sanitize_status("x" * 10_000)) == MAX_STATUS_CHARS
    n.send_text("READY=1\nSTATUS=raw text")
    assert dict(listener.wait_for("STATUS", "raw text")) == {"READY": "1", "STATUS": "raw text"}


def test_bad_field_names_and_multiline_values_are_programming_errors(listener):
    n = Notifier(listener.env())
    with pytest.raises(ValueError, match="upper-case"):
        n.send(ready=1)
    with pytest.raises(ValueError, match="newline"):
        n.send(MAINPID="1\nREADY=1")


def test_without_notify_socket_everything_is_a_no_op():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert not n.ready("x") and not n.watchdog()
    assert n.sent == 0 and n.errors == 0
    assert not WatchdogPinger(n, lambda: True).start()


def test_watchdog_pid_of_another_process_disables_the_watchdog_not_notifications(listener):
    n = Notifier(listener.env(watchdog_usec=500_000, watchdog_pid=os.getpid() + 1))
    assert n.enabled and n.watchdog_interval_s is None
    assert "is not this process" in (n.watchdog_disabled_reason or "")
    assert not WatchdogPinger(n, lambda: True).active
    # Without WATCHDOG_PID the watchdog is for whoever reads the environment (sd_watchdog_enabled(3)).
    assert Notifier(listener.env(watchdog_usec=500_000)).watchdog_interval_s == 0.5


@pytest.mark.parametrize("env, variable", [
    ({"NOTIFY_SOCKET": "relative/notify.sock"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "vsock:2:1234"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "@"}, "NOTIFY_SOCKET"),
    ({"WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "me"}, "WATCHDOG_PID"),
])
def test_malformed_environment_is_refused_at_construction(env, variable):
    with pytest.raises(NotifyError) as e:
        Notifier(env)
    assert e.value.variable == variable and "found" in str(e.value) and "valid:" in str(e.value)


def test_a_socket_nobody_listens_on_is_an_error_at_construction(tmp_path):
    with pytest.raises(NotifyError, match="nothing receives.*unset NOTIFY_SOCKET"):
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with pytest.raises(NotifyError, match="nothing receives"):
        Notifier({"NOTIFY_SOCKET": "@vertebra-test-nobody-listens-here"})


def test_a_send_failure_after_construction_is_counted_not_raised():
    nl = NotifyListener()
    n = Notifier(nl.env())
    nl.close()  # the manager went away (re-exec) after we started
    assert not n.ready("x")
    assert n.errors == 1 and n.last_error and n.stats()["errors"] == 1


def test_unset_environment_keeps_children_from_inheriting(listener, monkeypatch):
    for k, v in listener.env(watchdog_usec=1_000_000, watchdog_pid=os.getpid()).items():
        monkeypatch.setenv(k, v)
    n = Notifier(unset_environment=True)
    assert n.enabled and n.watchdog_interval_s == 1.0
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    assert n.ready()


def wait_until(condition, timeout_s: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("condition not reached")


class Loop:
    """Stands for the runtime: healthy while its tick count advances between two checks."""

    def __init__(self) -> None:
        self.ticks = 0
        self.seen = -1
        self.mode = "HOLD"

    def healthy(self) -> bool:
        ok = self.ticks != self.seen
        self.seen = self.ticks
        return ok


def test_pinger_pings_only_while_healthy_and_resumes(listener):
    n = Notifier(listener.env(watchdog_usec=1_000_000))
    loop = Loop()
    p = WatchdogPinger(n, loop.healthy, lambda: f"mode {loop.mode}")
    assert p.period_s == 0.5  # half the interval
    assert p.check_once()  # first check: progress since "never"
    assert dict(listener.wait_for("WATCHDOG")) == {"WATCHDOG": "1", "STATUS": "mode HOLD"}
    assert not p.check_once()  # the loop is stuck: no ping, so the watchdog fires
    loop.mode = "FAULT"
    assert not p.check_once()
    assert dict(listener.wait_for("STATUS", "mode FAULT")) == {"STATUS": "mode FAULT"}  # status alone
    loop.ticks += 1
    before = len(listener.messages())
    assert p.check_once()  # resumed
    assert p.pings == 2 and p.skipped == 2
    listener.wait_for("WATCHDOG", "1", start=before)  # the datagram reaches the listener's thread
    assert listener.count("WATCHDOG", "1") == 2
    assert dict(listener.messages()[-1]) == {"WATCHDOG": "1"}  # unchanged status is not repeated


def test_pinger_thread_stops_pinging_when_unhealthy_and_on_stop(listener):
    n = Notifier(listener.env(watchdog_usec=1_000_000))
    healthy = threading.Event()
    healthy.set()
    p = WatchdogPinger(n, healthy.is_set, period_s=0.005)
    assert p.start() and p.running and not p.start()
    listener.wait_for("WATCHDOG", "1")
    first = len(listener.messages())
    listener.wait_for("WATCHDOG", "1", start=first)  # keeps pinging
    healthy.clear()
    skipped = p.skipped
    wait_until(lambda: p.skipped >= skipped + 3)  # rounds run, no pings sent
    pings = p.pings
    wait_until(lambda: p.skipped >= skipped + 6)
    assert p.pings == pings
    wait_until(lambda: listener.count("WATCHDOG") == pings)  # every ping sent arrived, none since
    healthy.set()
    listener.wait_for("WATCHDOG", "1", start=len(listener.messages()))
    p.stop()
    assert not p.running
    stopped_at = p.pings
    threading.Event().wait(0.03)
    assert p.pings == stopped_at


def test_a_healthy_check_that_raises_counts_as_unhealthy(listener):
    def broken() -> bool:
        raise RuntimeError("snapshot failed")

    p = WatchdogPinger(Notifier(listener.env(watchdog_usec=1_000_000)), broken)
    assert not p.check_once()
    assert p.health_errors == 1 and "snapshot failed" in (p.last_health_error or "")
    assert listener.count("WATCHDOG") == 0


def test_a_child_process_notifies_through_the_environment(listener):
    code = ("from vertebra.runtime.service.notify import Notifier\n"
            "n = Notifier()\n"
            "assert n.watchdog_interval_s == 0.25, n.watchdog_interval_s\n"
            "n.ready('child up')\n")
    env = {**os.environ, **listener.env(watchdog_usec=250_000)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = listener.wait_for("READY", "1")
    assert m["STATUS"] == "child up" and m.pid not in (None, os.getpid())

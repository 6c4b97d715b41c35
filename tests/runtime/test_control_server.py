"""The control API's sockets (vertebra.runtime.service.server) with a handler of the test's own: a
slow request never holds up the others, and a socket another live service answers on is not taken."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from vertebra.runtime.service.client import ControlClient
from vertebra.runtime.service.server import ControlEndpointError, ControlServer


def test_a_slow_request_is_answered_later_and_an_estop_meanwhile(tmp_path):
    release = threading.Event()
    order: list[str] = []

    def handle(msg, transport):
        if msg["type"] == "reload":
            fut: Future = Future()

            def finish():
                release.wait(5)
                order.append("reload")
                fut.set_result({"type": "reload_reply", "changed": True})

            threading.Thread(target=finish, daemon=True).start()
            return fut
        order.append(msg["type"])
        return {"type": f"{msg['type']}_reply"}

    srv = ControlServer(handle, lambda: {"mode": "x"}, tmp_path / "c.sock")
    srv.start()
    try:
        slow = ControlClient(f"ipc://{tmp_path / 'c.sock'}", "dev", timeout_s=5)
        fast = ControlClient(f"ipc://{tmp_path / 'c.sock'}", "op", timeout_s=5)
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(slow.request("reload", lease="t")))
        t.start()
        time.sleep(0.2)
        assert fast.request("estop")["type"] == "estop_reply"  # not queued behind the reload
        release.set()
        t.join(5)
        assert result["changed"] is True and order == ["estop", "reload"]
        slow.close()
        fast.close()
    finally:
        srv.close()


def test_a_socket_in_use_by_a_live_service_is_refused(tmp_path):
    a = ControlServer(lambda m, t: {"type": "x"}, lambda: {}, tmp_path / "c.sock")
    try:
        with pytest.raises(ControlEndpointError, match="in use by another running service"):
            ControlServer(lambda m, t: {"type": "x"}, lambda: {}, tmp_path / "c.sock")
    finally:
        a.close()
    import socket

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a run that died leaves its file behind
    stale.bind(str(tmp_path / "c.sock"))
    stale.close()
    b = ControlServer(lambda m, t: {"type": "x"}, lambda: {}, tmp_path / "c.sock")  # nobody answers: taken over
    assert oct((tmp_path / "c.sock").stat().st_mode & 0o777) == "0o660"
    b.close()

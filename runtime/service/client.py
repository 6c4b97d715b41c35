"""The control API's client, for the operator tools (status, teleop, recover, estop, reload) and for
anyone scripting the service: numpy, pyzmq and msgpack only.

    c = ControlClient.for_deploy("g1_dds", client="alice@teleop")   # or ControlClient("ipc:///run/...")
    c.request("status")["safety_mode"]
    with c.lease():                       # acquire; retained in the background; returned on exit
        c.call("enable"); c.call("stand")  # call() adds the lease token
    c.request("estop")                    # no lease needed

Replies are matched by id: a late answer to a request that timed out is dropped.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vertebra.runtime.errors import VertebraError
from vertebra.runtime.service.protocol import decode_reply, encode


class ControlError(VertebraError):
    """The service answered a request with an error reply (`code`, message)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class ServiceUnreachable(VertebraError):
    """No answer from the service within the timeout (not running, or wrong socket)."""


class ControlClient:
    def __init__(self, endpoint: str, client: str = "client", *, server_public_key: str | None = None,
                 client_secret_key: str | None = None, timeout_s: float = 2.0):
        """`endpoint`: ipc://... or tcp://... (tcp needs the server's public key file and this
        client's key pair file, whose public key is in the service's allowlist)."""
        import zmq

        self.endpoint, self.name, self.timeout_s = endpoint, client, float(timeout_s)
        self._args = dict(server_public_key=server_public_key, client_secret_key=client_secret_key,
                          timeout_s=timeout_s)
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # nothing queued for a service that is not there
        self._curve: tuple[bytes, bytes, bytes] | None = None
        if endpoint.startswith("tcp://"):
            if not (server_public_key and client_secret_key):
                raise VertebraError("a tcp:// control endpoint needs --server-key and --client-key (CURVE)")
            import zmq.auth

            spub, _ = zmq.auth.load_certificate(server_public_key)
            cpub, csec = zmq.auth.load_certificate(client_secret_key)
            if not csec:
                raise VertebraError(f"{client_secret_key} holds no secret key (use the .key_secret file)")
            self._curve = (spub, cpub, csec)
            self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = spub, cpub, csec
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.token: str | None = None
        self._keeper: threading.Thread | None = None
        self._keep = threading.Event()
        self.lease_lost: str | None = None  # why the background retain stopped

    @classmethod
    def for_deploy(cls, deploy: Any, client: str = "client", **kw: Any) -> ControlClient:
        """The client of the service running `deploy` (a DeployConfig, or a name/path)."""
        from vertebra.runtime.deploy import DeployConfig
        from vertebra.runtime.service.server import client_socket_path

        d = deploy if isinstance(deploy, DeployConfig) else DeployConfig.load(deploy)
        return cls(f"ipc://{client_socket_path(d)}", client, **kw)

    # -- requests -----------------------------------------------------------------------------
    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """One request and its reply; raises ControlError on an error reply, ServiceUnreachable on no
        answer."""
        import zmq

        with self._lock:
            rid = next(self._ids)
            msg = {"type": type_, "id": rid, "client": self.name, **fields}
            end = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
            # ZMQ_IMMEDIATE: writable only once connected (a fresh socket takes a moment)
            if not self.sock.poll(max(1, int((end - time.monotonic()) * 1000)), zmq.POLLOUT):
                raise ServiceUnreachable(f"the service at {self.endpoint} is not reachable (not running?)")
            try:
                self.sock.send(encode(msg), zmq.NOBLOCK)
            except zmq.Again:
                raise ServiceUnreachable(f"the service at {self.endpoint} is not reachable (not running?)") from None
            while True:
                left = end - time.monotonic()
                if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                    if time.monotonic() >= end:
                        raise ServiceUnreachable(f"no answer to '{type_}' from {self.endpoint} within "
                                                 f"{self.timeout_s if timeout_s is None else timeout_s:g} s")
                    continue
                reply = decode_reply(self.sock.recv())
                if reply.get("id") != rid:
                    continue  # a late answer to an earlier request
                if reply.get("type") == "error":
                    raise ControlError(str(reply.get("code")), str(reply.get("message")))
                return reply

    def call(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """A request that needs the lease: adds this client's token."""
        if self.token is None:
            raise ControlError("no_lease", "this client holds no lease; acquire it first")
        return self.request(type_, timeout_s, lease=self.token, **fields)

    # -- the lease ----------------------------------------------------------------------------
    def acquire(self, force: bool = False, keep_alive: bool = True) -> dict[str, Any]:
        reply = self.request("lease_acquire", **({"force": True} if force else {}))
        self.token = str(reply["lease"])
        self._borrowed = False
        self.lease_lost = None
        if keep_alive:
            self._start_keeper(float(reply.get("timeout_s", 1.0)))
        return reply

    def _start_keeper(self, timeout_s: float) -> None:
        self._stop_keeper()
        self._keep.clear()
        period = max(0.05, timeout_s / 4)

        def keep() -> None:
            # A connection of its own: a long request on the main one (a policy load) never holds up
            # the keep-alive, so the lease does not go stale meanwhile.
            side = ControlClient(self.endpoint, self.name, **self._args)
            try:
                while not self._keep.wait(period):
                    token = self.token
                    if token is None:
                        return
                    try:
                        side.request("lease_retain", lease=token)
                    except ControlError as e:
                        self.lease_lost = str(e)
                        self.token = None
                        return
                    except ServiceUnreachable as e:
                        self.lease_lost = str(e)
            finally:
                side.sock.close(0)

        self._keeper = threading.Thread(target=keep, name="vertebra-lease", daemon=True)
        self._keeper.start()

    def _stop_keeper(self) -> None:
        self._keep.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(2.0)
        self._keeper = None

    def use_lease(self, token: str) -> None:
        """Act under a lease another session holds (its keep-alive is that session's): it is never
        returned from here."""
        self._stop_keeper()
        self.token = token
        self._borrowed = True

    def give_back(self) -> None:
        self._stop_keeper()
        token, self.token = self.token, None
        if getattr(self, "_borrowed", False):
            self._borrowed = False
            return
        if token is not None:
            try:
                self.request("lease_return", lease=token)
            except (ControlError, ServiceUnreachable):
                pass

    @contextmanager
    def lease(self, force: bool = False) -> Iterator[ControlClient]:
        self.acquire(force)
        try:
            yield self
        finally:
            self.give_back()

    # -- the status stream --------------------------------------------------------------------
    def stream(self, endpoint: str | None = None, timeout_s: float = 2.0) -> Iterator[dict[str, Any]]:
        """The service's status messages as they are published (hello names the endpoint)."""
        import zmq

        if endpoint is None:
            eps = self.request("hello")["status_endpoints"]
            endpoint = eps["tcp_status"] if self.endpoint.startswith("tcp://") else eps["ipc_status"]
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.CONFLATE, 1)  # only the newest status matters
        if self._curve is not None:
            sub.curve_serverkey, sub.curve_publickey, sub.curve_secretkey = self._curve
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(endpoint)
        try:
            while True:
                if not sub.poll(int(timeout_s * 1000)):
                    raise ServiceUnreachable(f"no status from {endpoint} within {timeout_s:g} s")
                yield decode_reply(sub.recv())
        finally:
            sub.close(0)

    def close(self) -> None:
        self.give_back()
        self.sock.close(0)

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

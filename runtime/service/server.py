"""The control API's sockets: a ROUTER per endpoint (the Unix socket; TCP with CURVE when configured)
and a PUB status stream next to each, served by one thread of their own.

Every frame is checked before it is decoded (size; on TCP the sender's CURVE key against the
allowlist, so an unknown client never gets a byte deserialised — its handshake is refused anyway),
then decoded against the control schema (vertebra.runtime.service.protocol), then handed to the
service's ``handle(msg, peer) -> reply`` (or a Future of it, for a slow request such as a policy
load: its reply goes out when it is done, and the thread keeps answering meanwhile — an e-stop is
never queued behind a swap). Any failure becomes an error reply; the thread never dies on a request. Nothing here touches the real-time loop: the service's handlers talk to it through
its lock-free buffers and never wait on it for long.
"""

from __future__ import annotations

import grp
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from vertebra.runtime.errors import VertebraError
from vertebra.runtime.service.protocol import ProtocolError, decode_request, encode


class ControlEndpointError(VertebraError):
    """The control socket cannot be set up (folder, permissions, group, address in use)."""


def service_socket_path(deploy: Any) -> Path:
    """Where `vertebra run` binds its Unix socket: control.socket, else control-<name>.sock in systemd's
    $RUNTIME_DIRECTORY, else in the per-user runtime directory."""
    if deploy.control.socket:
        return Path(deploy.control.socket)
    rd = os.environ.get("RUNTIME_DIRECTORY")
    if rd:
        return Path(rd.split(":")[0]) / f"control-{deploy.name}.sock"
    from vertebra.policies.endpoint import runtime_dir

    return runtime_dir() / f"control-{deploy.name}.sock"


def client_socket_path(deploy: Any) -> Path:
    """Where a tool finds the service of `deploy`: control.socket; the system service's
    /run/vertebra/control-<name>.sock when it exists; else the per-user runtime directory's."""
    if deploy.control.socket:
        return Path(deploy.control.socket)
    system = Path("/run/vertebra") / f"control-{deploy.name}.sock"
    if system.exists():
        return system
    rd = os.environ.get("RUNTIME_DIRECTORY")
    if rd:
        return Path(rd.split(":")[0]) / f"control-{deploy.name}.sock"
    from vertebra.policies.endpoint import runtime_dir

    return runtime_dir() / f"control-{deploy.name}.sock"


def pub_path(sock: Path) -> Path:
    return sock.with_name(sock.stem + ".pub.sock")


def tcp_pub_endpoint(tcp: str) -> str:
    """The status stream next to a tcp:// request endpoint: the next port."""
    host, _, port = tcp.rpartition(":")
    return f"{host}:{int(port) + 1}"


class ControlServer:
    """Binds the sockets; `serve_forever()` on its own thread until `close()`."""

    def __init__(self, handle: Callable[[dict[str, Any], str], dict[str, Any]], status: Callable[[], dict[str, Any]],
                 socket_path: Path, *, group: str | None = None, tcp: str | None = None, curve: Any = None,
                 status_rate_hz: float = 20.0, max_message_bytes: int = 1 << 20):
        import zmq

        self.handle, self.status = handle, status
        self.max_bytes = int(max_message_bytes)
        self.period_s = 1.0 / float(status_rate_hz)
        self.requests = self.errors = self.unauthorized = self.published = 0
        self.pending: list[tuple[Any, bytes, Future]] = []
        self.ctx = zmq.Context.instance()
        self.socks: list[tuple[Any, str, Any]] = []  # (router, transport name, CurveAllowlist or None)
        self.pubs: list[Any] = []
        self.auth: Any = None
        self.socket_path = Path(socket_path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._bind_ipc(group)
            if tcp:
                self._bind_tcp(tcp, curve)
        except BaseException:
            self.close()
            raise
        self.endpoints = {"ipc": f"ipc://{self.socket_path}", "ipc_status": f"ipc://{pub_path(self.socket_path)}",
                          **({"tcp": tcp, "tcp_status": tcp_pub_endpoint(tcp)} if tcp else {})}

    # -- binding ------------------------------------------------------------------------------
    def _router(self) -> Any:
        import zmq

        s = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes)  # absurd frames dropped by ZMQ, large ones answered
        s.setsockopt(zmq.ROUTER_MANDATORY, 0)
        return s

    def _bind_ipc(self, group: str | None) -> None:
        import zmq

        path = self.socket_path
        if not path.parent.is_dir():
            raise ControlEndpointError(f"control socket {path}: the folder {path.parent} does not exist")
        gid = -1
        if group is not None:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ControlEndpointError(f"control.group '{group}' is not a group on this machine") from None
        for p in (path, pub_path(path)):
            if p.exists() or p.is_symlink():
                self._refuse_live(p)
                p.unlink()
        old = os.umask(0o117)  # sockets are created 0660 (no window with wider permissions)
        try:
            router = self._router()
            router.bind(f"ipc://{path}")
            self.socks.append((router, "ipc", None))
            pub = self.ctx.socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.setsockopt(zmq.SNDHWM, 8)
            pub.bind(f"ipc://{pub_path(path)}")
            self.pubs.append(pub)
        except zmq.ZMQError as e:
            raise ControlEndpointError(f"control socket {path}: {e.strerror}") from None
        finally:
            os.umask(old)
        for p in (path, pub_path(path)):
            os.chmod(p, 0o660)
            if gid >= 0:
                try:
                    os.chown(p, -1, gid)
                except OSError as e:
                    raise ControlEndpointError(f"control socket {p}: cannot give it to group '{group}' "
                                               f"({e.strerror}); the service's user must be in that group") from None

    def _refuse_live(self, p: Path) -> None:
        """A socket file another live service still answers on is never taken over."""
        import socket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(0.2)
            s.connect(str(p))
        except OSError:
            return  # nobody listens: a stale file from a run that died
        finally:
            s.close()
        raise ControlEndpointError(f"control socket {p} is in use by another running service; stop it first "
                                   "(or give this deploy config another control.socket)")

    def _bind_tcp(self, tcp: str, curve: Any) -> None:
        import zmq

        from vertebra.policies.curve import CurveAllowlist

        if curve is None or not curve.enabled:
            raise ControlEndpointError(f"control.tcp {tcp}: only with control.curve.enabled (encryption + allowlist)")
        self.auth = CurveAllowlist(self.ctx, str(curve.server_secret_key), str(curve.allowed_clients))
        router = self._router()
        self.auth.attach(router)
        pub = self.ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        self.auth.attach(pub)
        try:
            router.bind(tcp)
            pub.bind(tcp_pub_endpoint(tcp))
        except zmq.ZMQError as e:
            router.close(0)
            pub.close(0)
            raise ControlEndpointError(f"control.tcp {tcp}: {e.strerror}") from None
        self.socks.append((router, "tcp", self.auth))
        self.pubs.append(pub)

    # -- serving ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="vertebra-control", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        import zmq

        poller = zmq.Poller()
        for s, _, _ in self.socks:
            poller.register(s, zmq.POLLIN)
        next_pub = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, next_pub - time.monotonic())
            if self.pending:
                self._finish_pending()
                timeout = min(timeout, 0.005)
            try:
                ready = dict(poller.poll(int(timeout * 1000) + 1))
            except zmq.ZMQError:
                if self._stop.is_set():
                    break
                raise
            for s, transport, auth in self.socks:
                if s in ready:
                    self._serve(s, transport, auth)
            if time.monotonic() >= next_pub:
                next_pub = max(next_pub + self.period_s, time.monotonic())
                self._publish()

    def _serve(self, sock: Any, transport: str, auth: Any) -> None:
        import zmq

        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            ident = frames[0].bytes
            reply = self._answer(frames, transport, auth)
            if isinstance(reply, Future):  # a slow request (a policy load): answered when it is done
                self.pending.append((sock, ident, reply))
                continue
            self._send(sock, ident, reply)

    def _send(self, sock: Any, ident: bytes, reply: dict[str, Any]) -> None:
        import zmq

        try:
            sock.send_multipart([ident, encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the client went away: nothing to answer

    def _finish_pending(self) -> None:
        still = []
        for sock, ident, fut in self.pending:
            if not fut.done():
                still.append((sock, ident, fut))
                continue
            rid = getattr(fut, "request_id", 0)
            try:
                reply = fut.result()
            except ProtocolError as e:
                self.errors += 1
                reply = {"type": "error", "code": e.code, "message": str(e)}
            except Exception as e:  # noqa: BLE001
                self.errors += 1
                reply = {"type": "error", "code": "internal", "message": f"{type(e).__name__}: {e}"}
            reply.setdefault("id", rid)
            self._send(sock, ident, reply)
        self.pending = still

    def _answer(self, frames: list[Any], transport: str, auth: Any) -> dict[str, Any] | Future:
        self.requests += 1
        rid = 0
        try:
            if auth is not None and not auth.allowed_frame(frames[-1]):
                self.unauthorized += 1  # before a byte of it is decoded
                raise ProtocolError("unauthorized", "this client's key is not (or no longer) in the allowlist")
            if len(frames) not in (2, 3):
                raise ProtocolError("malformed", f"expected one message part, found {len(frames) - 1}")
            msg = decode_request(frames[-1].bytes, self.max_bytes)
            rid = msg.get("id", 0)
            reply = self.handle(msg, transport)
            if isinstance(reply, Future):
                reply.request_id = rid  # type: ignore[attr-defined]
                return reply
        except ProtocolError as e:
            self.errors += 1
            reply = {"type": "error", "code": e.code, "message": str(e)}
            rid = rid or e.id
        except Exception as e:  # noqa: BLE001 - one bad request never takes the API down
            self.errors += 1
            reply = {"type": "error", "code": "internal", "message": f"{type(e).__name__}: {e}"}
        reply.setdefault("id", rid)
        return reply

    def _publish(self) -> None:
        import zmq

        try:
            frame = encode({"type": "status", **self.status()})
        except Exception:  # noqa: BLE001 - a status that cannot be built is skipped, not fatal
            return
        for pub in self.pubs:
            try:
                pub.send(frame, zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        self.published += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        for s, _, _ in self.socks:
            s.close(0)
        for p in self.pubs:
            p.close(0)
        self.socks, self.pubs = [], []
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        for p in (self.socket_path, pub_path(self.socket_path)):
            try:
                p.unlink()
            except OSError:
                pass

"""The policy server's same-host shared-memory channels (vertebra.policies.shm): opening one for a
client, serving its requests, closing the channels of clients that died or went idle. A mixin of
PolicyServer (which provides the socket, the poller, the config and _respond)."""

from __future__ import annotations

import shutil
import time
from typing import Any

from vertebra.policies.protocol import ProtocolError, decode, encode

# After a shared-memory request the server polls its channels without blocking for this long (the
# client's next request usually comes within it); then it blocks again and costs no CPU.
SHM_SPIN_S = 0.002
SHM_REQUESTS = ("infer", "health", "reset")  # the rest go over the socket


class ShmChannels:
    # Provided by PolicyServer:
    cfg: Any
    endpoint: str
    sock: Any
    poller: Any
    server_id: str
    channel_failures: int
    shm: dict[bytes, Any]  # client identity -> vertebra.policies.shm.Segment
    _last_shm: float
    _respond: Any

    def _shm_open(self, ident: bytes, path: str) -> dict[str, Any]:
        import zmq

        from vertebra.policies.shm import Segment

        if not self.endpoint.startswith("ipc://"):
            raise ProtocolError("shm_unavailable", f"shared memory needs a same-host ipc:// endpoint; this server is on "
                                                   f"{self.endpoint}")
        if self.cfg.curve.enabled:  # the allowlist is checked per socket request; a channel would bypass it
            raise ProtocolError("shm_unavailable", "shared memory is off on a server with curve.enabled")
        try:
            seg = Segment.attach(path, self.cfg.max_message_bytes)
        except (ValueError, OSError) as e:
            raise ProtocolError("shm_unavailable", str(e)) from None
        self._shm_close(ident)
        self.shm[ident] = seg
        self.poller.register(seg.read_fd, zmq.POLLIN)
        return {"type": "shm_open_reply", "request_bytes": seg.req_cap, "reply_bytes": seg.rep_cap,
                "arena_bytes": seg.arena_cap}

    def _shm_close(self, ident: bytes) -> None:
        seg = self.shm.pop(ident, None)
        if seg is not None:
            try:
                self.poller.unregister(seg.read_fd)
            except KeyError:
                pass
            seg.close()

    def _sweep_channels(self) -> None:
        """Close the channels of clients that died or went idle (their fds and mappings go with them)."""
        from vertebra.policies.shm import pid_alive

        now = time.monotonic()
        for ident, seg in list(self.shm.items()):
            dead = seg.client_pid is not None and not pid_alive(seg.client_pid)
            if dead or now - seg.last_used > self.cfg.limits.idle_channel_s:
                if not dead:
                    seg.mark_closed_by_server()  # the client reopens at once instead of timing out
                self._shm_close(ident)
            if dead:  # nobody else will remove its FIFOs and folder
                shutil.rmtree(seg.path, ignore_errors=True)

    def _serve_shm_waiting(self, timeout_s: float) -> bool:
        """Serve one shared-memory request arriving within the timeout; False when none came or the
        socket has a message. Polls without system calls during the busy period after a request."""
        from vertebra.policies.shm import sleep_until

        def ready() -> bool:
            for ident, seg in self.shm.items():  # no copy per poll: a served request returns at once
                if seg.new_request():
                    self._serve_shm(ident, seg)  # may close this channel: we stop iterating here
                    return True
            return False

        busy_end = self._last_shm + SHM_SPIN_S
        while time.perf_counter() < busy_end:
            if ready():
                return True
            if self.sock.poll(0):
                return False

        def wait(slice_s: float) -> set[Any] | None:
            events = dict(self.poller.poll(max(1, int(slice_s * 1e3))))
            return None if self.sock in events else set(events)

        return sleep_until(list(self.shm.values()), ready, timeout_s, wait)

    def _serve_shm(self, ident: bytes, seg: Any) -> None:
        def read() -> dict[str, Any]:
            try:
                msg = decode(seg.request_view(), self.cfg.max_message_bytes, arena=seg.arena())
            except ValueError as e:  # a length beyond the area: the segment was written wrongly
                raise ProtocolError(getattr(e, "code", "malformed"), str(e)) from None
            if msg["type"] not in SHM_REQUESTS:
                raise ProtocolError("schema", f"'{msg['type']}' goes over the ZMQ socket (shared memory carries "
                                              f"{', '.join(SHM_REQUESTS)})")
            return msg

        seg.last_used = time.monotonic()
        try:
            data = self._respond(ident, read)
            if data is None:
                data = encode({"type": "error", "code": "expired", "message": "the request's deadline had passed",
                               "server_id": self.server_id})
            try:
                seg.write_reply(data)
            except ValueError as e:  # the reply does not fit the client's area
                seg.write_reply(encode({"type": "error", "code": "too_large", "message": str(e),
                                        "server_id": self.server_id}))
        except Exception:  # noqa: BLE001 - a broken channel is that client's problem only
            self.channel_failures += 1
            try:
                seg.mark_closed_by_server()
            except Exception:  # noqa: BLE001 - the mapping itself may be what failed
                pass
            self._shm_close(ident)
        self._last_shm = time.perf_counter()

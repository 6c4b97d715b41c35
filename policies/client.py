"""The runtime's thin policy client: numpy, pyzmq and msgpack only (no torch, no onnxruntime).

``submit(obs)`` sends an observation and returns at once. ``poll()`` returns the newest reply that
has arrived (or None) without blocking, so the caller never waits on the network. ``infer(obs)`` is
the blocking round trip, for tools and benchmarks.

Off-board: connect over ``tcp://`` with CURVE keys (``server_public_key``, plus this client's
``public_key``/``secret_key`` pair, which must be in the server's allowlist).

Same host: ``use_shared_memory()`` moves ``infer``/``submit``/``poll`` onto a shared-memory channel
(vertebra.policies.shm): images are written once into shared memory instead of being copied through
the socket. Other requests stay on the socket.

Recovery, without the caller's help:
- Every request has an id; a reply that is not the one awaited (the late answer to a request that
  timed out) is dropped, so one timeout never poisons the next call.
- Observations carry a deadline on the server's clock (its offset measured at ``hello``, so hosts
  whose clocks disagree still agree on it); the server drops an observation past its deadline.
  Before the first ``hello`` observations carry none.
- The socket queues nothing for a server that is not connected (ZMQ_IMMEDIATE, with heartbeats so
  a dead peer is noticed within seconds): requests made while the server was down are never
  replayed to the next one.
- Observations carry the joint mapping ``hello`` returned; on ``unknown_mapping``, or when the
  server id in a reply changes (the server restarted), the client sends ``hello`` again, re-opens
  its shared-memory channel if it had one, and retries once.
- On the shared-memory channel, a request not answered by its deadline is abandoned; the next call
  probes the server over the socket and re-opens the channel (at once when the server marked the
  channel closed).
- ``submit()`` attempts such a recovery at most once per ``submit_timeout_s`` and waits at most
  that long for it; between attempts it returns 0 at once. ``last_error`` keeps the last failure.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, ProtocolError, decode, encode, encode_shm
from vertebra.runtime.errors import VertebraError

HEARTBEAT_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000


class _ChannelClosed(Exception):
    """The server closed our shared-memory channel (idle, or it failed)."""


class PolicyError(RuntimeError):
    """The server answered with an error reply."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class PolicyClient:
    def __init__(self, endpoint: str, *, server_public_key: bytes | None = None, public_key: bytes | None = None,
                 secret_key: bytes | None = None, max_message_bytes: int = DEFAULT_MAX_BYTES,
                 context: zmq.Context | None = None, submit_timeout_s: float = 1.0):
        self.ctx = context or zmq.Context.instance()
        self.endpoint = endpoint
        self._keys = (server_public_key, public_key, secret_key)
        if server_public_key is not None and (public_key is None or secret_key is None):
            raise ValueError("CURVE needs this client's public_key and secret_key too")
        self.max_bytes = max_message_bytes
        self.submit_timeout_s = submit_timeout_s  # the deadline of a submitted observation
        self._ids = itertools.count(1)
        self.last_id = 0
        self.metadata: dict[str, Any] = {}
        self.joint_names: list[str] | None = None
        self.mapping: str | None = None
        self.server_id: str | None = None
        self.stale_replies = 0  # late replies dropped
        self.recoveries = 0  # re-handshakes after a server restart or a lost mapping
        self.shm: Any = None  # vertebra.policies.shm.Segment once use_shared_memory() succeeded
        self._shm_args: dict[str, Any] | None = None
        self._arena: Any = None
        self._outstanding = 0  # the shared-memory request not answered yet (its id)
        self._outstanding_deadline = 0.0
        self._shm_lost = False
        self._needs_hello = False
        self._clock_offset_ns: int | None = None  # server time.time_ns() minus ours, from hello
        self._next_recovery = 0.0  # submit: no recovery attempt before this (monotonic)
        self.last_error: BaseException | None = None
        self.spin_s = 0.0
        self.sock = self._socket()

    def _socket(self) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only to a connected server: nothing replayed to the next one
        s.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)  # a dead peer (or network) is noticed, not waited on
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        spub, pub, sec = self._keys
        if spub is not None:
            s.curve_serverkey = spub
            s.curve_publickey = pub
            s.curve_secretkey = sec
        s.connect(self.endpoint)
        self._rcvtimeo = -2
        return s

    # -- blocking calls (tools, tests, benchmarks) ---------------------------------------------------
    def _deadline(self, timeout_s: float) -> int | None:
        """An observation's deadline on the server's clock (None before hello measured it)."""
        if self._clock_offset_ns is None:
            return None
        return time.time_ns() + self._clock_offset_ns + int(timeout_s * 1e9)

    def _frame(self, msg: dict[str, Any]) -> bytes:
        data = encode(msg)
        if len(data) > self.max_bytes:
            raise ProtocolError("too_large", f"message of {len(data)} bytes exceeds the limit of {self.max_bytes}")
        return data

    def call(self, msg: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """Send a request and wait for its own reply (others are dropped)."""
        msg = {**msg, "id": msg.get("id") or next(self._ids)}
        if msg["type"] == "infer":
            deadline = self._deadline(timeout_s)
            if deadline is not None:
                msg["deadline_ns"] = deadline
        data = self._frame(msg)
        end = time.monotonic() + timeout_s
        while True:
            try:
                self.sock.send(data, flags=zmq.NOBLOCK, copy=False)
                break
            except zmq.Again:
                # Nothing connected (IMMEDIATE): wait for the connection within the timeout.
                left = end - time.monotonic()
                if left <= 0 or not self.sock.poll(max(1, int(left * 1000)), zmq.POLLOUT):
                    raise TimeoutError(f"no policy server at {self.endpoint} within {timeout_s:g} s") from None
        return self._wait(msg["id"], end, timeout_s)

    def _wait(self, rid: int, end: float, timeout_s: float) -> dict[str, Any]:
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.sock.poll(max(1, int(left * 1000))):
                raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s")
            frame = self.sock.recv(copy=False)
            reply = decode(frame.buffer, self.max_bytes, requests=False)
            self._seen_server(reply)
            # An error with id 0 answers a request the server could not read (too large, malformed):
            # ours, since replies come in order and earlier ones were all read.
            if reply.get("id") != rid and not (reply.get("type") == "error" and not reply.get("id")):
                self.stale_replies += 1
                continue
            if reply.get("type") == "error":
                raise PolicyError(str(reply.get("code")), str(reply.get("message")))
            return reply

    def _seen_server(self, reply: dict[str, Any]) -> None:
        sid = reply.get("server_id")
        if sid is None:
            return
        if self.server_id is not None and sid != self.server_id:
            # A new server process: it holds neither our mapping nor our channel.
            self._needs_hello = True
            if self.shm is not None:
                self._shm_lost = True
        self.server_id = sid

    def hello(self, joint_names: list[str] | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "hello", "client": "vertebra-runtime"}
        if joint_names is not None:
            self.joint_names = list(joint_names)
        if self.joint_names is not None:
            msg["joint_names"] = self.joint_names
        t0 = time.time_ns()
        self.metadata = self.call(msg, timeout_s)
        t1 = time.time_ns()
        server_ns = self.metadata.get("time_ns")
        # The server read its clock about half-way through the round trip.
        self._clock_offset_ns = int(server_ns) - (t0 + t1) // 2 if isinstance(server_ns, int) else None
        self.mapping = self.metadata.get("mapping")
        self._needs_hello = False
        return self.metadata

    def _recover(self, timeout_s: float) -> None:
        """Hand a (restarted) server our mapping and shared-memory channel again."""
        self.recoveries += 1
        self.hello(timeout_s=timeout_s)
        if self._shm_args is not None and (self._shm_lost or self.shm is None):
            self.use_shared_memory(**{**self._shm_args, "timeout_s": timeout_s})

    def _infer_msg(self, obs: dict[str, Any], t_obs_ns: int | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "infer", "obs": obs, "id": next(self._ids),
                               "t_obs_ns": t_obs_ns if t_obs_ns is not None else time.monotonic_ns()}
        if self.mapping is not None:
            msg["mapping"] = self.mapping
        return msg

    def infer(self, obs: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """One blocking round trip; recovers once from a restarted server or a lost mapping."""
        for attempt in (0, 1):
            if self._needs_hello or self._shm_lost:
                self._recover(timeout_s)
            msg = self._infer_msg(obs)
            try:
                if self.shm is not None:
                    return self._shm_infer(msg, timeout_s)
                return self.call(msg, timeout_s)
            except PolicyError as e:
                if e.code != "unknown_mapping" or self.joint_names is None or attempt:
                    raise
                self._needs_hello = True
            except _ChannelClosed:
                if attempt:
                    raise TimeoutError("the server closed the shared-memory channel twice") from None
                self._shm_lost = True
            except TimeoutError:
                # Next time, hello first: it re-measures the clock offset (a server that drops
                # everything as expired after its clock jumped) and re-sends the mapping.
                self._needs_hello = self.joint_names is not None or self._clock_offset_ns is not None
                if self.shm is None or attempt:
                    raise
                self._probe(timeout_s)  # a lost channel (restarted server): find out over the socket
        raise AssertionError("unreachable")

    def _probe(self, timeout_s: float) -> None:
        """After a shared-memory timeout: ask the server over the socket; the channel is re-opened."""
        self.call({"type": "health"}, timeout_s)  # raises TimeoutError when the server is down
        self._shm_lost = True
        self._needs_hello = True

    # -- shared memory (same host) -------------------------------------------------------------------
    def use_shared_memory(self, request_bytes: int = 1 << 20, reply_bytes: int = 1 << 20, arena_bytes: int = 16 << 20,
                          spin_s: float = 0.002, timeout_s: float = 5.0) -> dict[str, Any]:
        """Open a shared-memory channel to the server (it must be on this host, on ipc://).
        spin_s: how long a blocking infer polls for its reply before it sleeps on it."""
        from vertebra.policies.shm import ArenaWriter, Segment

        seg = Segment.create(request_bytes, reply_bytes, arena_bytes)
        try:
            reply = self.call({"type": "shm_open", "path": str(seg.path)}, timeout_s)
        except BaseException:
            seg.close()
            raise
        self._drop_shared_memory()
        self.shm, self._arena, self.spin_s = seg, ArenaWriter(seg.arena()), spin_s
        self._shm_args = {"request_bytes": request_bytes, "reply_bytes": reply_bytes, "arena_bytes": arena_bytes,
                          "spin_s": spin_s}
        self._outstanding = 0
        self._shm_lost = False
        return reply

    def _drop_shared_memory(self) -> None:
        if self.shm is not None:
            self.shm.close()
            self.shm = self._arena = None

    def close_shared_memory(self) -> None:
        if self.shm is None:
            return
        try:
            self.call({"type": "shm_close"}, 1.0)
        except (zmq.ZMQError, TimeoutError, PolicyError):
            pass
        self._drop_shared_memory()
        self._shm_args = None

    def _shm_send(self, msg: dict[str, Any], timeout_s: float) -> None:
        if self.shm.closed_by_server():
            raise _ChannelClosed()
        deadline = self._deadline(timeout_s)
        if deadline is not None:
            msg["deadline_ns"] = deadline
        self.shm.write_request(encode_shm(msg, self._arena))
        self._outstanding = msg["id"]
        self._outstanding_deadline = time.monotonic() + timeout_s

    def _shm_reply(self) -> dict[str, Any] | None:
        """The reply now in the channel (None: not the outstanding request's, dropped)."""
        reply = decode(self.shm.reply_bytes(), self.max_bytes, requests=False)
        self._seen_server(reply)
        awaited, self._outstanding = self._outstanding, 0
        if reply.get("type") == "error":
            if reply.get("code") == "unknown_mapping":
                self._needs_hello = True
            if reply.get("id", awaited) not in (awaited, 0):
                self.stale_replies += 1
                return None
            raise PolicyError(str(reply.get("code")), str(reply.get("message")))
        if reply.get("id") != awaited:
            self.stale_replies += 1
            return None
        return reply

    def _shm_infer(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self._outstanding:  # a submitted request is still out: take (and drop) its reply first
            if self.shm.wait_reply(min(timeout_s, max(0.0, self._outstanding_deadline - time.monotonic())),
                                   self.spin_s):
                try:
                    self._shm_reply()
                except PolicyError:
                    pass
            self._outstanding = 0
        self._shm_send(msg, timeout_s)
        if not self.shm.wait_reply(timeout_s, self.spin_s, self.shm.closed_by_server):
            self._outstanding = 0  # abandoned: a late reply carries its id and is dropped
            raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s")
        if self.shm.closed_by_server() and not self.shm.reply_ready():
            self._outstanding = 0
            raise _ChannelClosed()
        reply = self._shm_reply()
        if reply is None:
            raise TimeoutError("the shared-memory channel answered another request")
        return reply

    # -- non-blocking (the runtime) ------------------------------------------------------------------
    def submit(self, obs: dict[str, Any], t_obs_ns: int | None = None) -> int:
        """Send an observation; never waits for the server beyond a bounded recovery (a full send
        queue, no connected server, a request still waiting for its reply on shared memory, or a
        recovery not yet due: it returns 0). After a server restart or a lost channel the first due
        submit re-handshakes, waiting at most submit_timeout_s; failures go to last_error."""
        try:
            return self._submit(obs, t_obs_ns)
        except (TimeoutError, PolicyError, OSError, VertebraError, zmq.ZMQError, _ChannelClosed) as e:
            self.last_error = e
            return 0

    def _recovery_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_recovery:
            return False
        self._next_recovery = now + self.submit_timeout_s
        return True

    def _submit(self, obs: dict[str, Any], t_obs_ns: int | None) -> int:
        if self.shm is not None and self.shm.closed_by_server():
            self._shm_lost = True
        if self._needs_hello or self._shm_lost:
            if not self._recovery_due():
                return 0
            self._recover(self.submit_timeout_s)
        msg = self._infer_msg(obs, t_obs_ns)
        if self.shm is not None:
            if self._outstanding:
                if time.monotonic() < self._outstanding_deadline:
                    return 0
                # Unanswered past its deadline: the channel may be gone (server restarted).
                self._outstanding = 0
                if self._recovery_due():
                    self._probe(self.submit_timeout_s)
                return 0
            self._shm_send(msg, self.submit_timeout_s)
            self.last_id = msg["id"]
            return msg["id"]
        deadline = self._deadline(self.submit_timeout_s)
        if deadline is not None:
            msg["deadline_ns"] = deadline
        try:
            self.sock.send(self._frame(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return 0
        self.last_id = msg["id"]
        return msg["id"]

    def poll(self) -> dict[str, Any] | None:
        """The newest reply to a submitted observation that has arrived (older ones, and replies
        to other requests, are dropped), or None. An error reply to the latest submitted
        observation raises PolicyError when no newer good reply came with it (after
        ``unknown_mapping`` the next submit re-sends hello first)."""
        if self.shm is not None:
            if not (self._outstanding and self.shm.reply_ready()):
                return None
            return self._shm_reply()
        newest: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        while True:
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            reply = decode(frame.buffer, self.max_bytes, requests=False)
            self._seen_server(reply)
            rid = reply.get("id", 0)
            if reply.get("type") == "error":
                if reply.get("code") == "unknown_mapping":
                    self._needs_hello = True
                if rid == self.last_id or not rid:
                    error = reply
            elif reply.get("type") == "infer_reply":
                if newest is None or rid > newest.get("id", 0):
                    newest = reply
        if newest is not None and (error is None or newest.get("id", 0) >= self.last_id):
            return newest
        if error is not None:
            raise PolicyError(str(error.get("code")), str(error.get("message")))
        return newest

    def close(self) -> None:
        self.close_shared_memory()
        self.sock.close(0)

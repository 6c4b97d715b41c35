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
- Every request has an id and a deadline (``time.time_ns()`` + its timeout); a reply that is not
  the one awaited (the late answer to a request that timed out) is dropped, so one timeout never
  poisons the next call. The server drops requests whose deadline passed.
- The socket queues nothing for a server that is not connected (ZMQ_IMMEDIATE): requests made
  while the server was down are never replayed to the next one.
- Observations carry the joint mapping ``hello`` returned; on ``unknown_mapping``, or when the
  server id in a reply changes (the server restarted), the client sends ``hello`` again, re-opens
  its shared-memory channel if it had one, and retries once.
- On the shared-memory channel, a request not answered by its deadline is abandoned; the next call
  probes the server over the socket and re-opens the channel.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, decode, encode, encode_shm


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
        self.spin_s = 0.0
        self.sock = self._socket()

    def _socket(self) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only to a connected server: nothing replayed to the next one
        spub, pub, sec = self._keys
        if spub is not None:
            s.curve_serverkey = spub
            s.curve_publickey = pub
            s.curve_secretkey = sec
        s.connect(self.endpoint)
        self._rcvtimeo = -2
        return s

    # -- blocking calls (tools, tests, benchmarks) ---------------------------------------------------
    def _stamp(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        out = dict(msg)
        out.setdefault("id", next(self._ids))
        out["deadline_ns"] = time.time_ns() + int(timeout_s * 1e9)
        return out

    def call(self, msg: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """Send a request and wait for its own reply (others are dropped)."""
        msg = self._stamp(msg, timeout_s)
        end = time.monotonic() + timeout_s
        try:
            self.sock.send(encode(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            # Nothing connected (IMMEDIATE): wait for the connection within the timeout.
            if not self.sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
                raise TimeoutError(f"no policy server at {self.endpoint} within {timeout_s:g} s") from None
            self.sock.send(encode(msg), flags=zmq.NOBLOCK, copy=False)
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
        self.metadata = self.call(msg, timeout_s)
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
            except TimeoutError:
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
        msg["deadline_ns"] = time.time_ns() + int(timeout_s * 1e9)
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
        if not self.shm.wait_reply(timeout_s, self.spin_s):
            self._outstanding = 0  # abandoned: a late reply carries its id and is dropped
            raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s")
        reply = self._shm_reply()
        if reply is None:
            raise TimeoutError("the shared-memory channel answered another request")
        return reply

    # -- non-blocking (the runtime) ------------------------------------------------------------------
    def submit(self, obs: dict[str, Any], t_obs_ns: int | None = None) -> int:
        """Send an observation; never blocks waiting for the server (a full send queue or no
        connected server drops it and returns 0; on shared memory, so does a request still waiting
        for its reply). After a server restart the first submit re-handshakes (bounded by
        submit_timeout_s) before sending."""
        if self._needs_hello or self._shm_lost:
            try:
                self._recover(self.submit_timeout_s)
            except (TimeoutError, PolicyError, OSError):
                return 0
        msg = self._infer_msg(obs, t_obs_ns)
        if self.shm is not None:
            if self._outstanding:
                if time.monotonic() < self._outstanding_deadline:
                    return 0
                # Unanswered past its deadline: the channel may be gone (server restarted).
                self._outstanding = 0
                try:
                    self._probe(self.submit_timeout_s)
                except (TimeoutError, PolicyError):
                    return 0
                return 0
            self._shm_send(msg, self.submit_timeout_s)
            self.last_id = msg["id"]
            return msg["id"]
        msg["deadline_ns"] = time.time_ns() + int(self.submit_timeout_s * 1e9)
        try:
            self.sock.send(encode(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return 0
        self.last_id = msg["id"]
        return msg["id"]

    def poll(self) -> dict[str, Any] | None:
        """The newest reply to a submitted observation that has arrived (older ones are dropped), or
        None. An error reply raises PolicyError (after ``unknown_mapping`` the next submit re-sends
        hello first)."""
        if self.shm is not None:
            if not (self._outstanding and self.shm.reply_ready()):
                return None
            return self._shm_reply()
        newest = None
        while True:
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            reply = decode(frame.buffer, self.max_bytes, requests=False)
            self._seen_server(reply)
            if reply.get("type") == "error":
                if reply.get("code") == "unknown_mapping":
                    self._needs_hello = True
                raise PolicyError(str(reply.get("code")), str(reply.get("message")))
            newest = reply
        return newest

    def close(self) -> None:
        self.close_shared_memory()
        self.sock.close(0)

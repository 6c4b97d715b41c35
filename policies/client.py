"""The runtime's thin policy client: numpy, pyzmq and msgpack only (no torch, no onnxruntime).

``submit(obs)`` sends an observation and returns at once. ``poll()`` returns the newest reply that
has arrived (or None) without blocking, so the caller never waits on the network. ``infer(obs)`` is
the blocking round trip, for tools and benchmarks.

Off-board: connect over ``tcp://`` with CURVE keys (``server_public_key``, plus this client's
``public_key``/``secret_key`` pair, which must be in the server's allowlist).

Same host: ``use_shared_memory()`` moves ``infer``/``submit``/``poll`` onto a shared-memory channel
(vertebra.policies.shm): images are written once into shared memory instead of being copied through
the socket. Other requests stay on the socket.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, ProtocolError, decode, encode, encode_shm


class PolicyError(RuntimeError):
    """The server answered with an error reply."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class PolicyClient:
    def __init__(self, endpoint: str, *, server_public_key: bytes | None = None, public_key: bytes | None = None,
                 secret_key: bytes | None = None, max_message_bytes: int = DEFAULT_MAX_BYTES,
                 context: zmq.Context | None = None):
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if server_public_key is not None:
            if public_key is None or secret_key is None:
                raise ValueError("CURVE needs this client's public_key and secret_key too")
            self.sock.curve_serverkey = server_public_key
            self.sock.curve_publickey = public_key
            self.sock.curve_secretkey = secret_key
        self.sock.connect(endpoint)
        self.max_bytes = max_message_bytes
        self._ids = itertools.count(1)
        self.last_id = 0
        self.metadata: dict[str, Any] = {}
        self._rcvtimeo = -2
        self.shm: Any = None  # vertebra.policies.shm.Segment once use_shared_memory() succeeded
        self._arena: Any = None
        self._outstanding = 0  # the shared-memory request not answered yet (its id)
        self.spin_s = 0.0

    # -- blocking calls (tools, tests, benchmarks) ---------------------------------------------------
    def call(self, msg: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        self.sock.send(encode(msg), copy=False)
        return self._wait(timeout_s)

    def _wait(self, timeout_s: float) -> dict[str, Any]:
        ms = int(timeout_s * 1000)
        if ms != self._rcvtimeo:
            self.sock.setsockopt(zmq.RCVTIMEO, ms)
            self._rcvtimeo = ms
        try:
            frame = self.sock.recv(copy=False)
        except zmq.Again:
            raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s") from None
        reply = decode(frame.buffer, self.max_bytes, requests=False)
        if reply.get("type") == "error":
            raise PolicyError(str(reply.get("code")), str(reply.get("message")))
        return reply

    def hello(self, joint_names: list[str] | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "hello", "client": "vertebra-runtime"}
        if joint_names is not None:
            msg["joint_names"] = list(joint_names)
        self.metadata = self.call(msg, timeout_s)
        return self.metadata

    def infer(self, obs: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        i = next(self._ids)
        msg = {"type": "infer", "obs": obs, "id": i, "t_obs_ns": time.monotonic_ns()}
        if self.shm is not None:
            return self._shm_infer(msg, timeout_s)
        reply = self.call(msg, timeout_s)
        if reply.get("id") != i:
            raise ProtocolError("out_of_order", f"reply for request {reply.get('id')} while waiting for {i}")
        return reply

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
        self.close_shared_memory()
        self.shm, self._arena, self.spin_s = seg, ArenaWriter(seg.arena()), spin_s
        self._outstanding = 0
        return reply

    def close_shared_memory(self) -> None:
        if self.shm is None:
            return
        try:
            self.sock.send(encode({"type": "shm_close"}), flags=zmq.NOBLOCK)
            self._wait(1.0)
        except (zmq.ZMQError, TimeoutError, PolicyError):
            pass
        self.shm.close()
        self.shm = self._arena = None

    def _shm_send(self, msg: dict[str, Any]) -> None:
        self.shm.write_request(encode_shm(msg, self._arena))
        self._outstanding = msg["id"]

    def _shm_reply(self) -> dict[str, Any]:
        reply = decode(self.shm.reply_bytes(), self.max_bytes, requests=False)
        self._outstanding = 0
        if reply.get("type") == "error":
            raise PolicyError(str(reply.get("code")), str(reply.get("message")))
        return reply

    def _shm_infer(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self._outstanding:  # a submitted request is still out: its reply comes first
            if not self.shm.wait_reply(timeout_s, self.spin_s):
                raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s")
            self._shm_reply()
        self._shm_send(msg)
        if not self.shm.wait_reply(timeout_s, self.spin_s):
            raise TimeoutError(f"no reply from the policy server within {timeout_s:g} s")
        reply = self._shm_reply()
        if reply.get("id") != msg["id"]:
            raise ProtocolError("out_of_order", f"reply for request {reply.get('id')} while waiting for {msg['id']}")
        return reply

    # -- non-blocking (the runtime) ------------------------------------------------------------------
    def submit(self, obs: dict[str, Any], t_obs_ns: int | None = None) -> int:
        """Send an observation; never blocks (a full send queue drops it and returns 0; on shared
        memory, so does a request still waiting for its reply)."""
        i = next(self._ids)
        if self.shm is not None:
            if self._outstanding:
                return 0
            self._shm_send({"type": "infer", "obs": obs, "id": i,
                            "t_obs_ns": t_obs_ns if t_obs_ns is not None else time.monotonic_ns()})
            self.last_id = i
            return i
        try:
            self.sock.send(encode({"type": "infer", "obs": obs, "id": i,
                                   "t_obs_ns": t_obs_ns if t_obs_ns is not None else time.monotonic_ns()}),
                           flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return 0
        self.last_id = i
        return i

    def poll(self) -> dict[str, Any] | None:
        """The newest reply that has arrived (older ones are dropped), or None."""
        if self.shm is not None:
            return self._shm_reply() if self._outstanding and self.shm.reply_ready() else None
        newest = None
        while True:
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            reply = decode(frame.buffer, self.max_bytes, requests=False)
            if reply.get("type") == "error":
                raise PolicyError(str(reply.get("code")), str(reply.get("message")))
            newest = reply
        return newest

    def close(self) -> None:
        self.close_shared_memory()
        self.sock.close(0)



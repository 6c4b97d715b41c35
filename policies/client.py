"""The runtime's thin policy client: numpy, pyzmq and msgpack only (no torch, no onnxruntime).

``submit(obs)`` sends an observation and returns at once. ``poll()`` returns the newest reply that
has arrived (or None) without blocking, so the caller never waits on the network. ``infer(obs)`` is
the blocking round trip, for tools and benchmarks.

Off-board: connect over ``tcp://`` with CURVE keys (``server_public_key``, plus this client's
``public_key``/``secret_key`` pair, which must be in the server's allowlist).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, ProtocolError, decode, encode


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
        reply = self.call({"type": "infer", "obs": obs, "id": i, "t_obs_ns": time.monotonic_ns()}, timeout_s)
        if reply.get("id") != i:
            raise ProtocolError("out_of_order", f"reply for request {reply.get('id')} while waiting for {i}")
        return reply

    # -- non-blocking (the runtime) ------------------------------------------------------------------
    def submit(self, obs: dict[str, Any], t_obs_ns: int | None = None) -> int:
        """Send an observation; never blocks (a full send queue drops it and returns 0)."""
        i = next(self._ids)
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
        self.sock.close(0)



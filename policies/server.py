"""The policy server: ONNX policies behind a ZMQ ROUTER socket speaking vertebra.policies.protocol.

``vertebra serve --config configs/policies/<name>.yaml [--bind ADDR]``. One thread serves every
client: each request is checked (size, envelope schema) before its payload is decoded. A malformed
request gets an ``error`` reply, and the server keeps serving. Every reply carries the server-side
timing.

Config (YAML)::

    bind: ipc:///tmp/vertebra-policy.sock     # on-board; tcp://0.0.0.0:5555 off-board
    default: g1_vla                           # the policy loaded at start
    policies:                                 # what `load`/`swap` may name
      g1_vla: {kind: package, path: policies/packages/g1_vla}
      noop:   {kind: noop, chunk_length: 50, action_dim: 32, rate_hz: 50}
    threads: {intra_op: 1}
    limits: {max_message_bytes: 16777216}
    curve:                                    # optional: encryption + client allowlist (TCP)
      enabled: false
      server_secret_key: keys/server.key_secret   # zmq.auth.create_certificates() format
      allowed_clients: keys/clients               # directory of allowed clients' public keys
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from vertebra.policies.protocol import DEFAULT_MAX_BYTES, ProtocolError, decode, encode
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.schema import Section, Variant, field, read_yaml

SERVER_NAME = "vertebra-policy-server"
# After a shared-memory request the server polls its channels without blocking for this long (the
# client's next request usually comes within it); then it blocks again and costs no CPU.
SHM_SPIN_S = 0.002


class NoopPolicy:
    """Zeros of the configured chunk shape: for transport benchmarks and integration tests."""

    def __init__(self, name: str, chunk_length: int, action_dim: int, rate_hz: float):
        self.name = name
        self.chunk = np.zeros((chunk_length, action_dim), dtype=np.float32)
        self.rate_hz = rate_hz

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "noop", "chunk_length": self.chunk.shape[0],
                "action_dim": self.chunk.shape[1], "rate_hz": self.rate_hz, "action_space": "none"}

    def set_joint_names(self, names: list[str]) -> None:
        pass

    def infer(self, obs: dict[str, Any]) -> np.ndarray:
        return self.chunk


class PackagePolicy:
    def __init__(self, name: str, path: Path, intra_op: int):
        from vertebra.policies.package import OnnxPolicy, PolicyPackage

        self.name = name
        self.policy = OnnxPolicy(PolicyPackage.load(path), intra_op)

    def metadata(self) -> dict[str, Any]:
        return {"kind": "package", **self.policy.spec.metadata()}

    def set_joint_names(self, names: list[str]) -> None:
        self.policy.set_joint_names(names)

    def infer(self, obs: dict[str, Any]) -> np.ndarray:
        return self.policy.infer(obs)


class NoopPolicySpec(Section):
    """Zeros of a fixed chunk shape: for transport benchmarks and integration tests."""

    chunk_length = field(int, default=50, lo=1, hi=100_000, doc="actions per chunk")
    action_dim = field(int, default=32, lo=1, hi=100_000, doc="values per action")
    rate_hz = field(float, default=50.0, lo=0.0, lo_open=True, hi=10_000.0, doc="the chunk's action rate")


class PackagePolicySpec(Section):
    """An ONNX policy package (vertebra.policies.package)."""

    path = field(str, doc="the package directory (a relative path is under the repository root)")

    def check(self, context: Any) -> None:
        from vertebra.runtime.config import REPO_ROOT

        p = Path(self.path)
        self.path = str(p if p.is_absolute() else REPO_ROOT / p)  # the server loads absolute paths


POLICY_KINDS: dict[str, type[Section]] = {"package": PackagePolicySpec, "noop": NoopPolicySpec}


class ServerThreads(Section):
    """Threads of the ONNX runtime."""

    intra_op = field(int, default=1, lo=1, hi=256, doc="ONNX Runtime intra-op threads per policy")


class ServerLimits(Section):
    """Request limits."""

    max_message_bytes = field(int, default=DEFAULT_MAX_BYTES, lo=1024, hi=1 << 31,
                              doc="larger requests get an error reply before they are decoded")


class CurveSettings(Section):
    """CURVE encryption and a client allowlist (TCP)."""

    enabled = field(bool, default=False, doc="encrypt, and serve only the allowed clients")
    server_secret_key = field(str, default=None, doc="the server's secret key file (zmq.auth.create_certificates())")
    allowed_clients = field(str, default=None, doc="directory of the allowed clients' public keys")

    def check(self, context: Any) -> None:
        if self.enabled:
            for name in ("server_secret_key", "allowed_clients"):
                if getattr(self, name) is None:
                    raise self.error(name, "<missing>", "a path (required with enabled: true)")


class ServerConfig(Section):
    """The policy server (``vertebra serve --config configs/policies/<name>.yaml``)."""

    bind = field(str, default="ipc:///tmp/vertebra-policy.sock", doc="ZMQ endpoint (tcp://0.0.0.0:5555 off-board)")
    default = field(str, default=None, doc="the policy loaded at start (default: the first listed)")
    policies = field(dict, item=Variant(lambda: POLICY_KINDS, key="kind", what="policy kind"),
                     doc="what load/swap may name: name -> {kind: package|noop, ...}")
    threads = field(ServerThreads, default={}, doc="inference threads")
    limits = field(ServerLimits, default={}, doc="request limits")
    curve = field(CurveSettings, default={}, doc="optional encryption + client allowlist")

    @property
    def intra_op(self) -> int:
        return int(self.threads.intra_op)

    @property
    def max_message_bytes(self) -> int:
        return int(self.limits.max_message_bytes)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ServerConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(p, "<file>", str(p), "an existing server config (configs/policies/*.yaml)")
        return cls.from_dict(read_yaml(p), p)

    def check(self, context: Any) -> None:
        if not self.policies:
            raise self.error("policies", self.policies, "a non-empty mapping of name -> policy")
        if self.default is None:
            self.default = next(iter(self.policies))
        if self.default not in self.policies:
            raise self.error("default", self.default, "one of " + ", ".join(self.policies))
        if "://" not in self.bind:
            raise self.error("bind", self.bind, "a ZMQ endpoint such as tcp://0.0.0.0:5555 or ipc:///tmp/x.sock")


class PolicyServer:
    def __init__(self, cfg: ServerConfig, bind: str | None = None):
        import zmq

        self.cfg = cfg
        self.bind = bind or cfg.bind
        self.policies: dict[str, Any] = {}
        self.active_name = ""
        self.ctx = zmq.Context.instance()
        self.auth = None
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # Messages over the limit get an error reply; ZMQ itself drops (and disconnects) only absurd
        # ones, beyond 4x the limit, so they never take memory.
        self.sock.setsockopt(zmq.MAXMSGSIZE, 4 * cfg.max_message_bytes)
        if cfg.curve.get("enabled"):
            self._setup_curve()
        self.sock.bind(self.bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.requests = 0
        self.errors = 0
        self.started = time.time()
        self.joint_names: dict[bytes, list[str]] = {}
        self.shm: dict[bytes, Any] = {}  # client identity -> vertebra.policies.shm.Segment
        self._last_shm = 0.0
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.load(cfg.default)
        self.active_name = cfg.default

    def _setup_curve(self) -> None:
        import zmq
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        c = self.cfg.curve
        secret = Path(str(c.get("server_secret_key", "")))
        allowed = Path(str(c.get("allowed_clients", "")))
        if not secret.is_file() or not allowed.is_dir():
            raise ValueError(f"{self.cfg.file}: curve needs server_secret_key (a file) and allowed_clients (a directory)")
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(allowed))
        pub, sec = zmq.auth.load_certificate(str(secret))
        self.sock.curve_secretkey = sec
        self.sock.curve_publickey = pub
        self.sock.curve_server = True

    def load(self, name: str) -> Any:
        if name not in self.cfg.policies:
            raise ProtocolError("unknown_policy", f"unknown policy '{name}'; policies are: {', '.join(self.cfg.policies)}")
        if name not in self.policies:
            spec = self.cfg.policies[name]
            if spec["kind"] == "noop":
                self.policies[name] = NoopPolicy(name, int(spec.get("chunk_length", 50)), int(spec.get("action_dim", 32)),
                                                 float(spec.get("rate_hz", 50)))
            else:
                self.policies[name] = PackagePolicy(name, Path(spec["path"]), self.cfg.intra_op)
        return self.policies[name]

    # -- requests ------------------------------------------------------------------------------
    def handle(self, ident: bytes, msg: dict[str, Any]) -> dict[str, Any]:
        t = msg["type"]
        if t == "infer":
            pol = self.policies[self.active_name]
            if ident in self.joint_names:
                pol.set_joint_names(self.joint_names[ident])
            try:
                actions = pol.infer(msg["obs"])
            except (ValueError, KeyError) as e:
                raise ProtocolError("bad_observation", str(e)) from None
            return {"type": "infer_reply", "actions": actions, "id": msg.get("id", 0), "t_obs_ns": msg.get("t_obs_ns", 0),
                    "policy": self.active_name}
        if t == "hello":
            names = msg.get("joint_names")
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                self.joint_names[ident] = names
            return {"type": "hello_reply", "server": {"name": SERVER_NAME, "protocol": 1},
                    "policy": self.policies[self.active_name].metadata(), "active": self.active_name}
        if t == "health":
            return {"type": "health_reply", "ok": True, "uptime_s": time.time() - self.started, "requests": self.requests,
                    "errors": self.errors, "active": self.active_name}
        if t == "list":
            return {"type": "list_reply", "policies": list(self.cfg.policies), "loaded": list(self.policies),
                    "active": self.active_name}
        if t == "load":
            self.load(msg["name"])
            return {"type": "load_reply", "loaded": msg["name"]}
        if t == "swap":
            self.load(msg["name"])
            self.active_name = msg["name"]
            return {"type": "swap_reply", "active": self.active_name, "policy": self.policies[self.active_name].metadata()}
        if t == "reset":
            return {"type": "reset_reply"}
        if t == "shm_open":
            return self._shm_open(ident, msg["path"])
        if t == "shm_close":
            self._shm_close(ident)
            return {"type": "shm_close_reply"}
        raise ProtocolError("unknown_type", f"unknown message type '{t}'")

    # -- shared-memory channels (same host) ---------------------------------------------------------
    def _shm_open(self, ident: bytes, path: str) -> dict[str, Any]:
        import zmq

        from vertebra.policies.shm import Segment

        if not self.endpoint.startswith("ipc://"):
            raise ProtocolError("shm_unavailable", f"shared memory needs a same-host ipc:// endpoint; this server is on "
                                                   f"{self.endpoint}")
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
            self.poller.unregister(seg.read_fd)
            seg.close()

    def _serve_shm_waiting(self, timeout_s: float) -> bool:
        """Serve one shared-memory request arriving within the timeout; False when none came or the
        socket has a message. Polls without system calls during the busy period after a request."""
        from vertebra.policies.shm import sleep_until

        def ready() -> bool:
            for ident, seg in self.shm.items():
                if seg.new_request():
                    self._serve_shm(ident, seg)
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

    def _respond(self, ident: bytes, read: Any) -> bytes:
        """One request to its encoded reply: read() returns the decoded request (it raises
        ProtocolError for a bad one). Every failure becomes an error reply; timing is added."""
        t_recv = time.monotonic_ns()
        self.requests += 1
        t0 = time.perf_counter_ns()
        try:
            msg = read()
            t1 = time.perf_counter_ns()
            reply = self.handle(ident, msg)
        except ProtocolError as e:
            self.errors += 1
            t1 = time.perf_counter_ns()
            reply = {"type": "error", "code": e.code, "message": str(e)}
        except Exception as e:  # noqa: BLE001 - the server never dies on one request
            self.errors += 1
            t1 = time.perf_counter_ns()
            reply = {"type": "error", "code": "internal", "message": f"{type(e).__name__}: {e}"}
        t2 = time.perf_counter_ns()
        reply["timing"] = {"recv_ns": t_recv, "decode_us": (t1 - t0) / 1e3, "handle_us": (t2 - t1) / 1e3}
        data = encode(reply)
        self.last_encode_us = (time.perf_counter_ns() - t2) / 1e3
        return data

    def _serve_shm(self, ident: bytes, seg: Any) -> None:
        def read() -> dict[str, Any]:
            try:
                msg = decode(seg.request_view(), self.cfg.max_message_bytes, arena=seg.arena())
            except ValueError as e:  # a length beyond the area: the segment was written wrongly
                raise ProtocolError(getattr(e, "code", "malformed"), str(e)) from None
            if msg["type"] in ("shm_open", "shm_close"):
                raise ProtocolError("schema", f"'{msg['type']}' goes over the ZMQ socket")
            return msg

        data = self._respond(ident, read)
        try:
            seg.write_reply(data)
        except ValueError as e:  # the reply does not fit the client's area
            seg.write_reply(encode({"type": "error", "code": "too_large", "message": str(e)}))
        self._last_shm = time.perf_counter()

    def serve_once(self, timeout_ms: int = 100) -> bool:
        """Answer at most one request; False when none came within the timeout."""
        import zmq

        if self.shm:
            if self._serve_shm_waiting(timeout_ms / 1e3):
                return True
            if not self.sock.poll(0):
                return False
        elif not self.poller.poll(timeout_ms):
            return False
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)  # zero-copy: arrays are views
        except zmq.Again:
            return False

        def read() -> dict[str, Any]:
            if len(frames) not in (2, 3):
                raise ProtocolError("malformed", f"expected one message part, found {len(frames) - 1}")
            return decode(frames[-1].buffer, self.cfg.max_message_bytes)

        ident = frames[0].bytes
        data = self._respond(ident, read)
        self.sock.send_multipart([ident, data], copy=len(data) < 65536)
        return True

    def serve_forever(self, stop: Any = None, progress: Any = None) -> None:
        if progress:
            progress(f"serving '{self.active_name}' on {self.endpoint}")
        while stop is None or not stop.is_set():
            self.serve_once(100)

    def close(self) -> None:
        for ident in list(self.shm):
            self._shm_close(ident)
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()

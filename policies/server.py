"""The policy server: ONNX policies behind a ZMQ ROUTER socket speaking vertebra.policies.protocol.

``vertebra serve --config configs/policies/<name>.yaml [--bind ADDR]`` (config: server_config.py).
One thread serves every client: each request is checked (size, envelope schema, exact types) before
its payload is decoded, and its values (finite numbers) before the model runs. A bad request gets
an ``error`` reply naming what was wrong, and the server keeps serving; nothing one client sends
can stop the others being served (a failure on a shared-memory channel closes that channel only).

What the server guarantees a robot:
- An observation's state is mapped to the model by joint name, through the mapping the client
  declared at ``hello`` and the observation names (``mapping``); without one, ``unknown_mapping``.
  (That the mapping holds every joint the policy reads is checked at each ``infer``: the active
  policy can change after ``hello``.)
- Every policy it loads or swaps to was checked against the robot it serves (``robot:`` in the
  config), field by field, as ``vertebra policy check`` does; an incompatible one is refused.
- Loading runs on a loader thread: inference of the active policy never waits behind a load.
- Actions are finite (``bad_output`` otherwise) and within the package's declared ranges.
- A request whose ``deadline_ns`` has passed is dropped unanswered: a stale observation never
  produces an action.
"""

from __future__ import annotations

import collections
import math
import secrets
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vertebra.policies.endpoint import EndpointError, EndpointLock, default_endpoint, ipc_path, runtime_dir
from vertebra.policies.protocol import ProtocolError, decode, encode, mapping_id
from vertebra.policies.served import NoopPolicy, PackagePolicy
from vertebra.policies.server_shm import ShmChannels
from vertebra.policies.server_config import (
    POLICY_KINDS,
    CurveSettings,
    NoopPolicySpec,
    PackagePolicySpec,
    ServerConfig,
    ServerLimits,
    ServerThreads,
)
from vertebra.runtime.errors import ConfigError

__all__ = ["POLICY_KINDS", "CurveSettings", "NoopPolicySpec", "PackagePolicySpec", "PolicyServer", "ServerConfig",
           "ServerLimits", "ServerThreads"]

SERVER_NAME = "vertebra-policy-server"
SWEEP_S = 1.0  # how often dead or idle shared-memory channels are looked for
MAX_PENDING = 64  # load/swap requests waiting for the loader thread
HEARTBEAT_MS = 1000  # ZMQ heartbeats on both sides: a dead peer is noticed in HEARTBEAT_TIMEOUT_MS
HEARTBEAT_TIMEOUT_MS = 3000


def _warn(msg: str) -> None:
    print(f"vertebra serve: WARNING: {msg}", file=sys.stderr, flush=True)


class PolicyServer(ShmChannels):
    def __init__(self, cfg: ServerConfig, bind: str | None = None):
        import zmq

        self.cfg = cfg
        self.bind = bind or cfg.bind or default_endpoint()
        cfg.check_endpoint(self.bind, lambda found, valid: ConfigError(cfg._file, "bind", found, valid))
        if self.bind.startswith("tcp://") and not cfg.curve.enabled:
            _warn(f"serving {self.bind} WITHOUT encryption or a client allowlist (insecure: true): anyone who can "
                  "reach this port can read observations and send the robot's policy requests")
        self.server_id = secrets.token_hex(8)
        self.robot = None
        if cfg.robot is not None:
            from vertebra.runtime.config import RobotConfig

            self.robot = RobotConfig.load(cfg.robot)
        self.policies: dict[str, Any] = {}
        self.active_name = ""
        self.requests = self.errors = self.expired = self.unauthorized = self.channel_failures = 0
        self.started = time.time()
        self.mappings: collections.OrderedDict[str, list[str]] = collections.OrderedDict()
        self.shm: dict[bytes, Any] = {}  # client identity -> vertebra.policies.shm.Segment
        self._last_shm = 0.0
        self._last_sweep = time.monotonic()
        self._reload_requested = False
        self.allowed: set[str] | None = None  # CURVE: the z85 public keys allowed now
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vertebra-load")
        self.pending: list[tuple[Future, bytes, dict[str, Any], float]] = []
        self.loading: dict[str, Future] = {}  # one build per policy name
        self._swap_seq = 0
        # The default policy is loaded (and checked) before anything binds.
        self.policies[cfg.default] = self._build(cfg.default)
        self.active_name = cfg.default
        self.lock = EndpointLock(self.bind)
        self.ctx = zmq.Context.instance()
        self.auth = None
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # Messages over the limit get an error reply; ZMQ itself drops (and disconnects) only absurd
        # ones, beyond 4x the limit, so they never take memory.
        self.sock.setsockopt(zmq.MAXMSGSIZE, 4 * cfg.max_message_bytes)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        try:
            if cfg.curve.enabled:
                self._setup_curve()
            self.sock.bind(self.bind)
        except zmq.ZMQError as e:
            self._close_socket()
            raise EndpointError(f"bind {self.bind}: {e.strerror}") from None
        except BaseException:
            self._close_socket()
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        if ipc_path(self.bind) is not None:
            from vertebra.policies.shm import remove_dead_channels

            try:
                remove_dead_channels(runtime_dir())
            except EndpointError:
                pass

    # -- security --------------------------------------------------------------------------------
    def _setup_curve(self) -> None:
        from vertebra.policies.curve import CurveAllowlist

        c = self.cfg.curve
        self.auth = CurveAllowlist(self.ctx, str(c.server_secret_key), str(c.allowed_clients))
        self.allowed = self.auth.allowed
        self.auth.attach(self.sock)

    def reload_allowlist(self) -> int:
        """Re-read the allowed clients' keys: a key removed from the directory is refused from now on,
        on connections already open too (every request's CURVE identity is checked). How many."""
        n = self.auth.reload()
        self.allowed = self.auth.allowed
        return n

    def request_reload(self) -> None:
        """From a signal handler (SIGHUP): reload the allowlist before the next request."""
        self._reload_requested = True

    # -- policies ----------------------------------------------------------------------------------
    def _build(self, name: str) -> Any:
        """A policy object for a configured name, checked against the robot (loader thread, or start)."""
        from vertebra.policies.package import PackageError

        spec = self.cfg.policies[name]
        if spec["kind"] == "noop":
            pol: Any = NoopPolicy(name, int(spec["chunk_length"]), int(spec["action_dim"]), float(spec["rate_hz"]))
            return pol
        try:
            pol = PackagePolicy(name, Path(spec["path"]), self.cfg.intra_op)
        except PackageError as e:
            raise ProtocolError("bad_package", f"policy '{name}': {e}") from None
        except (OSError, ValueError, RuntimeError) as e:  # onnxruntime raises its own RuntimeError subclasses
            raise ProtocolError("bad_package", f"policy '{name}': {type(e).__name__}: {e}") from None
        if self.robot is not None:
            from vertebra.policies.actions import wbc_target_names
            from vertebra.policies.package import check_against_robot

            problems = check_against_robot(pol.spec, self.robot, wbc_targets=wbc_target_names(self.robot))
            if problems:
                more = f"; and {len(problems) - 6} more (vertebra policy check lists all)" if len(problems) > 6 else ""
                raise ProtocolError("incompatible", f"policy '{name}' does not fit {self.robot.name}: "
                                                    + "; ".join(problems[:6]) + more)
        return pol

    def _known(self, name: str) -> None:
        if name not in self.cfg.policies:
            raise ProtocolError("unknown_policy", f"unknown policy '{name}'; policies are: {', '.join(self.cfg.policies)}")

    def load(self, name: str) -> Any:
        """Load (and check) a policy now, on this thread (start-up and tools)."""
        self._known(name)
        if name not in self.policies:
            self.policies[name] = self._build(name)
        return self.policies[name]

    # -- requests ------------------------------------------------------------------------------
    def handle(self, ident: bytes, msg: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to a request, or None when it is answered later (a load on the loader thread)."""
        t = msg["type"]
        if t == "infer":
            return self._infer(msg)
        if t == "hello":
            reply = {"type": "hello_reply", "server": {"name": SERVER_NAME, "protocol": 1},
                     "policy": self.policies[self.active_name].metadata(), "active": self.active_name, "mapping": None,
                     "time_ns": time.time_ns()}  # the client stamps deadlines on this clock (offset from hello)
            names = msg.get("joint_names")
            if names is not None:
                mid = mapping_id(names)
                self.mappings[mid] = list(names)
                self.mappings.move_to_end(mid)
                while len(self.mappings) > self.cfg.limits.max_mappings:
                    self.mappings.popitem(last=False)
                reply["mapping"] = mid
            return reply
        if t == "health":
            return {"type": "health_reply", "ok": True, "uptime_s": time.time() - self.started, "requests": self.requests,
                    "errors": self.errors, "expired": self.expired, "active": self.active_name,
                    "loading": [m["name"] for _, _, m, _ in self.pending], "mappings": len(self.mappings),
                    "channels": len(self.shm)}
        if t == "list":
            return {"type": "list_reply", "policies": list(self.cfg.policies), "loaded": list(self.policies),
                    "active": self.active_name}
        if t in ("load", "swap"):
            name = msg["name"]
            self._known(name)
            if t == "swap":
                self._swap_seq += 1
                msg = {**msg, "_swap_seq": self._swap_seq}  # a later swap supersedes this one
            if name in self.policies:
                return self._load_reply(msg)
            if len(self.pending) >= MAX_PENDING:
                raise ProtocolError("busy", f"{len(self.pending)} load/swap requests are waiting; try again later")
            fut = self.loading.get(name)
            if fut is None:  # one build per policy, however many ask for it
                fut = self.loading[name] = self.loader.submit(self._build, name)
            self.pending.append((fut, ident, msg, time.monotonic()))
            return None
        if t == "reload":
            if self.cfg.curve.enabled:
                try:
                    return {"type": "reload_reply", "allowed_clients": self.reload_allowlist()}
                except (OSError, ValueError) as e:
                    raise ProtocolError("bad_allowlist", f"allowed_clients {self.cfg.curve.allowed_clients}: {e}; "
                                                         "the previous allowlist stays") from None
            return {"type": "reload_reply", "allowed_clients": None}
        if t == "reset":
            return {"type": "reset_reply"}
        if t == "shm_open":
            return self._shm_open(ident, msg["path"])
        if t == "shm_close":
            self._shm_close(ident)
            return {"type": "shm_close_reply"}
        raise ProtocolError("unknown_type", f"unknown message type '{t}'")

    def _infer(self, msg: dict[str, Any]) -> dict[str, Any]:
        pol = self.policies[self.active_name]
        names = None
        mid = msg.get("mapping")
        if mid is not None:
            names = self.mappings.get(mid)
            if names is None:
                raise ProtocolError("unknown_mapping", f"joint mapping {mid} is not known to this server (restarted, or "
                                                       "dropped as least recently used): send hello with joint_names again")
            self.mappings.move_to_end(mid)
        elif pol.needs_mapping:
            raise ProtocolError("unknown_mapping", f"policy '{self.active_name}' reads joint state, and this observation "
                                                   "names no joint mapping: send hello with joint_names, then infer "
                                                   "with the mapping it returns")
        # (NaN and infinity were refused when the request was decoded: protocol.decode)
        try:
            both = getattr(pol, "infer_all", None)  # a served policy with only infer() has no feasibility
            actions, feasible = both(msg["obs"], names) if both is not None else (pol.infer(msg["obs"], names), None)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise ProtocolError("bad_observation", f"{type(e).__name__}: {e}") from None
        if actions.dtype.kind in "fc" and not np.isfinite(actions).all():
            raise ProtocolError("bad_output", f"policy '{self.active_name}' produced non-finite actions; nothing is sent")
        reply = {"type": "infer_reply", "actions": pol.limit(actions), "id": msg.get("id", 0),
                 "t_obs_ns": msg.get("t_obs_ns", 0), "policy": self.active_name}
        if feasible is not None:
            # The policy's own answer to "can this instruction be done here?": below the package's
            # threshold (or not a number) it cannot comply, and the runtime must not act on the chunk.
            th = pol.spec.feasibility_threshold
            reply["feasible"] = feasible if math.isfinite(feasible) else 0.0
            reply["cannot_comply"] = not (math.isfinite(feasible) and feasible >= th)
        return reply

    def _load_reply(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = msg["name"]
        if msg["type"] == "load":
            return {"type": "load_reply", "loaded": name}
        if msg["_swap_seq"] != self._swap_seq:  # another swap was asked for after this one: it wins
            return {"type": "swap_reply", "active": self.active_name, "superseded": True,
                    "policy": self.policies[self.active_name].metadata()}
        self.active_name = name
        return {"type": "swap_reply", "active": name, "superseded": False, "policy": self.policies[name].metadata()}

    def _finish_loads(self) -> None:
        """Answer the loads the loader thread finished, in the order they were asked for (a built
        policy joins the set on this thread, answered or not)."""
        for name, fut in list(self.loading.items()):
            if fut.done():
                del self.loading[name]
                if fut.exception() is None:
                    self.policies.setdefault(name, fut.result())
        still = []
        for fut, ident, msg, t0 in self.pending:
            if not fut.done() or (still and msg["type"] == "swap"):  # swaps are applied in order
                still.append((fut, ident, msg, t0))
                continue

            def read(fut: Future = fut, msg: dict[str, Any] = msg) -> dict[str, Any]:
                return msg

            def answer(fut: Future = fut, msg: dict[str, Any] = msg) -> dict[str, Any]:
                fut.result()  # raises the load's ProtocolError
                return self._load_reply(msg)

            data = self._respond(ident, read, answer, count=False)
            if data is not None:
                self.sock.send_multipart([ident, data])
        self.pending = still

    def _respond(self, ident: bytes, read: Any, answer: Any = None, count: bool = True) -> bytes | None:
        """One request to its encoded reply: read() returns the decoded request (it raises
        ProtocolError for a bad one), answer() its reply (default: handle()). Every failure becomes an
        error reply carrying the request's id; timing and the server id are added. None: no reply now
        (deferred, or the request's deadline had passed)."""
        t_recv = time.monotonic_ns()
        if count:
            self.requests += 1
        t0 = time.perf_counter_ns()
        rid = 0
        try:
            msg = read()
            rid = msg.get("id", 0)
            deadline = msg.get("deadline_ns")
            if deadline is not None and time.time_ns() > deadline:
                self.expired += 1
                return None
            t1 = time.perf_counter_ns()
            reply = answer() if answer is not None else self.handle(ident, msg)
            if reply is None:
                return None
        except ProtocolError as e:
            self.errors += 1
            t1 = time.perf_counter_ns()
            rid = rid or e.id
            reply = {"type": "error", "code": e.code, "message": str(e)}
        except Exception as e:  # noqa: BLE001 - the server never dies on one request
            self.errors += 1
            t1 = time.perf_counter_ns()
            reply = {"type": "error", "code": "internal", "message": f"{type(e).__name__}: {e}"}
        t2 = time.perf_counter_ns()
        reply.setdefault("id", rid)
        reply["server_id"] = self.server_id
        reply["timing"] = {"recv_ns": t_recv, "decode_us": (t1 - t0) / 1e3, "handle_us": (t2 - t1) / 1e3}
        data = encode(reply)
        self.last_encode_us = (time.perf_counter_ns() - t2) / 1e3
        return data

    def serve_once(self, timeout_ms: int = 100) -> bool:
        """Answer at most one request; False when none came within the timeout."""
        import zmq

        if self.pending:
            self._finish_loads()
            timeout_ms = min(timeout_ms, 5)
        if self._reload_requested and self.cfg.curve.enabled:
            self._reload_requested = False
            self.reload_allowlist()
        if time.monotonic() - self._last_sweep > SWEEP_S:
            self._last_sweep = time.monotonic()
            self._sweep_channels()
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
        ident = frames[0].bytes

        def read() -> dict[str, Any]:
            if len(frames) not in (2, 3):
                raise ProtocolError("malformed", f"expected one message part, found {len(frames) - 1}")
            if self.auth is not None and not self.auth.allowed_frame(frames[-1]):
                self.unauthorized += 1  # checked before the frame is decoded
                raise ProtocolError("unauthorized", "this client's key is not (or no longer) in the allowlist")
            return decode(frames[-1].buffer, self.cfg.max_message_bytes)

        data = self._respond(ident, read)
        if data is not None:
            self.sock.send_multipart([ident, data], copy=len(data) < 65536)
        return True

    def serve_forever(self, stop: Any = None, progress: Any = None) -> None:
        if progress:
            progress(f"serving '{self.active_name}' on {self.endpoint}")
        while stop is None or not stop.is_set():
            try:
                self.serve_once(100)
            except Exception as e:  # noqa: BLE001 - the serving loop outlives any one failure
                self.errors += 1
                _warn(f"serving loop: {type(e).__name__}: {e}")

    def _close_socket(self) -> None:
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        self.lock.release()

    def close(self) -> None:
        for ident in list(self.shm):
            self._shm_close(ident)
        self.loader.shutdown(wait=False, cancel_futures=True)
        self._close_socket()

"""The policy server's config (``vertebra serve --config configs/policies/<name>.yaml``).

YAML::

    robot: g1                                 # the robot served: every load/swap is checked against it
    bind: null                                # default: ipc://$XDG_RUNTIME_DIR/vertebra/policy.sock
    default: g1_vla                           # the policy loaded at start
    policies:                                 # what `load`/`swap` may name
      g1_vla: {kind: package, path: policies/packages/g1_vla}
      noop:   {kind: noop, chunk_length: 50, action_dim: 32, rate_hz: 50}
    threads: {intra_op: 1}
    limits: {max_message_bytes: 16777216, max_mappings: 256, idle_channel_s: 600}
    curve:                                    # encryption + client allowlist: required on tcp://
      enabled: true
      server_secret_key: keys/server.key_secret   # zmq.auth.create_certificates() format
      allowed_clients: keys/clients               # directory of allowed clients' public keys
    insecure: false                           # true: allow tcp:// without CURVE (logged loudly)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vertebra.policies.protocol import DEFAULT_MAX_BYTES
from vertebra.runtime.errors import ConfigError
from vertebra.runtime.schema import Section, Variant, field, read_yaml


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
    """Request and resource limits."""

    max_message_bytes = field(int, default=DEFAULT_MAX_BYTES, lo=1024, hi=1 << 31,
                              doc="larger requests get an error reply before they are decoded")
    max_mappings = field(int, default=256, lo=1, hi=65536,
                         doc="joint-name orders kept from hello requests (least recently used dropped)")
    idle_channel_s = field(float, default=600.0, lo=1.0, hi=1e6,
                           doc="a shared-memory channel unused this long is closed (its client reopens it)")


class CurveSettings(Section):
    """CURVE encryption and a client allowlist (TCP)."""

    enabled = field(bool, default=False, doc="encrypt, and serve only the allowed clients")
    server_secret_key = field(str, default=None, doc="the server's secret key file (zmq.auth.create_certificates())")
    allowed_clients = field(str, default=None, doc="directory of the allowed clients' public keys (reloadable)")

    def check(self, context: Any) -> None:
        if not self.enabled:
            return
        for name in ("server_secret_key", "allowed_clients"):
            if getattr(self, name) is None:
                raise self.error(name, "<missing>", "a path (required with enabled: true)")
        secret = Path(self.server_secret_key)
        if not secret.is_file():
            raise self.error("server_secret_key", self.server_secret_key, "an existing key file")
        import zmq.auth

        try:
            _, sec = zmq.auth.load_certificate(str(secret))
        except (ValueError, OSError) as e:
            raise self.error("server_secret_key", self.server_secret_key, f"a readable certificate ({e})") from None
        if not sec:
            raise self.error("server_secret_key", self.server_secret_key,
                             "a secret key file (…key_secret); this one holds only a public key")
        if not Path(self.allowed_clients).is_dir():
            raise self.error("allowed_clients", self.allowed_clients, "an existing directory of public keys")


class ServerConfig(Section):
    """The policy server (``vertebra serve --config configs/policies/<name>.yaml``)."""

    robot = field(str, default=None, doc="the robot served (a robot config name); required with package policies")
    bind = field(str, default=None, doc="ZMQ endpoint (default: ipc:// in the per-user runtime directory; "
                                        "tcp://0.0.0.0:5555 off-board, with curve)")
    default = field(str, default=None, doc="the policy loaded at start (default: the first listed)")
    policies = field(dict, item=Variant(lambda: POLICY_KINDS, key="kind", what="policy kind"),
                     doc="what load/swap may name: name -> {kind: package|noop, ...}")
    threads = field(ServerThreads, default={}, doc="inference threads")
    limits = field(ServerLimits, default={}, doc="request and resource limits")
    curve = field(CurveSettings, default={}, doc="encryption + client allowlist (required on tcp:// unless insecure)")
    insecure = field(bool, default=False, doc="allow tcp:// without CURVE: anyone who reaches the port drives "
                                              "the robot's policy")

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
        if self.bind is not None:
            self.check_endpoint(self.bind, lambda found, valid: self.error("bind", found, valid))
        if self.robot is not None:
            from vertebra.runtime.config import available_robots

            if self.robot not in available_robots():
                raise self.error("robot", self.robot, "one of " + ", ".join(available_robots()))
        elif any(p["kind"] == "package" for p in self.policies.values()):
            raise self.error("robot", "<missing>", "the robot this server serves (every package is checked against it)")

    def check_endpoint(self, endpoint: str, error: Any) -> None:
        """An endpoint this config may bind: ipc:// or tcp://, and tcp:// only with CURVE or insecure."""
        if endpoint.startswith("ipc://"):
            return
        if not endpoint.startswith("tcp://"):
            raise error(endpoint, "a ZMQ endpoint: ipc:///path/x.sock or tcp://HOST:PORT")
        if not self.curve.enabled and not self.insecure:
            raise error(endpoint, "tcp:// only with curve.enabled (encryption + allowlist), or insecure: true "
                                  "to serve plaintext on purpose")

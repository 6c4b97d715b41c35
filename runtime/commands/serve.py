"""`vertebra serve`: the policy server (ONNX policies behind a ZMQ ROUTER socket)."""

from __future__ import annotations

import argparse
import sys

from vertebra.runtime.commands import progress


def run(args: argparse.Namespace) -> int:
    from vertebra.policies.package import PackageError
    from vertebra.policies.server import PolicyServer, ServerConfig
    from vertebra.runtime.config import ConfigError

    try:
        cfg = ServerConfig.load(args.config)
        server = PolicyServer(cfg, bind=args.bind)
    except (ConfigError, PackageError, ValueError) as e:
        print(f"vertebra serve: {e}", file=sys.stderr)
        return 2
    try:
        server.serve_forever(progress=None if args.quiet else progress(True))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sv = subparsers.add_parser("serve", help="serve policies over ZMQ (msgpack protocol)",
                               description="The policy server: ONNX policies behind a ZMQ ROUTER socket. Requests: "
                                           "hello, infer, reset, health, list, load, swap. See "
                                           "vertebra/policies/server.py.")
    sv.add_argument("--config", required=True, help="server config (configs/policies/<name>.yaml)")
    sv.add_argument("--bind", default=None, help="endpoint to bind (default: the config's), e.g. tcp://0.0.0.0:5555")
    sv.add_argument("--quiet", action="store_true", help="no start-up message")
    sv.set_defaults(func=run)

"""`vertebra serve`: the policy server (ONNX policies behind a ZMQ ROUTER socket).

Start-up errors (a config that does not parse or validate, a policy package that does not load, an
endpoint that cannot be bound, key files that are not what they should be) end the command with
one line on stderr naming what was wrong and what is valid, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any

from vertebra.runtime.commands import progress


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _bind_hint(code: int | None, endpoint: str) -> str:
    """What is valid, for a bind refused with errno `code` (None: refused before ZMQ saw it)."""
    if code is None:
        if endpoint.startswith("ipc://"):
            return "an ipc:// path in an existing folder that no other policy server is serving"
        return "a free tcp://HOST:PORT of this host"
    if code == errno.EADDRINUSE:
        return "a free address: another process is listening there (stop it, or --bind another port)"
    if code == errno.ENOENT and endpoint.startswith("ipc://"):
        return "an ipc:// path in an existing folder"
    if code in (errno.EACCES, errno.EPERM):
        return "an address this user may bind (a port >= 1024, or an ipc:// path in a writable folder)"
    if code == errno.EADDRNOTAVAIL or code == errno.ENODEV:
        return "an address of this host (tcp://0.0.0.0:PORT for every interface)"
    return "a ZMQ endpoint such as tcp://0.0.0.0:5555 or ipc:///run/user/1000/vertebra/policy.sock"


def run(args: argparse.Namespace) -> int:
    import yaml
    import zmq

    from vertebra.policies.endpoint import EndpointError
    from vertebra.policies.server import PolicyServer, ServerConfig
    from vertebra.runtime.errors import VertebraError

    def fail(message: str) -> int:
        print(f"vertebra serve: {_one_line(message)}", file=sys.stderr)
        return 2

    endpoint: Any = args.bind
    try:
        cfg = ServerConfig.load(args.config)
        endpoint = args.bind or cfg.get("bind") or "the default endpoint"
        server = PolicyServer(cfg, bind=args.bind)
    except zmq.ZMQError as e:
        return fail(f"cannot bind {endpoint}: {e.strerror}; valid: {_bind_hint(e.errno, str(endpoint))}")
    except yaml.YAMLError as e:
        return fail(f"{args.config}: not valid YAML: {e}")
    except (VertebraError, ValueError) as e:  # ConfigError, PackageError, EndpointError, key files
        message = str(e)
        if "valid" not in message and (isinstance(e, EndpointError) or isinstance(e.__context__, zmq.ZMQError)):
            code = e.__context__.errno if isinstance(e.__context__, zmq.ZMQError) else None
            message += f"; valid: {_bind_hint(code, str(endpoint))}"
        return fail(message)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        return fail(f"cannot start:{where} {e.strerror or e}")
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: server.request_reload())  # re-read the CURVE allowlist
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # close cleanly: channels, lock, socket
    try:
        server.serve_forever(stop, progress=None if args.quiet else progress(True))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sv = subparsers.add_parser("serve", help="serve policies over ZMQ (msgpack protocol)",
                               description="The policy server: ONNX policies behind a ZMQ ROUTER socket. Requests: "
                                           "hello, infer, reset, health, list, load, swap, reload. See "
                                           "vertebra/policies/server.py. Start-up errors print one line and exit "
                                           "with code 2. SIGHUP re-reads the CURVE allowlist (revoking removed "
                                           "keys on open connections too); SIGTERM stops cleanly.")
    sv.add_argument("--config", required=True, help="server config (configs/policies/<name>.yaml)")
    sv.add_argument("--bind", default=None, help="endpoint to bind (default: the config's), e.g. tcp://0.0.0.0:5555")
    sv.add_argument("--quiet", action="store_true", help="no start-up message")
    sv.set_defaults(func=run)

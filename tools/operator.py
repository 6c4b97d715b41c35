"""What the operator tools share: how they find and reach a running service, and who they say they are.

Every tool takes ``--config <deploy>`` (the service's deploy config: its control socket is found from
it) or ``--socket PATH``; off-board, ``--tcp tcp://robot:PORT --server-key F --client-key F`` (CURVE).
Tools that move the robot need the lease: they acquire it (``--force`` takes it over: an event in the
log) or use the one an operator's session holds (``--lease TOKEN`` or $VERTEBRA_LEASE).
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from typing import Any


def add_connection_arguments(p: argparse.ArgumentParser, lease: bool = False) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--config", default=None, help="the service's deploy config (a name in configs/deploy/ or a path)")
    g.add_argument("--socket", default=None, help="the service's control socket (default: from --config)")
    g.add_argument("--tcp", default=None, help="reach the service over tcp://HOST:PORT (CURVE) instead")
    g.add_argument("--server-key", default=None, help="--tcp: the service's public key file")
    g.add_argument("--client-key", default=None, help="--tcp: this client's key pair file (in the service's allowlist)")
    g.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer (default 2)")
    if lease:
        g.add_argument("--lease", default=os.environ.get("VERTEBRA_LEASE"),
                       help="use this lease token (an operator session's; default $VERTEBRA_LEASE) instead of "
                            "acquiring the lease")
        g.add_argument("--force", action="store_true", help="take the lease from its holder (an event in the log)")


def client_name(tool: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{tool}"


def connect(args: argparse.Namespace, tool: str) -> Any:
    """The ControlClient the arguments name (raises VertebraError with what is missing)."""
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.client import ControlClient

    name = client_name(tool)
    if args.tcp:
        return ControlClient(args.tcp, name, server_public_key=args.server_key, client_secret_key=args.client_key,
                             timeout_s=args.timeout)
    if args.socket:
        return ControlClient(f"ipc://{args.socket}", name, timeout_s=args.timeout)
    if args.config:
        return ControlClient.for_deploy(args.config, name, timeout_s=args.timeout)
    raise VertebraError("name the service: --config <deploy config> (or --socket PATH, or --tcp ...)")


def with_lease(c: Any, args: argparse.Namespace) -> bool:
    """Make `c` hold motion authority: the given token, or acquire it. True when acquired here (the
    caller gives it back)."""
    if getattr(args, "lease", None):
        c.use_lease(args.lease)
        return False
    c.acquire(force=bool(getattr(args, "force", False)))
    return True


def fail(tool: str, e: BaseException, code: int = 1) -> int:
    print(f"vertebra {tool}: {e}", file=sys.stderr)
    return code

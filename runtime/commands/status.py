"""`vertebra status --config <deploy> [--json] [--once]`: the live view of a running service
(vertebra.tools.status), or one snapshot of it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vertebra.runtime.commands import bounded_float


def client_name(tool: str) -> str:
    """`user@tool`: how the service's event log names this client."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{tool}"


def unreachable_message(tool: str, deploy: Any, endpoint: str, error: Exception) -> str:
    """What a tool says when the service of `deploy` (a DeployConfig) does not answer on `endpoint`."""
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.systemd import runtime_unit_name

    try:
        unit = f" (`systemctl status {runtime_unit_name(deploy)}`)"
    except VertebraError:
        unit = ""
    why = "nothing accepts the connection" if "not reachable" in str(error) else f"no reply: {error}"
    return (f"vertebra {tool}: the service of deploy '{deploy.name}' does not answer on {endpoint} ({why}). Is "
            f"`vertebra run --config {deploy.name}` running{unit}?")


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.deploy import DeployConfig
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.client import ControlClient, ControlError, ServiceUnreachable

    try:
        deploy = DeployConfig.load(args.config)
    except VertebraError as e:
        print(f"vertebra status: {e}", file=sys.stderr)
        return 2
    client = ControlClient.for_deploy(deploy, client=client_name("status"), timeout_s=args.timeout_s)
    try:
        if args.json or args.once:
            try:
                reply = client.request("status")
            except ServiceUnreachable as e:
                print(unreachable_message("status", deploy, client.endpoint, e), file=sys.stderr)
                return 1
            except ControlError as e:
                print(f"vertebra status: the service refused the status request: {e}", file=sys.stderr)
                return 1
            from vertebra.tools.status import render_status, snapshot
            from vertebra.tools.terminal import terminal_size

            if args.json:
                print(json.dumps(snapshot(reply), indent=2))
            else:
                print("\n".join(render_status(snapshot(reply), terminal_size()[0])))
            return 0
        from vertebra.tools.status import live_view
        from vertebra.tools.terminal import KeyReader, Screen

        screen = Screen()
        interval = args.interval_s if args.interval_s is not None else (0.15 if screen.tty else 1.0)
        try:
            with KeyReader() as keys, screen:
                return live_view(client, keys, screen, interval_s=interval)
        except KeyboardInterrupt:
            return 0
    finally:
        client.close()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="live view of a running robot service (mode, faults, lease, policy, joints); e-stop key",
        description="Show the status of the service `vertebra run --config <deploy>` runs, redrawn from its status "
                    "stream (about 7 Hz on a terminal; plain blocks of lines, once a second, when stdout is not a "
                    "terminal): mode and safety mode, faults with their causes, the lease holder and its freshness, "
                    "the policy and its chunk starvation, episode and intervention, loop lateness and overruns, a "
                    "joint table (temperature, torque margin, limit margin; the worst of each marked), battery, "
                    "guard and watchdog. Keys (stdin a terminal): e or space sends an e-stop (no lease needed), q "
                    "quits. Exit status: 0, 1 when the service is unreachable (--json/--once), 2 for a bad config.")
    p.add_argument("--config", required=True, help="deploy config: a name in configs/deploy/ or a YAML path")
    p.add_argument("--json", action="store_true", help="print one status snapshot as JSON and exit")
    p.add_argument("--once", action="store_true", help="print one rendered snapshot and exit (no live view)")
    p.add_argument("--interval-s", type=bounded_float(0.05, 60.0, "seconds"), default=None,
                   help="redraw period in seconds (default: 0.15 on a terminal, 1 otherwise)")
    p.add_argument("--timeout-s", type=float, default=1.0,
                   help="how long to wait for the service's answer to one request (default: 1)")
    p.set_defaults(func=run)

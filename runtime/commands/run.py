"""`vertebra run`: the runtime of one robot as a long-running service (vertebra.runtime.service.service)."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.deploy import DeployConfig
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.service import Service

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        deploy = DeployConfig.load(args.config)
    except VertebraError as e:
        say(f"vertebra run: {e}")
        return 2
    from vertebra.safety.events import default_log_dir

    log = args.event_log
    if log is None:
        d = default_log_dir()
        d.mkdir(parents=True, exist_ok=True)
        log = str(d / f"{deploy.name}.events.jsonl")
    from vertebra.runtime.service.notify import Notifier, NotifyError

    try:
        notifier = Notifier(unset_environment=True)  # the policy server child must not notify
    except NotifyError as e:
        say(f"vertebra run: {e}")
        return 2
    service = Service(deploy, say=say, event_log=log, notifier=notifier)
    service.install_signals()
    try:
        service.start()
    except VertebraError as e:
        say(f"vertebra run: cannot start: {e}")
        service.stop()
        return 1
    except BaseException:
        service.stop()
        raise
    service.run()
    say(f"vertebra run: stopped ({service.status_text() if service.rt is None else 'robot handed back damped'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the robot's runtime as a service (control API, leases, policy, guard heartbeat)",
        description="The long-running runtime of one robot, as systemd runs it (`vertebra service install`). It boots "
                    "PASSIVE and never arms by itself: an operator holding the lease enables and stands the robot "
                    "through the control API (vertebra status / teleop / recover / estop). SIGTERM or SIGINT: the "
                    "configured controlled stop (settle-then-cut) before exit; a second one: damping at once. "
                    "docs/deploy.md is the operator's procedure.")
    p.add_argument("--config", required=True, help="deploy config: a name in configs/deploy/ or a YAML path")
    p.add_argument("--event-log", default=None,
                   help="append the safety and service events to this JSON-lines file (default: "
                        "<log dir>/<deploy>.events.jsonl, the log dir $VERTEBRA_LOG_DIR or ~/.local/state/vertebra; "
                        "`vertebra events --log FILE` reads it)")
    p.set_defaults(func=run)

"""`vertebra reload`: the running service re-reads its deploy config (a changed active_policy is swapped in)."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.tools.operator import connect, fail, with_lease

    try:
        c = connect(args, "reload")
    except VertebraError as e:
        return fail("reload", e, 2)
    try:
        acquired = with_lease(c, args)
        try:
            reply = c.call("reload", timeout_s=max(args.timeout, 60.0))
        finally:
            if acquired:
                c.give_back()
    except VertebraError as e:
        return fail("reload", e)
    finally:
        c.close()
    reply.pop("type", None), reply.pop("id", None), reply.pop("v", None)
    if args.json:
        print(json.dumps(reply))
    else:
        if reply.get("changed"):
            print(f"policy swapped: {reply['from']} -> {reply['policy']}")
        else:
            print("policy unchanged")
        if reply.get("restart_needed_for"):
            print("changed, needs a restart of the service: " + ", ".join(reply["restart_needed_for"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from vertebra.tools.operator import add_connection_arguments

    p = sub.add_parser("reload", help="make the running service re-read its deploy config (policy swap)",
                       description="The service re-reads its deploy config file. A changed active_policy is checked "
                                   "against the robot and swapped in: during an episode at a chunk boundary, blended, "
                                   "with no tick left without a target. Other changed fields are listed: they need a "
                                   "restart. Needs the lease (acquired here, or --lease from the operator's session).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_connection_arguments(p, lease=True)
    p.set_defaults(func=run)

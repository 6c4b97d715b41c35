"""`vertebra estop [--release]`: e-stop the robot through its service (no lease needed), or release it."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.tools.operator import connect, fail, with_lease

    try:
        c = connect(args, "estop")
    except VertebraError as e:
        return fail("estop", e, 2)
    try:
        if not args.release:
            reply = c.request("estop")
        else:
            acquired = with_lease(c, args)
            try:
                reply = c.call("estop_release")
            finally:
                if acquired:
                    c.give_back()
    except VertebraError as e:
        return fail("estop", e)
    finally:
        c.close()
    out = {"safety_mode": reply.get("safety_mode"), "released": bool(args.release)}
    print(json.dumps(out) if args.json else
          f"{'released' if args.release else 'E-STOP'}: the robot is {out['safety_mode']}"
          + ("" if args.release else " (release with: vertebra estop --release, then vertebra recover)"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from vertebra.tools.operator import add_connection_arguments

    p = sub.add_parser("estop", help="e-stop the robot (any authenticated client, no lease), or --release it",
                       description="E-stop: the service's loop enters ESTOP on its next tick (the safety config's "
                                   "estop response: damping or cut) and stays there until released. Any client that "
                                   "can reach the service may e-stop; releasing needs the lease (it is acquired here "
                                   "unless --lease names an operator session's) and returns the robot to DAMP.")
    p.add_argument("--release", action="store_true", help="release the e-stop (the robot goes to DAMP)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_connection_arguments(p, lease=True)
    p.set_defaults(func=run)

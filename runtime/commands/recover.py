"""`vertebra recover`: guided recovery (vertebra.tools.recover)."""

from __future__ import annotations

import argparse
import json
import sys


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.errors import VertebraError
    from vertebra.tools.operator import connect, fail, with_lease
    from vertebra.tools.recover import RecoveryStopped, recover, tty_confirm

    def say(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    try:
        c = connect(args, "recover")
    except VertebraError as e:
        return fail("recover", e, 2)
    try:
        acquired = with_lease(c, args)
        try:
            out = recover(c, say, tty_confirm(args.yes))
        finally:
            if acquired:
                c.give_back()
    except RecoveryStopped as e:
        print(json.dumps({"recovered": False, "reason": str(e)}) if args.json else f"vertebra recover: {e}",
              file=sys.stdout if args.json else sys.stderr)
        return e.code
    except VertebraError as e:
        return fail("recover", e)
    finally:
        c.close()
    if args.json:
        print(json.dumps(out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from vertebra.tools.operator import add_connection_arguments

    p = sub.add_parser("recover", help="guided recovery: faults and causes, reset, stand up -> HOLD",
                       description="Lists the latched faults with their cause and whether it is still present; "
                                   "refuses a reset while one is; resets the e-stop or fault (the robot goes to DAMP); "
                                   "for a fallen robot damps it and tells the operator to hoist it; otherwise stands "
                                   "the robot up from the damped pose and leaves it holding (HOLD). Needs the lease "
                                   "(acquired here, or --lease). Exit 0 recovered, 1 refused (the reason printed), "
                                   "2 usage, 3 stopped by the operator.")
    p.add_argument("--yes", action="store_true", help="do not ask before each move (automation)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_connection_arguments(p, lease=True)
    p.set_defaults(func=run)

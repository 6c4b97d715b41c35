"""`vertebra policy check|swap`: policy package tools."""

from __future__ import annotations

import argparse
import json
import sys

from vertebra.runtime.commands import robot_names


def run_check(args: argparse.Namespace) -> int:
    from vertebra.policies.package import OnnxPolicy, PackageError, PolicyPackage, check_against_robot
    from vertebra.runtime.config import ConfigError, RobotConfig

    try:
        pkg = PolicyPackage.load(args.package)
        robot = RobotConfig.load(args.robot)
        OnnxPolicy(pkg)  # what `vertebra serve` constructs: onnxruntime opens it, inputs/outputs vs policy.yaml
    except (PackageError, ConfigError) as e:
        print(f"invalid: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"package": args.package, "robot": args.robot, "valid": False, "compatible": False,
                              "problems": [str(e)]}))
        return 1
    from vertebra.policies.actions import task_target_names

    problems = check_against_robot(pkg.spec, robot, wbc_targets=task_target_names(robot, pkg.spec.action_space) or None)
    if args.json:
        print(json.dumps({"package": str(pkg.path), "robot": robot.name, "valid": True, "compatible": not problems,
                          "problems": problems}))
    elif problems:
        print(f"incompatible: {pkg.spec.name} on {robot.name}:", file=sys.stderr)
        for p_ in problems:
            print(f"  - {p_}", file=sys.stderr)
    else:
        s = pkg.spec
        files = f" + {len(s.model_files)} external-data file(s)" if s.model_files else ""
        print(f"ok: {s.name} v{s.version} on {robot.name}: {s.action_space} x{s.action_dim}, chunk {s.chunk_length} "
              f"at {s.rate_hz:g} Hz, cameras {', '.join(c.name for c in s.cameras) or 'none'}, sha256 verified "
              f"({s.model_file}{files}), model inputs and outputs match policy.yaml")
    return 0 if not problems else 1


def run_service_swap(args: argparse.Namespace) -> int:
    """The swap through the running service: checked against the robot and its chunk layout, an event."""
    from vertebra.runtime.errors import VertebraError
    from vertebra.tools.operator import connect, fail, with_lease

    try:
        c = connect(args, "policy-swap")
    except VertebraError as e:
        return fail("policy swap", e, 2)
    try:
        acquired = with_lease(c, args)
        try:
            reply = c.call("policy_swap", timeout_s=args.timeout, name=args.name)
        finally:
            if acquired:
                c.give_back()
    except VertebraError as e:
        return fail("policy swap", e)
    finally:
        c.close()
    print(json.dumps({"policy": reply["policy"], "changed": reply["changed"], "from": reply.get("from")})
          if args.json else f"active: {reply['policy']}" + (f" (was {reply['from']})" if reply.get("changed") else
                                                            " (unchanged)"))
    return 0


def run_swap(args: argparse.Namespace) -> int:
    from vertebra.policies.client import PolicyClient, PolicyError

    if args.config or args.socket or args.tcp:
        return run_service_swap(args)

    from vertebra.policies.endpoint import default_endpoint

    c = PolicyClient(args.server or default_endpoint())
    try:
        c.call({"type": "load", "name": args.name}, timeout_s=args.timeout)  # load first: no stall at the swap
        reply = c.call({"type": "swap", "name": args.name}, timeout_s=args.timeout)
    except (PolicyError, TimeoutError) as e:
        print(f"vertebra policy swap: {e}", file=sys.stderr)
        return 1
    finally:
        c.close()
    print(json.dumps(reply["policy"]) if args.json else f"active: {reply['active']}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    po = subparsers.add_parser("policy", help="policy packages", description="Policy package tools.")
    posub = po.add_subparsers(dest="policy", metavar="<action>")
    posub.required = True
    pc = posub.add_parser("check", help="validate a policy package against a robot",
                          description="Load a policy package (policy.yaml, model.onnx and every external-data file "
                                      "it references, each sha256 checked), open the model with onnxruntime as "
                                      "`vertebra serve` does and check its inputs and outputs (names, dtypes, "
                                      "shapes) against policy.yaml, then compare it with a robot config; names "
                                      "every field that disagrees. Exit code 1 when invalid or incompatible.")
    pc.add_argument("package", help="package directory")
    pc.add_argument("--robot", required=True, choices=robots, help="robot config")
    pc.add_argument("--json", action="store_true", help="print one JSON object")
    pc.set_defaults(func=run_check)

    ps = posub.add_parser("swap", help="switch the running policy (the runtime blends it in)",
                          description="With --config (or --socket/--tcp): through the running service (`vertebra "
                                      "run`), which checks the package against the robot and its chunk layout, swaps "
                                      "it in at a chunk boundary and logs the swap (needs the lease: acquired here, or "
                                      "--lease). With --server: load, then activate, a policy on a bare policy server. "
                                      "Either way the chunk scheduler keeps executing the current chunk and "
                                      "cross-fades into the new policy's first chunk, so no tick is left without a "
                                      "target.")
    ps.add_argument("name", help="policy name from the server config")
    ps.add_argument("--server", default=None,
                    help="a bare server's endpoint (default: the server's default, ipc:// in the per-user runtime "
                         "directory)")
    from vertebra.tools.operator import add_connection_arguments

    add_connection_arguments(ps, lease=True)
    ps.set_defaults(timeout=30.0)
    ps.add_argument("--json", action="store_true", help="print the new policy's metadata as JSON")
    ps.set_defaults(func=run_swap)

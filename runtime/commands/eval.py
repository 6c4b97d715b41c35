"""`vertebra eval`: closed-loop rollouts of a policy package through the whole stack."""

from __future__ import annotations

import argparse
import json
import sys

from vertebra.runtime.commands import progress, robot_names


def run(args: argparse.Namespace) -> int:
    from vertebra.policies.evaluate import evaluate
    from vertebra.policies.package import PackageError

    if args.episodes < 1 or args.replan_steps < 1:
        print("vertebra eval: --episodes and --replan-steps must be >= 1", file=sys.stderr)
        return 2
    from vertebra.runtime.recorder import RecordOptions

    record = None if args.no_record else RecordOptions.from_dict({"dir": args.record} if args.record else {})
    try:
        out = evaluate(args.policy, args.robot, args.episodes, args.seed, say=progress(not args.json or args.verbose),
                       replan_steps=args.replan_steps, shared_memory=args.transport == "shm", record=record)
    except (PackageError, ValueError) as e:
        print(f"vertebra eval: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # the policy server process died (or never came up)
        print(f"vertebra eval: error: {e}", file=sys.stderr)
        return 1
    for o in out.get("server_outages", []):  # an outage is always an error line, JSON or not
        print(f"vertebra eval: error: policy server did not answer at policy step {o['step']}: {o['error']} "
              "(the runtime held on its starvation monitor)", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['policy']} on {out['robot']}: success {out['success_rate']}, mean time to success "
              f"{out['mean_time_to_success_s']}, inference p50/p99 {out['inference_latency_us']['p50']}/"
              f"{out['inference_latency_us']['p99']} us, starvation ticks {out['starvation_ticks']}")
        if "recording" in out:
            print(f"recorded {out['recording']['episodes']} episodes to {out['recording']['dir']} "
                  f"(vertebra data list {out['recording']['dir']})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    robots = robot_names()
    ev = subparsers.add_parser("eval", help="closed-loop rollouts of a policy package through the whole stack",
                               description="Run a policy package closed-loop: server process, thin client, C++ chunk "
                                           "scheduler, supervisor, controller and simulator (lockstep), on held-out "
                                           "episodes; reports success rate per task, mean time to success, inference "
                                           "latency p50/p99 and starvation ticks.")
    ev.add_argument("--policy", required=True, help="policy package directory")
    ev.add_argument("--robot", required=True, choices=robots, help="robot")
    ev.add_argument("--episodes", type=int, default=20, help="episodes (default 20)")
    ev.add_argument("--seed", type=int, default=0, help="episode seed (held out from training) (default 0)")
    ev.add_argument("--transport", choices=["shm", "zmq"], default="shm",
                    help="observations and chunks over the same-host shared-memory channel (default) or the ZMQ "
                         "socket")
    ev.add_argument("--replan-steps", type=int, default=1,
                    help="VLA: policy steps executed from each chunk before the next inference (default 1)")
    ev.add_argument("--record", default=None, metavar="DIR",
                    help="record the rollouts (one episode each) into DIR (default: $VERTEBRA_DATA_DIR, else "
                         "~/.local/share/vertebra/runs)")
    ev.add_argument("--no-record", action="store_true", help="do not record the rollouts")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--verbose", action="store_true", help="show progress even with --json")
    ev.set_defaults(func=run)

"""`vertebra eval`: closed-loop rollouts of a policy package through the whole stack."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vertebra.runtime.commands import progress, robot_names


def run(args: argparse.Namespace) -> int:
    from vertebra.policies.evaluate import evaluate
    from vertebra.policies.package import PackageError

    if args.episodes < 1 or args.replan_steps < 1:
        print("vertebra eval: --episodes and --replan-steps must be >= 1", file=sys.stderr)
        return 2
    from vertebra.runtime.recorder import RecordOptions

    record = None if args.no_record else RecordOptions.from_dict({"dir": args.record} if args.record else {})
    from vertebra.policies.vla.perturb import Perturbation, PerturbError

    try:
        conditions = [Perturbation.parse(t) for t in args.perturb] if args.perturb else [None]
    except PerturbError as e:
        print(f"vertebra eval: {e}", file=sys.stderr)
        return 2
    say = progress(not args.json or args.verbose)
    outs = []
    for cond in conditions:
        if cond is not None and say is not None:
            say(f"condition {cond.text} ({len(outs) + 1}/{len(conditions)})")
        try:
            outs.append(evaluate(args.policy, args.robot, args.episodes, args.seed, say=say,
                                 replan_steps=args.replan_steps, shared_memory=args.transport == "shm", record=record,
                                 table=args.table, perturb=cond))
        except (PackageError, ValueError) as e:
            print(f"vertebra eval: {e}", file=sys.stderr)
            return 2
        except RuntimeError as e:  # the policy server process died (or never came up)
            print(f"vertebra eval: error: {e}", file=sys.stderr)
            return 1
    if args.perturb:
        return _print_conditions(outs, args.json)
    out = outs[0]
    for o in out.get("server_outages", []):  # an outage is always an error line, JSON or not
        print(f"vertebra eval: error: policy server did not answer at policy step {o['step']}: {o['error']} "
              "(the runtime held on its starvation monitor)", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['policy']} on {out['robot']}: success {out['success_rate']}, mean time to success "
              f"{out['mean_time_to_success_s']}, inference p50/p99 {out['inference_latency_us']['p50']}/"
              f"{out['inference_latency_us']['p99']} us, starvation ticks {out['starvation_ticks']}")
        if "hand_table" in out:
            ht = out["hand_table"]
            print(f"hands against the table ({out['table']}): least clearance {ht['min_clearance_m']} m "
                  f"(negative: into it), per task {ht['per_task_min_m']}; {ht['episodes_penetrating']} of "
                  f"{out['episodes']} episodes went into the table")
        if "cannot_comply" in out:
            cc = out["cannot_comply"]
            print(f"cannot comply: said in {cc['on_infeasible']} of {cc['infeasible_episodes']} episodes that could "
                  f"not be done, and in {cc['on_feasible']} that could")
        if "recording" in out:
            print(f"recorded {out['recording']['episodes']} episodes to {out['recording']['dir']} "
                  f"(vertebra data list {out['recording']['dir']})")
    return 0


def _print_conditions(outs: list[dict[str, Any]], as_json: bool) -> int:
    """`--perturb`: one row per condition, success per task as k/n with its Wilson 95% interval."""
    for out in outs:
        for o in out.get("server_outages", []):
            print(f"vertebra eval: error: policy server did not answer at policy step {o['step']} under "
                  f"{out['perturb']}: {o['error']}", file=sys.stderr)
    if as_json:
        print(json.dumps({"conditions": outs}))
        return 0
    tasks = sorted({t for out in outs for t in out["success_counts"]}, key=lambda t: ("touch", "point", "raise", "wave").index(t)
                   if t in ("touch", "point", "raise", "wave") else 9)

    def cell(c: dict[str, Any]) -> str:
        lo, hi = c["wilson95"]
        return f"{c['successes']}/{c['episodes']} ({100 * lo:.0f}-{100 * hi:.0f}%)"

    width = max(12, *(len(o["perturb"]) for o in outs)) + 2
    print(f"{outs[0]['policy']} on {outs[0]['robot']}: success per task, k/n (Wilson 95% interval)")
    print(f"{'condition':<{width}}" + "".join(f"{t:>18}" for t in tasks) + f"{'all':>18}{'into table':>12}"
          f"{'least gap':>11}{'cannot comply':>15}")
    for out in outs:
        row = "".join(f"{cell(out['success_counts'][t]) if t in out['success_counts'] else '-':>18}" for t in tasks)
        ht = out["hand_table"]
        cc = out.get("cannot_comply", {})
        print(f"{out['perturb']:<{width}}{row}{cell(out['success_all']):>18}{ht['episodes_penetrating']:>6}/{out['episodes']:<5}"
              f"{1000 * ht['min_clearance_m']:>8.1f} mm{cc.get('episodes', 0):>9}/{out['episodes']:<5}")
    from vertebra.policies.vla.perturb import wilson

    n = min(c["episodes"] for out in outs for c in out["success_counts"].values())
    note = f"; with {n} episodes of a task, {n}/{n} shows only that its rate is at least {100 * wilson(n, n)[0]:.0f}%"
    print(f"intervals: Wilson score, 95%{note}. 'into table': episodes whose hands went into the table; 'least "
          "gap': the hands' least clearance to the table; 'cannot comply': episodes where the policy said so.")
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
    ev.add_argument("--perturb", action="append", default=None, metavar="NAME=VALUE,...",
                    help="run under a condition (repeat for several; `none`: as trained): light=S, tint=warm|cool, "
                         "cam_pitch=DEG, cam_yaw=DEG, placement=S, distractors=N, phrasing=heldout, hand=cross, "
                         "absent=1 (policies/vla/perturb.py); prints success per task per condition with Wilson 95%% "
                         "intervals")
    ev.add_argument("--table", choices=["visual", "solid", "keep_out"], default="keep_out",
                    help="tabletop tasks: the table only seen, solid in the simulator, or solid with the controller "
                         "keeping the hands out of it (default: keep_out, what g1_vla was trained with)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--verbose", action="store_true", help="show progress even with --json")
    ev.set_defaults(func=run)

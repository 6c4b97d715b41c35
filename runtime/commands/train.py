"""`vertebra train pose|vla`: reproducible training pipelines for the shipped policies."""

from __future__ import annotations

import argparse
import json
import sys

from vertebra.runtime.commands import progress


def run_pose(args: argparse.Namespace) -> int:
    from vertebra.policies.train_pose import train_pose

    if args.commands < 10 or args.epochs < 1:
        print("vertebra train pose: --commands must be >= 10 and --epochs >= 1", file=sys.stderr)
        return 2
    out = train_pose(args.robot, args.out, args.commands, args.epochs, args.seed, say=progress(True))
    print(json.dumps(out) if args.json else f"wrote {out['package']} ({out['samples']} samples, "
          f"validation mse {out['val_mse']:.4f}, {out['minutes']} min)")
    return 0


def run_vla(args: argparse.Namespace) -> int:
    from vertebra.policies.vla import train_vla

    if args.episodes < 4 or args.epochs < 1 or not 1 <= args.workers <= args.episodes:
        print("vertebra train vla: --episodes must be >= 4, --epochs >= 1 and 1 <= --workers <= --episodes",
              file=sys.stderr)
        return 2
    out = train_vla(args.robot, args.out, args.episodes, args.epochs, args.seed, say=progress(True),
                    data_path=args.data, workers=args.workers)
    print(json.dumps(out) if args.json else f"wrote {out['package']} ({out['samples']} samples, "
          f"validation mse {out['val_mse']:.4f}, {out['minutes']} min)")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = subparsers.add_parser("train", help="reproducible training pipelines for the shipped policies",
                               description="Training pipelines: collect demonstrations in sim, train in torch (CPU), "
                                           "export ONNX and a policy package.")
    trsub = tr.add_subparsers(dest="train", metavar="<policy>")
    trsub.required = True
    tp = trsub.add_parser("pose", help="joint-target body-pose policy distilled from the whole-body controller",
                          description="Distil the whole-body controller's base-pose tracking into a joint-target "
                                      "policy (50 Hz chunks of 10) and write its package.")
    tp.add_argument("--robot", choices=["go2"], default="go2", help="robot (default go2)")
    tp.add_argument("--out", default=None, help="package directory (default policies/packages/<robot>_pose)")
    tp.add_argument("--commands", type=int, default=1200, help="random pose commands demonstrated (default 1200)")
    tp.add_argument("--epochs", type=int, default=150, help="training epochs (default 150)")
    tp.add_argument("--seed", type=int, default=0, help="seed for commands and training (default 0)")
    tp.add_argument("--json", action="store_true", help="print one JSON object")
    tp.set_defaults(func=run_pose)
    tv = trsub.add_parser("vla", help="tabletop vision-language-action policy for the G1",
                          description="Collect demonstrations (scripted expert on the whole-body controller, head "
                                      "camera renders, instructions), train a FiLM CNN + words + proprioception model "
                                      "in torch on CPU, export ONNX and the policy package.")
    tv.add_argument("--robot", choices=["g1"], default="g1", help="robot (default g1)")
    tv.add_argument("--out", default=None, help="package directory (default policies/packages/<robot>_vla)")
    tv.add_argument("--episodes", type=int, default=720, help="demonstration episodes (default 720)")
    tv.add_argument("--epochs", type=int, default=22, help="training epochs (default 22)")
    tv.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tv.add_argument("--data", default=None, help="cache the demonstrations in this .npz (reused when it exists)")
    tv.add_argument("--workers", type=int, default=2,
                    help="processes collecting demonstrations, one core each (default 2); the data depends on it")
    tv.add_argument("--json", action="store_true", help="print one JSON object")
    tv.set_defaults(func=run_vla)

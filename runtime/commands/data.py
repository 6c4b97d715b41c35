"""`vertebra data list|plot`: the recorded runs (runtime/recorder.py) and their episodes, and a run's
curves drawn with matplotlib. Runs live in $VERTEBRA_DATA_DIR (else ~/.local/share/vertebra/runs)
unless a folder is given; docs/data.md says what a recording holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _root(arg: str | None) -> Path:
    from vertebra.runtime.recorder import default_data_dir

    return Path(arg) if arg else default_data_dir()


def _resolve_run(arg: str) -> Path:
    """A run folder: a path, or a run id under the default data folder."""
    p = Path(arg)
    if p.is_dir():
        return p
    from vertebra.runtime.recorder import default_data_dir

    q = default_data_dir() / arg
    if q.is_dir():
        return q
    raise FileNotFoundError(f"no run {arg!r}: neither a folder nor a run in {default_data_dir()} "
                            "(list them with 'vertebra data list')")


def run_list(args: argparse.Namespace) -> int:
    from vertebra.tools.data.reader import load_run, run_dirs

    root = _root(args.dir)
    if not root.exists():
        print(f"vertebra data list: {root} does not exist (no runs recorded there yet)", file=sys.stderr)
        return 2
    dirs = run_dirs(root)
    runs = []
    for i, d in enumerate(dirs):
        if len(dirs) > 20 and not args.json:
            print(f"reading {i + 1}/{len(dirs)}: {d.name}", file=sys.stderr, end="\r")
        runs.append(load_run(d))
    if args.json:
        print(json.dumps({"root": str(root), "runs": [r.to_dict() for r in runs]}))
        return 0
    if not runs:
        print(f"no runs in {root}")
        return 0
    for r in runs:
        d = r.to_dict()
        dur = f"{d['duration_s']:.1f} s" if d["duration_s"] is not None else "-"
        flags = (" TRUNCATED (the writer did not finish: crash or kill; read up to the last whole chunk)"
                 if r.truncated else "")
        print(f"{r.id}  {d['robot']}  {dur}  {r.ticks} ticks  {r.lost} lost  {len(r.faults)} faults  "
              f"{len(r.interventions)} interventions  {len(r.segments)} segment(s){flags}")
        for e in r.episodes:
            ed = e.to_dict()
            why = f" ({e.reason})" if e.reason else ""
            print(f"    episode {e.number}: {e.instruction!r} [{e.policy}] {e.outcome}{why}, "
                  f"{len(e.interventions)} interventions, {len(e.faults)} faults, "
                  f"{ed['start_s']:.2f}..{'-' if ed['end_s'] is None else format(ed['end_s'], '.2f')} s")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from vertebra.tools.data.plot import plot_run

    try:
        out: dict[str, Any] = plot_run(_resolve_run(args.run), args.out, args.joints, args.t_from, args.t_to)
    except (ValueError, FileNotFoundError) as e:
        print(f"vertebra data plot: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['out']}: {len(out['joints'])} joints, {out['ticks']} ticks ({out['from_s']:.2f}..{out['to_s']:.2f} s)")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("data", help="recorded runs: list them and their episodes, plot a run",
                              description="Recorded runs (MCAP, one folder per run; open them in Foxglove, or use "
                                          "these commands). docs/data.md says what a recording holds.")
    sub = p.add_subparsers(dest="data_command", metavar="{list,plot}", required=True)
    ls = sub.add_parser("list", help="runs and their episodes (outcome, interventions, faults)",
                        description="Every run under DIR with its duration, ticks, records lost, faults and "
                                    "interventions, and each episode's instruction, policy and outcome. A run whose "
                                    "writer was killed is read up to its last whole chunk and marked TRUNCATED.")
    ls.add_argument("dir", nargs="?", default=None,
                    help="a folder of runs, or one run's folder (default: $VERTEBRA_DATA_DIR, else "
                         "~/.local/share/vertebra/runs)")
    ls.add_argument("--json", action="store_true", help="one JSON object")
    ls.set_defaults(func=run_list)
    pl = sub.add_parser("plot", help="draw a run's position, torque and tracking-error curves (matplotlib)",
                        description="Per joint: measured and commanded position, measured and feed-forward torque, "
                                    "and the tracking error, with mode changes and faults marked.")
    pl.add_argument("run", help="the run's folder, or its id under the default data folder")
    pl.add_argument("--joints", default=None, metavar="REGEX", help="joints whose name matches (default: all, at most 12)")
    pl.add_argument("--out", required=True, metavar="FILE", help="the figure (.png, .svg or .pdf)")
    pl.add_argument("--from", dest="t_from", type=float, default=None, metavar="S", help="from this robot time (s)")
    pl.add_argument("--to", dest="t_to", type=float, default=None, metavar="S", help="up to this robot time (s)")
    pl.add_argument("--json", action="store_true", help="print what was drawn as JSON")
    pl.set_defaults(func=run_plot)

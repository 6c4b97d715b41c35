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


def run_export(args: argparse.Namespace) -> int:
    from vertebra.tools.data.export_lerobot import ExportError, export

    redact = {x.strip() for x in (args.redact or "").split(",") if x.strip()}
    bad = redact - {"cameras", "operator"}
    if bad:
        print(f"vertebra data export: --redact {','.join(sorted(bad))}: valid: cameras, operator", file=sys.stderr)
        return 2
    from vertebra.tools.data.security import SecurityError, keys_dir, load_private, sign

    key = None
    if not args.unsigned:
        key = Path(args.sign) if args.sign else keys_dir() / "robot.key"
        try:
            from cryptography.hazmat.primitives.asymmetric import ed25519

            load_private(key, ed25519.Ed25519PrivateKey)  # before the export: a missing key fails at once
        except (SecurityError, ValueError) as e:
            print(f"vertebra data export: cannot sign: {e}; make the robot's key with 'vertebra keys init', "
                  "give --sign KEY, or export --unsigned", file=sys.stderr)
            return 2
    try:
        dirs = [_resolve_run(r) for r in args.runs]
        out = export(dirs, args.out, version=args.version, fps=args.fps, redact=redact,
                     progress=None if args.json else (lambda m: print(m, file=sys.stderr)))
        if key is not None:
            out["signed"] = sign(args.out, key)
    except (ExportError, FileNotFoundError, SecurityError) as e:
        print(f"vertebra data export: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['out']}: LeRobot v{out['version']}, {out['episodes']} episodes, {out['frames']} frames at "
              f"{out['fps']} fps, tasks {out['tasks']}, cameras {out['cameras'] or 'none'}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from vertebra.tools.data.security import SecurityError, verify

    try:
        r = verify(args.dataset, args.key)
    except (SecurityError, ValueError) as e:
        print(f"vertebra data verify: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{args.dataset}: {r['files']} files, signature {r['signature']} (signer {r['signer']}"
              f"{', trusted key' if r['trusted'] else ', the key the dataset carries: integrity only'})")
        for what in ("changed", "missing", "added"):
            for f in r[what]:
                print(f"  {what}: {f}")
        print("OK" if r["ok"] else "NOT OK")
    return 0 if r["ok"] else 1


def run_encrypt(args: argparse.Namespace) -> int:
    from vertebra.tools.data.security import SecurityError, encrypt

    try:
        r = encrypt(args.dataset, args.to, args.out)
    except (SecurityError, ValueError, OSError) as e:
        print(f"vertebra data encrypt: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r) if args.json else f"{r['out']}: {r['bytes']} bytes for {', '.join(r['recipients'])}")
    return 0


def run_decrypt(args: argparse.Namespace) -> int:
    from vertebra.tools.data.security import SecurityError, decrypt

    try:
        r = decrypt(args.file, args.key, args.out)
    except (SecurityError, ValueError, OSError) as e:
        print(f"vertebra data decrypt: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r) if args.json else f"{r['out']}: {r['files']} files")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("data", help="recorded runs: list them and their episodes, plot a run",
                              description="Recorded runs (MCAP, one folder per run; open them in Foxglove, or use "
                                          "these commands). docs/data.md says what a recording holds.")
    sub = p.add_subparsers(dest="data_command", metavar="{list,plot,export,verify,encrypt,decrypt}", required=True)
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
    ex = sub.add_parser("export", help="recorded episodes as a LeRobot dataset (v3.0 or v2.1)",
                        description="Every episode of the runs as a LeRobot dataset: observation.state (q, dq, tau, "
                                    "IMU), the cameras as H.264 video, action (the policy's) and action.motor (the "
                                    "motor command), the instruction as the task, and Vertebra's columns intervention, "
                                    "fault, safety_mode, contact_wrench.*, next.success, next.done (docs/data.md).")
    ex.add_argument("runs", nargs="+", help="run folders (or run ids under the default data folder)")
    ex.add_argument("--format", choices=["lerobot"], default="lerobot", help="the dataset format (lerobot)")
    ex.add_argument("--version", choices=["3.0", "2.1"], default="3.0",
                    help="LeRobot codebase version: 3.0 (lerobot 0.4.x) or 2.1 (GR00T-WBC, openpi) (default 3.0)")
    ex.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (new or empty)")
    ex.add_argument("--fps", type=float, default=30.0, help="frames per second sampled from the ticks (default 30)")
    ex.add_argument("--redact", default=None, metavar="LIST",
                    help="leave out: cameras (no image data at all), operator (no operator identity)")
    ex.add_argument("--sign", default=None, metavar="KEY",
                    help="sign the manifest with this Ed25519 key (default: robot.key in $VERTEBRA_KEYS_DIR, else "
                         "~/.config/vertebra/keys)")
    ex.add_argument("--unsigned", action="store_true", help="write no signed manifest (the dataset cannot be verified)")
    ex.add_argument("--json", action="store_true", help="print what was written as JSON")
    ex.set_defaults(func=run_export)
    vf = sub.add_parser("verify", help="check a dataset's signed manifest: names every changed, missing or added file",
                        description="Every file against the manifest (sha256) and the manifest's Ed25519 signature, "
                                    "against --key (a public key you trust) or else the key the dataset carries "
                                    "(which shows integrity, not who signed). Exit 0 when all holds, 1 when not.")
    vf.add_argument("dataset", help="the dataset folder")
    vf.add_argument("--key", default=None, metavar="PUB", help="the signer's public key to trust (e.g. robot.pub)")
    vf.add_argument("--json", action="store_true", help="one JSON object")
    vf.set_defaults(func=run_verify)
    en = sub.add_parser("encrypt", help="encrypt a dataset to recipients' X25519 public keys (streaming)",
                        description="The dataset folder as one file, sealed in 1 MiB AES-256-GCM chunks under a random "
                                    "key that is sealed for each recipient (X25519 + HKDF-SHA256). docs/data.md.")
    en.add_argument("dataset", help="the dataset folder")
    en.add_argument("--to", action="append", required=True, metavar="PUB", help="a recipient's public key (repeatable)")
    en.add_argument("--out", required=True, metavar="FILE", help="the encrypted file (new)")
    en.add_argument("--json", action="store_true", help="one JSON object")
    en.set_defaults(func=run_encrypt)
    de = sub.add_parser("decrypt", help="open an encrypted dataset with a recipient's private key",
                        description="Checks every chunk (changed, reordered or cut files fail) and writes the dataset "
                                    "folder as it was encrypted.")
    de.add_argument("file", help="the encrypted file")
    de.add_argument("--key", required=True, metavar="KEY", help="your X25519 private key")
    de.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (new or empty)")
    de.add_argument("--json", action="store_true", help="one JSON object")
    de.set_defaults(func=run_decrypt)

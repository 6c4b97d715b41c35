"""`vertebra keys init`: the keys that sign a robot's datasets (Ed25519) and that receive encrypted
datasets (X25519), kept outside any repository with mode 0600 (tools/data/security.py)."""

from __future__ import annotations

import argparse
import sys


def run_init(args: argparse.Namespace) -> int:
    from vertebra.tools.data.security import SecurityError, fingerprint, init_key, keys_dir, load_public

    try:
        priv, pub = init_key(args.name, args.kind, args.dir, args.force)
    except SecurityError as e:
        print(f"vertebra keys init: {e}", file=sys.stderr)
        return 2
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    kind = ed25519.Ed25519PublicKey if args.kind == "ed25519" else x25519.X25519PublicKey
    print(f"{priv} (private, 0600) and {pub} (public; share it), fingerprint {fingerprint(load_public(pub, kind))}"
          + ("" if args.dir else f" in {keys_dir()}"))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("keys", help="make the keys that sign datasets and receive encrypted ones",
                              description="Keys live in $VERTEBRA_KEYS_DIR, else ~/.config/vertebra/keys (mode 0700; "
                                          "private keys 0600), never in a repository. docs/data.md.")
    sub = p.add_subparsers(dest="keys_command", metavar="{init}", required=True)
    i = sub.add_parser("init", help="make a key pair: <name>.key (private) and <name>.pub",
                       description="ed25519: the robot's signing key (vertebra data export signs with robot.key); "
                                   "x25519: a recipient's key for vertebra data encrypt --to <name>.pub.")
    i.add_argument("--name", default="robot", help="the key's name (default robot)")
    i.add_argument("--kind", choices=["ed25519", "x25519"], default="ed25519", help="ed25519 (sign) or x25519 (receive)")
    i.add_argument("--dir", default=None, help="where (default: $VERTEBRA_KEYS_DIR, else ~/.config/vertebra/keys)")
    i.add_argument("--force", action="store_true", help="replace an existing key")
    i.set_defaults(func=run_init)

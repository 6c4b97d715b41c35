"""`vertebra`: one command line for the runtime, its simulator, benchmarks and tools.

Each subcommand is its own module in vertebra.runtime.commands (listed, in `--help` order, in
``vertebra.runtime.commands.COMMANDS``); this module only builds the top-level parser, lets each
command register itself, and dispatches to the handler the parsed arguments name.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vertebra.runtime.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vertebra",
        description="Vertebra: on-robot control runtime for humanoid and quadruped robots. A C++ real-time loop "
                    "(driver -> controller mode -> limiter -> driver) run from Python, here on a simulated robot.",
        epilog="Run 'vertebra <command> --help' for a command's options.")
    sub = p.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"vertebra.runtime.commands.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""The `vertebra` subcommands, one module each (LeRobot's one-script-per-command layout).

Every module named in ``COMMANDS`` exposes ``register(subparsers) -> None``: it adds its parser
(help, description, flags) to the top-level ``vertebra`` subparsers and sets ``func`` to the
handler, which takes the parsed ``argparse.Namespace`` and returns the exit code. Handlers import
their heavy dependencies (torch, mujoco, onnxruntime, the C++ core) inside the handler, so that
``vertebra --help`` stays fast. ``vertebra.runtime.cli`` registers them in this order, which is
the order ``vertebra --help`` lists them in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

COMMANDS = ("run", "status", "teleop", "recover", "estop", "reload", "sim", "sim_bridge", "dds", "bench", "config", "serve", "policy", "train", "eval", "faults", "events", "data", "keys", "lifecycle", "usage", "report", "service", "guard", "hil")


def progress(enabled: bool) -> Callable[[str], None] | None:
    """A progress callback printing to stderr when ``enabled``, else None (no progress)."""
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if enabled else None


def robot_names() -> list[str]:
    """The robots a command's ``--robot`` may name (configs/robots/*.yaml)."""
    from vertebra.runtime.config import available_robots

    return available_robots()


def bounded_float(lo: float, hi: float, unit: str) -> Callable[[str], float]:
    """An argparse ``type``: a number in [lo, hi] (`unit` names it in the error)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"found '{text}'; valid: {unit} in [{lo:g}, {hi:g}]") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"found {v:g}; valid: {unit} in [{lo:g}, {hi:g}]")
        return v

    return parse

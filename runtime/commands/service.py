"""`vertebra service`: the systemd units of a deploy config (install, print, verify, note-exit).

``install`` writes ``vertebra-<name>.service`` and, when the deploy config's guard is enabled,
``vertebra-guard-<name>.service`` (vertebra.runtime.service.systemd builds them; docs/deploy.md explains
them); ``--enable`` also runs ``systemctl daemon-reload`` and ``systemctl enable`` when systemctl exists
and we are root, else prints those commands. Starting the units stays the operator's decision.
``print`` writes the units to stdout, ``verify`` checks them with ``systemd-analyze verify``.
``note-exit`` is what the runtime unit's ExecStopPost= runs: it records how the run ended for the next
start's events. Exit codes: 0 done, 1 a check or a write failed, 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_EPILOG = "docs/deploy.md: installing on a robot computer."


def _load(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """(deploy, units), or None after printing why not."""
    from vertebra.runtime.controllers import available_controllers
    from vertebra.runtime.deploy import DeployConfig
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.systemd import generate_units

    try:
        deploy = DeployConfig.load(args.config, controllers=available_controllers())
        return deploy, generate_units(deploy, exe=args.exe)
    except VertebraError as e:
        print(f"vertebra service {args.action}: {e}", file=sys.stderr)
        return None


def _user_warning(deploy: Any) -> str | None:
    import grp
    import pwd

    user = deploy.service.user
    try:
        pwd.getpwnam(user)
    except KeyError:
        return (f"warning: user '{user}' does not exist here (the units run as it): create it with "
                f"`sudo useradd --system --home-dir /var/lib/vertebra --shell /usr/sbin/nologin {user}`")
    for g in [deploy.service.group, deploy.control.group]:
        if g:
            try:
                grp.getgrnam(g)
            except KeyError:
                return f"warning: group '{g}' does not exist here: create it with `sudo groupadd --system {g}`"
    return None


def run_install(args: argparse.Namespace) -> int:
    from vertebra.runtime.service.systemd import SystemdError, write_units

    loaded = _load(args)
    if loaded is None:
        return 2
    deploy, units = loaded
    if args.dry_run:
        for u in units.files():
            print(f"# --- would write {Path(args.unit_dir) / u.name}")
            print(u.text)
        return 0
    try:
        paths = write_units(units, args.unit_dir)
    except SystemdError as e:
        print(f"vertebra service install: {e}", file=sys.stderr)
        return 1
    for p in paths:
        print(f"wrote {p}")
    warning = _user_warning(deploy)
    if warning:
        print(warning, file=sys.stderr)
    commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", *units.names()]]
    start = f"systemctl start {units.runtime.name}"
    if not args.enable:
        print("then: sudo systemctl daemon-reload && sudo systemctl enable " + " ".join(units.names())
              + f" && sudo {start}")
        return 0
    # sd_booted(3): systemd is the running init exactly when /run/systemd/system/ exists.
    why = ("systemctl is not on PATH" if shutil.which("systemctl") is None
           else "systemd is not running here" if not Path("/run/systemd/system").is_dir()
           else "not root" if os.geteuid() != 0 else None)
    if why is not None:
        print(f"--enable: {why}; run these:")
        for c in commands:
            print("  sudo " + " ".join(c))
        return 0
    for c in commands:
        r = subprocess.run(c, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"vertebra service install: `{' '.join(c)}` failed ({r.returncode}): {r.stderr.strip()}",
                  file=sys.stderr)
            return 1
        print("ran: " + " ".join(c))
    print(f"enabled (they start at boot); start now with: {start}")
    return 0


def run_print(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return 2
    _, units = loaded
    files = units.files()
    if args.unit == "runtime":
        files = [units.runtime]
    elif args.unit == "guard":
        if units.guard is None:
            print("vertebra service print: --unit guard: found guard.enabled: false in the deploy config; "
                  "valid: runtime or all", file=sys.stderr)
            return 2
        files = [units.guard]
    for i, u in enumerate(files):
        if len(files) > 1:
            print(("\n" if i else "") + f"# --- {u.name}")
        sys.stdout.write(u.text)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from vertebra.runtime.service.systemd import SystemdError, verify_units

    loaded = _load(args)
    if loaded is None:
        return 2
    _, units = loaded
    try:
        result = verify_units(units)
    except SystemdError as e:
        print(f"vertebra service verify: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"ok": result.ok, "units": units.names(), "returncode": result.returncode,
                          "findings": result.findings}))
    else:
        for f in result.findings:
            print(f"finding: {f}")
        print(f"{'ok' if result.ok else 'FAILED'}: systemd-analyze verify {' '.join(units.names())}"
              + ("" if result.ok else f" (exit {result.returncode}, {len(result.findings)} finding(s))"))
    return 0 if result.ok else 1


def run_note_exit(args: argparse.Namespace) -> int:
    from vertebra.runtime.service.systemd import exit_record_path, write_exit_record

    name = Path(args.config).stem  # not loaded: the config may be what made the run fail
    try:
        record = write_exit_record(name)
    except OSError as e:
        print(f"vertebra service note-exit: cannot write {exit_record_path(name)}: {e}", file=sys.stderr)
        return 1
    print(f"vertebra service note-exit: {name}: {json.dumps(record)}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vertebra.runtime.service.systemd import DEFAULT_UNIT_DIR

    s = subparsers.add_parser(
        "service", help="systemd units for `vertebra run` and its guard (install, print, verify)",
        description="Generate the systemd units of a deploy config: vertebra-<name>.service runs `vertebra run` "
                    "(Type=notify, watchdog, restart on failure with a start limit, real-time limits, a stop "
                    "timeout that covers the controlled stop and the recorder's close), vertebra-guard-<name>.service "
                    "runs `vertebra guard`, ordered before it.", epilog=_EPILOG)
    ssub = s.add_subparsers(dest="action", metavar="<action>")
    ssub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True,
                       help="the deploy config: a name in configs/deploy/ or a YAML path (the units run it by its "
                            "absolute path, so keep it where it is, e.g. /etc/vertebra/deploy/)")
        p.add_argument("--exe", default=None,
                       help="the vertebra executable the units run (default: the one next to this Python, else "
                            "the one on PATH)")

    inst = ssub.add_parser(
        "install", help="write both unit files (and optionally enable them)",
        description="Write the runtime and guard units into --unit-dir. --enable then runs `systemctl "
                    "daemon-reload` and `systemctl enable` (as root, when systemctl exists; else it prints the "
                    "commands). Nothing is started. Exit 0 written, 1 a write or systemctl failed, 2 bad config.",
        epilog=_EPILOG)
    common(inst)
    inst.add_argument("--unit-dir", default=str(DEFAULT_UNIT_DIR),
                      help=f"where to write the units (default {DEFAULT_UNIT_DIR})")
    inst.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    inst.add_argument("--enable", action="store_true",
                      help="also systemctl daemon-reload and enable the units (start at boot)")
    inst.set_defaults(func=run_install)

    pr = ssub.add_parser("print", help="print the unit files to stdout",
                         description="Print the units generated from a deploy config (nothing is written).",
                         epilog=_EPILOG)
    common(pr)
    pr.add_argument("--unit", choices=("all", "runtime", "guard"), default="all", help="which unit (default all)")
    pr.set_defaults(func=run_print)

    ver = ssub.add_parser(
        "verify", help="check the unit files with systemd-analyze verify",
        description="Write the units into a temporary directory and run `systemd-analyze verify` on them; every "
                    "warning it prints about them is a finding (it exits 0 on unknown directives). Exit 0 clean, "
                    "1 findings or no systemd-analyze, 2 bad config.", epilog=_EPILOG)
    common(ver)
    ver.add_argument("--json", action="store_true", help="print one JSON object: ok, units, returncode, findings")
    ver.set_defaults(func=run_verify)

    ne = ssub.add_parser(
        "note-exit", help="record how the run ended (the runtime unit's ExecStopPost=)",
        description="Write $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS (set by systemd for ExecStopPost=) to "
                    "$RUNTIME_DIRECTORY/last-exit-<deploy name>.json, where the next start of `vertebra run` "
                    "reads it for its events. The deploy config is not loaded (it may be why the run failed).",
        epilog=_EPILOG)
    ne.add_argument("--config", required=True, help="the deploy config (its file name names the record)")
    ne.set_defaults(func=run_note_exit)

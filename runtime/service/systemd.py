"""systemd units for a deploy config: the runtime (`vertebra run`) and its guard (`vertebra guard`).

``generate_units(DeployConfig.load("g1_dds"))`` gives two unit files (docs/deploy.md explains each
directive for the operator):

- ``vertebra-<name>.service`` runs ``vertebra run --config <deploy file>``. ``Type=notify`` with
  ``NotifyAccess=main``: it is "started" only when it sends READY=1 (the loop ticks with fresh state);
  ``WatchdogSec=`` (service.watchdog_s): fed at half the interval while the loop is healthy, so a stuck
  loop gets the process killed and, ``Restart=on-failure``, restarted -- PASSIVE, as every start is --
  at most ``StartLimitBurst=`` times in ``StartLimitIntervalSec=``. ``TimeoutStopSec=`` covers the
  controlled stop (the safety config's settle keyframes and hold) plus service.stop_margin_s for the
  recorder to close: a stop timeout SIGKILLs, and a recorder killed mid-finalize corrupts its file
  (LeRobot's did, with systemd's default 90 s: almond-bot/axol PR #158). ``KillMode=mixed``: SIGTERM
  to the main process only, which stops its children itself after the controlled stop; the SIGKILL
  after the timeout goes to all (systemd.kill(5)). ``ExecStopPost=`` records how the run ended
  (``$SERVICE_RESULT``, ``$EXIT_CODE``, ``$EXIT_STATUS``) in the runtime directory, so that the next
  start can report the previous run's end in its events (:func:`read_exit_record`).
- ``vertebra-guard-<name>.service`` (when guard.enabled) runs ``vertebra guard --config <deploy file>``:
  ``Type=notify``, its own watchdog, ``Restart=always`` with no start limit (the last line of defence
  never gives up), ordered ``Before=`` the runtime, which ``Requires=`` it and is ordered ``After=`` it:
  the runtime starts only once the guard watches, and stopping the guard stops the runtime first, so
  the guard watches the runtime's controlled stop. systemd also propagates a guard's automatic
  restart to the units requiring it (the auto-restart job runs in "restart-dependencies" mode): a
  crashed guard restarts the runtime too, which stops the robot in a controlled way and comes back
  PASSIVE. That is fail-closed by choice: the runtime never runs unguarded.

Real-time privileges come from resource limits, not capabilities: ``LimitRTPRIO=`` lets an
unprivileged thread ask SCHED_FIFO up to that priority (man sched(7), RLIMIT_RTPRIO), and
``LimitMEMLOCK=infinity`` lets it mlockall() everything (man mlock(2): RLIMIT_MEMLOCK bounds an
unprivileged process). CAP_SYS_NICE and CAP_IPC_LOCK would add nothing the loop needs and allow more
(other processes' priorities, locking past any limit), so no ``AmbientCapabilities=`` is set.
``CPUAffinity=`` (systemd.exec(5)) is the initial CPU mask of the runtime's every thread and child;
the loop thread pins itself to loop.cpu with sched_setaffinity, which this mask does not restrict
(unlike a cgroup cpuset, ``AllowedCPUs=``), so ``service.cpu_affinity`` may list housekeeping cores
while loop.cpu is an isolated one.

Both units share ``RuntimeDirectory=vertebra`` (/run/vertebra: the control socket, the policy socket,
the exit record) with ``RuntimeDirectoryPreserve=yes`` (one unit stopping must not remove it under
the other) and ``StateDirectory=vertebra`` (/var/lib/vertebra: event log, recordings), and neither
uses the sandboxing that would separate them: the heartbeat the guard reads is POSIX shared memory
in /dev/shm, which ``PrivateTmp=`` leaves alone but a private mount namespace differing between the
two units, ``RemoveIPC=`` (deletes the user's POSIX shm when *either* unit stops) or ``DynamicUser=``
(implies RemoveIPC) would break; ``PrivateDevices=`` would also hide cameras and gamepads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertebra.runtime.errors import ConfigError, VertebraError

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
RUNTIME_DIR_NAME = "vertebra"
START_TIMEOUT_S = 60.0  # driver configure + policy load + first fresh state; longer steps send EXTEND_TIMEOUT_USEC
GUARD_RESTART_S = 0.5
GUARD_STOP_MARGIN_S = 10.0
CAMERA_GROUP = "video"  # /dev/video* are root:video 0660 on Debian and Ubuntu (base-passwd's static gid 44)
EXIT_ENV = ("SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS")  # set for ExecStop=/ExecStopPost= (systemd.exec(5))
_UNIT_NAME_CHARS = re.compile(r"[A-Za-z0-9:_.\-]+")  # systemd.unit(5): unit name characters (no '@' here)


class SystemdError(VertebraError):
    """The units cannot be generated or checked (no vertebra executable, systemd-analyze missing...)."""


@dataclass(frozen=True)
class UnitFile:
    """One unit file: its name (``vertebra-g1_dds.service``) and text."""

    name: str
    text: str


@dataclass(frozen=True)
class ServiceUnits:
    """The units of one deploy config: the runtime's and (guard.enabled) the guard's."""

    runtime: UnitFile
    guard: UnitFile | None

    def files(self) -> list[UnitFile]:
        """Guard first (the order systemd starts them in)."""
        return ([self.guard] if self.guard is not None else []) + [self.runtime]

    def names(self) -> list[str]:
        return [u.name for u in self.files()]


@dataclass(frozen=True)
class VerifyResult:
    """What ``systemd-analyze verify`` said: ok when it exited 0 and said nothing about these units."""

    ok: bool
    returncode: int
    findings: list[str]
    command: list[str]


# -- names and values ---------------------------------------------------------------------------
def runtime_unit_name(deploy: Any) -> str:
    return f"vertebra-{_unit_stem(deploy)}.service"


def guard_unit_name(deploy: Any) -> str:
    return f"vertebra-guard-{_unit_stem(deploy)}.service"


def _unit_stem(deploy: Any) -> str:
    name = str(deploy.name)
    if not _UNIT_NAME_CHARS.fullmatch(name):
        raise ConfigError(deploy.file, "<file name>", name,
                          "a deploy file name of letters, digits and : _ . - (it names the systemd units)")
    return name


def deploy_file(deploy: Any) -> Path:
    """The deploy config's file, absolute (the units name it in ExecStart)."""
    f = Path(str(deploy.file))
    if f.suffix not in (".yaml", ".yml") or not f.is_file():
        raise ConfigError(str(deploy.file), "<file>", str(deploy.file),
                          "a deploy config loaded from a YAML file (DeployConfig.load(path)): the units run it by path")
    return f.resolve()


def stop_timeout_s(deploy: Any) -> float:
    """TimeoutStopSec of the runtime: the controlled stop (settle keyframes + hold) + service.stop_margin_s."""
    return float(deploy.safety_settings().settle_duration_s()) + float(deploy.service.stop_margin_s)


def guard_stop_timeout_s(deploy: Any) -> float:
    """TimeoutStopSec of the guard: a takeover in progress may run the settle poses before it can exit."""
    return float(deploy.safety_settings().settle_duration_s()) + GUARD_STOP_MARGIN_S


def runtime_cpu_affinity(deploy: Any) -> list[int] | None:
    """CPUAffinity of the runtime: service.cpu_affinity, else [loop.cpu] when set, else None (no directive)."""
    cpus = deploy.service.cpu_affinity
    if cpus:
        bad = [c for c in cpus if not isinstance(c, int) or isinstance(c, bool) or c < 0]
        if bad:
            raise ConfigError(deploy.file, "service.cpu_affinity", cpus, "a list of CPU numbers >= 0")
        return sorted(set(cpus))
    if deploy.loop.cpu is not None:
        return [int(deploy.loop.cpu)]
    return None


def supplementary_groups(deploy: Any) -> list[str]:
    """The camera group, and control.group when it is not the units' own group (to chgrp the socket to
    a group, a process must belong to it)."""
    groups = [CAMERA_GROUP]
    cg = deploy.control.group
    if cg and cg != deploy.service.group and cg not in groups:
        groups.append(cg)
    return groups


def runtime_directory_mode(deploy: Any) -> str:
    """0750; 0751 when control.group is another group than the units': its members may then reach the
    socket by path (the socket's own mode, 0660, decides) without listing the directory."""
    cg = deploy.control.group
    return "0751" if cg and cg != deploy.service.group else "0750"


def vertebra_executable(exe: str | os.PathLike[str] | None = None) -> Path:
    """The `vertebra` console script the units run: `exe`, else the one next to this Python (a venv's
    bin/), else the one on PATH. Absolute; must exist and be executable."""
    if exe is not None:
        candidates = [Path(exe).expanduser()]
    else:
        candidates = [Path(sys.executable).parent / "vertebra"]
        found = shutil.which("vertebra")
        if found:
            candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.absolute()
    raise SystemdError(f"vertebra executable: found {', '.join(map(str, candidates)) or 'none'} "
                       "(missing or not executable); valid: the installed `vertebra` script (--exe PATH)")


def format_seconds(seconds: float) -> str:
    """A systemd time span (systemd.time(7)): ``1s``, ``500ms``, ``34.5s``."""
    ms = round(float(seconds) * 1000.0)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{ms / 1000.0:g}s"


def quote_exec_arg(arg: str) -> str:
    """One ExecStart= argument: '%' and '$' doubled (no specifier or variable expansion), quoted with
    C escapes when it has blanks or quotes (systemd.service(5), "Command lines")."""
    s = str(arg).replace("%", "%%").replace("$", "$$")
    if s and not re.search(r"[\s\"'\\;]", s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec(*args: str | os.PathLike[str]) -> str:
    return " ".join(quote_exec_arg(str(a)) for a in args)


# -- the units ---------------------------------------------------------------------------------
def _render(sections: list[tuple[str, list[tuple[str, str] | str]]], header: list[str]) -> str:
    out = [f"# {h}" if h else "#" for h in header]
    for title, items in sections:
        out.append("")
        out.append(f"[{title}]")
        for item in items:
            if isinstance(item, str):
                out.append(f"# {item}")
            else:
                out.append(f"{item[0]}={item[1]}")
    return "\n".join(out) + "\n"


def _common_service(deploy: Any) -> list[tuple[str, str] | str]:
    svc = deploy.service
    items: list[tuple[str, str] | str] = [("User", svc.user)]
    if svc.group:
        items.append(("Group", svc.group))
    items += [
        ("SupplementaryGroups", " ".join(supplementary_groups(deploy))),
        "/run/vertebra (%t = /run) holds the control and policy sockets; /var/lib/vertebra (%S) the event log",
        ("Environment", "XDG_RUNTIME_DIR=%t XDG_STATE_HOME=%S PYTHONUNBUFFERED=1"),
        "Shared by the runtime and the guard; kept when either stops (systemd.exec(5))",
        ("RuntimeDirectory", RUNTIME_DIR_NAME),
        ("RuntimeDirectoryMode", runtime_directory_mode(deploy)),
        ("RuntimeDirectoryPreserve", "yes"),
        ("StateDirectory", RUNTIME_DIR_NAME),
        ("StateDirectoryMode", "0750"),
        "SCHED_FIFO and mlockall() without capabilities: the limits allow them (man sched(7), mlock(2))",
        ("LimitRTPRIO", str(int(svc.rtprio))),
        ("LimitMEMLOCK", "infinity"),
        "No PrivateDevices=/PrivateIPC=/RemoveIPC=/DynamicUser=: the guard reads the heartbeat in /dev/shm",
    ]
    return items


def runtime_unit(deploy: Any, exe: str | os.PathLike[str] | None = None) -> UnitFile:
    """The runtime's unit file (see the module docstring for each directive)."""
    svc = deploy.service
    path = deploy_file(deploy)
    vexe = vertebra_executable(exe)
    guard = guard_unit_name(deploy) if deploy.guard.enabled else None
    unit: list[tuple[str, str] | str] = [("Description", f"Vertebra runtime ({deploy.name}): vertebra run")]
    unit.append(("After", "network-online.target" + (f" {guard}" if guard else "")))
    unit.append(("Wants", "network-online.target"))
    if guard:
        unit.append("The guard watches before the runtime starts; stopping it stops the runtime first")
        unit.append(("Requires", guard))
    unit += ["Restart=on-failure gives up after this many starts in the interval (systemd.unit(5))",
             ("StartLimitIntervalSec", format_seconds(svc.start_limit_interval_s)),
             ("StartLimitBurst", str(int(svc.start_limit_burst)))]
    service: list[tuple[str, str] | str] = [
        "READY=1 once the loop ticks with fresh state; WATCHDOG=1 at half WatchdogSec while it is healthy",
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", _exec(vexe, "run", "--config", path)),
        "Records $SERVICE_RESULT/$EXIT_CODE/$EXIT_STATUS for the next start's events ('-': its failure is ignored)",
        ("ExecStopPost", "-" + _exec(vexe, "service", "note-exit", "--config", path)),
        *_common_service(deploy),
        ("WatchdogSec", format_seconds(svc.watchdog_s)),
        ("Restart", "on-failure"),
        ("RestartSec", format_seconds(svc.restart_s)),
        ("TimeoutStartSec", format_seconds(START_TIMEOUT_S)),
        f"The controlled stop ({stop_timeout_s(deploy) - svc.stop_margin_s:g} s of settle poses and hold) + "
        f"{svc.stop_margin_s:g} s for the recorder to close; SIGKILL after it",
        ("TimeoutStopSec", format_seconds(stop_timeout_s(deploy))),
        "SIGTERM to the main process only: it stops its children after its controlled stop (systemd.kill(5))",
        ("KillMode", "mixed"),
    ]
    cpus = runtime_cpu_affinity(deploy)
    if cpus is not None:
        service.append("Every thread's initial CPU mask; the loop thread pins itself to loop.cpu")
        service.append(("CPUAffinity", " ".join(map(str, cpus))))
    header = [f"{runtime_unit_name(deploy)}: generated by `vertebra service install` from {path}.",
              "Edit the deploy config's service: section and reinstall rather than this file",
              "(or add a drop-in with `systemctl edit`). docs/deploy.md explains every directive."]
    text = _render([("Unit", unit), ("Service", service), ("Install", [("WantedBy", "multi-user.target")])], header)
    return UnitFile(runtime_unit_name(deploy), text)


def guard_unit(deploy: Any, exe: str | os.PathLike[str] | None = None) -> UnitFile:
    """The guard's unit file."""
    svc = deploy.service
    path = deploy_file(deploy)
    vexe = vertebra_executable(exe)
    unit: list[tuple[str, str] | str] = [
        ("Description", f"Vertebra guard ({deploy.name}): damps the robot when the runtime stops"),
        ("Before", runtime_unit_name(deploy)),
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        "The last line of defence is always restarted: no start limit",
        ("StartLimitIntervalSec", "0"),
    ]
    service: list[tuple[str, str] | str] = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", _exec(vexe, "guard", "--config", path)),
        *_common_service(deploy),
        ("WatchdogSec", format_seconds(svc.watchdog_s)),
        ("Restart", "always"),
        ("RestartSec", format_seconds(GUARD_RESTART_S)),
        ("TimeoutStartSec", format_seconds(START_TIMEOUT_S)),
        "A takeover in progress may run the settle poses before the guard exits",
        ("TimeoutStopSec", format_seconds(guard_stop_timeout_s(deploy))),
        ("KillMode", "mixed"),
        "No CPUAffinity: the guard may run on any core but an isolated one, never starved by a stuck loop",
    ]
    header = [f"{guard_unit_name(deploy)}: generated by `vertebra service install` from {path}.",
              "Edit the deploy config and reinstall rather than this file. docs/deploy.md explains it."]
    text = _render([("Unit", unit), ("Service", service), ("Install", [("WantedBy", "multi-user.target")])], header)
    return UnitFile(guard_unit_name(deploy), text)


def generate_units(deploy: Any, exe: str | os.PathLike[str] | None = None) -> ServiceUnits:
    """Both unit files of a loaded DeployConfig (the guard's only when guard.enabled)."""
    return ServiceUnits(runtime_unit(deploy, exe), guard_unit(deploy, exe) if deploy.guard.enabled else None)


def write_units(units: ServiceUnits, unit_dir: str | os.PathLike[str] = DEFAULT_UNIT_DIR) -> list[Path]:
    """Write the unit files into `unit_dir` (mode 0644, each replaced atomically); their paths."""
    d = Path(unit_dir)
    if not d.is_dir():
        raise SystemdError(f"--unit-dir: found {d} (not a directory); valid: an existing directory "
                           f"({DEFAULT_UNIT_DIR} for system units)")
    out = []
    for u in units.files():
        target = d / u.name
        tmp = d / f".{u.name}.tmp"
        try:
            tmp.write_text(u.text)
            tmp.chmod(0o644)
            tmp.replace(target)
        except PermissionError:
            tmp.unlink(missing_ok=True)
            raise SystemdError(f"--unit-dir: found {d} not writable by this user; valid: run as root (sudo), "
                               "another --unit-dir, or --dry-run") from None
        out.append(target)
    return out


def systemd_analyze() -> str | None:
    """The systemd-analyze binary, or None."""
    return shutil.which("systemd-analyze")


def verify_units(units: ServiceUnits, analyze: str | None = None, timeout_s: float = 60.0) -> VerifyResult:
    """Write the units into a temporary directory and run ``systemd-analyze verify`` on them. It exits 0
    even for unknown or unparsable directives (it ignores them with a warning), so any line it prints
    about these units is a finding. Raises :class:`SystemdError` without systemd-analyze."""
    binary = analyze or systemd_analyze()
    if binary is None:
        raise SystemdError("systemd-analyze: found none on PATH; valid: a system with systemd (Debian/Ubuntu "
                           "package `systemd`) -- verify the units on the robot computer")
    with tempfile.TemporaryDirectory(prefix="vertebra-units-") as tmp:
        paths = []
        for u in units.files():
            p = Path(tmp) / u.name
            p.write_text(u.text)
            paths.append(str(p))
        cmd = [binary, "verify", *paths]
        env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""}
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return VerifyResult(False, -1, [f"systemd-analyze verify did not finish in {timeout_s:g} s"], cmd)
        names = set(units.names())
        findings = []
        for line in (r.stdout + r.stderr).splitlines():
            line = line.replace(tmp + "/", "")
            if line.strip() and any(n in line for n in names):
                findings.append(line.strip())
        if r.returncode != 0 and not findings:
            findings = [ln.strip() for ln in (r.stdout + r.stderr).splitlines() if ln.strip()][-20:]
        return VerifyResult(r.returncode == 0 and not findings, r.returncode, findings, cmd)


# -- how the previous run ended ---------------------------------------------------------------------
def runtime_directory(environ: Mapping[str, str] | None = None) -> Path:
    """$RUNTIME_DIRECTORY (set by systemd for RuntimeDirectory=), else /run/vertebra."""
    env = os.environ if environ is None else environ
    value = env.get("RUNTIME_DIRECTORY", "")
    return Path(value.split(":")[0]) if value else Path("/run") / RUNTIME_DIR_NAME


def exit_record_path(deploy_name: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where ExecStopPost= leaves the end of the last run: <runtime dir>/last-exit-<deploy name>.json."""
    return runtime_directory(environ) / f"last-exit-{deploy_name}.json"


def write_exit_record(deploy_name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Record $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS (what systemd passes ExecStopPost=:
    ``success``/``exit-code``/``signal``/``core-dump``/``watchdog``/``timeout``/``start-limit-hit``...,
    ``exited``/``killed``/``dumped``, the status or signal name) with the wall time; returns the record."""
    env = os.environ if environ is None else environ
    record: dict[str, Any] = {k.lower(): env.get(k) for k in EXIT_ENV}
    record["wall_ns"] = time.time_ns()
    record["invocation_id"] = env.get("INVOCATION_ID")
    path = exit_record_path(deploy_name, env)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(path)
    return record


def read_exit_record(deploy_name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The previous run's end as :func:`write_exit_record` left it (keys service_result, exit_code,
    exit_status, wall_ns, invocation_id), or None when there is none (first start since boot: the
    runtime directory is on tmpfs) or it cannot be read."""
    try:
        data = json.loads(exit_record_path(deploy_name, environ).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

"""Child processes of a HIL run: the guard (`vertebra guard run`) and the service (`vertebra run`) of
one deploy config, started as the robot's units would start them, watched, signalled and always
cleaned up (processes, the guard heartbeat's shared memory, sockets, the policy server a killed
service leaves behind).

Each child runs in a session of its own: the operator's Ctrl-C reaches the harness only, which then
stops the service (its controlled stop) before the guard, in that order. Output goes to
``<name>.log`` files in the run's folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertebra.runtime.errors import VertebraError

# A Unix socket path is limited to 108 bytes (sun_path); the status stream's is a little longer.
MAX_SOCKET_PATH = 100


class ProcessError(VertebraError):
    """A child process did not start, or died when it should be running."""


def vertebra_command() -> list[str]:
    """How to run the `vertebra` CLI: next to this interpreter, else on $PATH, else `python -m`."""
    exe = Path(sys.executable).with_name("vertebra")
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    found = shutil.which("vertebra")
    if found:
        return [found]
    return [sys.executable, "-m", "vertebra.runtime.cli"]


def wait_for(pred: Callable[[], Any], timeout_s: float, what: str, stop: threading.Event | None = None,
             period_s: float = 0.02) -> Any:
    """Poll `pred` until it returns something truthy (returned); TimeoutError naming `what`. A set
    `stop` raises HilStopped at once."""
    from vertebra.tools.hil.context import HilStopped

    end = time.monotonic() + timeout_s
    while True:
        if stop is not None and stop.is_set():
            raise HilStopped("stopped by the operator")
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(period_s)


def socket_dir(workdir: Path, stem: str) -> tuple[Path, bool]:
    """A folder for the control socket ``<stem>.sock`` (and its status stream's ``<stem>.pub.sock``):
    the run's folder when the path is short enough, else a short temporary one (True: made here,
    remove it afterwards)."""
    folder = Path(workdir).resolve()
    if len(str(folder / f"{stem}.pub.sock")) <= MAX_SOCKET_PATH:
        return folder, False
    import tempfile

    return Path(tempfile.mkdtemp(prefix="vhil-", dir="/tmp")), True


class Child:
    """One child process (its own session), its log file and how it ended."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def children(self) -> list[tuple[int, int]]:
        """The child's own children now, as (pid, start time): what may outlive it."""
        return [(p, start_time(p)) for p in children_of(self.pid)]

    def stop(self, timeout_s: float) -> int | None:
        """SIGINT (a unit's stop), then SIGKILL after `timeout_s`; the exit code. Its children that
        outlive it (the policy server) are killed too."""
        kids = self.children()
        self.signal(signal.SIGINT)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        kill_exact(kids)
        self.close_log()
        return self.proc.returncode

    def close_log(self) -> None:
        if not self._log.closed:
            self._log.close()


class ServiceStack:
    """The guard and the service of one deploy config, as child processes.

    `deploy_path`: the deploy YAML (its guard heartbeat and control socket unique to this run).
    `heartbeat`: the guard heartbeat's name (unlinked at close). `log_dir`: logs, the event log
    (``events.jsonl``) and the service's run record ($VERTEBRA_LOG_DIR)."""

    def __init__(self, deploy_path: Path, heartbeat: str, socket_path: Path, log_dir: Path,
                 say: Callable[[str], None] = lambda _m: None, stop: threading.Event | None = None):
        self.deploy_path, self.heartbeat, self.socket_path = Path(deploy_path), heartbeat, Path(socket_path)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.log_dir / "events.jsonl"
        self.say, self.stop_event = say, stop
        self.env = dict(os.environ, VERTEBRA_LOG_DIR=str(self.log_dir), OMP_NUM_THREADS="1")
        self.env.pop("NOTIFY_SOCKET", None)  # the harness's own systemd, if any, is not the children's
        self.cli = vertebra_command()
        self.guard: Child | None = None
        self.service: Child | None = None
        self.dead: list[Child] = []  # services that were killed or stopped
        self._orphans: list[tuple[int, int]] = []  # what a killed service left running: (pid, start time)

    # -- starting -----------------------------------------------------------------------------
    def start_guard(self, timeout_s: float = 30.0) -> float:
        """Start `vertebra guard run` and wait until it watches; seconds it took."""
        from vertebra.safety.guard import guard_state

        t0 = time.monotonic()
        self.guard = Child("guard", [*self.cli, "guard", "run", "--config", str(self.deploy_path), "--quiet"],
                           self.log_dir, self.env)

        def watching() -> bool:
            if not self.guard.alive():
                raise ProcessError(f"vertebra guard exited with code {self.guard.proc.returncode}: "
                                   f"{self.guard.log_tail()}")
            return (guard_state(self.heartbeat) or {}).get("state") == "watching"

        wait_for(watching, timeout_s, "the guard watching", self.stop_event, 0.05)
        return time.monotonic() - t0

    def start_service(self, timeout_s: float = 90.0) -> float:
        """Start `vertebra run` and wait until its control API answers with the service running; seconds."""
        t0 = time.monotonic()
        self.service = Child("service", [*self.cli, "run", "--config", str(self.deploy_path), "--event-log",
                                         str(self.events_path)], self.log_dir, self.env)
        probe = self.client("hil-probe", timeout_s=1.0)
        try:
            def running() -> bool:
                from vertebra.runtime.service.client import ServiceUnreachable

                if not self.service.alive():
                    raise ProcessError(f"vertebra run exited with code {self.service.proc.returncode}: "
                                       f"{self.service.log_tail()}")
                if not self.socket_path.exists():
                    return False
                try:
                    return probe.request("status").get("service") == "running"
                except ServiceUnreachable:
                    return False

            wait_for(running, timeout_s, "the service's control API", self.stop_event, 0.1)
        finally:
            probe.close()
        return time.monotonic() - t0

    def client(self, name: str, timeout_s: float = 5.0) -> Any:
        from vertebra.runtime.service.client import ControlClient

        return ControlClient(f"ipc://{self.socket_path}", name, timeout_s=timeout_s)

    # -- the service's processes --------------------------------------------------------------
    def check_service(self) -> None:
        if self.service is None or not self.service.alive():
            code = None if self.service is None else self.service.proc.returncode
            tail = "" if self.service is None else self.service.log_tail()
            raise ProcessError(f"the service is not running (exit code {code}){': ' + tail if tail else ''}")

    def policy_server_pid(self) -> int | None:
        """The running service's policy server (`vertebra serve`): its child in the process tree."""
        if self.service is None:
            return None
        kids = children_of(self.service.pid)
        serve = [p for p in kids if "serve" in cmdline(p)]
        return serve[0] if serve else None

    def kill_service(self) -> int:
        """SIGKILL the service process itself, not its children (the policy server is orphaned, as
        it would be on the robot until systemd stops the unit's cgroup: :meth:`reap_killed`); its pid."""
        self.check_service()
        s = self.service
        self._orphans += s.children()
        os.kill(s.pid, signal.SIGKILL)
        s.proc.wait(10)
        s.close_log()
        self.dead.append(s)
        self.service = None
        return s.pid

    def reap_killed(self) -> None:
        """What a killed service left running (its policy server): killed, its files removed."""
        kill_exact(self._orphans)
        self._orphans = []
        for s in self.dead:
            _remove_policy_dirs(s.pid)

    def ack_guard(self, timeout_s: float = 10.0) -> bool:
        """`vertebra guard ack` (the operator's acknowledgement); True once the guard released."""
        args = [*self.cli, "guard", "ack", "--config", str(self.deploy_path), "--timeout", f"{timeout_s:g}"]
        p = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout_s + 30)
        return p.returncode == 0

    # -- stopping -----------------------------------------------------------------------------
    def stop_service(self, timeout_s: float = 30.0) -> int | None:
        """The service's controlled stop (SIGINT), then its group killed; its exit code."""
        if self.service is None:
            return None
        s, self.service = self.service, None
        code = s.stop(timeout_s)
        self.dead.append(s)
        return code

    def close(self) -> None:
        """Everything stopped and removed, whatever state it is in (idempotent)."""
        try:
            self.stop_service()
        finally:
            self.reap_killed()
            if self.guard is not None:
                g, self.guard = self.guard, None
                g.stop(10.0)
            try:
                from vertebra import _rt

                _rt.Heartbeat.unlink(self.heartbeat)
            except Exception:  # noqa: BLE001 - nothing to unlink
                pass
            from vertebra.runtime.service.server import pub_path

            for p in (self.socket_path, pub_path(self.socket_path)):
                try:
                    p.unlink()
                except OSError:
                    pass


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return sorted(set(out))


def start_time(pid: int) -> int:
    """The start time of `pid` (clock ticks since boot; -1 when it is gone): with the pid, a process's
    identity (a pid is reused, the pair is not)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return -1


def kill_exact(procs: list[tuple[int, int]]) -> None:
    """SIGKILL each (pid, start time) that still is that very process."""
    for pid, start in procs:
        if start >= 0 and start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_state(pid: int) -> str:
    """The one-letter state of `pid` (R, S, T stopped, Z, ...); "" when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def _remove_policy_dirs(service_pid: int) -> None:
    """What a killed service leaves in the runtime directory: its policy server's private endpoint
    folder (run-<pid>-*) and its shared-memory channel's (shm-<pid>-*)."""
    try:
        from vertebra.policies.endpoint import runtime_dir

        for pattern in (f"run-{service_pid}-*", f"shm-{service_pid}-*"):
            for d in runtime_dir().glob(pattern):
                if d.is_dir() and not d.is_symlink():
                    shutil.rmtree(d, ignore_errors=True)
    except Exception:  # noqa: BLE001 - best effort
        pass

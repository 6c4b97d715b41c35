"""sd_notify without libsystemd: tell systemd that the service is ready, alive, or stopping.

The protocol (man sd_notify(3)): the service manager passes ``$NOTIFY_SOCKET``, the address of an
``AF_UNIX`` ``SOCK_DGRAM`` socket, either a file system path (``/run/systemd/notify``) or, when it
starts with ``@``, a name in the abstract namespace (the ``@`` stands for a leading NUL byte). A
notification is one datagram of newline-separated ``KEY=VALUE`` assignments: ``READY=1``,
``STATUS=<one line>``, ``STOPPING=1``, ``WATCHDOG=1``, ``WATCHDOG=trigger``,
``EXTEND_TIMEOUT_USEC=<µs>``, ``MAINPID=<pid>``. The manager learns the sender's PID from the
kernel's ``SCM_CREDENTIALS`` (it sets ``SO_PASSCRED`` on its socket), so with ``NotifyAccess=main``
(systemd.service(5)) only the main process's datagrams count -- threads of that process are fine,
child processes are ignored (and logged).

The watchdog (man sd_watchdog_enabled(3)): with ``WatchdogSec=`` set, the manager passes
``$WATCHDOG_USEC`` (the interval) and ``$WATCHDOG_PID`` (the PID it is meant for); a process whose PID
is not ``$WATCHDOG_PID`` must not consider the watchdog enabled (an inherited environment). The
service sends ``WATCHDOG=1`` at about half the interval; a missed interval gets the service killed
(``WatchdogSignal=``, SIGABRT by default) and, with ``Restart=on-failure``, restarted.

Three classes:

- :class:`Notifier` reads the environment once, at construction; a malformed or unreachable
  ``$NOTIFY_SOCKET`` is a :class:`NotifyError` then, with what was found and what is valid (a service
  that cannot tell systemd it is ready would only be killed at ``TimeoutStartSec=``, with no word on
  why). After construction nothing it sends raises: a failed send (the manager's queue full past the
  send timeout, the manager re-executing) is counted (``errors``, ``last_error``) and returns False.
  Without ``$NOTIFY_SOCKET`` (not run by systemd) it is disabled: every send is a no-op returning False.
- :class:`WatchdogPinger`: a daemon thread that sends ``WATCHDOG=1`` every half interval, but only
  while ``healthy()`` says the service makes progress, so that a stuck loop lets the watchdog fire.
- :class:`NotifyListener`: a fake ``$NOTIFY_SOCKET`` for tests (the pattern of python-systemd's own
  tests: bind a datagram socket, point ``NOTIFY_SOCKET`` at it, read what arrives), with the sender's
  PID of each datagram as systemd would see it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from vertebra.runtime.errors import VertebraError

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"

# The manager reads one datagram into a buffer of this size (systemd: NOTIFY_BUFFER_MAX = PIPE_BUF);
# longer messages are truncated there, so STATUS text is capped well below it.
MAX_MESSAGE_BYTES = 4096
MAX_STATUS_CHARS = 1024
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes on Linux, NUL included (man unix(7))
DEFAULT_SEND_TIMEOUT_S = 0.1

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class NotifyError(VertebraError):
    """``$NOTIFY_SOCKET`` or ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` cannot be used (raised at construction)."""

    def __init__(self, variable: str, found: str, valid: str):
        self.variable = variable
        self.found = found
        self.valid = valid
        super().__init__(f"${variable}: found {found}; valid: {valid}")


def sanitize_status(text: str, max_chars: int = MAX_STATUS_CHARS) -> str:
    """One line of at most `max_chars` characters: control characters (newlines among them: a newline
    would start another assignment) become one space each run, the ends are stripped, and a longer
    text is cut with an ellipsis."""
    line = _CONTROL.sub(" ", str(text)).strip()
    if len(line) > max_chars:
        line = line[: max_chars - 1].rstrip() + "…"
    return line


def parse_notify_address(value: str) -> str | bytes:
    """The socket address of a ``$NOTIFY_SOCKET`` value: a path (str) or an abstract name (bytes,
    starting with NUL). Raises :class:`NotifyError` for anything else."""
    if value.startswith("@"):
        if len(value) < 2:
            raise NotifyError(ENV_SOCKET, repr(value), "an abstract socket name after '@'")
        name = b"\0" + value[1:].encode()
        if len(name) > SUN_PATH_MAX + 1:
            raise NotifyError(ENV_SOCKET, repr(value), f"an abstract name of at most {SUN_PATH_MAX} bytes")
        return name
    if value.startswith("/"):
        if len(os.fsencode(value)) > SUN_PATH_MAX:
            raise NotifyError(ENV_SOCKET, repr(value), f"a socket path of at most {SUN_PATH_MAX} bytes")
        return value
    if value.startswith("vsock:"):
        raise NotifyError(ENV_SOCKET, repr(value), "an absolute path or an '@' abstract name (AF_VSOCK "
                          "notification sockets, used by VM managers, are not supported)")
    raise NotifyError(ENV_SOCKET, repr(value), "an absolute socket path (/run/systemd/notify) or an '@' abstract name")


def _format_value(key: str, value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    text = str(value)
    if key == "STATUS":
        return sanitize_status(text)
    if "\n" in text:
        raise ValueError(f"notification field {key}: found a newline in {text!r}; valid: one line "
                         "(a newline starts another assignment)")
    return text


class Notifier:
    """The service's side of sd_notify.

    ``Notifier()`` reads ``os.environ``; `environ` replaces it (tests). `send_timeout_s` bounds how long
    one send may block when the manager's receive queue is full (the datagram is then dropped and
    counted). `unset_environment`: remove the three variables from ``os.environ`` after reading them
    (sd_notify's ``unset_environment``), so child processes (``vertebra serve``) do not inherit them;
    only when `environ` is None.

    Raises :class:`NotifyError` when ``$NOTIFY_SOCKET`` is set but malformed or nothing listens there,
    or ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` are not positive integers. Thread-safe.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
                 unset_environment: bool = False):
        env: Mapping[str, str] = os.environ if environ is None else environ
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self.watchdog_disabled_reason: str | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        raw = env.get(ENV_SOCKET, "")
        self.socket_value: str | None = raw or None
        self._address: str | bytes | None = None
        self.watchdog_interval_s: float | None = self._read_watchdog(env)
        if raw:
            self._address = parse_notify_address(raw)
            self._probe(raw)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec by default (PEP 446)
            sock.settimeout(send_timeout_s)
            self._sock = sock
        if environ is None and unset_environment:
            target: MutableMapping[str, str] = os.environ
            for name in (ENV_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID):
                target.pop(name, None)

    def _read_watchdog(self, env: Mapping[str, str]) -> float | None:
        usec_text = env.get(ENV_WATCHDOG_USEC, "")
        if not usec_text:
            return None
        try:
            usec = int(usec_text)
        except ValueError:
            usec = 0
        if usec <= 0:
            raise NotifyError(ENV_WATCHDOG_USEC, repr(usec_text), "a positive integer (the watchdog interval in µs)")
        pid_text = env.get(ENV_WATCHDOG_PID, "")
        if pid_text:
            try:
                pid = int(pid_text)
            except ValueError:
                pid = 0
            if pid <= 0:
                raise NotifyError(ENV_WATCHDOG_PID, repr(pid_text), "a positive integer (the PID the watchdog is for)")
            if pid != os.getpid():
                # As sd_watchdog_enabled(3): the watchdog is meant for another process (an inherited environment).
                self.watchdog_disabled_reason = f"WATCHDOG_PID={pid} is not this process ({os.getpid()})"
                return None
        return usec / 1e6

    def _probe(self, raw: str) -> None:
        assert self._address is not None
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(self._address)
        except OSError as e:
            raise NotifyError(ENV_SOCKET, f"{raw!r}, where nothing receives ({e.strerror or e})",
                              "the socket of a running service manager (systemd sets it for Type=notify services); "
                              "unset NOTIFY_SOCKET to run outside systemd") from None
        finally:
            probe.close()

    # -- state ------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """True when ``$NOTIFY_SOCKET`` was set (run by a service manager that listens)."""
        return self._sock is not None

    def stats(self) -> dict[str, Any]:
        """Counters for ``vertebra status``: enabled, watchdog interval, sent, errors, last error."""
        with self._lock:
            return {"enabled": self.enabled, "socket": self.socket_value,
                    "watchdog_interval_s": self.watchdog_interval_s,
                    "watchdog_disabled_reason": self.watchdog_disabled_reason, "sent": self.sent,
                    "errors": self.errors, "last_error": self.last_error}

    # -- sending ----------------------------------------------------------------------------------
    def send(self, **fields: Any) -> bool:
        """One datagram of ``KEY=VALUE`` lines, in argument order: ``send(READY=1, STATUS="HOLD")``.
        True is sent as 1; STATUS is sanitized to one line. Keys must be upper case (ValueError: a
        programming error). Returns True when the datagram went out."""
        lines = []
        for key, value in fields.items():
            if not _KEY.fullmatch(key):
                raise ValueError(f"notification field: found {key!r}; valid: an upper-case name like READY, STATUS")
            lines.append(f"{key}={_format_value(key, value)}")
        return self.send_text("\n".join(lines))

    def send_text(self, text: str) -> bool:
        """Send `text` as it is (``"READY=1\\nSTATUS=..."``), one datagram. Returns True when it went out;
        False when disabled or when the send failed (counted in ``errors``)."""
        sock = self._sock
        if sock is None or not text:
            return False
        data = text.encode("utf-8", "replace")
        with self._lock:
            if len(data) > MAX_MESSAGE_BYTES:
                self.errors += 1
                self.last_error = f"message of {len(data)} bytes; valid: at most {MAX_MESSAGE_BYTES}"
                return False
            try:
                sock.sendto(data, self._address)  # type: ignore[arg-type]
            except OSError as e:  # socket.timeout is an OSError
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                return False
            self.sent += 1
            return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (startup finished: systemd starts units ordered after this one), with STATUS."""
        return self.send(READY=1, STATUS=status) if status is not None else self.send(READY=1)

    def status(self, text: str) -> bool:
        """``STATUS=<text>`` (shown by ``systemctl status``), sanitized to one line."""
        return self.send(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1`` (the service is shutting down), with STATUS."""
        return self.send(STOPPING=1, STATUS=status) if status is not None else self.send(STOPPING=1)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive. Send it only when it is (see :class:`WatchdogPinger`)."""
        return self.send(WATCHDOG=1)

    def watchdog_trigger(self, status: str | None = None) -> bool:
        """``WATCHDOG=trigger``: the service knows it is stuck; the manager acts as on a missed ping, now."""
        return self.send(WATCHDOG="trigger", STATUS=status) if status is not None else self.send(WATCHDOG="trigger")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: the current start-up or stop may take `seconds` longer from now (a long
        policy load, the recorder's close); send again before it runs out."""
        return self.send(EXTEND_TIMEOUT_USEC=max(1, int(seconds * 1e6)))

    def mainpid(self, pid: int) -> bool:
        """``MAINPID=<pid>``: another process is now the service's main process."""
        return self.send(MAINPID=int(pid))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WatchdogPinger:
    """A daemon thread feeding the systemd watchdog only while the service is healthy.

    Every `period_s` (default: half of ``notifier.watchdog_interval_s``, as sd_watchdog_enabled(3)
    advises) it calls ``healthy()``; when True it sends ``WATCHDOG=1``, else it sends nothing and
    counts the round as skipped, so the watchdog fires once the interval passes without a ping.
    ``healthy()`` must report progress since its previous call (the loop's tick count advanced and its
    state is fresh), not merely that a thread exists; one that raises counts as unhealthy. A
    ``healthy()`` that blocks (a lock the stuck loop holds) stops the pings too, which is the point.

    `status_text()` (optional) is called every round; a text that changed since the last one sent goes
    out as ``STATUS=`` -- with the ping when healthy, alone when not (so ``systemctl status`` shows why
    the pings stopped).

    Without a watchdog (``watchdog_interval_s`` None) and no `period_s`, the pinger is inert:
    ``start()`` returns False and no thread runs. The first round runs at ``start()``.
    """

    def __init__(self, notifier: Notifier, healthy: Callable[[], bool],
                 status_text: Callable[[], str] | None = None, *, period_s: float | None = None):
        if period_s is None and notifier.watchdog_interval_s is not None:
            period_s = notifier.watchdog_interval_s / 2.0
        if period_s is not None and not period_s > 0:
            raise ValueError(f"WatchdogPinger period_s: found {period_s}; valid: > 0 seconds")
        self.notifier = notifier
        self.period_s = period_s
        self._healthy = healthy
        self._status_text = status_text
        self.pings = 0
        self.skipped = 0
        self.send_failures = 0
        self.health_errors = 0
        self.last_health_error: str | None = None
        self._last_status: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round_lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True when there is a watchdog to feed (or a period was given) and the notifier is enabled."""
        return self.period_s is not None and self.notifier.enabled

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; False (nothing started) when inactive or already running."""
        if not self.active or self.running:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vertebra-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop pinging and join the thread (at most `timeout_s`)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout_s)
        self._thread = None

    def check_once(self) -> bool:
        """One round (the thread calls it; tests may too): True when ``WATCHDOG=1`` went out."""
        with self._round_lock:
            status = self._read_status()
            changed = status is not None and status != self._last_status
            try:
                ok = bool(self._healthy())
            except Exception as e:  # noqa: BLE001 -- any failure of the check is "not healthy"
                ok = False
                self.health_errors += 1
                self.last_health_error = f"{type(e).__name__}: {e}"
            if not ok:
                self.skipped += 1
                if changed and self.notifier.status(status or ""):
                    self._last_status = status
                return False
            sent = (self.notifier.send(WATCHDOG=1, STATUS=status) if changed else self.notifier.watchdog())
            if not sent:
                self.send_failures += 1
                return False
            if changed:
                self._last_status = status
            self.pings += 1
            return True

    def stats(self) -> dict[str, Any]:
        return {"period_s": self.period_s, "running": self.running, "pings": self.pings, "skipped": self.skipped,
                "send_failures": self.send_failures, "health_errors": self.health_errors,
                "last_health_error": self.last_health_error}

    def _read_status(self) -> str | None:
        if self._status_text is None:
            return None
        try:
            return sanitize_status(self._status_text())
        except Exception as e:  # noqa: BLE001
            self.last_health_error = f"status_text: {type(e).__name__}: {e}"
            return None

    def _run(self) -> None:
        assert self.period_s is not None
        while True:
            self.check_once()
            if self._stop.wait(self.period_s):
                return

    def __enter__(self) -> WatchdogPinger:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NotifyMessage(dict[str, str]):
    """One datagram received by :class:`NotifyListener`: its ``KEY=VALUE`` fields as a dict, plus
    ``received_s`` (``time.monotonic()`` at receipt), ``pid`` (the sender's PID from SCM_CREDENTIALS, as
    systemd sees it; None where the kernel gave none) and ``raw`` (the text)."""

    received_s: float
    pid: int | None
    raw: str

    @classmethod
    def parse(cls, raw: str, received_s: float, pid: int | None) -> NotifyMessage:
        m = cls()
        for line in raw.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                m[k] = v
        m.received_s = received_s
        m.pid = pid
        m.raw = raw
        return m


_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid (man unix(7))


class NotifyListener:
    """A fake ``$NOTIFY_SOCKET``: a datagram socket in a fresh temporary directory (or, with
    `abstract`, a unique name in the abstract namespace) and a thread collecting what arrives.

        with NotifyListener() as nl:
            child = subprocess.Popen(cmd, env={**os.environ, **nl.env(watchdog_usec=1_000_000)})
            nl.wait_for("READY", "1", timeout_s=10)

    ``env()`` gives ``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``/``WATCHDOG_PID`` when asked); leave
    `watchdog_pid` out for a child whose PID is not known yet (the watchdog is then enabled in any
    process that reads the environment). Usable by anyone testing their own units.
    """

    def __init__(self, *, abstract: bool = False, directory: str | os.PathLike[str] | None = None):
        self._tmpdir: str | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"vertebra-notify-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            self._sock.bind(b"\0" + name.encode())
            self.socket_value = "@" + name
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="vnotify-", dir=directory)
            path = os.path.join(self._tmpdir, "notify.sock")
            self._sock.bind(path)
            self.socket_value = path
        if hasattr(socket, "SO_PASSCRED"):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.settimeout(0.05)
        self._messages: list[NotifyMessage] = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-listener", daemon=True)
        self._thread.start()

    def env(self, watchdog_usec: int | None = None, watchdog_pid: int | None = None) -> dict[str, str]:
        """The variables a child needs: NOTIFY_SOCKET, and WATCHDOG_USEC / WATCHDOG_PID when given."""
        out = {ENV_SOCKET: self.socket_value}
        if watchdog_usec is not None:
            out[ENV_WATCHDOG_USEC] = str(int(watchdog_usec))
        if watchdog_pid is not None:
            out[ENV_WATCHDOG_PID] = str(int(watchdog_pid))
        return out

    def messages(self) -> list[NotifyMessage]:
        """Everything received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def count(self, key: str, value: str | None = None) -> int:
        """How many messages so far have `key` (equal to `value` when given)."""
        return sum(1 for m in self.messages() if _matches(m, key, value))

    def wait_for(self, key: str, value: str | None = None, timeout_s: float = 5.0, *, start: int = 0) -> NotifyMessage:
        """The first message at index >= `start` with `key` (= `value` when given), waiting up to
        `timeout_s` for it. Raises TimeoutError listing what did arrive."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for m in self._messages[start:]:
                    if _matches(m, key, value):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m.raw for m in self._messages[start:]][-10:]
                    want = f"{key}={value}" if value is not None else key
                    raise TimeoutError(f"no notification with {want} within {timeout_s:g} s; received: {seen}")
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2.0)
        self._sock.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> None:
        cmsg_space = socket.CMSG_SPACE(_UCRED.size)
        while not self._closed.is_set():
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(65536, cmsg_space)
            except TimeoutError:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in ancdata:
                if (level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1)
                        and len(payload) >= _UCRED.size):
                    pid = _UCRED.unpack(payload[: _UCRED.size])[0]
            msg = NotifyMessage.parse(data.decode("utf-8", "replace"), time.monotonic(), pid)
            with self._cond:
                self._messages.append(msg)
                self._cond.notify_all()


def _matches(m: NotifyMessage, key: str, value: str | None) -> bool:
    return key in m and (value is None or m[key] == value)

"""Where a policy server listens, and who owns the endpoint.

The default endpoint is in a per-user runtime directory, ``$XDG_RUNTIME_DIR/vertebra/`` (else
``/tmp/vertebra-<uid>/``), mode 0700: no other user can reach an ``ipc://`` socket there, and no
other user can have put one there first. A directory that exists with another owner or with
group/other access is refused, never used.

One server per ``ipc://`` endpoint: the server holds an exclusive lock on ``<socket>.lock`` for
its lifetime (the kernel drops it when the process dies, so a crashed server never blocks the
next one). A second server on the same endpoint is refused with the first one's pid, instead of
silently taking the socket over while the first keeps running unreachable.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from vertebra.runtime.errors import VertebraError


class EndpointError(VertebraError):
    """An endpoint that cannot be used: in use by another server, or in an unsafe directory."""


def runtime_dir() -> Path:
    """The per-user directory for sockets and shared-memory channels, created 0700 if missing."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    d = Path(base) / "vertebra" if base and os.path.isdir(base) else Path("/tmp") / f"vertebra-{os.getuid()}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise EndpointError(f"cannot create the runtime directory {d}: {e.strerror}") from None
    check_private_dir(d)
    return d


def check_private_dir(d: Path) -> None:
    """Refuse a directory that is not ours alone (owner this user, no group/other access)."""
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode):
        raise EndpointError(f"{d} is not a directory")
    if st.st_uid != os.getuid():
        raise EndpointError(f"{d} belongs to uid {st.st_uid}, not this user ({os.getuid()}): refusing to use it")
    if st.st_mode & 0o077:
        raise EndpointError(f"{d} has mode {stat.S_IMODE(st.st_mode):o}; it must be 0700 (only this user)")


def default_endpoint() -> str:
    return f"ipc://{runtime_dir() / 'policy.sock'}"


def ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


class EndpointLock:
    """The exclusive claim of one server on an ipc:// endpoint (nothing for tcp://: the kernel
    refuses a second bind there)."""

    def __init__(self, endpoint: str):
        self.fd: int | None = None
        path = ipc_path(endpoint)
        if path is None:
            return
        if not path.parent.is_dir():
            raise EndpointError(f"bind {endpoint}: the folder {path.parent} does not exist")
        # One lock per socket, however the path is spelled (a linked folder, "..").
        lock = Path(os.path.realpath(path.parent)) / (path.name + ".lock")
        try:
            # Never through a link (another user could point it at one of our files, which we would
            # then truncate), and only our own regular file.
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY, 0o600)
        except OSError as e:
            raise EndpointError(f"bind {endpoint}: cannot open the lock file {lock}: {e.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            os.close(fd)
            raise EndpointError(f"bind {endpoint}: the lock file {lock} is not a regular file of this user; "
                                "remove it or bind another endpoint")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EndpointError(f"bind {endpoint}: another policy server (pid {holder}) is serving it; stop it or "
                                "bind another endpoint") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

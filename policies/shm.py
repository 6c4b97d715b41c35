"""Same-host fast path of the policy protocol: frames and image data through shared memory.

A client on the same machine as the server (an ``ipc://`` endpoint) can ask for a channel with a
``shm_open`` request over ZMQ. After that, its ``infer`` requests and their replies travel through a
shared-memory segment that the client created. Two FIFOs carry the notifications. The messages are
the same protocol frames, checked the same way.

The channel is a private directory (mode 0700, in the per-user runtime directory of
vertebra.policies.endpoint) named ``shm-<client pid>-<random>``, holding ``segment`` (a link to
the client's memfd), ``req`` and ``rep`` (the FIFOs). The segment is a sealed memfd: the client
seals it against shrinking and growing before it offers it, and the server refuses an unsealed
one. So no client can truncate the memory under the server (which would kill the server with
SIGBUS on its next read), and nothing is left in /dev/shm when a client dies: the memory goes
with its last user. A server removes the directories of clients that are no longer running.

Large arrays (``ARENA_MIN_BYTES`` and up, such as camera images) are not copied into the msgpack
frame. The client writes them once into the segment's arena and sends a reference (ndarray
extension type 2). The server builds read-only views on them, without a copy. The views are valid
until the reply is written. One request is outstanding at a time: the client does not write the
next one until the reply has arrived.

Segment layout (little-endian)::

    0    8 bytes  magic b"VRTBSHM1"
    8    u64      request capacity  R
    16   u64      reply capacity    P
    24   u64      arena capacity    A
    32   u64      request length
    40   u64      reply length
    48   u64      request sequence  (the client's; written after the request)
    56   u64      reply sequence    (the request it answers; written after the reply)
    64   u64      server sleeping   (1 while the server blocks on its FIFO)
    72   u64      client sleeping
    80   u64      closed by server  (1: the server closed the channel; the client opens a new one)
    128  R bytes  request frame
    ..   P bytes  reply frame
    ..   A bytes  arena

Waiting: a reader polls the peer's sequence number in the segment, without system calls, for a
short busy period. Then it sets its "sleeping" word, checks once more, and blocks on its FIFO. A
writer that sees the peer sleeping writes one byte to the peer's FIFO. The block is bounded
(``SLEEP_SLICE_S``), so a wake-up lost to the store/load race between the flag and the sequence
costs at most one slice.

Ordering: x86-64 keeps stores in order (TSO), so a reader that sees the new sequence number also
sees the frame written before it. Elsewhere (ARM) the writer always signals the FIFO after the
sequence number, and the reader reads that byte before it reads the frame: the pipe's write/read
pair orders the memory accesses there.

ndarray extension type 2 (in-arena array, vertebra.policies.protocol.EXT_SHM_NDARRAY) payload::

    u8 dtype_len | dtype (ASCII) | u8 ndim | ndim x u64 shape | u64 offset | u64 nbytes
"""

from __future__ import annotations

import fcntl
import mmap
import os
import platform
import re
import secrets
import select
import shutil
import stat
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"VRTBSHM1"
HEADER = 128
_ALIGN = 64
SLEEP_SLICE_S = 0.001
ORDERED_STORES = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_REQ_LEN, _REP_LEN, _REQ_SEQ, _REP_SEQ, _SRV_SLEEP, _CLI_SLEEP, _CLOSED = 32, 40, 48, 56, 64, 72, 80


_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_CHANNEL_PREFIX = "shm-"


_CHANNEL_NAME = re.compile(r"shm-(\d{1,10})-[0-9a-f]{12}")
_MEMFD_LINK = re.compile(r"/proc/(\d{1,10})/fd/\d{1,10}")


def _channel_pid(d: Path) -> int | None:
    m = _CHANNEL_NAME.fullmatch(d.name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a pid that cannot exist counts as running: never
    clean up on a guess)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_dead_channels(root: Path) -> int:
    """Remove the channel directories of clients that are no longer running, and what older
    versions left in /dev/shm (``vertebra-policy-<pid>-<token>`` and its FIFOs) for dead pids of
    this user; how many."""
    n = 0
    for d in root.glob(_CHANNEL_PREFIX + "*"):
        pid = _channel_pid(d)
        if pid is not None and pid != os.getpid() and not pid_alive(pid) and d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    legacy = Path("/dev/shm")
    if legacy.is_dir():
        for f in legacy.glob("vertebra-policy-*"):
            m = re.fullmatch(r"vertebra-policy-(\d{1,10})-[0-9a-f]{12}(\.req|\.rep)?", f.name)
            try:
                if not m or f.lstat().st_uid != os.getuid() or pid_alive(int(m.group(1))):  # owner first
                    continue
                f.unlink()
                n += 1
            except OSError:
                pass
    return n


class Segment:
    """The mapped segment and its two FIFOs (``<path>.req``: to the server, ``<path>.rep``: back)."""

    def __init__(self, path: Path, mm: mmap.mmap, req_cap: int, rep_cap: int, arena_cap: int, read_fd: int,
                 write_fd: int, owner: bool):
        self.path = path
        self.mm = mm
        self.view = memoryview(mm)
        self.req_cap, self.rep_cap, self.arena_cap = req_cap, rep_cap, arena_cap
        self.req_off = HEADER
        self.rep_off = HEADER + req_cap
        self.arena_off = HEADER + req_cap + rep_cap
        self.read_fd, self.write_fd = read_fd, write_fd
        self.owner = owner
        self.seq = 0  # client: the last request sent; server: the last request served
        # this side's and the peer's "sleeping" words
        self.my_sleep, self.peer_sleep = (_CLI_SLEEP, _SRV_SLEEP) if owner else (_SRV_SLEEP, _CLI_SLEEP)
        self.memfd: int | None = None  # the client's memfd (kept open while the channel lives)
        self.client_pid: int | None = None  # server side: the pid in the channel's name
        self.last_used = time.monotonic()
        self.closed = False

    # -- creation (client) and attachment (server) --------------------------------------------------
    @classmethod
    def create(cls, request_bytes: int = 1 << 20, reply_bytes: int = 1 << 20, arena_bytes: int = 16 << 20) -> Segment:
        """Client: a new channel in the per-user runtime directory (the only place a server attaches)."""
        from vertebra.policies.endpoint import runtime_dir

        if min(request_bytes, reply_bytes) < 4096 or arena_bytes < 0:
            raise ValueError("shared memory: request and reply areas need at least 4096 bytes, the arena >= 0")
        d = runtime_dir() / f"{_CHANNEL_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"  # _CHANNEL_NAME
        d.mkdir(mode=0o700)
        size = HEADER + request_bytes + reply_bytes + arena_bytes
        try:
            fd = os.memfd_create("vertebra-policy", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            mm = mmap.mmap(fd, size)
            # The server opens the memfd through this link (same user: /proc/<pid>/fd is readable).
            os.symlink(f"/proc/{os.getpid()}/fd/{fd}", d / "segment")
            mm[0:8] = MAGIC
            struct.pack_into("<3Q", mm, 8, request_bytes, reply_bytes, arena_bytes)
            for name in ("req", "rep"):
                os.mkfifo(d / name, 0o600)
            # O_RDWR on a FIFO never blocks on open and keeps it open from both ends.
            read_fd = os.open(d / "rep", os.O_RDWR | os.O_NONBLOCK)
            write_fd = os.open(d / "req", os.O_RDWR | os.O_NONBLOCK)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        seg = cls(d, mm, request_bytes, reply_bytes, arena_bytes, read_fd, write_fd, owner=True)
        seg.memfd = fd
        return seg

    @classmethod
    def attach(cls, path: str, max_bytes: int) -> Segment:
        """The server's side. Refuses anything but this user's private channel directory holding a
        sealed memfd (it cannot shrink under us) with a valid header, and two FIFOs."""
        from vertebra.policies.endpoint import EndpointError, check_private_dir, runtime_dir

        d = Path(path)
        try:
            if d.parent != runtime_dir() or _channel_pid(d) is None:
                raise ValueError(f"not a channel folder (shm-<pid>-<token>) in {runtime_dir()}")
            check_private_dir(d)
            link = os.readlink(d / "segment")
        except (OSError, ValueError, EndpointError) as e:
            raise ValueError(f"shared memory channel {path!r}: {e}") from None
        m = _MEMFD_LINK.fullmatch(link)
        if not m or int(m.group(1)) != _channel_pid(d):
            raise ValueError(f"shared memory channel {path!r}: the segment must link to its client's memfd "
                             f"(/proc/<pid>/fd/<n>), found {link[:80]!r}")
        try:
            # Never block or take a terminal on open, whatever the link points to (checked below).
            fd = os.open(d / "segment", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as e:
            raise ValueError(f"shared memory channel {path!r}: segment: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise ValueError(f"shared memory channel {path!r}: the segment is not a regular file of this user")
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            except OSError:
                seals = 0
            if seals & (fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL) != fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL:
                raise ValueError(f"shared memory channel {path!r}: the segment is not sealed against shrinking "
                                 "(a memfd with F_SEAL_SHRINK and F_SEAL_SEAL is required)")
            if st.st_size < HEADER or st.st_size > HEADER + 2 * max_bytes + (256 << 20):
                raise ValueError(f"shared memory channel {path!r}: size {st.st_size} is out of range")
            mm = mmap.mmap(fd, st.st_size)
        finally:
            os.close(fd)
        if mm[0:8] != MAGIC:
            mm.close()
            raise ValueError(f"shared memory channel {path!r}: bad magic")
        req, rep, arena = struct.unpack_from("<3Q", mm, 8)
        if HEADER + req + rep + arena != st.st_size:
            mm.close()
            raise ValueError(f"shared memory channel {path!r}: header sizes do not add up to the segment size")
        fds: list[int] = []
        try:
            for name in ("req", "rep"):
                fd = os.open(d / name, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
                fds.append(fd)
                if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                    raise ValueError(f"shared memory channel {path!r}: {name} is not a FIFO")
        except (OSError, ValueError) as e:
            for fd in fds:
                os.close(fd)
            mm.close()
            raise ValueError(str(e) if isinstance(e, ValueError) else
                             f"shared memory channel {path!r}: {e.filename}: {e.strerror}") from None
        read_fd, write_fd = fds
        seg = cls(d, mm, req, rep, arena, read_fd, write_fd, owner=False)
        seg.client_pid = _channel_pid(d)
        return seg

    # -- frames ---------------------------------------------------------------------------------------
    def _u64(self, at: int) -> int:
        return struct.unpack_from("<Q", self.mm, at)[0]

    def _write(self, off: int, cap: int, len_at: int, seq_at: int, seq: int, frame: bytes) -> None:
        n = len(frame)
        if n > cap:
            raise ValueError(f"shared memory: a frame of {n} bytes does not fit the {cap}-byte area")
        self.mm[off:off + n] = frame
        struct.pack_into("<Q", self.mm, len_at, n)
        struct.pack_into("<Q", self.mm, seq_at, seq)  # after the frame (x86: stores stay in order)
        if not ORDERED_STORES or self._u64(self.peer_sleep):
            os.write(self.write_fd, b"\x01")

    def write_request(self, frame: bytes) -> int:
        """Client: send a request frame; returns its sequence number."""
        self.seq += 1
        self._write(self.req_off, self.req_cap, _REQ_LEN, _REQ_SEQ, self.seq, frame)
        return self.seq

    def write_reply(self, frame: bytes) -> None:
        """Server: answer the request last taken by `new_request`."""
        self._write(self.rep_off, self.rep_cap, _REP_LEN, _REP_SEQ, self.seq, frame)

    def new_request(self) -> bool:
        """Server: a request not served yet is there (it becomes the one being served)."""
        s = self._u64(_REQ_SEQ)
        if s == self.seq:
            return False
        if not ORDERED_STORES and not self._take_blocking():
            return False
        self.seq = s
        return True

    def reply_ready(self) -> bool:
        """Client: the reply to the last request is there."""
        if self._u64(_REP_SEQ) != self.seq:
            return False
        return ORDERED_STORES or self._take_blocking()

    def _take_blocking(self) -> bool:
        # The FIFO byte follows the sequence number; wait for it briefly (not x86: see the header).
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            if self.take():
                return True
        return False

    def request_view(self) -> memoryview:
        n = self._u64(_REQ_LEN)
        if n > self.req_cap:
            raise ValueError(f"shared memory: request length {n} exceeds the area ({self.req_cap})")
        return self.view[self.req_off:self.req_off + n]

    def reply_bytes(self) -> bytes:
        n = self._u64(_REP_LEN)
        if n > self.rep_cap:
            raise ValueError(f"shared memory: reply length {n} exceeds the area ({self.rep_cap})")
        return bytes(self.view[self.rep_off:self.rep_off + n])  # a copy: the area is reused

    def mark_closed_by_server(self) -> None:
        """Server: tell the client this channel is gone (it opens a new one instead of timing out)."""
        if not self.closed:
            struct.pack_into("<Q", self.mm, _CLOSED, 1)
            if self._u64(self.peer_sleep):
                os.write(self.write_fd, b"\x01")

    def closed_by_server(self) -> bool:
        return not self.closed and self._u64(_CLOSED) == 1

    def arena(self) -> memoryview:
        return self.view[self.arena_off:self.arena_off + self.arena_cap]

    # -- waiting --------------------------------------------------------------------------------------
    def take(self) -> bool:
        """Consume FIFO notifications if any are there (never blocks)."""
        if self.closed:
            return False
        try:
            return bool(os.read(self.read_fd, 64))
        except BlockingIOError:
            return False

    def set_sleeping(self, on: bool) -> None:
        if self.closed:
            return
        struct.pack_into("<Q", self.mm, self.my_sleep, 1 if on else 0)

    def sleep(self, ready: Any, timeout_s: float) -> bool:
        """Block on the FIFO until ready() or the timeout, with the sleeping word set."""
        return sleep_until([self], ready, timeout_s,
                           lambda t: set(select.select([self.read_fd], [], [], t)[0]))

    def wait_reply(self, timeout_s: float, spin_s: float, stop: Any = None) -> bool:
        """Client: the reply to the last request within the timeout (polled for spin_s first);
        also returns True as soon as stop() does (the server closed the channel)."""
        def ready() -> bool:
            return self.reply_ready() or (stop is not None and stop())

        spin_end = time.perf_counter() + min(spin_s, timeout_s)
        while time.perf_counter() < spin_end:  # the busy period only looks for the reply
            if self.reply_ready():
                return True
        return self.sleep(ready, max(0.0, timeout_s - spin_s))

    def close(self) -> None:
        self.closed = True
        self.view.release()
        try:
            self.mm.close()
        except BufferError:  # an array view still points into it: leave the mapping to the GC
            pass
        for fd in (self.read_fd, self.write_fd, self.memfd):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self.memfd = None
        if self.owner:
            shutil.rmtree(self.path, ignore_errors=True)


def sleep_until(segments: list[Segment], ready: Any, timeout_s: float, wait: Any) -> bool:
    """Block until ready() or the timeout, with each segment's sleeping word set (so a writer
    signals its FIFO). wait(slice_s) blocks at most slice_s and returns the file descriptors that
    became readable, or None to stop waiting early (the result is then ready()). Notifications on
    the segments' FIFOs are consumed."""
    end = time.perf_counter() + timeout_s
    for seg in segments:
        seg.set_sleeping(True)
    try:
        while True:
            if ready():
                return True
            left = end - time.perf_counter()
            if left <= 0:
                return False
            fds = wait(min(left, SLEEP_SLICE_S))
            if fds is None:
                return ready()
            for seg in segments:
                if seg.read_fd in fds:
                    seg.take()
    finally:
        for seg in segments:
            seg.set_sleeping(False)


class ArenaWriter:
    """Places a request's large arrays in the arena (client side), first fit from the start."""

    def __init__(self, arena: memoryview):
        self.arena = arena
        self.used = 0

    def reset(self) -> None:
        self.used = 0

    def place(self, a: np.ndarray, dtype: str) -> bytes | None:
        """The type-2 payload for `a` written into the arena, or None when it does not fit."""
        n = a.nbytes
        off = (self.used + _ALIGN - 1) // _ALIGN * _ALIGN
        if off + n > len(self.arena):
            return None
        dst = np.frombuffer(self.arena, dtype=np.uint8, count=n, offset=off)
        dst[...] = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        self.used = off + n
        dt = dtype.encode()
        return (bytes([len(dt)]) + dt + bytes([a.ndim]) + struct.pack(f"<{a.ndim}Q", *a.shape)
                + struct.pack("<2Q", off, n))

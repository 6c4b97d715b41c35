"""Same-host fast path of the policy protocol: frames and image data through shared memory.

A client on the same machine as the server (an ``ipc://`` endpoint) can ask for a channel with a
``shm_open`` request over ZMQ. After that, its ``infer`` requests and their replies travel through a
shared-memory segment that the client created. Two FIFOs carry the notifications. The messages are
the same protocol frames, checked the same way.

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

import mmap
import os
import platform
import secrets
import select
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"VRTBSHM1"
HEADER = 128
_ALIGN = 64
SLEEP_SLICE_S = 0.001
ORDERED_STORES = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_REQ_LEN, _REP_LEN, _REQ_SEQ, _REP_SEQ, _SRV_SLEEP, _CLI_SLEEP = 32, 40, 48, 56, 64, 72


def _shm_dir() -> Path:
    d = Path("/dev/shm")
    return d if d.is_dir() and os.access(d, os.W_OK) else Path(tempfile.gettempdir())


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

    # -- creation (client) and attachment (server) --------------------------------------------------
    @classmethod
    def create(cls, request_bytes: int = 1 << 20, reply_bytes: int = 1 << 20, arena_bytes: int = 16 << 20) -> Segment:
        if min(request_bytes, reply_bytes) < 4096 or arena_bytes < 0:
            raise ValueError("shared memory: request and reply areas need at least 4096 bytes, the arena >= 0")
        path = _shm_dir() / f"vertebra-policy-{os.getpid()}-{secrets.token_hex(6)}"
        size = HEADER + request_bytes + reply_bytes + arena_bytes
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        mm[0:8] = MAGIC
        struct.pack_into("<3Q", mm, 8, request_bytes, reply_bytes, arena_bytes)
        for suffix in (".req", ".rep"):
            os.mkfifo(str(path) + suffix, 0o600)
        # O_RDWR on a FIFO never blocks on open and keeps it open from both ends.
        read_fd = os.open(str(path) + ".rep", os.O_RDWR | os.O_NONBLOCK)
        write_fd = os.open(str(path) + ".req", os.O_RDWR | os.O_NONBLOCK)
        return cls(path, mm, request_bytes, reply_bytes, arena_bytes, read_fd, write_fd, owner=True)

    @classmethod
    def attach(cls, path: str, max_bytes: int) -> Segment:
        """The server's side. Refuses anything but a regular file of this user with a valid header."""
        p = Path(path)
        try:
            st = os.stat(p, follow_symlinks=False)
        except OSError as e:
            raise ValueError(f"shared memory segment {path!r}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise ValueError(f"shared memory segment {path!r} is not a regular file owned by this user")
        if st.st_size < HEADER or st.st_size > HEADER + 2 * max_bytes + (256 << 20):
            raise ValueError(f"shared memory segment {path!r}: size {st.st_size} is out of range")
        fd = os.open(p, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, st.st_size)
        finally:
            os.close(fd)
        if mm[0:8] != MAGIC:
            mm.close()
            raise ValueError(f"shared memory segment {path!r}: bad magic")
        req, rep, arena = struct.unpack_from("<3Q", mm, 8)
        if HEADER + req + rep + arena != st.st_size:
            mm.close()
            raise ValueError(f"shared memory segment {path!r}: header sizes do not add up to the file size")
        for suffix in (".req", ".rep"):
            if not stat.S_ISFIFO(os.stat(str(p) + suffix, follow_symlinks=False).st_mode):
                mm.close()
                raise ValueError(f"shared memory segment {path!r}: {suffix} is not a FIFO")
        read_fd = os.open(str(p) + ".req", os.O_RDWR | os.O_NONBLOCK)
        write_fd = os.open(str(p) + ".rep", os.O_RDWR | os.O_NONBLOCK)
        return cls(p, mm, req, rep, arena, read_fd, write_fd, owner=False)

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

    def arena(self) -> memoryview:
        return self.view[self.arena_off:self.arena_off + self.arena_cap]

    # -- waiting --------------------------------------------------------------------------------------
    def take(self) -> bool:
        """Consume FIFO notifications if any are there (never blocks)."""
        try:
            return bool(os.read(self.read_fd, 64))
        except BlockingIOError:
            return False

    def set_sleeping(self, on: bool) -> None:
        struct.pack_into("<Q", self.mm, self.my_sleep, 1 if on else 0)

    def sleep(self, ready: Any, timeout_s: float) -> bool:
        """Block on the FIFO until ready() or the timeout, with the sleeping word set."""
        return sleep_until([self], ready, timeout_s,
                           lambda t: set(select.select([self.read_fd], [], [], t)[0]))

    def wait_reply(self, timeout_s: float, spin_s: float) -> bool:
        """Client: the reply to the last request within the timeout (polled for spin_s first)."""
        spin_end = time.perf_counter() + min(spin_s, timeout_s)
        while time.perf_counter() < spin_end:
            if self.reply_ready():
                return True
        return self.sleep(self.reply_ready, max(0.0, timeout_s - spin_s))

    def close(self) -> None:
        self.view.release()
        try:
            self.mm.close()
        except BufferError:  # an array view still points into it: leave the mapping to the GC
            pass
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.owner:
            for p in (str(self.path), str(self.path) + ".req", str(self.path) + ".rep"):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass


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

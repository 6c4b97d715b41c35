"""The same-host shared-memory channel: round trips with images in the arena, errors that leave the
server serving, non-blocking use, refusals, and the protocol's checks of in-arena arrays."""

import os
import time

import numpy as np
import pytest
from vertebra.policies.client import PolicyClient, PolicyError
from vertebra.policies.protocol import ARENA_MIN_BYTES, EXT_SHM_NDARRAY, ProtocolError, decode, encode, encode_shm
from vertebra.policies.server import PolicyServer, ServerConfig
from vertebra.policies.shm import ArenaWriter, Segment

from .test_server import server, write_cfg  # noqa: F401 - the server fixture


class EchoPolicy:
    """Returns the image's mean per channel and the state: proves the server read the right bytes."""

    name = "echo"
    needs_mapping = False

    def metadata(self):
        return {"name": "echo", "kind": "test", "chunk_length": 1, "action_dim": 4}

    def limit(self, actions):
        return actions

    def infer(self, obs, joint_names):
        img = obs["images"]["cam0"]
        assert not img.flags.writeable  # a read-only view
        return np.concatenate([img.reshape(-1, 3).mean(axis=0), obs["state"]["q"][:1]]).astype(np.float32)[None]


class _Offset:
    """An ArenaWriter that does not reset: its arrays land far into the arena."""

    def __init__(self, w):
        self.w = w

    def reset(self):
        pass

    def place(self, a, dtype):
        return self.w.place(a, dtype)


@pytest.fixture
def echo_server(server):
    server.policies["small"] = EchoPolicy()
    return server


def obs(rng, value=None):
    img = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    return {"images": {"cam0": img}, "state": {"q": rng.standard_normal(29).astype(np.float32)}, "instruction": "x"}


def expected(o):
    return np.concatenate([o["images"]["cam0"].reshape(-1, 3).mean(axis=0), o["state"]["q"][:1]]).astype(np.float32)


def test_round_trips_through_shared_memory_read_the_right_images(echo_server):
    server = echo_server
    c = PolicyClient(server.endpoint)
    opened = c.use_shared_memory(arena_bytes=1 << 20)
    assert opened["arena_bytes"] == 1 << 20
    rng = np.random.default_rng(0)
    requests_before = server.requests
    for _ in range(20):  # each request overwrites the arena: every reply must match its own image
        o = obs(rng)
        r = c.infer(o)
        assert np.allclose(r["actions"][0], expected(o), atol=1e-4)
    assert server.requests - requests_before == 20
    path = c.shm.path
    c.close()
    assert not os.path.exists(path) and not os.path.exists(str(path) + ".req")  # the client cleans up
    assert not server.shm  # and the server dropped the channel


def test_errors_on_the_channel_are_replies_and_it_keeps_serving(echo_server):
    server = echo_server
    c = PolicyClient(server.endpoint)
    c.use_shared_memory()
    seg = c.shm
    seg.write_request(b"\x00\x01garbage")
    assert seg.wait_reply(5, 0.001)
    assert decode(seg.reply_bytes(), requests=False)["code"] == "malformed"
    seg.write_request(encode({"type": "shm_open", "path": "/etc/passwd"}))
    assert seg.wait_reply(5, 0.001)
    assert decode(seg.reply_bytes(), requests=False)["code"] == "schema"
    # an in-arena array that points past the arena (built against a bigger one)
    big = ArenaWriter(memoryview(bytearray(64 << 20)))
    big.used = 32 << 20
    seg.write_request(encode_shm({"type": "infer", "obs": {"images": {"cam0": np.zeros((224, 224, 3), np.uint8)}},
                                  "id": 1}, _Offset(big)))
    assert seg.wait_reply(5, 0.001)
    assert decode(seg.reply_bytes(), requests=False)["code"] == "bad_array"
    rng = np.random.default_rng(1)
    o = obs(rng)
    assert np.allclose(c.infer(o)["actions"][0], expected(o), atol=1e-4)
    c.close()


def test_submit_and_poll_on_shared_memory(echo_server):
    server = echo_server
    c = PolicyClient(server.endpoint)
    c.use_shared_memory()
    rng = np.random.default_rng(2)
    o = obs(rng)
    assert c.poll() is None
    i = c.submit(o)
    assert i > 0 and c.submit(o) == 0  # one outstanding request: the next is dropped, never queued
    deadline = time.monotonic() + 5
    got = None
    while got is None and time.monotonic() < deadline:
        got = c.poll()
    assert got["id"] == i and np.allclose(got["actions"][0], expected(o), atol=1e-4)
    assert c.submit(o) > 0
    assert c.infer(o)["id"] > i  # a blocking call first collects the outstanding reply
    c.close()


def channel_dir(name="ffffffffffff"):
    """A hand-made channel folder where a server looks for channels (cleaned up by the caller)."""
    from vertebra.policies.endpoint import runtime_dir

    d = runtime_dir() / f"shm-{os.getpid()}-{name}"
    d.mkdir(mode=0o700)
    return d


def test_channels_are_refused_off_host_and_for_bad_segments(tmp_path, echo_server):
    import shutil

    server = echo_server
    c = PolicyClient(server.endpoint)
    with pytest.raises(PolicyError, match="shm_unavailable.*not a channel folder"):
        c.call({"type": "shm_open", "path": str(tmp_path)})  # anywhere but the runtime directory
    d = channel_dir()
    try:
        d.chmod(0o755)
        with pytest.raises(PolicyError, match="shm_unavailable.*must be 0700"):
            c.call({"type": "shm_open", "path": str(d)})
        d.chmod(0o700)
        # A segment that is a plain file (as /dev/shm segments were) can be truncated under the
        # server: refused, whatever its contents; so is a link to anything but the client's memfd.
        (tmp_path / "plain").write_bytes(b"VRTBSHM1" + b"\0" * 8192)
        os.symlink(tmp_path / "plain", d / "segment")
        with pytest.raises(PolicyError, match="shm_unavailable.*must link to its client's memfd"):
            c.call({"type": "shm_open", "path": str(d)})
        (d / "segment").unlink()
        os.symlink(f"/proc/{os.getpid()}/fd/0", d / "segment")  # a terminal or pipe, not a sealed memfd
        with pytest.raises(PolicyError, match="shm_unavailable"):
            c.call({"type": "shm_open", "path": str(d)})
    finally:
        shutil.rmtree(d)
    c.close()
    tcp = PolicyServer(ServerConfig.load(write_cfg(tmp_path, insecure=True)), bind="tcp://127.0.0.1:*")
    seg = Segment.create()
    try:
        with pytest.raises(ProtocolError, match="same-host ipc://"):
            tcp.handle(b"id", {"type": "shm_open", "path": str(seg.path)})
    finally:
        seg.close()
        tcp.close()


def test_in_arena_arrays_are_checked_and_only_valid_with_an_arena():
    arena = memoryview(bytearray(1 << 20))
    a = np.arange(ARENA_MIN_BYTES, dtype=np.uint8)
    frame = encode_shm({"type": "infer", "obs": {"a": a, "small": np.ones(3, np.float32)}, "id": 1}, ArenaWriter(arena))
    assert len(frame) < 200  # the array itself is not in the frame
    out = decode(frame, arena=arena)
    assert np.array_equal(out["obs"]["a"], a) and out["obs"]["small"].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ProtocolError, match="only valid on a shared-memory channel"):
        decode(frame)  # over the socket, a reference into shared memory is refused
    with pytest.raises(ProtocolError, match="bytes at .* arena"):
        decode(frame, arena=arena[:100])  # points past the end
    assert EXT_SHM_NDARRAY == 2
    full = ArenaWriter(memoryview(bytearray(100)))  # does not fit: sent inline instead
    assert np.array_equal(decode(encode_shm({"type": "infer", "obs": {"a": a}}, full))["obs"]["a"], a)

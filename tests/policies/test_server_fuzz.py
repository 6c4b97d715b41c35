"""A seeded fuzz of the policy server: random frames, random ndarray extension headers and random
policy packages. Every frame gets exactly one reply, none of them an "internal" error (a bad input
always has its own code), and the server's memory stays bounded."""

import copy
import shutil
import struct
import threading

import msgpack
import numpy as np
import pytest
import yaml
import zmq
from vertebra.policies.protocol import ALLOWED_DTYPES, EXT_NDARRAY, EXT_SHM_NDARRAY, REQUEST_TYPES, decode, encode
from vertebra.policies.server import PolicyServer, ServerConfig
from vertebra.runtime.config import REPO_ROOT

from .test_server import write_cfg

GO2_POSE = REPO_ROOT / "policies" / "packages" / "go2_pose"
FRAMES = 1500
PACKAGES = 24
RSS_GROWTH_BOUND_MB = 150
FIELDS = ["v", "type", "obs", "id", "mapping", "t_obs_ns", "joint_names", "name", "path", "client", "images", "state"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def random_value(rng, depth=0):
    k = rng.integers(0, 11 if depth < 3 else 7)
    if k == 0:
        return int(rng.integers(-2**62, 2**62))
    if k == 1:
        return float(rng.choice([0.0, 1.0, np.nan, np.inf, -1e308, rng.standard_normal()]))
    if k == 2:
        return bool(rng.integers(0, 2))
    if k == 3:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, rng.integers(0, 12)))
    if k == 4:
        return None
    if k == 5:
        return bytes(rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8))
    if k == 6:
        return random_ext(rng)
    if k in (7, 8):
        return {str(rng.choice(FIELDS)): random_value(rng, depth + 1) for _ in range(rng.integers(0, 5))}
    if k == 9:
        return [random_value(rng, depth + 1) for _ in range(rng.integers(0, 5))]
    return random_array(rng)


def random_ext(rng):
    """An ndarray extension with a random (mostly wrong) header."""
    dtype = str(rng.choice(sorted(ALLOWED_DTYPES) + ["<c8", "O", "", "|V4", ">f4", "x" * 300]))[:255].encode()
    ndim = int(rng.integers(0, 11))
    shape = [int(rng.choice([0, 1, 3, 2**31, 2**63 - 1])) for _ in range(ndim)]
    head = bytes([len(dtype)]) + dtype + bytes([ndim]) + struct.pack(f"<{ndim}Q", *shape)
    if rng.integers(0, 3) == 0:
        head = head[: rng.integers(0, len(head) + 1)]  # truncated
    data = bytes(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8))
    return msgpack.ExtType(int(rng.choice([EXT_NDARRAY, EXT_SHM_NDARRAY, 7])), head + data)


def random_array(rng):
    dt = rng.choice(["<f4", "<f8", "|u1", "<i8", "|b1"])
    a = rng.standard_normal(int(rng.integers(0, 40))) * float(rng.choice([1, 1e30]))
    if dt in ("<f4", "<f8") and rng.integers(0, 3) == 0 and a.size:
        a[0] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        return msgpack.ExtType(EXT_NDARRAY, _array_payload(a.astype(dt)))


def _array_payload(a):
    dt = a.dtype.str.encode()
    return bytes([len(dt)]) + dt + bytes([a.ndim]) + struct.pack(f"<{a.ndim}Q", *a.shape) + a.tobytes()


def random_frame(rng) -> bytes:
    k = rng.integers(0, 4)
    if k == 0:
        return bytes(rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8))
    if k == 1:
        return msgpack.packb(random_value(rng), use_bin_type=True)
    t = "infer" if k == 3 else str(rng.choice([*REQUEST_TYPES, "nope"]))
    msg = {"v": 1 if rng.integers(0, 6) else random_value(rng), "type": t}
    for _ in range(rng.integers(0, 4)):
        msg[str(rng.choice(FIELDS))] = random_value(rng)
    msg.pop("deadline_ns", None)  # a past deadline is dropped unanswered, on purpose
    if k == 3:
        msg["obs"] = {"state": {"q": random_value(rng)}, "images": {"a": random_value(rng)}, "command": random_value(rng)}
    return msgpack.packb(msg, use_bin_type=True)


def mutate_package(rng, d):
    d = copy.deepcopy(d)
    for _ in range(rng.integers(1, 4)):
        node, key = d, None
        for _ in range(rng.integers(1, 4)):  # walk to a random place
            if isinstance(node, dict) and node:
                key = str(rng.choice(list(node)))
                if rng.integers(0, 2) and isinstance(node[key], (dict, list)):
                    node = node[key]
                    continue
            break
        if not isinstance(node, dict) or key is None or key not in node:
            continue
        op = rng.integers(0, 4)
        if op == 0:
            del node[key]
        elif op == 1:
            node[key] = random_plain(rng)
        elif op == 2 and isinstance(node[key], list) and node[key]:
            node[key] = node[key][: rng.integers(0, len(node[key]))]
        else:
            node[key] = {"x": random_plain(rng)}
    return d


PLAIN = [None, -1, 0, 7, 1e30, "nan", "", "x" * 50, True, [1, 2], {"a": 1}]


def random_plain(rng):
    return copy.deepcopy(PLAIN[int(rng.integers(0, len(PLAIN)))])


@pytest.fixture
def fuzz_server(tmp_path):
    base = yaml.safe_load((GO2_POSE / "policy.yaml").read_text())
    rng = np.random.default_rng(7)
    policies = {"small": {"kind": "noop", "chunk_length": 8, "action_dim": 4, "rate_hz": 50}}
    for i in range(PACKAGES):
        dst = tmp_path / f"pkg{i}"
        shutil.copytree(GO2_POSE, dst)
        text = yaml.safe_dump(mutate_package(rng, base), sort_keys=False) if i else "a: &a [1, 2]\nb: [*a, *a, *a]\n"
        (dst / "policy.yaml").write_text(text)
        policies[f"pkg{i}"] = {"kind": "package", "path": str(dst)}
    srv = PolicyServer(ServerConfig.load(write_cfg(tmp_path, robot="go2", default="small", policies=policies)))
    stop = threading.Event()
    th = threading.Thread(target=srv.serve_forever, args=(stop,), daemon=True)
    th.start()
    yield srv
    stop.set()
    th.join(5)
    srv.close()


def test_every_random_frame_gets_one_specific_reply_and_memory_stays_bounded(fuzz_server):
    rng = np.random.default_rng(2024)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(fuzz_server.endpoint)
    rss0 = rss_mb()
    codes: dict[str, int] = {}
    for i in range(FRAMES):
        frame = random_frame(rng)
        sock.send(frame)
        assert sock.poll(10_000), f"frame {i} got no reply: {frame[:80]!r}"
        reply = decode(sock.recv(), requests=False)
        code = reply.get("code", reply["type"])
        codes[code] = codes.get(code, 0) + 1
        assert code != "internal", (frame[:200], reply)
    while fuzz_server.pending:  # loads the fuzz started finish (each answered too)
        assert sock.poll(10_000)
        decode(sock.recv(), requests=False)
    assert sum(codes.values()) >= FRAMES and len(codes) >= 8, codes  # the fuzz reached many paths
    assert rss_mb() - rss0 < RSS_GROWTH_BOUND_MB
    sock.send(encode({"type": "health", "id": 1}))
    assert sock.poll(5000) and decode(sock.recv(), requests=False)["ok"]
    sock.close(0)


def test_every_random_package_is_loaded_or_refused_with_a_reason(fuzz_server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(fuzz_server.endpoint)
    outcomes = {}
    for i in range(PACKAGES):
        sock.send(encode({"type": "load", "name": f"pkg{i}", "id": i + 1}))
        assert sock.poll(60_000), f"pkg{i}: no reply"
        reply = decode(sock.recv(), requests=False)
        assert reply["id"] == i + 1
        outcomes[f"pkg{i}"] = reply.get("code", "loaded")
        assert outcomes[f"pkg{i}"] in ("loaded", "bad_package", "incompatible"), reply
    assert outcomes["pkg0"] == "bad_package"  # YAML that is no package (with aliases)
    assert "bad_package" in outcomes.values()
    sock.send(encode({"type": "infer", "obs": {}, "id": 99}))  # the active policy still serves
    assert sock.poll(5000) and decode(sock.recv(), requests=False)["type"] == "infer_reply"
    sock.close(0)

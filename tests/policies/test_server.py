"""The policy server: requests, errors that leave it serving, many clients, swap, CURVE allowlist."""

import threading
import time

import numpy as np
import pytest
import yaml
import zmq
from vertebra.policies.client import PolicyClient, PolicyError
from vertebra.policies.protocol import decode, encode
from vertebra.policies.server import PolicyServer, ServerConfig


def write_cfg(tmp_path, **extra):
    d = {"bind": f"ipc://{tmp_path}/p.sock", "default": "small",
         "policies": {"small": {"kind": "noop", "chunk_length": 8, "action_dim": 4, "rate_hz": 50},
                      "big": {"kind": "noop", "chunk_length": 50, "action_dim": 32, "rate_hz": 10}},
         "limits": {"max_message_bytes": 1 << 20}}
    d.update(extra)
    p = tmp_path / "server.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


@pytest.fixture
def server(tmp_path):
    srv = PolicyServer(ServerConfig.load(write_cfg(tmp_path)))
    stop = threading.Event()
    th = threading.Thread(target=srv.serve_forever, args=(stop,), daemon=True)
    th.start()
    yield srv
    stop.set()
    th.join(2)
    srv.close()


def test_requests_and_replies(server):
    c = PolicyClient(server.endpoint)
    hello = c.hello(joint_names=["a", "b"])
    assert hello["policy"]["chunk_length"] == 8 and hello["server"]["protocol"] == 1
    r = c.infer({"state": {"q": np.zeros(3, np.float32)}})
    assert r["actions"].shape == (8, 4) and r["actions"].dtype == np.float32
    assert r["timing"]["decode_us"] >= 0 and r["timing"]["handle_us"] >= 0 and r["timing"]["recv_ns"] > 0
    assert c.call({"type": "health"})["ok"] and c.call({"type": "list"})["policies"] == ["small", "big"]
    assert c.call({"type": "swap", "name": "big"})["active"] == "big"
    assert c.infer({})["actions"].shape == (50, 32)
    with pytest.raises(PolicyError, match="unknown_policy.*policies are: small, big"):
        c.call({"type": "swap", "name": "huge"})
    assert c.call({"type": "reset"})["type"] == "reset_reply"
    c.close()


def test_malformed_and_oversized_messages_get_errors_and_the_server_keeps_serving(server):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.connect(server.endpoint)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    for frame, code in [(b"\x00\x01garbage", "malformed"), (encode({"type": "nope"}), "unknown_type"),
                        (encode({"type": "infer"}), "schema"),
                        (encode({"type": "infer", "obs": {"img": np.zeros((800, 800, 3), np.uint8)}}), "too_large")]:
        s.send(frame)
        reply = decode(s.recv(), requests=False)
        assert reply["type"] == "error" and reply["code"] == code, reply
    s.send_multipart([b"two", b"parts"])
    assert decode(s.recv(), requests=False)["code"] == "malformed"
    s.close(0)
    c = PolicyClient(server.endpoint)
    assert c.infer({})["actions"].shape == (8, 4)  # still serving
    assert server.errors == 5
    c.close()


def test_many_clients_at_once(server):
    errors = []

    def worker(k):
        try:
            c = PolicyClient(server.endpoint)
            for i in range(30):
                r = c.infer({"k": k, "state": {"q": np.full(3, k, np.float32)}})
                assert r["actions"].shape == (8, 4)
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and server.requests >= 180


def test_non_blocking_submit_and_poll(server):
    c = PolicyClient(server.endpoint)
    c.hello()  # connected (the socket queues nothing for a server it is not connected to)
    assert c.poll() is None
    ids = [c.submit({}) for _ in range(3)]
    assert all(ids)
    deadline = time.monotonic() + 5
    got = None
    while time.monotonic() < deadline:
        got = c.poll() or got
        if got and got["id"] == ids[-1]:
            break
        time.sleep(0.001)
    assert got["id"] == ids[-1]  # the newest reply wins
    c.close()


def test_curve_encryption_with_a_client_allowlist(tmp_path):
    import zmq.auth

    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(str(keys), "server")
    ok_pub, ok_sec = zmq.auth.create_certificates(str(keys), "robot")
    zmq.auth.create_certificates(str(keys), "stranger")
    (allowed / "robot.key").write_text((keys / "robot.key").read_text())
    cfg = write_cfg(tmp_path, bind="tcp://127.0.0.1:0",
                    curve={"enabled": True, "server_secret_key": server_secret, "allowed_clients": str(allowed)})
    srv = PolicyServer(ServerConfig.load(cfg))
    stop = threading.Event()
    th = threading.Thread(target=srv.serve_forever, args=(stop,), daemon=True)
    th.start()
    try:
        spub, _ = zmq.auth.load_certificate(str(keys / "server.key"))
        good_pub, good_sec = zmq.auth.load_certificate(ok_sec)
        c = PolicyClient(srv.endpoint, server_public_key=spub, public_key=good_pub, secret_key=good_sec)
        assert c.infer({})["actions"].shape == (8, 4)
        c.close()
        bad_pub, bad_sec = zmq.auth.load_certificate(str(keys / "stranger.key_secret"))
        c = PolicyClient(srv.endpoint, server_public_key=spub, public_key=bad_pub, secret_key=bad_sec)
        with pytest.raises(TimeoutError):
            c.infer({}, timeout_s=1.0)
        c.close()
    finally:
        stop.set()
        th.join(2)
        srv.close()


def test_bad_server_configs_are_named(tmp_path):
    from vertebra.runtime.config import ConfigError

    p = write_cfg(tmp_path, default="missing")
    with pytest.raises(ConfigError, match="default.*one of small, big"):
        ServerConfig.load(p)
    p = write_cfg(tmp_path, policies={"x": {"kind": "magic"}})
    with pytest.raises(ConfigError, match="package or noop"):
        ServerConfig.load(p)

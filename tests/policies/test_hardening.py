"""The policy path as a hostile or careless user would try it: each test reproduces one finding of
the hardening issue (joint mapping, compatibility on load/swap, client recovery, a client crashing
the server, bounded resources, security switched off by accident, endpoint ownership, values)."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import yaml
import zmq
from vertebra.policies import server as server_mod
from vertebra.policies.client import PolicyClient, PolicyError
from vertebra.policies.endpoint import EndpointError, default_endpoint, runtime_dir
from vertebra.policies.protocol import ProtocolError, decode, encode
from vertebra.policies.server import PolicyServer, ServerConfig
from vertebra.runtime.config import REPO_ROOT, ConfigError, RobotConfig

from .test_server import write_cfg

GO2_POSE = REPO_ROOT / "policies" / "packages" / "go2_pose"
G1_VLA = REPO_ROOT / "policies" / "packages" / "g1_vla"


class Serving:
    """A server on its own thread (restartable on the same endpoint)."""

    def __init__(self, cfg_path, bind=None):
        self.cfg_path, self.bind = cfg_path, bind
        self.start()

    def start(self):
        self.srv = PolicyServer(ServerConfig.load(self.cfg_path), bind=self.bind)
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.srv.serve_forever, args=(self.stop_ev,), daemon=True)
        self.th.start()
        return self.srv

    def stop(self):
        self.stop_ev.set()
        self.th.join(5)
        self.srv.close()

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture
def pose_cfg(tmp_path):
    return write_cfg(tmp_path, robot="go2", default="pose",
                     policies={"pose": {"kind": "package", "path": str(GO2_POSE)},
                               "small": {"kind": "noop", "chunk_length": 8, "action_dim": 4, "rate_hz": 50}})


@pytest.fixture
def pose_server(pose_cfg):
    s = Serving(pose_cfg)
    yield s
    s.stop()


def go2_obs(names, rng):
    """An observation in the joint order `names` of one fixed robot state."""
    cfg = RobotConfig.load("go2")
    q = {n: v for n, v in zip(cfg.joint_names, rng.uniform(-0.3, 0.3, cfg.n_joints))}
    dq = {n: v for n, v in zip(cfg.joint_names, rng.uniform(-1, 1, cfg.n_joints))}
    return {"state": {"q": np.array([q[n] for n in names], np.float32), "dq": np.array([dq[n] for n in names], np.float32)},
            "command": np.array([0.05, -0.03, 0.0, 0.0], np.float32)}


# -- 1. joint mapping ------------------------------------------------------------------------------
def test_observations_are_mapped_by_the_joint_order_each_client_declared(pose_server):
    names = RobotConfig.load("go2").joint_names
    a, b = PolicyClient(pose_server.srv.endpoint), PolicyClient(pose_server.srv.endpoint)
    a.hello(joint_names=names)
    b.hello(joint_names=names[::-1])  # the last hello used to set the mapping for everyone
    ra = a.infer(go2_obs(names, np.random.default_rng(1)))["actions"]
    rb = b.infer(go2_obs(names[::-1], np.random.default_rng(1)))["actions"]
    assert np.allclose(ra, rb, atol=1e-5)  # the same robot state, in two orders: the same actions
    stranger = PolicyClient(pose_server.srv.endpoint)  # never sent hello
    with pytest.raises(PolicyError, match="unknown_mapping"):
        stranger.infer(go2_obs(names, np.random.default_rng(1)))
    for c in (a, b, stranger):
        c.close()


def test_after_a_server_restart_the_client_hands_its_mapping_over_again(pose_server):
    names = RobotConfig.load("go2").joint_names
    c = PolicyClient(pose_server.srv.endpoint)
    c.hello(joint_names=names[::-1])
    before = c.infer(go2_obs(names[::-1], np.random.default_rng(2)))["actions"]
    pose_server.restart()  # knows no mapping: positional mapping used to feed the wrong joints
    after = c.infer(go2_obs(names[::-1], np.random.default_rng(2)), timeout_s=10)["actions"]
    assert np.allclose(before, after, atol=1e-6) and c.recoveries == 1
    c.close()


def test_a_mapping_the_server_dropped_is_refused_then_re_handshaken(tmp_path):
    cfg = write_cfg(tmp_path, robot="go2", default="pose", policies={"pose": {"kind": "package", "path": str(GO2_POSE)}},
                    limits={"max_message_bytes": 1 << 20, "max_mappings": 2})
    s = Serving(cfg)
    try:
        names = RobotConfig.load("go2").joint_names
        c = PolicyClient(s.srv.endpoint)
        c.hello(joint_names=names)
        for k in range(5):  # five other orders push ours out
            o = PolicyClient(s.srv.endpoint)
            o.hello(joint_names=names[k:] + names[:k] if k else names[::-1])
            o.close()
        assert len(s.srv.mappings) == 2
        chunk = c.metadata["policy"]["chunk_length"]
        assert c.infer(go2_obs(names, np.random.default_rng(3)))["actions"].shape == (chunk, 12)
        assert c.recoveries == 1  # unknown_mapping, then hello again, then the answer
        with pytest.raises(ProtocolError, match="joint_names.*at most 512") as ei:
            decode(encode({"type": "hello", "joint_names": [f"j{i}" for i in range(600)]}))
        assert ei.value.code == "schema"
    finally:
        s.stop()


# -- 2. compatibility on load and swap --------------------------------------------------------------
def edited_package(tmp_path, name, edit):
    dst = tmp_path / name
    shutil.copytree(GO2_POSE, dst)
    d = yaml.safe_load((dst / "policy.yaml").read_text())
    edit(d)
    (dst / "policy.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return dst


def test_load_and_swap_refuse_a_package_that_does_not_fit_the_served_robot(tmp_path):
    def swap_motors(d):
        t = d["outputs"]["targets"]
        t[0], t[1] = t[1], t[0]

    def rate7(d):
        d["outputs"]["rate_hz"] = 7

    cfg = write_cfg(tmp_path, robot="go2", default="pose", policies={
        "pose": {"kind": "package", "path": str(GO2_POSE)},
        "vla": {"kind": "package", "path": str(G1_VLA)},
        "swapped": {"kind": "package", "path": str(edited_package(tmp_path, "swapped", swap_motors))},
        "rate7": {"kind": "package", "path": str(edited_package(tmp_path, "rate7", rate7))}})
    s = Serving(cfg)
    try:
        c = PolicyClient(s.srv.endpoint)
        for name, why in (("vla", "robots: the package is for g1, not 'go2'"),
                          ("swapped", "outputs.targets\\[0\\]: 'FR_thigh_joint' where go2's motor order has 'FR_hip_joint'"),
                          ("rate7", "outputs.rate_hz: 7 Hz does not divide the control rate")):
            for kind in ("load", "swap"):
                with pytest.raises(PolicyError, match=f"incompatible: policy '{name}' does not fit go2: .*{why}"):
                    c.call({"type": kind, "name": name}, timeout_s=30)
        assert c.call({"type": "health"})["active"] == "pose"
        r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "policy", "swap", "vla", "--server",
                            s.srv.endpoint], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "incompatible" in r.stderr and "robots" in r.stderr
        c.close()
    finally:
        s.stop()
    bad_default = write_cfg(tmp_path, robot="go2", default="vla", policies={"vla": {"kind": "package", "path": str(G1_VLA)}})
    with pytest.raises(ProtocolError, match="robots: the package is for g1") as ei:
        PolicyServer(ServerConfig.load(bad_default))
    assert ei.value.code == "incompatible"
    with pytest.raises(ConfigError, match="robot.*the robot this server serves"):
        ServerConfig.load(write_cfg(tmp_path, default="pose", policies={"pose": {"kind": "package",
                                                                                 "path": str(GO2_POSE)}}))


# -- 4. client recovery -----------------------------------------------------------------------------
class SlowOnce:
    needs_mapping = False

    def __init__(self, delay_s):
        self.delay_s, self.calls = delay_s, 0

    def metadata(self):
        return {"name": "slow", "kind": "test"}

    def infer(self, obs, names):
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.delay_s)
        return np.full((2, 2), float(obs.get("k", 0)), np.float32)

    def limit(self, a):
        return a


def test_one_timeout_never_poisons_the_client(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        s.srv.policies["small"] = SlowOnce(0.6)
        c = PolicyClient(s.srv.endpoint)
        c.hello()
        with pytest.raises(TimeoutError):
            c.infer({"k": 1}, timeout_s=0.2)
        r = c.infer({"k": 2}, timeout_s=5)  # used to fail with out_of_order forever
        assert r["actions"][0, 0] == 2.0
        assert c.submit({"k": 3})
        assert c.infer({"k": 4}, timeout_s=5)["actions"][0, 0] == 4.0  # submit then infer: also fine
        assert c.stale_replies >= 1
        c.close()
    finally:
        s.stop()


def test_requests_made_while_the_server_was_down_are_never_delivered(tmp_path):
    s = Serving(write_cfg(tmp_path))
    c = PolicyClient(s.srv.endpoint)
    c.hello()
    s.stop()
    time.sleep(0.2)  # the socket notices the server is gone
    assert [c.submit({"k": i}) for i in range(5)] == [0] * 5  # nothing queued for a server that is not there
    srv = s.start()
    time.sleep(0.3)
    assert srv.requests == 0  # nothing replayed to the new server
    assert c.infer({"k": 9}, timeout_s=5)["actions"].shape == (8, 4)
    c.close()
    s.stop()


def test_a_request_past_its_deadline_is_dropped_unanswered(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(s.srv.endpoint)
        sock.send(encode({"type": "infer", "obs": {}, "id": 5, "deadline_ns": time.time_ns() - 1}))
        sock.send(encode({"type": "health", "id": 6}))
        reply = decode(sock.recv(), requests=False) if sock.poll(3000) else None
        assert reply["id"] == 6 and s.srv.expired == 1  # the stale one got nothing
        sock.close(0)
    finally:
        s.stop()


def test_the_shared_memory_channel_is_reopened_after_a_server_restart(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        c = PolicyClient(s.srv.endpoint)
        c.hello()
        c.use_shared_memory()
        img = np.zeros((64, 64, 3), np.uint8)
        assert c.infer({"images": {"a": img}})["actions"].shape == (8, 4)
        s.restart()  # the new server has no channel: submit used to return 0 forever
        assert c.infer({"images": {"a": img}}, timeout_s=1.0)["actions"].shape == (8, 4)
        assert c.recoveries == 1 and c.shm is not None and len(s.srv.shm) == 1
        c.close()
    finally:
        s.stop()


def test_eval_reports_a_server_outage_and_holds(tmp_path):
    from vertebra.policies.evaluate import ServerProcess

    sp = ServerProcess({"pose": GO2_POSE}, "go2")
    names = RobotConfig.load("go2").joint_names
    try:
        c = sp.client(names, shared_memory=False)
        assert sp.infer(c, go2_obs(names, np.random.default_rng(0)), 1, print) is not None
        os.kill(sp.proc.pid, signal.SIGSTOP)  # a 5 s pause of the server
        try:
            said = []
            assert sp.infer(c, go2_obs(names, np.random.default_rng(0)), 2, said.append) is None
            assert sp.outages[0]["step"] == 2 and "no reply" in said[0]
        finally:
            os.kill(sp.proc.pid, signal.SIGCONT)
        assert sp.infer(c, go2_obs(names, np.random.default_rng(0)), 3, print) is not None  # recovered
    finally:
        sp.close()
    assert not Path(sp.dir).exists()  # the eval folder does not leak


# -- 5. one client cannot crash the server ------------------------------------------------------------
def test_a_segment_cannot_be_truncated_under_the_server(tmp_path):
    from vertebra.policies.shm import Segment

    seg = Segment.create()
    with pytest.raises(PermissionError):
        os.ftruncate(seg.memfd, 4096)  # sealed: this used to kill the server with SIGBUS
    seg.close()
    # A hand-made channel whose memfd is not sealed is refused before it is mapped.
    from .test_shm import channel_dir

    d = channel_dir("aaaaaaaaaaaa")
    fd = os.memfd_create("forged")
    try:
        os.ftruncate(fd, 1 << 16)
        os.symlink(f"/proc/{os.getpid()}/fd/{fd}", d / "segment")
        for n in ("req", "rep"):
            os.mkfifo(d / n, 0o600)
        with pytest.raises(ValueError, match="not sealed against shrinking"):
            Segment.attach(str(d), 1 << 20)
    finally:
        os.close(fd)
        shutil.rmtree(d)


def test_a_failing_channel_is_closed_and_the_other_clients_keep_being_served(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        bad, good = PolicyClient(s.srv.endpoint), PolicyClient(s.srv.endpoint)
        for c in (bad, good):
            c.hello()
            c.use_shared_memory()
        seg = next(iter(s.srv.shm.values()))

        def broken(data):
            raise OSError("the client's mapping went away")

        seg.write_reply = broken  # whatever goes wrong with one client's channel
        # That channel is closed (nobody else affected); the client finds out and opens a new one.
        assert bad.infer({}, timeout_s=0.5)["actions"].shape == (8, 4)
        assert s.srv.channel_failures == 1 and bad.recoveries == 1 and len(s.srv.shm) == 2
        assert good.infer({}, timeout_s=5)["actions"].shape == (8, 4)
        for c in (bad, good):
            c.close()
    finally:
        s.stop()


# -- 6. bounded resources -----------------------------------------------------------------------------
def test_a_slow_load_never_stalls_inference(tmp_path, monkeypatch):
    s = Serving(write_cfg(tmp_path))
    try:
        build = s.srv._build

        def slow_build(name):
            time.sleep(1.5)  # a big model (or a package that takes long to parse)
            return build(name)

        s.srv._build = slow_build
        loader, runner = PolicyClient(s.srv.endpoint), PolicyClient(s.srv.endpoint)
        runner.hello()
        done = {}
        th = threading.Thread(target=lambda: done.setdefault("r", loader.call({"type": "load", "name": "big"}, 10)))
        th.start()
        time.sleep(0.2)
        served = 0
        while th.is_alive():
            assert runner.infer({}, timeout_s=0.5)["actions"].shape == (8, 4)
            served += 1
        th.join()
        assert done["r"]["loaded"] == "big" and served > 10
        assert runner.call({"type": "swap", "name": "big"})["active"] == "big"
        loader.close()
        runner.close()
    finally:
        s.stop()


def test_dead_clients_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(server_mod, "SWEEP_S", 0.1)
    s = Serving(write_cfg(tmp_path))
    try:
        root = runtime_dir()
        code = ("import os, sys; from vertebra.policies.client import PolicyClient; c = PolicyClient(sys.argv[1]); "
                "c.hello(); c.use_shared_memory(); print(c.shm.path, flush=True); os._exit(0)")
        r = subprocess.run([sys.executable, "-c", code, s.srv.endpoint], capture_output=True, text=True, timeout=60)
        path = Path(r.stdout.strip())
        assert path.parent == root
        end = time.monotonic() + 5
        while (s.srv.shm or path.exists()) and time.monotonic() < end:
            time.sleep(0.05)
        assert not s.srv.shm and not path.exists()  # fds, mapping and FIFOs of the dead client are gone
        c = PolicyClient(s.srv.endpoint)
        c.hello()
        c.use_shared_memory()
        p2 = c.shm.path
        c.close()
        assert not p2.exists()
    finally:
        s.stop()


# -- 7. security cannot be switched off by accident ------------------------------------------------------
def test_tcp_without_curve_is_refused_unless_insecure_is_explicit(tmp_path, capsys):
    with pytest.raises(ConfigError, match="bind.*tcp:// only with curve.enabled"):
        ServerConfig.load(write_cfg(tmp_path, bind="tcp://0.0.0.0:5599"))
    with pytest.raises(ConfigError, match="bind.*tcp:// only with curve.enabled"):
        PolicyServer(ServerConfig.load(write_cfg(tmp_path)), bind="tcp://127.0.0.1:*")
    with pytest.raises(ConfigError, match="curve.enable.*a known field"):
        ServerConfig.load(write_cfg(tmp_path, curve={"enable": True}))
    with pytest.raises(ConfigError, match="curve"):
        ServerConfig.load(write_cfg(tmp_path, curve="yes"))
    srv = PolicyServer(ServerConfig.load(write_cfg(tmp_path, insecure=True)), bind="tcp://127.0.0.1:*")
    srv.close()
    assert "WITHOUT encryption" in capsys.readouterr().err


def curve_keys(tmp_path):
    """Server and client certificates, the client allowlisted: (server public file, server secret
    file, allowlist folder, keys folder)."""
    import zmq.auth

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_pub_file, server_secret = zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys), "robot")
    shutil.copy(keys / "robot.key", allowed / "robot.key")
    return server_pub_file, server_secret, allowed, keys


def test_the_allowlist_reloads_and_revokes_open_connections(tmp_path):
    import zmq.auth

    server_pub_file, server_secret, allowed, keys = curve_keys(tmp_path)
    with pytest.raises(ConfigError, match="server_secret_key.*only a public key"):
        ServerConfig.load(write_cfg(tmp_path, bind="tcp://127.0.0.1:0", curve={
            "enabled": True, "server_secret_key": server_pub_file, "allowed_clients": str(allowed)}))
    s = Serving(write_cfg(tmp_path, bind="tcp://127.0.0.1:0", curve={
        "enabled": True, "server_secret_key": server_secret, "allowed_clients": str(allowed)}))
    try:
        spub, _ = zmq.auth.load_certificate(str(keys / "server.key"))
        pub, sec = zmq.auth.load_certificate(str(keys / "robot.key_secret"))
        c = PolicyClient(s.srv.endpoint, server_public_key=spub, public_key=pub, secret_key=sec)
        assert c.infer({})["actions"].shape == (8, 4)
        (allowed / "robot.key").unlink()
        assert c.call({"type": "reload"})["type"] == "reload_reply"  # or SIGHUP to `vertebra serve`
        with pytest.raises(PolicyError, match="unauthorized"):
            c.infer({})  # the connection stays open, but its key no longer gets answers
        c.close()
    finally:
        s.stop()


# -- 8. endpoint ownership ------------------------------------------------------------------------------
def test_a_second_server_cannot_take_over_an_endpoint(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        with pytest.raises(EndpointError, match=f"another policy server \\(pid {os.getpid()}\\)"):
            PolicyServer(ServerConfig.load(write_cfg(tmp_path)))
        c = PolicyClient(s.srv.endpoint)
        assert c.infer({})["actions"].shape == (8, 4)  # the first one still serves
        c.close()
    finally:
        s.stop()
    PolicyServer(ServerConfig.load(write_cfg(tmp_path))).close()  # free again once the first is gone


def test_the_default_endpoint_is_in_a_private_per_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    ep = default_endpoint()
    assert ep == f"ipc://{tmp_path}/vertebra/policy.sock"
    assert (tmp_path / "vertebra").stat().st_mode & 0o777 == 0o700
    (tmp_path / "vertebra").chmod(0o777)
    with pytest.raises(EndpointError, match="must be 0700"):
        default_endpoint()
    with pytest.raises(EndpointError, match="does not exist"):
        PolicyServer(ServerConfig.load(write_cfg(tmp_path)), bind=f"ipc://{tmp_path}/nowhere/x.sock")


# -- 9. values, not just shapes -------------------------------------------------------------------------
class NanPolicy(SlowOnce):
    def infer(self, obs, names):
        return np.full((2, 2), np.nan, np.float32)


def test_non_finite_values_and_loose_types_are_refused(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        c = PolicyClient(s.srv.endpoint)
        for bad in (np.array([1.0, np.nan], np.float32), np.array([np.inf]), float("nan")):
            with pytest.raises(PolicyError, match="bad_observation.*non-finite"):
                c.infer({"state": {"q": bad}})
        s.srv.policies["small"] = NanPolicy(0)
        with pytest.raises(PolicyError, match="bad_output"):
            c.infer({})
        c.close()
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(s.srv.endpoint)
        for frame, code in ((msgpack.packb({"v": True, "type": "health"}), "version"),
                            (msgpack.packb({"v": 1.0, "type": "health"}), "version"),
                            (msgpack.packb({"v": 1, "type": "infer", "obs": {}, "id": True}), "schema"),
                            (msgpack.packb({"v": 1, "type": "infer", "obs": {}, "mapping": 3}), "schema")):
            sock.send(frame)
            assert sock.poll(3000)
            assert decode(sock.recv(), requests=False)["code"] == code
        sock.close(0)
    finally:
        s.stop()


def test_a_bad_observation_or_package_gets_its_own_code(pose_server, tmp_path):
    names = RobotConfig.load("go2").joint_names
    c = PolicyClient(pose_server.srv.endpoint)
    c.hello(joint_names=names)
    obs = go2_obs(names, np.random.default_rng(0))
    for broken in ({**obs, "state": []}, {**obs, "command": [1, 2]}, {**obs, "state": {"q": obs["state"]["q"][:3],
                                                                                         "dq": obs["state"]["dq"]}}):
        with pytest.raises(PolicyError, match="bad_observation"):
            c.infer(broken)
    c.close()
    broken_pkg = tmp_path / "broken"
    shutil.copytree(GO2_POSE, broken_pkg)
    (broken_pkg / "model.onnx").write_bytes(b"not a model")
    cfg = write_cfg(tmp_path, robot="go2", default="pose", policies={"pose": {"kind": "package", "path": str(GO2_POSE)},
                                                                     "broken": {"kind": "package", "path": str(broken_pkg)}})
    s = Serving(cfg, bind=f"ipc://{tmp_path}/other.sock")
    try:
        c = PolicyClient(s.srv.endpoint)
        with pytest.raises(PolicyError, match="bad_package"):
            c.call({"type": "load", "name": "broken"}, timeout_s=30)
        c.close()
    finally:
        s.stop()


def test_actions_are_limited_to_the_declared_range_and_never_read_by_position(tmp_path):
    from vertebra.policies.package import RANGE_STDS, OnnxPolicy, PackageError, PolicyPackage

    names = RobotConfig.load("go2").joint_names
    dflt = PolicyPackage.load(GO2_POSE).spec  # no range declared: the training distribution's mean +- 5 std
    assert np.allclose(dflt.action_max, dflt.action_mean + RANGE_STDS * dflt.action_std)
    pol = OnnxPolicy(PolicyPackage.load(GO2_POSE))
    with pytest.raises(ValueError, match="no joint mapping"):  # the first N state values are not read as the joints
        pol.infer(go2_obs(names, np.random.default_rng(0)))
    mid = dflt.action_mean.tolist()
    narrow = edited_package(tmp_path, "narrow", lambda d: d["outputs"].update(
        range={"min": [m - 0.01 for m in mid], "max": [m + 0.01 for m in mid]}))
    s = Serving(write_cfg(tmp_path, robot="go2", default="pose", policies={"pose": {"kind": "package",
                                                                                    "path": str(narrow)}}))
    try:
        c = PolicyClient(s.srv.endpoint)
        c.hello(joint_names=names)
        obs = go2_obs(names, np.random.default_rng(0))
        obs["command"] = np.array([0.4, -0.4, 0.5, -0.1], np.float32)  # far from neutral: big actions
        a = c.infer(obs)["actions"]
        assert np.all(a >= np.float32(mid) - 0.01 - 1e-6) and np.all(a <= np.float32(mid) + 0.01 + 1e-6)
        assert np.abs(a - np.float32(mid)).max() > 0.009  # it did clip
        c.close()
    finally:
        s.stop()
    bad = edited_package(tmp_path, "badrange", lambda d: d["outputs"].update(range={"min": [1.0] * 12,
                                                                                    "max": [0.0] * 12}))
    with pytest.raises(PackageError, match="range: min 1 > max 0"):
        PolicyPackage.load(bad)


def test_vertebra_serve_reloads_on_sighup_and_stops_cleanly_on_sigterm(tmp_path):
    import zmq.auth

    _, server_secret, allowed, keys = curve_keys(tmp_path)
    cfg = write_cfg(tmp_path, bind="tcp://127.0.0.1:0", curve={
        "enabled": True, "server_secret_key": server_secret, "allowed_clients": str(allowed)})
    port = 45000 + os.getpid() % 5000
    proc = subprocess.Popen([sys.executable, "-m", "vertebra.runtime.cli", "serve", "--config", str(cfg), "--bind",
                             f"tcp://127.0.0.1:{port}", "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        spub, _ = zmq.auth.load_certificate(str(keys / "server.key"))
        pub, sec = zmq.auth.load_certificate(str(keys / "robot.key_secret"))
        c = PolicyClient(f"tcp://127.0.0.1:{port}", server_public_key=spub, public_key=pub, secret_key=sec)
        assert c.infer({}, timeout_s=30)["actions"].shape == (8, 4)
        (allowed / "robot.key").unlink()
        proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 10
        while True:
            try:
                c.infer({}, timeout_s=1)
            except PolicyError as e:
                assert e.code == "unauthorized"
                break
            assert time.monotonic() < end, "SIGHUP did not revoke the key"
            time.sleep(0.05)
        c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# -- found in review ------------------------------------------------------------------------------------
class _SkewedTime:
    """The time module as seen by a server whose wall clock is `skew_s` off ours."""

    def __init__(self, skew_s):
        self.skew_ns = int(skew_s * 1e9)

    def time_ns(self):
        return time.time_ns() + self.skew_ns

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.mark.parametrize("skew_s", [6.0, -6.0])
def test_deadlines_hold_when_the_two_clocks_disagree(tmp_path, monkeypatch, skew_s):
    monkeypatch.setattr(server_mod, "time", _SkewedTime(skew_s))
    s = Serving(write_cfg(tmp_path))
    try:
        c = PolicyClient(s.srv.endpoint)
        c.hello()  # measures the offset: deadlines are stamped on the server's clock
        assert abs(c._clock_offset_ns - skew_s * 1e9) < 0.5e9
        assert c.infer({}, timeout_s=1.0)["actions"].shape == (8, 4)  # +6 s: used to be dropped as expired
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(s.srv.endpoint)
        stale = c._deadline(-0.5)  # an observation whose deadline passed half a second ago, server time
        sock.send(encode({"type": "infer", "obs": {}, "id": 5, "deadline_ns": stale}))
        sock.send(encode({"type": "health", "id": 6}))
        assert sock.poll(3000) and decode(sock.recv(), requests=False)["id"] == 6  # -6 s: used to be served
        assert s.srv.expired == 1
        sock.close(0)
        c.close()
    finally:
        s.stop()


def test_a_later_swap_wins_over_a_slow_earlier_one_and_a_policy_builds_once(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        build, builds = s.srv._build, []

        def slow_build(name):
            builds.append(name)
            time.sleep(0.8)
            return build(name)

        s.srv._build = slow_build
        clients = [PolicyClient(s.srv.endpoint) for _ in range(4)]
        replies = {}
        threads = [threading.Thread(target=lambda i=i: replies.setdefault(i, clients[i].call(
            {"type": "load" if i else "swap", "name": "big"}, 10))) for i in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        assert clients[3].call({"type": "swap", "name": "small"})["active"] == "small"  # changed our mind
        for t in threads:
            t.join(10)
        assert builds == ["big"]  # three requests, one build
        assert replies[0]["superseded"] and replies[0]["active"] == "small"
        assert clients[3].call({"type": "health"})["active"] == "small"  # used to end up on "big"
        assert "big" in clients[3].call({"type": "list"})["loaded"]
        for c in clients:
            c.close()
    finally:
        s.stop()


def test_an_idle_channel_closed_by_the_server_is_reopened_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(server_mod, "SWEEP_S", 0.05)
    s = Serving(write_cfg(tmp_path, limits={"max_message_bytes": 1 << 20, "idle_channel_s": 1.0}))
    try:
        c = PolicyClient(s.srv.endpoint)
        c.hello()
        c.use_shared_memory()
        assert c.infer({})["actions"].shape == (8, 4)
        end = time.monotonic() + 5
        while s.srv.shm and time.monotonic() < end:
            time.sleep(0.05)
        assert not s.srv.shm  # closed as idle
        assert c.submit({})  # it sees the mark and opens a new channel before sending
        got, end = None, time.monotonic() + 5
        while got is None and time.monotonic() < end:
            got = c.poll()
        assert got is not None and got["type"] == "infer_reply" and len(s.srv.shm) == 1
        c.close()
    finally:
        s.stop()


def test_poll_returns_only_the_answers_to_observations(tmp_path):
    s = Serving(write_cfg(tmp_path))
    try:
        s.srv.policies["small"] = SlowOnce(0.3)
        c = PolicyClient(s.srv.endpoint)
        c.hello()
        i = c.submit({"k": 1})  # the server is busy with it for 0.3 s
        with pytest.raises(TimeoutError):
            c.call({"type": "list"}, timeout_s=0.05)  # its reply arrives later, on the same socket
        got, end = None, time.monotonic() + 5
        while got is None and time.monotonic() < end:
            got = c.poll()
        assert got["type"] == "infer_reply" and got["id"] == i
        time.sleep(0.2)
        assert c.poll() is None  # the late list_reply is not an answer to an observation
        c.close()
    finally:
        s.stop()


def test_hostile_names_and_nesting_get_their_own_codes():
    with pytest.raises(ProtocolError, match="printable") as ei:
        decode(encode({"type": "hello", "joint_names": ["a\x00b", "c"]}))  # used to collide with [a, b, c]
    assert ei.value.code == "schema"
    deep: list = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(ProtocolError, match="nested deeper") as ei:
        decode(encode({"type": "infer", "obs": {"x": deep}, "id": 3}))  # used to be RecursionError: internal
    assert ei.value.code == "malformed" and ei.value.id == 3
    from vertebra.policies.protocol import mapping_id

    assert mapping_id(["a", "b", "c"]) != mapping_id(["a,b", "c"]) != mapping_id(["a\\", "b", "c"])


def test_huge_pids_and_foreign_files_never_stop_a_server_from_starting():
    from vertebra.policies.shm import pid_alive, remove_dead_channels

    assert pid_alive(10**20)  # cannot exist: never cleaned up on a guess, never a crash
    bogus = Path("/dev/shm") / "vertebra-policy-99999999999999999999-aaaaaaaaaaaa"
    odd = runtime_dir() / "shm-99999999999999999999-aaaaaaaaaaaa"
    bogus.write_bytes(b"")
    odd.mkdir(mode=0o700)
    try:
        remove_dead_channels(runtime_dir())
        assert bogus.exists() and odd.exists()  # not ours to judge: left alone
    finally:
        bogus.unlink()
        odd.rmdir()


def test_the_lock_file_is_never_followed_through_a_link(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / "p.sock.lock").symlink_to(victim)
    with pytest.raises(EndpointError, match="cannot open the lock file"):
        PolicyServer(ServerConfig.load(write_cfg(tmp_path)))
    assert victim.read_text() == "keep me"


def test_values_beyond_float32_are_refused(pose_server):
    names = RobotConfig.load("go2").joint_names
    c = PolicyClient(pose_server.srv.endpoint)
    c.hello(joint_names=names)
    obs = go2_obs(names, np.random.default_rng(0))
    obs["state"]["q"] = obs["state"]["q"].astype(np.float64)
    obs["state"]["q"][0] = 1e300  # finite as float64, inf as the model's float32
    with pytest.raises(PolicyError, match="bad_observation.*not finite after conversion to float32"):
        c.infer(obs)
    c.close()

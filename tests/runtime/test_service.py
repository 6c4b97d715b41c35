"""The service (`vertebra run`) in this process, on the in-process simulator in real time (the Go2
hanging in its hoist): the control API's
leases and gates, e-stop without a lease, bad and fuzzed requests, episodes and policy swaps, the
systemd watchdog against a stalled driver, and the TCP endpoint's client allowlist.

The end-to-end test over DDS, in separate processes, is test_service_e2e.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import msgpack
import pytest
import yaml

from vertebra.runtime.config import REPO_ROOT
from vertebra.runtime.deploy import DeployConfig
from vertebra.runtime.service.client import ControlClient, ControlError, ServiceUnreachable
from vertebra.runtime.service.notify import Notifier, NotifyListener
from vertebra.runtime.service.service import Service, ServiceError


def second_package(tmp: Path) -> Path:
    """A second policy for swaps: the shipped go2_pose package under another name."""
    dst = tmp / "go2_pose_b"
    shutil.copytree(REPO_ROOT / "policies" / "packages" / "go2_pose", dst)
    meta = yaml.safe_load((dst / "policy.yaml").read_text())
    meta["name"], meta["version"] = "go2_pose_b", "2"
    (dst / "policy.yaml").write_text(yaml.safe_dump(meta))
    return dst


def doubtful_package(tmp: Path) -> Path:
    """go2_pose with a feasibility output: it says it cannot comply with a roll command above about
    0.005 rad (feasible = sigmoid(50 - 1000 x the normalised roll))."""
    import onnx
    from onnx import TensorProto, helper
    from vertebra.policies.package import sha256_file

    dst = tmp / "go2_pose_doubtful"
    shutil.copytree(REPO_ROOT / "policies" / "packages" / "go2_pose", dst)
    model = onnx.load(str(dst / "model.onnx"))
    g = model.graph
    g.node.extend([helper.make_node("MatMul", ["command", "Wf"], ["roll_logit"]),
                   helper.make_node("Add", ["roll_logit", "bf"], ["logit"]),
                   helper.make_node("Sigmoid", ["logit"], ["feasible"])])
    g.initializer.extend([helper.make_tensor("Wf", TensorProto.FLOAT, [4, 1], [-1000.0, 0.0, 0.0, 0.0]),
                          helper.make_tensor("bf", TensorProto.FLOAT, [1], [50.0])])
    g.output.append(helper.make_tensor_value_info("feasible", TensorProto.FLOAT, [1, 1]))
    onnx.save(model, str(dst / "model.onnx"))
    meta = yaml.safe_load((dst / "policy.yaml").read_text())
    meta["name"] = "go2_pose_doubtful"
    meta["model"]["sha256"] = sha256_file(dst / "model.onnx")
    meta["outputs"]["feasibility"] = {"output": "feasible"}
    (dst / "policy.yaml").write_text(yaml.safe_dump(meta))
    return dst


def write_deploy(tmp: Path, **extra) -> Path:
    server = {"robot": "go2", "default": "go2_pose",
              "policies": {"go2_pose": {"kind": "package", "path": str(REPO_ROOT / "policies/packages/go2_pose")},
                           "go2_pose_b": {"kind": "package", "path": str(second_package(tmp))},
                           "go2_pose_doubtful": {"kind": "package", "path": str(doubtful_package(tmp))}}}
    (tmp / "server.yaml").write_text(yaml.safe_dump(server))
    d = {"robot": "go2", "driver": {"type": "mujoco"}, "controller": "pd", "policy": str(tmp / "server.yaml"),
         "active_policy": "go2_pose", "guard": {"enabled": False},
         "control": {"socket": str(tmp / "ctl.sock"), "lease_timeout_s": 0.5},
         "loop": {"rate_hz": 500, "lockstep": False, "realtime_priority": True}, **extra}
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("VERTEBRA_LOG_DIR", str(tmp_path / "log"))
    listener = NotifyListener()
    svc = Service(DeployConfig.load(write_deploy(tmp_path)),
                  notifier=Notifier(listener.env(watchdog_usec=400_000, watchdog_pid=os.getpid())),
                  runtime_overrides={"fault_injection": True})
    svc.start()
    svc.listener = listener
    clients: list[ControlClient] = []

    def client(name: str) -> ControlClient:
        c = ControlClient(f"ipc://{tmp_path / 'ctl.sock'}", name, timeout_s=5.0)
        clients.append(c)
        return c

    svc.client = client
    yield svc
    for c in clients:
        c.close()
    svc.stop()
    listener.close()


def wait_for(pred, timeout_s=10.0, what="condition"):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def events(svc, text=None):
    out = svc.rt.event_list()
    return [e for e in out if text is None or e.get("text") == text]


def test_boots_passive_ready_and_never_arms_without_an_operator(service):
    ready = service.listener.wait_for("READY", "1")
    assert "PASSIVE" in ready.get("STATUS", "")
    c = service.client("viewer")
    s = c.request("status")
    assert s["safety_mode"] == "PASSIVE" and not s["enabled"] and s["lease"] is None
    assert s["policy"]["name"] == "go2_pose" and s["policy"]["server"] == "running"
    time.sleep(0.3)
    assert c.request("status")["safety_mode"] == "PASSIVE"
    service.listener.wait_for("WATCHDOG", "1")


def test_moving_needs_the_lease_and_estop_needs_none(service):
    op, other = service.client("operator"), service.client("visitor")
    for t in ("enable", "stand", "activate", "hold"):
        with pytest.raises(ControlError) as e:
            other.request(t, lease="0" * 32)
        assert e.value.code == "no_lease"
    op.acquire()
    with pytest.raises(ControlError) as e:
        other.acquire()
    assert e.value.code == "lease_held" and "operator" in str(e.value)
    op.call("enable")
    op.call("stand", duration_s=1.0)
    wait_for(lambda: op.request("status")["safety_mode"] == "HOLD", what="HOLD after stand")
    # e-stop from a client without the lease: the next tick
    assert other.request("estop")["safety_mode"] == "ESTOP"
    wait_for(lambda: op.request("status")["safety_mode"] == "ESTOP", 2.0, "ESTOP")
    with pytest.raises(ControlError) as e:  # releasing needs the lease
        other.request("estop_release", lease="0" * 32)
    assert e.value.code == "no_lease"
    op.call("estop_release")
    assert op.request("status")["safety_mode"] == "DAMP"
    assert [ev["by"] for ev in events(service, "estop")] == ["visitor"]


def test_lease_take_over_is_an_event_and_the_old_token_is_dead(service):
    a, b = service.client("alice"), service.client("bob")
    a.acquire(keep_alive=False)
    old = a.token
    b.acquire(force=True)
    with pytest.raises(ControlError) as e:
        a.request("enable", lease=old)
    assert e.value.code == "no_lease"
    taken = events(service, "lease_taken")
    assert taken and taken[-1]["holder"] == "bob" and taken[-1]["previous"] == "alice"


def test_a_stale_lease_holds_then_stops_an_active_robot(service):
    c = service.client("operator")
    c.acquire(keep_alive=False)  # retained by hand below, until the client "dies"
    c.call("enable")
    c.call("stand", duration_s=1.0)

    def holding() -> bool:
        c.call("lease_retain")
        return c.request("status")["safety_mode"] == "HOLD"

    wait_for(holding, what="HOLD")
    c.call("episode_start", instruction="hold a pose", command=[0.0, 0.0, 0.0, 0.0])
    assert c.request("status")["safety_mode"] == "ACTIVE"
    # no retain from now on: stale after 0.5 s -> HOLD; after as long again -> controlled stop
    wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", 3.0, "HOLD on a stale lease")
    wait_for(lambda: c.request("status")["safety_mode"] in ("STOPPING", "DAMP"), 3.0, "the controlled stop")
    actions = [e["action"] for e in events(service, "lease_stale")]
    assert actions == ["hold", "controlled stop"]
    assert events(service, "episode_end")[-1]["outcome"] == "aborted"
    # a stale lease moves nothing until it is retained again
    wait_for(lambda: c.request("status")["safety_mode"] == "DAMP", 10, "DAMP after the stop")
    with pytest.raises(ControlError) as e:
        c.call("stand", duration_s=1.0)
    assert e.value.code == "lease_stale"
    c.call("lease_retain")
    c.call("stand", duration_s=1.0)
    with pytest.raises(ControlError) as e:  # one stand at a time: the second moves nothing
        c.call("stand", duration_s=3.0)
    assert e.value.code == "busy"


def test_a_policy_that_cannot_comply_moves_nothing_and_says_so(service):
    c = service.client("operator")
    c.acquire()
    c.call("policy_swap", name="go2_pose_doubtful")
    c.call("enable")
    c.call("stand", duration_s=1.0)
    wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", what="HOLD")
    with pytest.raises(ControlError) as e:
        c.call("episode_start", instruction="roll", command=[0.1, 0.0, 0.0, 0.0])
    assert e.value.code == "cannot_comply" and "go2_pose_doubtful" in str(e.value)
    s = c.request("status")
    assert s["safety_mode"] == "HOLD" and s["episode"] is None and not s["policy"]["running"]
    assert s["policy"]["cannot_comply"]["instruction"] == "roll" and s["policy"]["cannot_comply"]["feasible"] < 0.5
    ev = events(service, "cannot_comply")
    assert ev and ev[-1]["by"] == "operator" and ev[-1]["policy"] == "go2_pose_doubtful"
    assert not events(service, "episode_start")
    # a command it can do starts as usual, and the refusal is cleared
    c.call("episode_start", instruction="level", command=[0.0, 0.0, 0.0, 0.0])
    s = c.request("status")
    assert s["safety_mode"] == "ACTIVE" and s["policy"]["running"] and s["policy"]["cannot_comply"] is None
    c.call("episode_stop")


def test_episode_and_swap_through_reload_leave_no_tick_without_a_target(service, tmp_path):
    c = service.client("operator")
    c.acquire()
    c.call("enable")
    c.call("stand", duration_s=1.0)
    wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", what="HOLD")
    c.call("episode_start", instruction="pitch", command=[0.0, 0.1, 0.0, 0.0])
    time.sleep(0.5)
    s0 = c.request("status")
    assert s0["safety_mode"] == "ACTIVE" and s0["mode"] == "joint_pd" and s0["policy"]["running"]
    starved0 = s0["chunks"]["starved_ticks"]
    # edit the deploy config's active policy, then reload
    path = tmp_path / "deploy.yaml"
    d = yaml.safe_load(path.read_text())
    d["active_policy"] = "go2_pose_b"
    d["loop"]["rate_hz"] = 250
    path.write_text(yaml.safe_dump(d))
    r = c.call("reload", timeout_s=60)
    assert r["changed"] and r["policy"] == "go2_pose_b" and r["restart_needed_for"] == ["loop"]
    time.sleep(0.5)
    s1 = c.request("status")
    assert s1["policy"]["name"] == "go2_pose_b" and s1["safety_mode"] == "ACTIVE" and not s1["faults"]
    assert s1["chunks"]["starved_ticks"] == starved0, "a tick went without a target across the swap"
    swaps = events(service, "policy_swapped")
    assert swaps[-1]["from"] == "go2_pose" and swaps[-1]["to"] == "go2_pose_b" and swaps[-1]["during_episode"]
    # a manual swap back, then a reload of the unchanged file: the file does not undo it
    assert c.call("policy_swap", name="go2_pose", timeout_s=60)["changed"]
    r = c.call("reload", timeout_s=60)
    assert "changed" not in r and c.request("status")["policy"]["name"] == "go2_pose"
    ep = c.call("episode_stop", outcome="success")["episode"]
    assert ep["outcome"] == "success" and ep["policy"] == "go2_pose"
    assert c.request("status")["safety_mode"] == "HOLD"


def test_a_package_that_does_not_fit_is_refused_at_swap(service, tmp_path):
    bad = tmp_path / "g1_server.yaml"
    c = service.client("operator")
    c.acquire()
    with pytest.raises(ControlError) as e:
        c.call("policy_swap", name="nope")
    assert e.value.code == "refused" and "go2_pose_b" in str(e.value)
    assert bad.exists() is False
    assert c.request("policy_list")["active"] == "go2_pose"


def test_bad_and_fuzzed_requests_get_errors_and_the_service_keeps_running(service):
    import random

    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{service.server.socket_path}")
    cases = [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"v": 2, "type": "status"}),
             msgpack.packb({"v": 1, "type": "nope"}), msgpack.packb({"v": 1, "type": "targets", "lease": "x"}),
             msgpack.packb({"v": 1, "type": "status", "extra": 1}),
             msgpack.packb({"v": 1, "type": "targets", "lease": "x", "targets": {"com": [float("nan")] * 3}}),
             msgpack.packb({"v": 1, "type": "estop", "id": True}), b"\x00" * (2 << 20)]
    rng = random.Random(7)
    good = msgpack.packb({"v": 1, "type": "status", "id": 5})
    for _ in range(200):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cases.append(bytes(b))
    codes = set()
    for frame in cases:
        sock.send(frame)
        assert sock.poll(5000), "no answer"
        reply = msgpack.unpackb(sock.recv(), raw=False)
        assert reply["type"] in ("error", "status_reply")
        if reply["type"] == "error":
            codes.add(reply["code"])
    sock.close(0)
    assert {"malformed", "version", "unknown_type", "schema", "too_large"} <= codes
    s = service.client("after").request("status")
    assert s["service"] == "running" and s["safety_mode"] == "PASSIVE"


def test_the_watchdog_stops_when_the_loop_is_stalled(service):
    lis = service.listener
    lis.wait_for("WATCHDOG", "1")
    pings = service.pinger.pings
    wait_for(lambda: service.pinger.pings >= pings + 2, 3.0, "regular pings")
    service.rt.injector.set_read_stall_us(3_000_000)  # the driver's read hangs: each tick takes 3 s
    time.sleep(0.3)
    stalled = service.pinger.pings
    time.sleep(1.2)  # three watchdog periods (0.2 s each) at least
    assert service.pinger.pings <= stalled + 1 and service.pinger.skipped >= 2
    service.rt.injector.set_read_stall_us(0)
    wait_for(lambda: service.pinger.pings > stalled + 1, 10.0, "pings again once the loop ticks")


def test_a_lockstep_deploy_config_is_refused(tmp_path):
    path = write_deploy(tmp_path)
    d = yaml.safe_load(path.read_text())
    d["loop"]["lockstep"] = True
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ServiceError, match="real time"):
        Service(DeployConfig.load(path), notifier=Notifier({}))


def test_an_unknown_tcp_client_is_refused_before_its_request_is_decoded(tmp_path, monkeypatch):
    import zmq.auth

    monkeypatch.setenv("VERTEBRA_LOG_DIR", str(tmp_path / "log"))
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys), "friend")
    zmq.auth.create_certificates(str(keys), "stranger")
    shutil.copy(keys / "friend.key", allowed / "friend.key")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path = write_deploy(tmp_path)
    d = yaml.safe_load(path.read_text())
    d["control"].update(tcp=f"tcp://127.0.0.1:{port}",
                        curve={"enabled": True, "server_secret_key": str(keys / "server.key_secret"),
                               "allowed_clients": str(allowed)})
    d.pop("policy"), d.pop("active_policy")
    path.write_text(yaml.safe_dump(d))
    svc = Service(DeployConfig.load(path), notifier=Notifier({}))
    svc.start()
    try:
        ep = f"tcp://127.0.0.1:{port}"
        friend = ControlClient(ep, "friend", server_public_key=str(keys / "server.key"),
                               client_secret_key=str(keys / "friend.key_secret"), timeout_s=5.0)
        assert friend.request("status")["safety_mode"] == "PASSIVE"
        before = svc.server.requests
        stranger = ControlClient(ep, "stranger", server_public_key=str(keys / "server.key"),
                                 client_secret_key=str(keys / "stranger.key_secret"), timeout_s=1.0)
        with pytest.raises(ServiceUnreachable):
            stranger.request("estop")
        assert svc.server.requests == before, "the stranger's request reached the decoder"
        assert friend.request("status")["safety_mode"] == "PASSIVE"
        stranger.close()
        friend.close()
    finally:
        svc.stop()


def test_sigterm_stops_in_a_controlled_way_and_a_second_one_damps_at_once(service):
    import signal

    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        service.install_signals()
        c = service.client("operator")
        c.acquire()
        c.call("enable")
        c.call("stand", duration_s=1.0)
        wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", what="HOLD")
        signal.raise_signal(signal.SIGTERM)  # the first: the controlled stop (run() would call stop())
        assert service._stop.is_set() and service.rt.loop.snapshot()["safety_mode"] == "HOLD"
        signal.raise_signal(signal.SIGTERM)  # the second: damping at once
        wait_for(lambda: service.rt.loop.snapshot()["safety_mode"] == "ESTOP", 2.0, "ESTOP")
        service.stop()
        ev = service.rt.event_list()
        modes = [e["to"] for e in ev if e.get("kind") == "mode"]
        assert "STOPPING" not in modes and modes[-1] == "ESTOP"
        stop = [e for e in ev if e.get("text") == "service_stop"][-1]
        assert stop["cut"] is True and stop["safety_mode"] == "ESTOP"
        assert service.listener.wait_for("STOPPING", "1")
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])


def test_a_dead_policy_server_is_restarted(service):
    c = service.client("viewer")
    pid = service.policy.server.proc.pid
    os.kill(pid, 9)
    wait_for(lambda: c.request("status")["policy"]["restarts"] == 1 and
             c.request("status")["policy"]["server"] == "running", 60, "the policy server back")
    assert service.policy.server.proc.pid != pid
    states = [e["state"] for e in events(service, "policy_server")]
    assert states[:3] == ["running", "exited", "running"]


def test_a_remote_policy_server_runs_episodes_and_swaps(tmp_path, monkeypatch):
    """A server this service does not start (its own unit, or an off-board box): reached, checked
    against the robot from what it says it runs, swapped there."""
    from vertebra.policies.evaluate import ServerProcess
    from vertebra.runtime.service.policy_host import PolicyRefused

    monkeypatch.setenv("VERTEBRA_LOG_DIR", str(tmp_path / "log"))
    path = write_deploy(tmp_path)
    server_cfg = yaml.safe_load((tmp_path / "server.yaml").read_text())
    server = ServerProcess(config=server_cfg, prefix="remote-")
    try:
        server.client(["x"], shared_memory=False).close()  # wait until it answers
        server._client = None
        d = yaml.safe_load(path.read_text())
        d.pop("policy")
        d["policy_remote"] = {"endpoint": server.endpoint}
        path.write_text(yaml.safe_dump(d))
        svc = Service(DeployConfig.load(path), notifier=Notifier({}))
        svc.start()
        try:
            c = ControlClient(f"ipc://{tmp_path / 'ctl.sock'}", "operator", timeout_s=10)
            c.acquire()
            s = c.request("status")
            assert s["policy"]["server"] == "remote" and s["policy"]["name"] == "go2_pose"
            assert set(s["policy"]["available"]) == {"go2_pose", "go2_pose_b", "go2_pose_doubtful"}
            c.call("enable")
            c.call("stand", duration_s=1.0)
            wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", what="HOLD")
            c.call("episode_start", instruction="pose", command=[0.0, 0.0, 0.05, 0.0])
            r = c.call("policy_swap", name="go2_pose_b", timeout_s=60)
            assert r["changed"] and r["from"] == "go2_pose"
            steps = c.request("status")["policy"]["steps"]
            wait_for(lambda: c.request("status")["policy"]["steps"] > steps + 10, 5, "chunks from the new policy")
            s = c.request("status")
            assert s["policy"]["name"] == "go2_pose_b" and s["safety_mode"] == "ACTIVE" and not s["faults"]
            c.close()
        finally:
            svc.stop()
        d["policy_remote"] = {"endpoint": f"ipc://{tmp_path / 'nobody.sock'}", "timeout_s": 0.5}
        path.write_text(yaml.safe_dump(d))
        nobody = Service(DeployConfig.load(path), notifier=Notifier({}))
        with pytest.raises(PolicyRefused, match="did not answer"):
            nobody.start()
        nobody.stop()
    finally:
        server.close()


def test_the_recording_holds_the_services_episodes_and_interventions(service):
    from vertebra.tools.data import reader

    c = service.client("operator")
    c.acquire()
    c.call("enable")
    c.call("stand", duration_s=1.0)
    wait_for(lambda: c.request("status")["safety_mode"] == "HOLD", what="HOLD")
    c.call("episode_start", instruction="lean forward", command=[0.0, 0.1, 0.0, 0.0])
    time.sleep(0.3)
    c.call("intervention", on=True)
    time.sleep(0.2)
    c.call("intervention", on=False)
    time.sleep(0.2)
    c.call("episode_stop", outcome="failure", reason="too slow")
    time.sleep(1.2)  # past the writer's fsync interval: read the recording while it goes on
    run = reader.load_run(service.rt.recorder.run_dir)
    (ep,) = run.episodes
    assert (ep.instruction, ep.policy, ep.outcome, ep.reason) == ("lean forward", "go2_pose", "failure", "too slow")
    (iv,) = ep.interventions
    assert iv["by"] == "operator" and iv["end_s"] > iv["start_s"] > ep.start_s and ep.end_s > iv["end_s"]
    assert run.lost == 0 and run.ticks > 0

"""The service as it runs on a robot, in separate processes over DDS: the sim bridge stands in for the
robot (real time, on lo), `vertebra guard` watches, `vertebra run` serves under a fake systemd
($NOTIFY_SOCKET), and the operator's tools (`vertebra status`, `estop`, `reload`, `recover`) are the
command lines an operator types. The test process is the engineer at the hoist and the operator's
client (lease, teleop targets, episode)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from vertebra.drivers.bridge_process import BridgeProcess
from vertebra.runtime.config import REPO_ROOT
from vertebra.runtime.service.client import ControlClient, ControlError
from vertebra.runtime.service.notify import NotifyListener
from vertebra.safety.events import iter_events
from vertebra.safety.guard import guard_state

VERTEBRA = os.path.join(os.path.dirname(sys.executable), "vertebra")
_domains = itertools.count(400)


def domain() -> int:
    return 100 + (os.getpid() * 7 + next(_domains)) % 120


def cli(*args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
    p = subprocess.run([VERTEBRA, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"vertebra {' '.join(args)} exited {p.returncode}: {p.stdout}\n{p.stderr}")
    return p


def wait_for(pred, timeout_s=15.0, what="condition"):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


REMOTE_ENABLE = (1 << 2) | (1 << 8)  # start + A


def write_deploy(tmp: Path, robot: str, dom: int, with_policy: bool, controller: str = "wbc") -> Path:
    d: dict = {"robot": robot, "driver": {"type": "unitree_dds", "network_interface": "lo", "domain_id": dom},
               "controller": controller, "use_estimator": True,
               # a stalled (alive) runtime is taken over after 200 ms: a loaded CI machine's hiccups are not
               # takeovers; a killed one is seen at once whatever the timeout (the guard watches its process)
               "guard": {"enabled": True, "heartbeat": f"vertebra-test-{os.getpid()}-{dom}", "timeout_ms": 200},
               "control": {"socket": str(tmp / "ctl.sock"), "remote_enable_buttons": REMOTE_ENABLE,
                           "remote_enable_s": 0.5},
               "loop": {"rate_hz": 500, "lockstep": False, "realtime_priority": True}}
    if with_policy:
        b = tmp / "go2_pose_b"
        shutil.copytree(REPO_ROOT / "policies/packages/go2_pose", b)
        meta = yaml.safe_load((b / "policy.yaml").read_text())
        meta["name"] = "go2_pose_b"
        (b / "policy.yaml").write_text(yaml.safe_dump(meta))
        server = {"robot": robot, "default": "go2_pose",
                  "policies": {"go2_pose": {"kind": "package", "path": str(REPO_ROOT / "policies/packages/go2_pose")},
                               "go2_pose_b": {"kind": "package", "path": str(b)}}}
        (tmp / "server.yaml").write_text(yaml.safe_dump(server))
        d.update(policy=str(tmp / "server.yaml"), active_policy="go2_pose")
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


class Stack:
    """Bridge, guard and service processes for one deploy config."""

    def __init__(self, tmp: Path, robot: str, with_policy: bool, controller: str = "wbc"):
        self.tmp, self.dom, self.robot = tmp, domain(), robot
        self.deploy = write_deploy(tmp, robot, self.dom, with_policy, controller)
        self.heartbeat = yaml.safe_load(self.deploy.read_text())["guard"]["heartbeat"]
        self.env = dict(os.environ, VERTEBRA_LOG_DIR=str(tmp / "log"), OMP_NUM_THREADS="1")
        self.procs: list[subprocess.Popen] = []
        self.bridge = BridgeProcess(robot, domain_id=self.dom, interface="lo", lockstep=False, noise=False)
        self.guard = self._spawn("guard", "--config", str(self.deploy), "--quiet")
        wait_for(lambda: (guard_state(self.heartbeat) or {}).get("state") == "watching", 30, "the guard watching")
        self.notify = NotifyListener()
        self.events_path = tmp / "events.jsonl"
        self.service = self._spawn("run", "--config", str(self.deploy), "--event-log", str(self.events_path),
                                   env=self.notify.env(watchdog_usec=1_000_000))

    def _spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        p = subprocess.Popen([VERTEBRA, *args], env={**self.env, **(env or {})}, stdout=subprocess.DEVNULL,
                             stderr=open(self.tmp / f"{args[0]}.log", "ab"))
        self.procs.append(p)
        return p

    def client(self, name: str) -> ControlClient:
        return ControlClient(f"ipc://{self.tmp / 'ctl.sock'}", name, timeout_s=5.0)

    def events(self, text: str | None = None) -> list[dict]:
        return [e for e in iter_events(self.events_path) if text is None or e.get("text") == text]

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in reversed(self.procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.notify.close()
        self.bridge.close()
        from vertebra import _rt

        _rt.Heartbeat.unlink(self.heartbeat)


@pytest.fixture
def stack_factory(tmp_path):
    made: list[Stack] = []

    def make(robot: str, with_policy: bool = False, controller: str = "wbc") -> Stack:
        s = Stack(tmp_path, robot, with_policy, controller)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def stand(s: Stack, op: ControlClient, lower: bool = True) -> None:
    """enable -> STANDUP -> HOLD in the hoist, then the engineer lowers and releases it."""
    op.call("enable")
    op.call("stand", duration_s=2.0)
    wait_for(lambda: op.request("status")["safety_mode"] == "HOLD", 15, "HOLD after the stand-up")
    if lower:
        lower_and_release(s)


def lower_and_release(s: Stack) -> None:
    from vertebra.runtime.config import RobotConfig

    info = s.bridge.call("info")
    standing = float(info["standing_height_m"])
    speed = RobotConfig.load(s.robot).sim.hoist.lower_speed_m_s
    s.bridge.hoist_lower_to(standing - 0.10, speed)
    time.sleep((float(info["hoist_anchor_z"]) - standing + 0.10) / speed + 0.5)
    s.bridge.hoist_release()
    time.sleep(1.0)
    z = float(s.bridge.base_truth()["base_pos"][2])
    assert abs(z - standing) < 0.03, f"standing at {z:.3f} m (standing height {standing:.3f} m)"


def test_service_end_to_end_over_dds(stack_factory):
    s = stack_factory("go2", with_policy=True)
    # systemd: READY=1 once the loop ticks with fresh state, then WATCHDOG=1 regularly
    s.notify.wait_for("READY", "1", timeout_s=60)
    first = s.notify.count("WATCHDOG", "1")
    wait_for(lambda: s.notify.count("WATCHDOG", "1") >= first + 3, 5, "watchdog pings")
    st = json.loads(cli("status", "--config", str(s.deploy), "--json").stdout)
    assert st["safety_mode"] == "PASSIVE" and st["guard"]["watching"] and st["lease"] is None
    assert set(st["remote"]) >= {"buttons", "lx", "ly", "rx", "ry"}  # the wireless remote, for teleop

    op = s.client("operator")
    op.acquire()
    stand(s, op)
    # teleop: the whole-body controller's base target moves the body (the Go2 has no hands)
    op.call("activate")
    z0 = float(s.bridge.base_truth()["base_pos"][2])
    base = op.request("status")["base"]
    pos = np.asarray(base["pos"], float) - [0.0, 0.0, 0.03]
    op.call("targets", targets={"base": [*map(float, pos), *base["quat"]]})
    time.sleep(1.5)
    assert float(s.bridge.base_truth()["base_pos"][2]) < z0 - 0.015, "the CoM target did not lower the body"
    op.call("hold")
    # a policy episode
    op.call("episode_start", instruction="pitch down", command=[0.0, 0.1, 0.0, 0.0])
    time.sleep(2.0)
    st = op.request("status")
    assert st["safety_mode"] == "ACTIVE" and st["mode"] == "joint_pd" and st["policy"]["steps"] > 50
    assert not st["faults"], st["faults"]
    starved = st["chunks"]["starved_ticks"]
    # policy swap through the deploy config and `vertebra reload`, during the episode
    d = yaml.safe_load(s.deploy.read_text())
    d["active_policy"] = "go2_pose_b"
    s.deploy.write_text(yaml.safe_dump(d))
    out = json.loads(cli("reload", "--config", str(s.deploy), "--lease", op.token, "--json").stdout)
    assert out["changed"] and out["policy"] == "go2_pose_b" and out["restart_needed_for"] == []
    time.sleep(1.0)
    st = op.request("status")
    assert st["policy"]["name"] == "go2_pose_b" and st["safety_mode"] == "ACTIVE" and not st["faults"]
    assert st["chunks"]["starved_ticks"] == starved, "ticks went without a target across the swap"
    # teleop input during the episode is an intervention: the policy pauses, the operator drives
    base = st["base"]
    op.call("targets", targets={"base": [*map(float, base["pos"]), *base["quat"]]})
    st = op.request("status")
    assert st["intervention"] and st["mode"] == "wbc" and not st["policy"]["running"]
    time.sleep(0.5)
    op.call("intervention", on=False)  # back to the policy
    st = op.request("status")
    assert not st["intervention"] and st["mode"] == "joint_pd" and st["policy"]["running"]
    time.sleep(0.5)
    ep = op.call("episode_stop", outcome="success")["episode"]
    assert ep["outcome"] == "success" and len(ep["interventions"]) == 1 and "end" in ep["interventions"][0]
    assert [e.get("text") for e in s.events() if "intervention" in str(e.get("text"))] == \
        ["intervention_start", "intervention_end"]
    # e-stop from a second client without the lease
    cli("estop", "--config", str(s.deploy))
    wait_for(lambda: op.request("status")["safety_mode"] == "ESTOP", 2, "ESTOP")
    # recover: reset, stand up from the damped pose, HOLD
    time.sleep(1.0)
    rec = cli("recover", "--config", str(s.deploy), "--lease", op.token, "--yes", "--json", timeout=60)
    assert json.loads(rec.stdout)["safety_mode"] == "HOLD"
    # SIGTERM: STOPPING=1 and the controlled stop before exit
    s.service.send_signal(signal.SIGTERM)
    s.notify.wait_for("STOPPING", "1", timeout_s=5)
    assert s.service.wait(30) == 0
    ev = s.events()
    texts = [e.get("text") for e in ev]
    for t in ("service_start", "lease_acquired", "stand", "episode_start", "policy_swapped", "episode_end", "estop",
              "estop_release", "service_stopping", "service_stop"):
        assert t in texts, f"no {t} event"
    stop = [e for e in ev if e.get("text") == "service_stopping"][-1]
    assert stop["action"] == "controlled stop"
    modes = [e["to"] for e in ev if e.get("kind") == "mode" and e["wall_ns"] >= stop["wall_ns"]]
    assert "STOPPING" in modes and modes[-1] == "DAMP"
    # a clean stop is not a dead runtime: the guard keeps watching, it does not take over
    assert guard_state(s.heartbeat)["state"] == "watching"


def test_g1_teleop_hand_then_a_killed_runtime_is_guarded_and_comes_back_passive(stack_factory):
    s = stack_factory("g1")
    s.notify.wait_for("READY", "1", timeout_s=60)
    op = s.client("operator")
    op.acquire()
    # the enable from the robot's wireless remote: start + A held (a moment is not enough)
    s.bridge.call("set_remote", buttons=REMOTE_ENABLE)
    time.sleep(0.2)
    s.bridge.call("set_remote", buttons=0)
    time.sleep(0.8)
    assert not op.request("status")["enabled"]
    s.bridge.call("set_remote", buttons=REMOTE_ENABLE)
    wait_for(lambda: op.request("status")["enabled"], 5, "the remote's enable")
    s.bridge.call("set_remote", buttons=0)
    assert [e["by"] for e in s.events("enable")] == ["remote"]
    stand(s, op, lower=False)
    with pytest.raises(ControlError, match="no foot carries the robot"):  # hanging: no whole-body control
        op.call("activate")
    lower_and_release(s)
    op.call("activate")
    hand = op.request("hello")["hands"][0]
    p0 = np.asarray(op.request("status")["hands"][hand])
    goal = p0 + [0.05, 0.0, 0.05]
    op.call("targets", targets={hand: [float(v) for v in goal]})
    time.sleep(1.5)
    p1 = np.asarray(op.request("status")["hands"][hand])
    assert np.linalg.norm(p1 - goal) < 0.02, f"the hand is at {p1}, its target {goal}"
    op.call("hold")
    # `vertebra teleop` itself, at a terminal (a pty): w moves the hand forward, q quits
    op.give_back()
    import pty

    before = {h: np.asarray(v) for h, v in op.request("status")["hands"].items()}
    master, slave = pty.openpty()
    tele = subprocess.Popen([VERTEBRA, "teleop", "--config", str(s.deploy), "--step-m", "0.02"], stdin=slave,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=s.env)
    os.close(slave)
    try:
        time.sleep(2.0)  # connected, lease taken
        for _ in range(3):
            os.write(master, b"w")
            time.sleep(0.15)
        time.sleep(1.0)
        after = {h: np.asarray(v) for h, v in op.request("status")["hands"].items()}
        moved = max(float(after[h][0] - before[h][0]) for h in before)
        os.write(master, b"q")
        assert tele.wait(15) == 0, tele.stderr.read().decode()
    finally:
        if tele.poll() is None:
            tele.kill()
        os.close(master)
    assert moved > 0.03, f"teleop moved a hand {moved:.3f} m forward (3 presses of 0.02 m)"
    st = op.request("status")
    assert st["safety_mode"] == "HOLD" and st["lease"] is None
    op.acquire()
    # the runtime dies while the robot stands: the guard takes the bus and damps it
    takeovers = guard_state(s.heartbeat)["takeovers"]
    s.service.send_signal(signal.SIGKILL)
    s.service.wait(10)
    g = wait_for(lambda: (lambda g: g if g["state"] == "holding" else None)(guard_state(s.heartbeat)), 5, "takeover")
    assert g["takeovers"] == takeovers + 1
    # it was standing: the guard runs the settle-then-cut poses, then damping
    def damping() -> bool:
        cmd = s.bridge.last_command()
        return bool(np.all(np.asarray(cmd["kp"]) == 0.0) and np.all(np.asarray(cmd["kd"]) > 0.0))

    wait_for(damping, 15, "the guard's damping after its settle")
    from vertebra.runtime.numerics import tilt_deg

    assert tilt_deg(s.bridge.base_truth()["base_quat"]) < 45.0, "the robot fell instead of settling"
    # a restarted service waits for the operator's acknowledgement before it takes the bus
    s.notify.clear()
    s.service = s._spawn("run", "--config", str(s.deploy), "--event-log", str(s.events_path),
                         env=s.notify.env(watchdog_usec=1_000_000))
    time.sleep(3.0)
    assert s.notify.count("READY", "1") == 0 and guard_state(s.heartbeat)["state"] == "holding"
    cli("guard", "ack", "--config", str(s.deploy))
    s.notify.wait_for("READY", "1", timeout_s=60)
    st = s.client("after").request("status")
    assert st["safety_mode"] == "PASSIVE" and st["previous_run"]["clean"] is False
    texts = [e.get("text") for e in s.events()]
    assert "previous_run" in texts and "guard_holding" in texts and "guard_released" in texts


def test_g1_walks_under_the_service_over_dds_and_the_walk_deadman_stops_it_standing(stack_factory):
    """The service under controller: walk, the G1 over DDS against the sim bridge in another process, on
    the state estimator in real time: walk requests within the safety config's bounds walk it, one beyond
    them is refused, and a client that stops renewing its command leaves the robot standing, not walking."""
    from vertebra.runtime.numerics import tilt_deg

    s = stack_factory("g1", controller="walk")
    s.notify.wait_for("READY", "1", timeout_s=60)
    op = s.client("operator")
    op.acquire()
    assert op.request("hello")["base_velocity"] == {"max_vx_m_s": 0.6, "max_vy_m_s": 0.2, "max_wz_rad_s": 0.6}
    stand(s, op)
    with pytest.raises(ControlError, match="walking needs ACTIVE"):
        op.call("walk", vx=0.2, vy=0.0, wz=0.0)
    op.call("activate")
    with pytest.raises(ControlError, match=r"refused.*\|vx\| 0.9 m/s > 0.6 m/s"):
        op.call("walk", vx=0.9, vy=0.0, wz=0.0)
    with pytest.raises(ControlError, match="while walking only hand targets"):
        op.call("targets", targets={"com": [0.0, 0.0, 0.7]})
    x0 = float(s.bridge.base_truth()["base_pos"][0])
    end = time.monotonic() + 4.0
    while time.monotonic() < end:  # renewed well within the 0.5 s deadman
        op.call("walk", vx=0.25, vy=0.0, wz=0.0)
        time.sleep(0.1)
    st = op.request("status")
    assert st["walk"]["phase"] == "walking" and st["walk"]["steps"] >= 3 and st["faults"] == [], st["walk"]
    x1 = float(s.bridge.base_truth()["base_pos"][0])
    assert x1 - x0 > 0.4, f"walked {x1 - x0:.2f} m in 4 s at 0.25 m/s"
    # no more renewals: the deadman lapses the command and the robot stops, standing
    wait_for(lambda: op.request("status")["walk"]["phase"] == "standing", 8, "the robot standing after the deadman")
    wait_for(lambda: s.events("walk_deadman"), 5, "the walk_deadman event")
    st = op.request("status")
    assert st["safety_mode"] == "ACTIVE" and st["walk"]["command"] == [0.0, 0.0, 0.0] and st["faults"] == []
    assert tilt_deg(s.bridge.base_truth()["base_quat"]) < 10.0
    # a hold while walking: HOLD mid-step would freeze the legs on one foot, so the walk stops first
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        op.call("walk", vx=0.2, vy=0.0, wz=0.0)
        time.sleep(0.1)
    assert op.request("status")["walk"]["phase"] == "walking"
    assert op.call("hold")["hold"].startswith("pending")
    wait_for(lambda: op.request("status")["safety_mode"] == "HOLD", 8, "HOLD once the walk stopped")
    st = op.request("status")
    assert st["walk"]["phase"] == "standing" and st["faults"] == [], st
    assert tilt_deg(s.bridge.base_truth()["base_quat"]) < 10.0

"""The guard (vertebra.safety.guard, cpp/drivers/unitree/dds_guard.hpp) and its heartbeat
(cpp/safety/heartbeat.hpp), over real Cyclone DDS on the loopback interface: a real-time sim bridge
in one process (the robot, hanging in its hoist), the guard in another (`vertebra guard`), and a
runtime in a third that a test SIGKILLs or freezes (SIGSTOP).

What is asserted is behaviour -- who commands the robot, what the commands are, which state the
guard is in, how many takeovers -- never a wall-clock time. Waits are bounded polls for DDS
discovery and process exits."""

import itertools
import os
import signal
import stat
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from vertebra import _rt
from vertebra.drivers.bridge_process import BridgeProcess
from vertebra.runtime.benchmarks.guard import GuardProcess, RuntimeChild, wait_until, write_deploy
from vertebra.runtime.cli import main as cli_main
from vertebra.runtime.config import RobotConfig, robot_params
from vertebra.runtime.service.notify import NotifyListener
from vertebra.safety.config import SAFETY_DIR
from vertebra.safety.guard import Guard, GuardError, acknowledge, guard_state

_domains = itertools.count(300)  # apart from the other DDS tests' counters


def domain() -> int:
    """A DDS domain of its own per use (and per concurrent test run)."""
    return 100 + (os.getpid() * 7 + next(_domains)) % 120


_names = itertools.count(0)


def hb_name(tag: str) -> str:
    return f"vertebra-test-{tag}-{os.getpid()}-{next(_names)}"


def command(n: int, base: float) -> dict:
    return {k: [base + 10 * j + i * 0.001 for i in range(n)]
            for j, k in enumerate(("q", "dq", "kp", "kd", "tau_ff"))}


# -- the heartbeat (no DDS) -------------------------------------------------------------------------

def test_the_heartbeat_layout_round_trips():
    name = hb_name("layout")
    try:
        hb = _rt.Heartbeat(name)
        path = Path("/dev/shm") / name
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_size == _rt.HEARTBEAT_SIZE == 1848
        raw = path.read_bytes()
        assert struct.unpack_from("<III", raw, 0) == (_rt.HEARTBEAT_MAGIC, 1, 1848)  # magic "VHRT", version, size
        assert guard_state(name)["state"] == "off" and guard_state(name)["guard_pid"] == 0

        hb.attach_runtime(2_000_000)
        hb.beat(7, "HOLD", True, command(29, 0.5))
        v = hb.read()
        r = v["runtime"]
        assert r["pid"] == os.getpid() and r["alive"] and r["epoch"] == 1 and r["period_ns"] == 2_000_000
        assert r["tick"] == 7 and r["safety_mode"] == "HOLD" and r["standing"] and r["heartbeat_age_ms"] >= 0
        last = hb.last_command()
        want = command(29, 0.5)
        assert last["consistent"]
        for k in ("q", "kp", "kd", "tau_ff"):
            np.testing.assert_array_equal(last[k], want[k])
        # The documented offsets (heartbeat.hpp), read as bytes by another process would.
        raw = path.read_bytes()
        assert struct.unpack_from("<i", raw, 64)[0] == os.getpid()
        assert struct.unpack_from("<QQ", raw, 80) == (1, 2_000_000)  # epoch, period
        assert struct.unpack_from("<Q", raw, 128)[0] == 7
        assert struct.unpack_from("<iI", raw, 144) == (3, 1)  # SafetyMode::kHold, standing
        assert struct.unpack_from("<i", raw, 160)[0] == 29
        assert struct.unpack_from("<d", raw, 168)[0] == want["q"][0]
        assert struct.unpack_from("<d", raw, 552)[0] == want["kp"][0]

        # A second handle (the guard's side) sees the same segment; acknowledgements count up.
        other = _rt.Heartbeat(name, False)
        assert other.read()["runtime"]["tick"] == 7
        assert other.request_ack() == 1 and hb.request_ack() == 2
        assert struct.unpack_from("<QQ", path.read_bytes(), 1832) == (2, 0)  # requested, done
        assert not acknowledge(name, 0.2)  # no guard runs: nobody answers
        hb.detach_runtime()
        assert hb.read()["runtime"]["pid"] == 0
    finally:
        _rt.Heartbeat.unlink(name)
    assert guard_state(name) is None
    with pytest.raises(RuntimeError, match="no runtime or guard has created it"):
        _rt.Heartbeat(name, False)


def test_a_segment_of_another_layout_is_refused_with_how_to_reset_it():
    name = hb_name("version")
    path = Path("/dev/shm") / name
    try:
        path.write_bytes(struct.pack("<III", _rt.HEARTBEAT_MAGIC, 2, 1848) + bytes(1848 - 12))
        with pytest.raises(RuntimeError, match=r"not a Vertebra heartbeat of this version \(magic 0x56485254, "
                                               r"version 2, size 1848; expected .*version 1.*rm /dev/shm/"):
            _rt.Heartbeat(name)
        path.write_bytes(bytes(100))
        with pytest.raises(RuntimeError, match="is 100 bytes; expected 1848"):
            _rt.Heartbeat(name)
        with pytest.raises(ValueError, match=r"name: found 'a/b'; valid: \[A-Za-z0-9_\]"):
            _rt.Heartbeat("a/b")
    finally:
        path.unlink(missing_ok=True)


def test_the_real_time_loop_writes_the_heartbeat_every_tick_and_detaches_on_stop():
    cfg = RobotConfig.load("g1")
    name = hb_name("loop")
    drv = _rt.MockDriver(0.05, 0.1, 0.0)
    drv.configure(cfg.joint_names, 500.0, cfg.column("kd_damping"))
    drv.activate()
    lc = _rt.LoopConfig()
    lc.rate_hz, lc.lockstep, lc.realtime_priority, lc.lock_memory = 500.0, False, False, False
    loop = _rt.RtLoop(drv, robot_params(cfg), lc, _rt.SafetyConfig())
    try:
        hb = _rt.Heartbeat(name)
        loop.set_heartbeat(hb)
        loop.start()
        wait_until(lambda: hb.read()["runtime"]["tick"] >= 20, "20 ticks")
        r = hb.read()["runtime"]
        assert r["pid"] == os.getpid() and r["alive"] and r["safety_mode"] == "PASSIVE" and not r["standing"]
        assert hb.last_command()["kp"].shape == (cfg.n_joints,)
        loop.stop()
        assert hb.read()["runtime"]["pid"] == 0  # a clean stop: no runtime for a guard to take over from
        with pytest.raises(Exception, match="set_heartbeat\\(\\) is configuration"):
            loop.set_heartbeat(hb)
        lc.lockstep = True
        lockstep = _rt.RtLoop(_rt.MockDriver(0.05, 0.1, 0.0), robot_params(cfg), lc, _rt.SafetyConfig())
        with pytest.raises(ValueError, match="a lockstep loop ticks only when asked"):
            lockstep.set_heartbeat(hb)
    finally:
        loop.stop()
        drv.deactivate()
        _rt.Heartbeat.unlink(name)


def test_the_guard_refuses_an_in_process_simulator_and_lockstep(tmp_path, capsys):
    with pytest.raises(GuardError, match="driver 'mujoco'.*an in-process simulator dies with its runtime, so there "
                                         "is nothing to guard.*unitree_dds"):
        Guard("g1_sim")
    assert cli_main(["guard", "--config", "g1_sim"]) == 2
    assert "nothing to guard" in capsys.readouterr().err
    dep = write_deploy(tmp_path, "lockstep", domain_id=domain(), heartbeat=hb_name("ls"))
    body = yaml.safe_load(dep.read_text())
    body["loop"]["lockstep"] = True
    dep.write_text(yaml.safe_dump(body))
    with pytest.raises(GuardError, match="lockstep: it ticks only when asked"):
        Guard(str(dep))


# -- the guard against a runtime process --------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The guard process and the deploy config a runtime child is built from (short settle keyframes,
    so a takeover reaches damping quickly), shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("guard")
    safety = yaml.safe_load((SAFETY_DIR / "g1.yaml").read_text())
    for k in safety["settle"]["keyframes"]:
        k["duration_s"] = 0.2
    safety["settle"]["hold_s"] = 0.1
    (tmp / "g1_safety.yaml").write_text(yaml.safe_dump(safety))
    dom = domain()
    name = hb_name("rig")
    # A generous timeout: a frozen runtime is still caught, and a loaded CI machine never trips it.
    # A killed one is caught by its process ending (PF_EXITING, the pidfd), whatever the timeout.
    deploy = write_deploy(tmp, "g1_guarded", domain_id=dom, heartbeat=name, timeout_ms=200.0, settle=True,
                          safety=str(tmp / "g1_safety.yaml"), realtime_priority=False)
    notify = NotifyListener()
    guard = GuardProcess(deploy, env=notify.env(watchdog_usec=200_000))  # as systemd runs the unit
    try:
        yield {"guard": guard, "deploy": deploy, "name": name, "domain": dom, "notify": notify,
               "kd_damping": RobotConfig.load("g1").column("kd_damping")}
    finally:
        assert guard.close() == 0
        notify.close()
        _rt.Heartbeat.unlink(name)


@pytest.fixture
def rig(guarded):
    """A fresh real-time sim bridge per test (the G1 hanging upright in its hoist) on the guard's domain."""
    bridge = BridgeProcess("g1", domain_id=guarded["domain"], lockstep=False)
    try:
        guarded["guard"].pump(0.0)
        yield {**guarded, "bridge": bridge, "events_at_start": len(guarded["guard"].events)}
    finally:
        bridge.close()


def started_child(rig) -> RuntimeChild:
    """A runtime child that took the robot (its driver activated), with the guard armed on it."""
    child = RuntimeChild(rig["deploy"])
    assert child.ready, child.error
    wait_until(lambda: (g := guard_state(rig["name"])) and g["armed"] and g["runtime"]["pid"] == child.pid,
               "the guard arming on the runtime")
    return child


def armed_child(rig) -> RuntimeChild:
    """A runtime child holding the default pose (HOLD: the heartbeat shows the robot standing)."""
    child = started_child(rig)
    try:
        st = child.call("arm", duration_s=0.5)
    except RuntimeError as e:
        raise AssertionError(f"{e}; runtime status: {child.call('status')}") from None
    assert st["safety_mode"] == "HOLD" and not st["faults"], st
    # The guard's writer exists while it watches; the driver does not count it (its user_data).
    assert st["lowcmd_writers"] == 0 and not st["lowcmd_conflict"] and not st["state_lowcmd_conflict"], st
    return child


def takeover_after(rig, takeovers0: int) -> dict:
    return wait_until(lambda: (g := guard_state(rig["name"])) and g["takeovers"] > takeovers0
                      and g["state"] == "holding" and g, "the guard's takeover")


def guard_event(rig, kind: str) -> dict:
    """The guard process's newest event of `kind` since the test began (its JSON lines)."""
    guard, start = rig["guard"], rig["events_at_start"]

    def find():
        guard.pump(0.02)
        hits = [e for e in guard.events[start:] if e["event"] == kind]
        return hits[-1] if hits else None

    return wait_until(find, f"the guard's {kind} event")


def stream_advances(bridge, what: str) -> int:
    n0 = bridge.command_stream()["samples"]
    return wait_until(lambda: (n := bridge.command_stream()["samples"]) > n0 + 20 and n, what)


def test_the_guard_process_tells_systemd_it_is_ready_and_alive(rig):
    notify = rig["notify"]
    ready = notify.wait_for("READY", "1", timeout_s=10.0)
    assert ready.pid == rig["guard"].proc.pid and "watching /dev/shm/" in ready.get("STATUS", "")
    n = notify.count("WATCHDOG", "1")
    wait_until(lambda: notify.count("WATCHDOG", "1") > n, "a watchdog ping")
    g = guard_state(rig["name"])
    assert g["guard_alive"] and g["guard_pid"] == rig["guard"].proc.pid and g["state"] == "watching"


def test_sigkill_of_the_runtime_is_taken_over_with_damping_until_acknowledged(rig):
    bridge, name = rig["bridge"], rig["name"]
    child = armed_child(rig)
    g0 = guard_state(name)
    crc0 = bridge.call("info")["counters"]["crc_errors"]
    bridge.command_stream(reset=True)
    child.kill(signal.SIGKILL)
    g = takeover_after(rig, g0["takeovers"])
    t = g["last_takeover"]
    assert t["reason"] == "process_exit" and t["runtime_pid"] == child.pid
    assert t["runtime_safety_mode"] == "HOLD" and t["settle"]  # it was standing: settle-then-cut first
    assert t["guard_first_write_ns"] > t["runtime_last_write_ns"] > 0
    # Settle, then damping reaches the robot: kp 0, kd the robot's kd_damping, every frame's CRC valid.
    wait_until(lambda: float(np.max(bridge.last_command()["kp"])) == 0.0, "damping commands at the robot")
    last = bridge.last_command()
    np.testing.assert_allclose(last["kd"], rig["kd_damping"])
    assert np.all(last["tau_ff"] == 0) and np.all(np.isfinite(last["q"]))
    assert bridge.call("info")["counters"]["crc_errors"] == crc0
    damping = guard_event(rig, "damping")
    assert damping["settle_commands"] > 0  # the settle poses went first
    assert guard_event(rig, "takeover")["reason"] == "process_exit"
    # It holds: commands keep coming, the state stays holding, until the operator acknowledges.
    stream_advances(bridge, "the guard's commands continuing")
    assert guard_state(name)["state"] == "holding" and guard_state(name)["takeovers"] == g["takeovers"]
    assert cli_main(["guard", "status", "--config", str(rig["deploy"]), "--json"]) == 0
    assert cli_main(["guard", "ack", "--config", str(rig["deploy"])]) == 0
    g = guard_state(name)
    assert g["state"] == "watching" and g["last_takeover"]["released_ns"] > 0 and not g["armed"]
    # It stops publishing (its writer stays, silent, for the next takeover): nothing commands the robot.
    wait_until(lambda: bridge.command_stream()["last_age_ms"] > 100, "the guard's commands stopping")
    n = bridge.command_stream()["samples"]
    time.sleep(0.2)
    assert bridge.command_stream()["samples"] == n
    child.close()
    assert child.proc.returncode == -signal.SIGKILL


def test_a_frozen_runtime_is_taken_over_and_its_driver_then_sees_the_conflict(rig):
    name = rig["name"]
    child = armed_child(rig)
    takeovers0 = guard_state(name)["takeovers"]
    child.kill(signal.SIGSTOP)  # alive, but its tick stops: the heartbeat goes stale
    try:
        g = takeover_after(rig, takeovers0)
        assert g["last_takeover"]["reason"] == "heartbeat_timeout" and g["runtime"]["alive"]
        stream_advances(rig["bridge"], "the guard's commands")
    finally:
        child.kill(signal.SIGCONT)
    # Running again, the runtime's tick reads the segment's guard_state (holding) as lowcmd_conflict
    # (damping, latched) and withholds its driver writes: the guard alone commands the motors. DDS
    # does not show it: the guard's writer (there since the guard started) is not counted.
    st = wait_until(lambda: (s := child.call("status")) and "lowcmd_conflict" in s["faults"] and s,
                    "the runtime's lowcmd_conflict fault")
    assert st["state_lowcmd_conflict"] and not st["lowcmd_conflict"] and st["lowcmd_writers"] == 0
    assert st["safety_mode"] in ("FAULT", "STOPPING", "DAMP")
    sent = child.call("status")["commands"]
    stream_advances(rig["bridge"], "the guard's commands continuing")
    assert child.call("status")["commands"] == sent  # nothing from the runtime while the guard holds
    assert guard_state(name)["state"] == "holding"
    assert acknowledge(name, 5.0)
    # Released: the runtime writes again (its latched fault damps until an operator resets it).
    wait_until(lambda: child.call("status")["commands"] > sent, "the runtime writing again after the ack")
    st = child.call("status")
    assert not st["state_lowcmd_conflict"] and "lowcmd_conflict" in st["faults"]
    # Its heartbeat is fresh again: the guard arms on it; a clean close then is no takeover.
    wait_until(lambda: guard_state(name)["armed"], "the guard re-arming on the live runtime")
    child.close()
    wait_until(lambda: not guard_state(name)["armed"], "the guard standing down after the clean close")
    time.sleep(0.3)
    g = guard_state(name)
    assert g["takeovers"] == takeovers0 + 1 and g["state"] == "watching" and g["runtime"]["pid"] == 0


def test_a_runtime_holding_nothing_up_gets_the_longer_idle_timeout(rig):
    name = rig["name"]
    child = started_child(rig)  # PASSIVE: the robot hangs limp, the heartbeat does not show it standing
    try:
        takeovers0 = guard_state(name)["takeovers"]
        child.kill(signal.SIGSTOP)  # a 0.6 s stall: beyond timeout_ms (200), inside the idle timeout (2 s)
        time.sleep(0.6)
        child.kill(signal.SIGCONT)
        wait_until(lambda: guard_state(name)["runtime"]["heartbeat_age_ms"] < 100, "the heartbeat fresh again")
        assert guard_state(name)["takeovers"] == takeovers0 and guard_state(name)["state"] == "watching"
        child.kill(signal.SIGSTOP)  # frozen for good: taken over after the idle timeout
        try:
            g = takeover_after(rig, takeovers0)
            assert g["last_takeover"]["reason"] == "heartbeat_timeout"
        finally:
            child.kill(signal.SIGCONT)
        assert acknowledge(name, 5.0)
    finally:
        child.close()


def test_a_runtime_restarted_while_the_guard_holds_does_not_take_the_robot(rig):
    name = rig["name"]
    child = armed_child(rig)
    takeovers0 = guard_state(name)["takeovers"]
    child.kill(signal.SIGKILL)
    takeover_after(rig, takeovers0)
    child.close()
    # What the service checks before it builds its runtime: the guard holds, so wait for the ack.
    assert guard_state(name)["state"] == "holding"
    again = RuntimeChild(rig["deploy"])
    try:
        assert not again.ready
        # The driver's activate() finds the guard's writer by its user_data, opens the heartbeat it
        # names and refuses while that guard holds.
        assert "the guard (vertebra guard, pid" in again.error and "holds the robot" in again.error, again.error
        assert "vertebra guard ack" in again.error
    finally:
        again.close()
    # A bare loop with the heartbeat (any driver) is refused at start() too.
    cfg = RobotConfig.load("g1")
    drv = _rt.MockDriver(0.05, 0.1, 0.0)
    drv.configure(cfg.joint_names, 500.0, cfg.column("kd_damping"))
    drv.activate()
    lc = _rt.LoopConfig()
    lc.rate_hz, lc.lockstep, lc.realtime_priority, lc.lock_memory = 500.0, False, False, False
    loop = _rt.RtLoop(drv, robot_params(cfg), lc, _rt.SafetyConfig())
    loop.set_heartbeat(_rt.Heartbeat(name, False))
    with pytest.raises(RuntimeError, match=r"start\(\): the guard .*holds the robot"):
        loop.start()
    drv.deactivate()
    assert guard_state(name)["state"] == "holding" and guard_state(name)["takeovers"] == takeovers0 + 1
    assert acknowledge(name, 5.0)
    # After the acknowledgement a new runtime takes the robot (its commands reach it), and the guard
    # watches it.
    fresh = started_child(rig)
    try:
        stream_advances(rig["bridge"], "the new runtime's commands")
        g = guard_state(name)
        assert g["state"] == "watching" and g["armed"] and g["runtime"]["pid"] == fresh.pid
    finally:
        fresh.close()
    wait_until(lambda: not guard_state(name)["armed"], "the guard standing down after the clean close")
    assert guard_state(name)["takeovers"] == takeovers0 + 1

"""vertebra teleop: the input mapping (speed limit, deadman), the session against a fake client (the
order of its requests), the devices' refusals, and the CLI end to end against an in-process control
API."""

from __future__ import annotations

import io
import math
import os
import pty
import sys
import threading
from typing import Any

import pytest
from vertebra.runtime.cli import main
from vertebra.runtime.service.client import ControlError
from vertebra.tools.teleop import (
    DeviceContext,
    DeviceUnavailable,
    KeyPress,
    Sticks,
    TeleopError,
    TeleopLimits,
    TeleopMapper,
    TeleopSession,
    WalkMapper,
    WalkStep,
    clamp_to_box,
    make_device,
)
from vertebra.tools.teleop_devices import ZERO
from vertebra.tools.terminal import KeyReader

from .conftest import G1_HANDS, g1_status

LEFT, RIGHT = G1_HANDS


def norm(v: Any) -> float:
    return math.sqrt(sum(x * x for x in v))


# -- TeleopMapper --------------------------------------------------------------------------------
def test_a_key_press_plays_one_step_at_the_speed_limit() -> None:
    m = TeleopMapper(TeleopLimits(step_m=0.01, max_speed_m_s=0.2, deadman_s=0.5))
    assert not m.engaged and m.update(0.0, 0.01).delta == (0.0, 0.0, 0.0)
    assert m.key("w", 0.0) == "move" and m.engaged
    moved = [0.0, 0.0, 0.0]
    for i in range(1, 11):
        out = m.update(i * 0.01, 0.01)
        assert out.engaged and not out.released
        assert norm(out.delta) <= 0.2 * 0.01 + 1e-12
        moved = [a + b for a, b in zip(moved, out.delta)]
    assert moved == pytest.approx([0.01, 0.0, 0.0])


@pytest.mark.parametrize("key,axis,sign", [("w", 0, 1), ("s", 0, -1), ("a", 1, 1), ("d", 1, -1), ("r", 2, 1),
                                           ("f", 2, -1), ("W", 0, 1)])
def test_keys_move_along_their_axes(key: str, axis: int, sign: int) -> None:
    m = TeleopMapper(TeleopLimits(step_m=0.01, max_speed_m_s=1.0))
    m.key(key, 0.0)
    delta = m.update(0.1, 0.1).delta
    want = [0.0, 0.0, 0.0]
    want[axis] = 0.01 * sign
    assert delta == pytest.approx(want)


def test_command_keys() -> None:
    m = TeleopMapper()
    assert [m.key(k, 0.0) for k in ("\t", " ", "q", "Q", "p", "x")] == ["switch", "estop", "quit", "quit", "resume",
                                                                         None]
    assert not m.engaged  # commands are not motion: they keep no deadman alive


def test_key_repeat_does_not_pile_up() -> None:
    lim = TeleopLimits(step_m=0.01, max_speed_m_s=0.1, deadman_s=0.5, queued_steps=3)
    m = TeleopMapper(lim)
    for _ in range(50):
        m.key("r", 0.0)
    total = 0.0
    t = 0.0
    while t < 0.45:
        t += 0.02
        out = m.update(t, 0.02)
        assert abs(out.delta[2]) <= 0.1 * 0.02 + 1e-12
        total += out.delta[2]
    assert total == pytest.approx(0.03)  # three queued steps, not fifty


def test_deadman_releases_once_and_drops_what_was_queued() -> None:
    m = TeleopMapper(TeleopLimits(step_m=0.05, max_speed_m_s=0.01, deadman_s=0.5))
    m.key("a", 0.0)
    assert m.update(0.49, 0.49).engaged
    out = m.update(0.5, 0.01)
    assert out.released and not out.engaged and out.delta == (0.0, 0.0, 0.0)
    for t in (0.6, 1.0, 2.0):
        out = m.update(t, 0.1)
        assert not out.released and not out.engaged and out.delta == (0.0, 0.0, 0.0)


def test_input_that_keeps_coming_keeps_the_deadman_alive() -> None:
    m = TeleopMapper(TeleopLimits(deadman_s=0.5))
    t = 0.0
    while t < 3.0:
        m.key("d", t)
        for dt in (0.1, 0.1, 0.1, 0.1):
            t += dt
            out = m.update(t, dt)
            assert out.engaged and not out.released
    assert m.update(t + 0.5, 0.5).released


def test_sticks_are_a_velocity_while_the_deadman_is_held() -> None:
    lim = TeleopLimits(max_speed_m_s=0.2, deadband=0.1)
    m = TeleopMapper(lim)
    m.sticks((0.5, -1.0, 0.05), True, 0.0)
    assert m.update(0.1, 0.1).delta == pytest.approx((0.5 * 0.2 * 0.1 * 2 / math.sqrt(5), -0.2 * 0.1 * 2 / math.sqrt(5),
                                                      0.0))  # speed-limited along the stick's direction
    m.sticks((1.0, 0.0, 0.0), True, 0.1)
    assert m.update(0.2, 0.1).delta == pytest.approx((0.02, 0.0, 0.0))
    m.sticks((1.0, 0.0, 0.0), False, 0.2)  # let go: released at once
    out = m.update(0.2, 0.0)
    assert out.released and out.delta == (0.0, 0.0, 0.0)
    m.sticks((float("nan"), 0.0, 0.0), True, 0.3)
    assert m.update(0.4, 0.1).delta == (0.0, 0.0, 0.0)


def test_limits_are_checked() -> None:
    with pytest.raises(TeleopError, match="step_m"):
        TeleopLimits(step_m=0.5)
    with pytest.raises(TeleopError, match="deadman_s"):
        TeleopLimits(deadman_s=0.0)
    with pytest.raises(TeleopError, match="max_speed_m_s"):
        TeleopLimits(max_speed_m_s=float("inf"))


def test_clamp_to_box() -> None:
    assert clamp_to_box([0.5, -0.5, 0.1], [0.0, 0.0, 0.0], 0.3) == ([0.3, -0.3, 0.1], True)
    assert clamp_to_box([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], 0.3) == ([0.1, 0.2, 0.3], False)


# -- the session, with a fake client -------------------------------------------------------------
class FakeClient:
    """ControlClient's surface over a dict that behaves like the service (see FakeService in conftest)."""

    endpoint = "ipc:///tmp/fake.sock"

    def __init__(self, status: dict[str, Any] | None = None, controller: str = "wbc",
                 hands: list[str] | None = None):
        self.status = status if status is not None else g1_status()
        self.status.update({"safety_mode": "HOLD", "mode": "hold", "faults": [], "episode": None,
                            "intervention": False})
        self.controller = controller
        self.hands = list(G1_HANDS if hands is None else hands)
        self.token: str | None = None
        self.lease_lost: str | None = None
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.refuse: set[str] = set()

    def types(self) -> list[str]:
        return [t for t, _ in self.log if t not in ("status", "hello")]

    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        self.log.append((type_, fields))
        s = self.status
        if type_ in self.refuse:
            raise ControlError("refused", f"{type_} refused (a test)")
        if type_ == "hello":
            return {"hands": self.hands, "controller": self.controller, "deploy": "g1_bench"}
        if type_ == "status":
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in s.items()}
        if type_ == "estop":
            s["safety_mode"] = "ESTOP"
            return {"safety_mode": "ESTOP"}
        if fields.get("lease") != "tok" or self.token != "tok":
            raise ControlError("no_lease", "not the current lease")
        if type_ == "activate":
            s["safety_mode"], s["mode"] = "ACTIVE", "wbc"
        elif type_ == "targets":
            if s["safety_mode"] != "ACTIVE":
                raise ControlError("refused", "targets need ACTIVE")
            s["hands"].update({k: list(v) for k, v in fields["targets"].items() if k != "com"})
            if "com" in fields["targets"]:
                s["com"] = list(fields["targets"]["com"])
        elif type_ == "hold":
            s["safety_mode"], s["mode"] = "HOLD", "hold"
        elif type_ == "intervention":
            s["intervention"] = fields["on"]
            if fields["on"]:
                s["safety_mode"], s["mode"] = "ACTIVE", "wbc"
        return {}

    def call(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        if self.token is None:
            raise ControlError("no_lease", "no lease")
        return self.request(type_, timeout_s, lease=self.token, **fields)

    def acquire(self, force: bool = False, keep_alive: bool = True) -> dict[str, Any]:
        self.log.append(("lease_acquire", {"force": force}))
        self.token = "tok"
        return {"lease": "tok", "holder": "test@teleop", "previous": "bob@eval" if force else None}

    def give_back(self) -> None:
        self.log.append(("lease_return", {}))
        self.token = None


def session(client: FakeClient, **kw: Any) -> tuple[TeleopSession, list[str]]:
    said: list[str] = []
    kw.setdefault("limits", TeleopLimits(step_m=0.01, max_speed_m_s=0.2, deadman_s=0.5))
    s = TeleopSession(client, say=said.append, **kw)
    s.prepare()
    s.acquire()
    return s, said


def press(s: TeleopSession, keys: str, t0: float, dt: float = 0.02, steps: int = 1) -> float:
    """Keys at t0, then `steps` steps of dt; returns the time reached."""
    t = t0
    assert s.step([KeyPress(k) for k in keys], t, dt) is None
    for _ in range(steps):
        t += dt
        s.step([], t, dt)
    return t


def test_activate_targets_hold_on_deadman_release_then_give_back() -> None:
    c = FakeClient()
    s, said = session(c)
    start = list(c.status["hands"][LEFT])
    t = press(s, "w", 0.0, steps=5)
    assert c.types()[:3] == ["lease_acquire", "activate", "targets"]
    assert c.status["hands"][LEFT] == pytest.approx([start[0] + 0.01, start[1], start[2]])
    assert c.status["hands"][RIGHT] == [0.31, -0.2, 0.91]
    while t < 0.6:  # no key for the deadman's 0.5 s
        t += 0.02
        s.step([], t, 0.02)
    assert c.types()[-1] == "hold" and c.status["safety_mode"] == "HOLD"
    assert c.types().count("hold") == 1 and any("deadman released" in m for m in said)
    for _ in range(20):  # the target stops moving: nothing more goes out
        t += 0.02
        s.step([], t, 0.02)
    s.close()
    types = c.types()
    assert types[0] == "lease_acquire" and types[1] == "activate" and set(types[2:-2]) == {"targets"}
    assert types[-2:] == ["hold", "lease_return"]
    for t_, f in c.log:
        if t_ == "targets":
            assert list(f["targets"]) == [LEFT]


def test_motion_after_a_release_reactivates_from_the_current_pose() -> None:
    c = FakeClient()
    s, _ = session(c)
    t = press(s, "r", 0.0, steps=10)
    t = press(s, "", t, steps=30)  # released: HOLD
    c.status["hands"][LEFT] = [0.3, 0.21, 0.93]  # the hand settled a little under HOLD
    press(s, "a", t, steps=10)
    assert c.types().count("activate") == 2
    assert c.status["hands"][LEFT] == pytest.approx([0.3, 0.22, 0.93])


def test_quitting_while_moving_holds_then_returns_the_lease() -> None:
    c = FakeClient()
    s, _ = session(c)
    press(s, "d", 0.0, steps=3)
    assert s.step([KeyPress("q")], 0.1, 0.02) == "quit"
    s.close()
    assert c.types()[-2:] == ["hold", "lease_return"] and c.token is None


def test_the_offset_limit_bounds_the_target() -> None:
    c = FakeClient()
    s, said = session(c, limits=TeleopLimits(step_m=0.05, max_speed_m_s=1.0, max_offset_m=0.1))
    start = list(c.status["hands"][LEFT])
    t = 0.0
    for _ in range(40):
        t = press(s, "f", t, dt=0.05, steps=1)
    assert c.status["hands"][LEFT][2] == pytest.approx(start[2] - 0.1)
    assert sum("limit" in m for m in said) == 1


def test_tab_switches_hands_and_both_move_together() -> None:
    c = FakeClient()
    s, _ = session(c)
    t = press(s, "\t", 0.0)
    assert s.hand == "right"
    t = press(s, "s", t, steps=5)
    assert c.status["hands"][RIGHT] == pytest.approx([0.30, -0.2, 0.91])
    t = press(s, "\t", t)
    assert s.hand == "both"
    press(s, "r", t, steps=5)
    assert c.status["hands"][LEFT] == pytest.approx([0.31, 0.2, 0.92])
    assert c.status["hands"][RIGHT] == pytest.approx([0.30, -0.2, 0.92])
    assert set(c.log[-1][1].get("targets", {})) <= {LEFT, RIGHT}


def test_during_an_episode_an_intervention_is_marked_and_p_resumes_the_policy() -> None:
    c = FakeClient()
    c.status["episode"] = {"id": 3, "instruction": "wave", "interventions": []}
    s, said = session(c)
    t = press(s, "w", 0.0, steps=5)
    assert c.types()[1:3] == ["intervention", "targets"] and c.log[-1][0] == "targets"
    assert ("intervention", {"lease": "tok", "on": True}) in c.log
    t = press(s, "", t, steps=30)
    assert c.types()[-1] == "hold" and any("policy stays paused" in m for m in said)
    press(s, "p", t)
    assert ("intervention", {"lease": "tok", "on": False}) in c.log
    s.close()
    assert c.types()[-2:] == ["intervention", "lease_return"]  # the policy runs: no hold over it


def test_space_sends_an_estop_and_ends_the_session() -> None:
    c = FakeClient()
    s, said = session(c)
    press(s, "w", 0.0, steps=2)
    assert s.step([KeyPress(" ")], 0.1, 0.02) == "estop"
    s.close()
    assert c.types()[-2:] == ["estop", "lease_return"] and c.status["safety_mode"] == "ESTOP"
    assert any("E-STOP sent" in m for m in said)


def test_a_refusal_is_said_once_per_engagement() -> None:
    c = FakeClient()
    c.refuse.add("activate")
    s, said = session(c)
    t = 0.0
    for _ in range(10):  # keys keep coming: one activation attempt, not ten
        t = press(s, "w", t, dt=0.05)
    assert c.types().count("activate") == 1 and sum("refused" in m for m in said) == 1
    t = press(s, "", t, steps=30)  # let go: the deadman releases
    c.refuse.clear()
    press(s, "w", t, steps=3)
    assert c.types().count("activate") == 2 and "targets" in c.types()


def test_a_lost_lease_ends_the_session() -> None:
    c = FakeClient()
    s, _ = session(c)
    press(s, "w", 0.0, steps=2)
    c.token, c.lease_lost = None, "no_lease: taken over by bob@eval"
    with pytest.raises(TeleopError, match="lease was lost.*bob@eval"):
        s.step([], 0.1, 0.02)


def test_the_robot_must_be_standing() -> None:
    c = FakeClient()
    c.status["safety_mode"] = "PASSIVE"
    with pytest.raises(TeleopError, match="PASSIVE.*stand it first"):
        TeleopSession(c).prepare()
    assert "lease_acquire" not in c.types()


def test_a_controller_without_targets_is_refused() -> None:
    with pytest.raises(TeleopError, match="controller 'pd'.*controller: wbc"):
        TeleopSession(FakeClient(controller="pd")).prepare()


def test_a_robot_without_hands_needs_the_com_in_the_status() -> None:
    c = FakeClient(hands=[])
    with pytest.raises(TeleopError, match="centre of mass.*'com'"):
        TeleopSession(c).prepare()
    c.status["com"] = [0.0, 0.0, 0.3]  # once the service reports it, the CoM moves
    s, _ = session(c)
    press(s, "r", 0.0, steps=5)
    assert c.log[-1] == ("targets", {"lease": "tok", "targets": {"com": pytest.approx([0.0, 0.0, 0.31])}})


def test_force_takes_the_lease_over() -> None:
    c = FakeClient()
    _, said = session(c, force=True)
    assert c.log[2] == ("lease_acquire", {"force": True}) and "taken over from bob@eval" in said[0]


def test_run_polls_the_device_until_quit() -> None:
    class Scripted:
        def __init__(self) -> None:
            self.polls = [[KeyPress("w")]] * 5 + [[]] * 40 + [[KeyPress("q")]]

        def poll(self, timeout_s: float) -> list[Any]:
            return self.polls.pop(0)

    clock = iter(i * 0.02 for i in range(1000))
    c = FakeClient()
    s, _ = session(c)
    assert s.run(Scripted(), clock=lambda: next(clock)) == "quit"  # type: ignore[arg-type]
    s.close()
    assert c.types()[1:3] == ["activate", "targets"] and c.types()[-2:] == ["hold", "lease_return"]
    assert c.types().count("hold") == 1


def test_gamepad_sticks_drive_the_session() -> None:
    c = FakeClient()
    s, _ = session(c)
    s.step([Sticks((1.0, 0.0, 0.0), True)], 0.0, 0.0)
    for i in range(1, 6):
        s.step([Sticks((1.0, 0.0, 0.0), True)], i * 0.1, 0.1)
    assert c.status["hands"][LEFT][0] == pytest.approx(0.31 + 5 * 0.02)
    s.step([Sticks((1.0, 0.0, 0.0), False)], 0.6, 0.1)  # the shoulder button let go
    assert c.types()[-1] == "hold"


# -- devices -------------------------------------------------------------------------------------
def test_gamepad_without_evdev_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # as if it were not installed
    with pytest.raises(DeviceUnavailable, match="pip install evdev-binary"):
        make_device("gamepad")


def test_gamepad_with_evdev_finds_no_gamepad_or_one(monkeypatch: pytest.MonkeyPatch) -> None:
    evdev = pytest.importorskip("evdev")  # the evdev-dependent path: only where the module is installed
    monkeypatch.setattr(evdev, "list_devices", lambda: [])
    dev = make_device("gamepad")
    with KeyReader(io.StringIO()) as keys, pytest.raises(DeviceUnavailable, match="no gamepad"):
        dev.open(DeviceContext(keys=keys))


def test_unitree_remote_needs_a_driver_that_reads_one() -> None:
    dev = make_device("unitree-remote")
    with KeyReader(io.StringIO()) as keys, pytest.raises(DeviceUnavailable, match="reads no Unitree wireless remote"):
        dev.open(DeviceContext(keys=keys, status=g1_status()))


def test_unitree_remote_sticks_and_buttons_from_the_status_stream() -> None:
    frames = [{"remote": {"buttons": 0, "lx": 0.5, "ly": 0.8, "rx": 0.0, "ry": -0.02, "l2": 0.0}},
              {"remote": {"buttons": (1 << 1) | (1 << 11), "lx": -0.5, "ly": 0.03, "rx": 0.0, "ry": 0.6, "l2": 0.0}},
              {"remote": {"buttons": (1 << 1) | (1 << 11), "lx": 0.0, "ly": 0.0, "rx": 0.0, "ry": 0.0, "l2": 0.0}}]

    class Client:
        def stream(self):
            yield from frames

    dev = make_device("unitree-remote")
    with KeyReader(io.StringIO()) as keys:
        dev.open(DeviceContext(keys=keys, status={"remote": frames[0]["remote"]}, client=Client()))
        first, second, third = dev.poll(0.1), dev.poll(0.1), dev.poll(0.1)
    assert first == [Sticks((0.8, -0.5, 0.0), False)]  # no deadman; ry inside the dead band
    assert KeyPress("\t") in second and Sticks((0.0, 0.5, 0.6), True) in second  # L1 held, Y pressed
    assert all(not isinstance(i, KeyPress) for i in third)  # Y still held: one press, not two


def test_keyboard_needs_a_terminal() -> None:
    dev = make_device("keyboard")
    with KeyReader(io.StringIO()) as keys, pytest.raises(DeviceUnavailable, match="not one"):
        dev.open(DeviceContext(keys=keys))


def test_unknown_device() -> None:
    with pytest.raises(DeviceUnavailable, match="devices are: keyboard, gamepad, unitree-remote"):
        make_device("joystick")


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_gamepad_without_evdev_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           fake_service: Any) -> None:
    svc, deploy = fake_service
    monkeypatch.setitem(sys.modules, "evdev", None)
    assert main(["teleop", "--config", str(deploy), "--device", "gamepad"]) == 2
    assert "pip install evdev-binary" in capsys.readouterr().err
    assert "lease_acquire" not in svc.types()


def test_cli_unitree_remote_exits_2_without_taking_the_lease(capsys: pytest.CaptureFixture[str],
                                                             fake_service: Any) -> None:
    svc, deploy = fake_service
    assert main(["teleop", "--config", str(deploy), "--device", "unitree-remote", "--force"]) == 2
    assert "reads no Unitree wireless remote" in capsys.readouterr().err
    assert "lease_acquire" not in svc.types()


def test_cli_keyboard_end_to_end(monkeypatch: pytest.MonkeyPatch, fake_service: Any) -> None:
    svc, deploy = fake_service
    master, slave = pty.openpty()
    tty_in = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", tty_in)
    result: dict[str, int] = {}

    def operator() -> None:
        os.write(master, b"w")
        if svc.wait_for("targets"):
            os.write(master, b"q")

    helper = threading.Thread(target=operator)
    helper.start()
    try:
        result["rc"] = main(["teleop", "--config", str(deploy), "--step-m", "0.02"])
    finally:
        helper.join(10)
        tty_in.close()
        os.close(master)
    assert result["rc"] == 0
    assert svc.types()[:3] == ["lease_acquire", "activate", "targets"]
    assert svc.types()[-2:] == ["hold", "lease_return"] and svc.status["safety_mode"] == "HOLD"
    sent = [r for r in svc.requests if r["type"] == "targets"]
    assert all(r["client"].endswith("@teleop") and list(r["targets"]) == [LEFT] for r in sent)


class FakeEvdev:
    """The part of python-evdev the gamepad device uses: one pad whose events a test queues."""

    class ecodes:  # noqa: N801 - evdev's spelling
        EV_KEY, EV_ABS = 1, 3
        ABS_X, ABS_Y, ABS_RY, ABS_RZ = 0, 1, 4, 5
        BTN_EAST, BTN_NORTH, BTN_TL, BTN_TR, BTN_SELECT, BTN_START, BTN_MODE = 305, 307, 310, 311, 314, 315, 316

    class AbsInfo:
        def __init__(self, lo: int, hi: int):
            self.min, self.max = lo, hi

    class Event:
        def __init__(self, type_: int, code: int, value: int):
            self.type, self.code, self.value = type_, code, value

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.queued: list[FakeEvdev.Event] = []
        ev = self

        class InputDevice:
            path, name = "/dev/input/event7", "Fake Pad"
            fd = ev.r

            def __init__(self, path: str):
                if path != "/dev/input/event7":
                    raise FileNotFoundError(path)

            def capabilities(self, absinfo: bool = True) -> dict[int, Any]:
                return {ev.ecodes.EV_KEY: [310, 311],
                        ev.ecodes.EV_ABS: [(c, ev.AbsInfo(-32768, 32767)) for c in (0, 1, 4)]}

            def read(self) -> Any:
                os.read(ev.r, 1024)
                out, ev.queued = ev.queued, []
                return iter(out)

            def close(self) -> None:
                pass

        self.InputDevice = InputDevice

    def list_devices(self) -> list[str]:
        return ["/dev/input/event7"]

    def send(self, *events: tuple[int, int, int]) -> None:
        self.queued += [self.Event(*e) for e in events]
        os.write(self.w, b"x")

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def test_gamepad_device_reads_sticks_buttons_and_the_deadman(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEvdev()
    monkeypatch.setitem(sys.modules, "evdev", fake)
    ec = fake.ecodes
    try:
        dev = make_device("gamepad")
        with KeyReader(io.StringIO()) as keys:
            dev.open(DeviceContext(keys=keys))
        assert dev.poll(0.0) == [Sticks((0.0, 0.0, 0.0), False)]
        fake.send((ec.EV_ABS, ec.ABS_Y, -32768), (ec.EV_ABS, ec.ABS_X, 32767), (ec.EV_KEY, ec.BTN_TL, 1))
        (sticks,) = dev.poll(1.0)
        assert sticks.deadman and sticks.axes == pytest.approx((1.0, -1.0, 0.0), abs=1e-4)  # stick up: +x
        fake.send((ec.EV_KEY, ec.BTN_EAST, 1), (ec.EV_KEY, ec.BTN_TL, 0))
        out = dev.poll(1.0)
        assert out[0] == KeyPress(" ") and isinstance(out[1], Sticks) and not out[1].deadman  # e-stop; let go
        with pytest.raises(DeviceUnavailable, match="no such device"):
            dev._find("/dev/input/event99")  # type: ignore[attr-defined]
        dev.close()
    finally:
        fake.close()


# -- walking (controller: walk): the keys drive the base velocity ---------------------------------
BOUNDS = {"max_vx_m_s": 0.6, "max_vy_m_s": 0.2, "max_wz_rad_s": 0.6}


class FakeWalkClient(FakeClient):
    """A service under the walk controller: `walk` sets the command; a zero command stands the robot
    (the status' walk phase) after `stand_after` status reads."""

    def __init__(self) -> None:
        super().__init__(controller="walk")
        self.status["walk"] = {"phase": "standing", "command": [0.0, 0.0, 0.0]}
        self.stand_after = 0

    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        if type_ == "hello":
            self.log.append((type_, fields))
            return {"hands": self.hands, "controller": "walk", "deploy": "g1_walk", "base_velocity": dict(BOUNDS)}
        if type_ == "status" and self.status["walk"]["command"] == [0.0, 0.0, 0.0] and self.stand_after > 0:
            self.stand_after -= 1
            if self.stand_after == 0:
                self.status["walk"]["phase"] = "standing"
        if type_ == "walk" and fields.get("lease") == "tok" and self.token == "tok":
            self.log.append((type_, fields))
            if "walk" in self.refuse:
                raise ControlError("refused", "walk refused (a test)")
            if self.status["safety_mode"] != "ACTIVE":
                raise ControlError("refused", "walking needs ACTIVE")
            cmd = [fields["vx"], fields["vy"], fields["wz"]]
            self.status["walk"]["command"] = cmd
            if any(cmd):
                self.status["walk"]["phase"] = "walking"
            else:
                self.stand_after = 3
            return {"command": cmd}
        r = super().request(type_, timeout_s, **fields)
        if type_ == "activate":
            self.status["mode"] = "walk"
        return r


def walk_commands(c: FakeWalkClient) -> list[list[float]]:
    return [[f["vx"], f["vy"], f["wz"]] for t, f in c.log if t == "walk"]


def test_walk_keys_drive_the_base_velocity_at_the_scale_of_the_bounds() -> None:
    m = WalkMapper([0.6, 0.2, 0.6], TeleopLimits(deadman_s=0.5, walk_scale=0.5))
    assert m.update(0.0) == WalkStep(ZERO, False, False)
    assert m.key("w", 0.0) == "move" and m.key("a", 0.0) == "move" and m.key("r", 0.1) == "move"
    assert m.update(0.2).velocity == pytest.approx((0.3, 0.1, 0.3))
    assert m.key("s", 0.3) == "move"  # the same axis, the other way
    assert m.update(0.4).velocity == pytest.approx((-0.3, 0.1, 0.3))
    assert m.update(0.55).velocity == pytest.approx((-0.3, 0.0, 0.3))  # a/d lapsed (0.5 s), r still alive
    assert m.update(0.61).velocity == pytest.approx((-0.3, 0.0, 0.0))
    out = m.update(0.81)  # nothing alive: the deadman releases once
    assert out.released and not out.engaged and m.update(0.9) == WalkStep(ZERO, False, False)
    m.sticks((1.0, -0.5, 2.0), True, 1.0)  # a full stick is the bound; beyond it is clamped
    assert m.update(1.1).velocity == pytest.approx((0.6, -0.1, 0.6))
    m.sticks((1.0, 0.0, 0.0), False, 1.2)
    assert m.update(1.2).released
    with pytest.raises(TeleopError, match="base_velocity bounds"):
        WalkMapper([0.6, 0.0, 0.6])


def test_walk_teleop_activates_walks_stops_standing_on_release_and_holds_when_it_stands() -> None:
    c = FakeWalkClient()
    s, said = session(c)
    assert s.walk is not None
    t = press(s, "w", 0.0, steps=5)
    assert c.types()[:3] == ["lease_acquire", "activate", "walk"] and c.status["walk"]["phase"] == "walking"
    assert walk_commands(c)[0] == [0.3, 0.0, 0.0] and len(walk_commands(c)) >= 5  # renewed every step
    t = press(s, "", t + 0.6)  # the deadman: zero, no HOLD mid-step
    assert walk_commands(c)[-1] == [0.0, 0.0, 0.0] and "hold" not in c.types()
    assert c.status["safety_mode"] == "ACTIVE" and any("stopping, the robot stands" in m for m in said)
    press(s, "d", t + 0.1, steps=2)  # walking again, sideways
    assert walk_commands(c)[-1] == [0.0, -0.1, 0.0]
    s.close()  # zero, then HOLD once the robot stands, then the lease back
    assert walk_commands(c)[-1] == [0.0, 0.0, 0.0] and c.status["walk"]["phase"] == "standing"
    assert c.types()[-2:] == ["hold", "lease_return"] and c.status["safety_mode"] == "HOLD"


def test_a_refused_walk_command_stops_the_robot_and_is_said() -> None:
    c = FakeWalkClient()
    s, said = session(c)
    press(s, "w", 0.0, steps=2)
    c.refuse.add("walk")
    press(s, "w", 0.1, steps=1)
    assert any("refused" in m for m in said) and s.blocked

"""Input devices of `vertebra teleop` (vertebra.tools.teleop), registered by name: ``keyboard`` (stdin
in cbreak mode), ``gamepad`` (evdev, imported lazily), ``unitree-remote`` (the robot's wireless remote,
read by the runtime from rt/lowstate and streamed in the service's status). A device turns what the
operator does into KeyPress and Sticks inputs; the mapping to targets and the deadman are teleop's."""

from __future__ import annotations

import select
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vertebra.runtime.errors import VertebraError
from vertebra.tools.terminal import KeyReader

Vec3 = tuple[float, float, float]
ZERO: Vec3 = (0.0, 0.0, 0.0)


class DeviceUnavailable(VertebraError):
    """The input device cannot be used here (module missing, no such device, not supported yet)."""


# -- devices -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyPress:
    key: str


@dataclass(frozen=True)
class Sticks:
    axes: Vec3
    deadman: bool


TeleopInput = KeyPress | Sticks


@dataclass
class DeviceContext:
    """What a device may use: the terminal's keys, the service's status, the --gamepad path."""

    keys: KeyReader
    status: Mapping[str, Any] = field(default_factory=dict)
    gamepad: str | None = None
    client: Any = None  # the session's ControlClient (the Unitree remote reads its status stream)


class TeleopDevice(ABC):
    """An input device: `open` (raise DeviceUnavailable with what to do), `poll` (wait at most
    `timeout_s`, return what came), `close`. Registered by name with ``register_device``."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""

    @abstractmethod
    def open(self, ctx: DeviceContext) -> None: ...

    @abstractmethod
    def poll(self, timeout_s: float) -> list[TeleopInput]: ...

    def close(self) -> None:
        return None


DEVICES: dict[str, type[TeleopDevice]] = {}


def register_device(name: str) -> Callable[[type[TeleopDevice]], type[TeleopDevice]]:
    def add(cls: type[TeleopDevice]) -> type[TeleopDevice]:
        if name in DEVICES:
            raise ValueError(f"teleop device '{name}' is registered twice")
        cls.name = name
        DEVICES[name] = cls
        return cls

    return add


def make_device(name: str) -> TeleopDevice:
    try:
        cls = DEVICES[name]
    except KeyError:
        raise DeviceUnavailable(f"unknown teleop device '{name}'; devices are: {', '.join(DEVICES)}") from None
    return cls()


@register_device("keyboard")
class KeyboardDevice(TeleopDevice):
    help = "the terminal's keyboard (stdin in cbreak mode; works over SSH)"

    def __init__(self) -> None:
        self.keys: KeyReader | None = None

    def open(self, ctx: DeviceContext) -> None:
        if not ctx.keys.enabled:
            raise DeviceUnavailable("the keyboard device reads keys from a terminal, and stdin is not one (run "
                                    "teleop in an interactive shell, e.g. `ssh -t robot vertebra teleop ...`)")
        self.keys = ctx.keys

    def poll(self, timeout_s: float) -> list[TeleopInput]:
        assert self.keys is not None, "open() first"
        return [KeyPress(k) for k in self.keys.read(timeout_s)]


# evdev codes by name (resolved once evdev is imported): buttons -> the keyboard key they stand for
GAMEPAD_BUTTONS = {"BTN_NORTH": "\t", "BTN_EAST": " ", "BTN_MODE": " ", "BTN_SELECT": "q", "BTN_START": "p"}
GAMEPAD_DEADMAN = ("BTN_TL", "BTN_TR")
GAMEPAD_HELP = ("gamepad: hold L1 or R1 (deadman) and move: left stick x/y, right stick z; Y/triangle switch hand, "
                "B/circle or the home button E-STOP, start resume the policy, select quit")


def _import_evdev() -> Any:
    try:
        import evdev  # type: ignore[import-not-found]
    except ImportError:
        raise DeviceUnavailable("the gamepad device needs the Python module 'evdev', which is not installed: "
                                "pip install evdev-binary (or `pip install evdev`, which builds against the kernel "
                                "headers)") from None
    return evdev


@register_device("gamepad")
class GamepadDevice(TeleopDevice):
    help = "a gamepad through evdev (--gamepad /dev/input/eventN, else the first device with absolute axes)"

    def __init__(self) -> None:
        self.evdev = _import_evdev()  # at once: a missing module is said before anything else happens
        self.dev: Any = None
        self.keys: KeyReader | None = None
        self._axes: dict[int, float] = {}
        self._held: set[int] = set()
        self._axis_map: dict[int, tuple[int, float]] = {}
        self._ranges: dict[int, tuple[float, float]] = {}

    @staticmethod
    def _has_axes(caps: Mapping[int, Any], ev_abs: int) -> bool:
        return bool(caps.get(ev_abs))

    def _find(self, path: str | None) -> Any:
        ev = self.evdev
        if path is not None:
            try:
                return ev.InputDevice(path)
            except FileNotFoundError:
                raise DeviceUnavailable(f"--gamepad {path}: no such device (devices: "
                                        f"{', '.join(ev.list_devices()) or 'none'})") from None
            except PermissionError:
                raise DeviceUnavailable(f"--gamepad {path}: permission denied (add your user to the 'input' "
                                        "group, then log in again)") from None
        denied, seen = [], []
        for p in ev.list_devices():
            try:
                d = ev.InputDevice(p)
            except PermissionError:
                denied.append(p)
                continue
            except OSError:
                continue
            if self._has_axes(d.capabilities(), ev.ecodes.EV_ABS):
                return d
            seen.append(f"{p} ({d.name})")
            d.close()
        hint = f"; {len(denied)} device(s) not readable: add your user to the 'input' group" if denied else ""
        raise DeviceUnavailable(f"no gamepad (an input device with absolute axes) found{hint}; devices seen: "
                                f"{', '.join(seen) or 'none'} (--gamepad /dev/input/eventN names one)")

    def open(self, ctx: DeviceContext) -> None:
        ec = self.evdev.ecodes
        self.dev = self._find(ctx.gamepad)
        self.keys = ctx.keys if ctx.keys.enabled else None
        absinfo = dict(self.dev.capabilities(absinfo=True).get(ec.EV_ABS, []))
        z_code = ec.ABS_RY if ec.ABS_RY in absinfo else ec.ABS_RZ
        for code, axis, sign in ((ec.ABS_Y, 0, -1.0), (ec.ABS_X, 1, -1.0), (z_code, 2, -1.0)):
            if code in absinfo:
                self._axis_map[code] = (axis, sign)
                info = absinfo[code]
                self._ranges[code] = (float(info.min), float(info.max))
        if not self._axis_map:
            raise DeviceUnavailable(f"{self.dev.path} ({self.dev.name}) has none of the stick axes ABS_X, ABS_Y, "
                                    "ABS_RY/ABS_RZ; name another with --gamepad /dev/input/eventN")

    def _normalised(self, code: int, value: float) -> float:
        lo, hi = self._ranges[code]
        if hi <= lo:
            return 0.0
        return max(-1.0, min(1.0, (2.0 * (value - lo) / (hi - lo)) - 1.0))

    def poll(self, timeout_s: float) -> list[TeleopInput]:
        ec = self.evdev.ecodes
        fds = [self.dev.fd] + ([self.keys.fd] if self.keys is not None and self.keys.fd is not None else [])
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
        out: list[TeleopInput] = []
        if self.keys is not None and self.keys.fd in ready:
            out += [KeyPress(k) for k in self.keys.read(0.0) if k in (" ", "q", "Q", "\t", "p")]
        if self.dev.fd in ready:
            try:
                events = list(self.dev.read())
            except BlockingIOError:
                events = []
            except OSError as e:
                raise DeviceUnavailable(f"the gamepad {self.dev.path} went away: {e}") from None
            buttons = {getattr(ec, n): k for n, k in GAMEPAD_BUTTONS.items() if hasattr(ec, n)}
            for e in events:
                if e.type == ec.EV_ABS and e.code in self._axis_map:
                    self._axes[e.code] = self._normalised(e.code, e.value)
                elif e.type == ec.EV_KEY:
                    if e.value:
                        self._held.add(e.code)
                        if e.value == 1 and e.code in buttons:
                            out.append(KeyPress(buttons[e.code]))
                    else:
                        self._held.discard(e.code)
        axes = [0.0, 0.0, 0.0]
        for code, (axis, sign) in self._axis_map.items():
            axes[axis] = sign * self._axes.get(code, 0.0)
        deadman = any(getattr(ec, n) in self._held for n in GAMEPAD_DEADMAN if hasattr(ec, n))
        out.append(Sticks((axes[0], axes[1], axes[2]), deadman))
        return out

    def close(self) -> None:
        if self.dev is not None:
            self.dev.close()
            self.dev = None


# The Unitree wireless remote's buttons (unitree_sdk2 example unitree_joystick.h, xKeySwitchUnion:
# R1 bit 0, L1 1, start 2, select 3, R2 4, L2 5, F1 6, F2 7, A 8, B 9, X 10, Y 11, up 12, right 13,
# down 14, left 15). Deadman: L1 or R1 held, as on the gamepad.
REMOTE_DEADMAN = (1 << 0) | (1 << 1)
REMOTE_KEYS = {1 << 11: "\t", 1 << 2: "p", 1 << 3: "q"}  # Y switch hand, start resume, select quit
STICK_DEADBAND = 0.05


@register_device("unitree-remote")
class UnitreeRemoteDevice(TeleopDevice):
    help = ("the Unitree wireless remote, read by the runtime from rt/lowstate (hold L1 or R1 and move: left stick "
            "x/y, right stick z; Y switch hand, start resume the policy, select quit; L2+B stays the robot's own "
            "e-stop)")

    def __init__(self) -> None:
        self.stream: Any = None
        self.keys: Any = None
        self._buttons = 0

    def open(self, ctx: DeviceContext) -> None:
        if ctx.status.get("remote") is None:
            raise DeviceUnavailable("this service's driver reads no Unitree wireless remote (the remote arrives in "
                                    "rt/lowstate with the unitree_dds driver); use --device keyboard or gamepad")
        if ctx.client is None:
            raise DeviceUnavailable("unitree-remote reads the service's status stream: no client given")
        self.stream = ctx.client.stream()
        self.keys = ctx.keys

    def poll(self, timeout_s: float) -> list[TeleopInput]:
        out: list[TeleopInput] = []
        if self.keys is not None and getattr(self.keys, "fd", None) is not None:
            out += [KeyPress(k) for k in self.keys.read(0.0) if k in (" ", "q", "Q")]
        try:
            st = next(self.stream)
        except Exception as e:  # noqa: BLE001 - the stream's end or a lost service
            raise DeviceUnavailable(f"the service's status stream stopped: {e}") from None
        r = st.get("remote") or {}
        buttons = int(r.get("buttons", 0))
        for bit, key in REMOTE_KEYS.items():
            if buttons & bit and not self._buttons & bit:
                out.append(KeyPress(key))
        self._buttons = buttons

        def stick(v: Any) -> float:
            x = float(v or 0.0)
            return 0.0 if abs(x) < STICK_DEADBAND else max(-1.0, min(1.0, x))

        # forward = left stick up (ly), left = left stick left (-lx), up = right stick up (ry)
        out.append(Sticks((stick(r.get("ly")), -stick(r.get("lx")), stick(r.get("ry"))),
                          bool(buttons & REMOTE_DEADMAN)))
        return out

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

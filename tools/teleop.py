"""`vertebra teleop`: move the hand targets (a robot with hands, e.g. the G1) or the centre of mass
(a robot without, e.g. the Go2) of a running service's whole-body controller from an SSH terminal or
a gamepad, under a deadman.

Pieces (each testable on its own):

- ``TeleopMapper`` (pure): inputs and the time step -> the target's displacement for this step,
  with a speed limit and the deadman timer. Keyboard: each motion key press asks for one step
  (``step_m``) along its axis, played out at no more than ``max_speed_m_s``; sticks: a velocity.
  Motion only while input keeps coming: no motion key for ``deadman_s`` (a gamepad: the shoulder
  button let go) -> the deadman is released, what was still to play is dropped, and the session
  sends ``hold``.
- ``TeleopSession``: the service side, over a ControlClient (or anything with its ``request``,
  ``call``, ``acquire``, ``give_back``, ``token``, ``lease_lost``). Lifecycle:

    prepare()   hello + status (no lease): which targets, whether the robot is armed (HOLD/ACTIVE)
    acquire()   the lease (``force`` takes it over: an event in the service's log)
    engage      on the first motion input: ``activate`` (HOLD -> ACTIVE under the WBC; during a
                policy episode ``intervention on`` instead: the service pauses the policy), then the
                targets start from the current values in ``status()["hands"]`` (or ``["com"]``)
    move        ``targets`` at most every step, each target kept within ``max_offset_m`` (per axis)
                of where the session first found it
    release     the deadman released: ``hold`` (HOLD; an intervention stays marked, the policy stays
                paused until ``p``)
    close()     ``hold`` if still moving, then the lease returned: the robot stays in HOLD

- Devices (``register_device``): ``keyboard`` (stdin in cbreak mode), ``gamepad`` (evdev, imported
  lazily), ``unitree-remote`` (not supported yet: the service does not expose the remote's sticks).

Keys: w/s x, a/d y, r/f z (world frame), tab switches hand (left, right, both), p hands the robot
back to a paused policy (ends the intervention), space e-stop, q quit.

Under the walk controller (``controller: walk``) the same keys drive the base velocity instead
(``WalkMapper``): w/s forward/back, a/d left/right, r/f turn left/right, each at ``walk_scale`` of the
safety config's ``base_velocity`` bound while its key keeps coming (a gamepad's sticks: a velocity).
The session sends ``walk`` at its rate (the service's walk deadman lapses a command not renewed);
the deadman released sends zero: the robot stops walking and stands (no HOLD mid-step), and
``close()`` holds once it stands.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vertebra.runtime.errors import VertebraError
from vertebra.tools.teleop_devices import (  # noqa: F401 - the devices are part of teleop's interface
    DEVICES,
    GAMEPAD_HELP,
    DeviceContext,
    DeviceUnavailable,
    GamepadDevice,
    KeyboardDevice,
    KeyPress,
    Sticks,
    TeleopDevice,
    TeleopInput,
    UnitreeRemoteDevice,
    Vec3,
    ZERO,
    make_device,
    register_device,
)

# key -> (axis, sign): x forward, y left, z up (world frame, as the targets are)
MOTION_KEYS: dict[str, tuple[int, float]] = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0),
                                             "r": (2, 1.0), "f": (2, -1.0)}
COMMAND_KEYS: dict[str, str] = {"\t": "switch", " ": "estop", "q": "quit", "p": "resume"}
HAND_CYCLE = ("left", "right", "both")
ARMED = ("HOLD", "ACTIVE")
TARGET_CONTROLLERS = ("wbc",)  # the controller modes whose target sink takes hand / CoM targets
WALK_CONTROLLERS = ("walk",)   # the controller modes that take a base velocity (the walk request)
KEY_HELP = ("keys: w/s x, a/d y, r/f z, tab switch hand, p resume the policy, space E-STOP, q quit "
            "(motion only while keys keep coming)")
WALK_KEY_HELP = ("keys: w/s forward/back, a/d left/right, r/f turn left/right, p resume the policy, space E-STOP, "
                 "q quit (walking only while keys keep coming; let go and the robot stops and stands)")


class TeleopError(VertebraError):
    """Teleop cannot start or go on (the service's state, the lease, a target it cannot read)."""


# -- the mapping ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeleopLimits:
    """`step_m`: one key press (m); `max_speed_m_s`: the target's speed limit; `deadman_s`: no motion
    input for this long releases the deadman; `max_offset_m`: how far (per axis) a target may go from
    where the session first found it; `deadband`: stick values below it are zero; `queued_steps`: how
    many key steps may wait to be played out (key repeat faster than the speed limit does not pile up)."""

    step_m: float = 0.01
    max_speed_m_s: float = 0.2
    deadman_s: float = 0.5
    max_offset_m: float = 0.3
    deadband: float = 0.1
    queued_steps: int = 3
    walk_scale: float = 0.5  # walking: a key drives its axis at this fraction of the base_velocity bound

    def __post_init__(self) -> None:
        for name, lo, hi in (("step_m", 1e-4, 0.1), ("max_speed_m_s", 1e-3, 1.0), ("deadman_s", 0.05, 5.0),
                             ("max_offset_m", 0.0, 1.0), ("deadband", 0.0, 0.9), ("walk_scale", 0.01, 1.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
                raise TeleopError(f"teleop {name}: found {v!r}; valid: a number in [{lo:g}, {hi:g}]")
        if not 1 <= self.queued_steps <= 100:
            raise TeleopError(f"teleop queued_steps: found {self.queued_steps}; valid: 1 to 100")


@dataclass(frozen=True)
class MapperStep:
    """One step's result: `delta` to add to the target (m), `engaged` (the deadman is alive: motion
    allowed), `released` (it expired in this step: send hold)."""

    delta: Vec3
    engaged: bool
    released: bool


class TeleopMapper:
    """Inputs -> target displacements, speed-limited, under a deadman timer. Pure: time comes in as
    arguments (`now`, `dt` in seconds), nothing is read or sent."""

    def __init__(self, limits: TeleopLimits | None = None):
        self.limits = limits or TeleopLimits()
        self._queued = [0.0, 0.0, 0.0]
        self._velocity: Vec3 = ZERO
        self._alive_until = -math.inf
        self._engaged = False

    @property
    def engaged(self) -> bool:
        return self._engaged

    def key(self, key: str, now: float) -> str | None:
        """A key press. Motion keys queue a step and keep the deadman alive ("move"); command keys
        return their command ("switch", "estop", "quit", "resume"); others None."""
        k = key.lower() if len(key) == 1 and key.isalpha() else key
        if k in MOTION_KEYS:
            axis, sign = MOTION_KEYS[k]
            cap = self.limits.queued_steps * self.limits.step_m
            self._queued[axis] = max(-cap, min(cap, self._queued[axis] + sign * self.limits.step_m))
            self._alive(now)
            return "move"
        return COMMAND_KEYS.get(k)

    def sticks(self, axes: Sequence[float], deadman_held: bool, now: float) -> None:
        """A gamepad's state: `axes` (x, y, z in [-1, 1]) is a velocity (times max_speed_m_s) while
        `deadman_held`; letting go releases the deadman at once."""
        if not deadman_held:
            self._velocity = ZERO
            self._alive_until = min(self._alive_until, now)
            return
        db = self.limits.deadband
        v = [0.0 if not math.isfinite(a) or abs(a) < db else max(-1.0, min(1.0, a)) for a in axes]
        self._velocity = (v[0] * self.limits.max_speed_m_s, v[1] * self.limits.max_speed_m_s,
                          v[2] * self.limits.max_speed_m_s)
        self._alive(now)

    def _alive(self, now: float) -> None:
        self._alive_until = now + self.limits.deadman_s
        self._engaged = True

    def release(self) -> None:
        """Drop the engagement and everything queued (after a refusal, an e-stop)."""
        self._queued = [0.0, 0.0, 0.0]
        self._velocity = ZERO
        self._alive_until = -math.inf
        self._engaged = False

    def update(self, now: float, dt: float) -> MapperStep:
        """The displacement for a step of `dt` seconds ending at `now`."""
        if not self._engaged:
            return MapperStep(ZERO, False, False)
        if now >= self._alive_until:
            self.release()
            return MapperStep(ZERO, False, True)
        dt = max(0.0, dt)
        want = [q + v * dt for q, v in zip(self._queued, self._velocity)]
        norm = math.sqrt(sum(w * w for w in want))
        cap = self.limits.max_speed_m_s * dt
        scale = 1.0 if norm <= cap else (cap / norm if norm > 0 else 0.0)
        self._queued = [q * (1.0 - scale) for q in self._queued]
        for i, q in enumerate(self._queued):
            if abs(q) < 1e-9:
                self._queued[i] = 0.0
        return MapperStep((want[0] * scale, want[1] * scale, want[2] * scale), True, False)


@dataclass(frozen=True)
class WalkStep:
    """One step's base velocity command (vx, vy m/s, wz rad/s), and the deadman as in MapperStep."""

    velocity: Vec3
    engaged: bool
    released: bool


class WalkMapper:
    """Inputs -> a base velocity command under a deadman, for the walk controller. Pure. `bounds`:
    the safety config's (max_vx, max_vy, max_wz); a key drives its axis (w/s vx, a/d vy, r/f wz) at
    limits.walk_scale of its bound until deadman_s after its last press; sticks are a velocity
    (times the bounds) while the deadman is held."""

    def __init__(self, bounds: Sequence[float], limits: TeleopLimits | None = None):
        b = [float(x) for x in bounds]
        if len(b) != 3 or not all(math.isfinite(x) and x > 0 for x in b):
            raise TeleopError(f"walk teleop: the service's base_velocity bounds must be 3 positive numbers, found {bounds!r}")
        self.bounds = b
        self.limits = limits or TeleopLimits()
        self._keys: list[tuple[float, float]] = [(0.0, -math.inf)] * 3  # per axis: sign, alive until
        self._sticks: Vec3 = ZERO
        self._sticks_until = -math.inf
        self._engaged = False

    @property
    def engaged(self) -> bool:
        return self._engaged

    def key(self, key: str, now: float) -> str | None:
        k = key.lower() if len(key) == 1 and key.isalpha() else key
        if k in MOTION_KEYS:
            axis, sign = MOTION_KEYS[k]
            self._keys[axis] = (sign, now + self.limits.deadman_s)
            self._engaged = True
            return "move"
        return COMMAND_KEYS.get(k)

    def sticks(self, axes: Sequence[float], deadman_held: bool, now: float) -> None:
        if not deadman_held:
            self._sticks, self._sticks_until = ZERO, -math.inf
            return
        db = self.limits.deadband
        v = [0.0 if not math.isfinite(a) or abs(a) < db else max(-1.0, min(1.0, a)) for a in axes[:3]]
        self._sticks = (v[0] * self.bounds[0], v[1] * self.bounds[1], v[2] * self.bounds[2])
        self._sticks_until = now + self.limits.deadman_s
        self._engaged = True

    def release(self) -> None:
        self._keys = [(0.0, -math.inf)] * 3
        self._sticks, self._sticks_until = ZERO, -math.inf
        self._engaged = False

    def update(self, now: float) -> WalkStep:
        if not self._engaged:
            return WalkStep(ZERO, False, False)
        keys_alive = [now < until for _, until in self._keys]
        if not any(keys_alive) and now >= self._sticks_until:
            self.release()
            return WalkStep(ZERO, False, True)
        v = [sign * self.limits.walk_scale * self.bounds[i] if keys_alive[i] else 0.0
             for i, (sign, _) in enumerate(self._keys)]
        if now < self._sticks_until:
            v = [a + b for a, b in zip(v, self._sticks)]
        v = [max(-b, min(b, x)) for x, b in zip(v, self.bounds)]
        return WalkStep((v[0], v[1], v[2]), True, False)


def clamp_to_box(pos: Sequence[float], origin: Sequence[float], half_m: float) -> tuple[list[float], bool]:
    """`pos` kept within `half_m` of `origin` on each axis; and whether it had to be clamped."""
    out = [min(o + half_m, max(o - half_m, p)) for p, o in zip(pos, origin)]
    return out, any(abs(a - b) > 1e-12 for a, b in zip(out, pos))


# -- the session ---------------------------------------------------------------------------------
class TeleopClient(Protocol):
    """What the session needs of vertebra.runtime.service.client.ControlClient."""

    endpoint: str
    token: str | None
    lease_lost: str | None

    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]: ...

    def call(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]: ...

    def acquire(self, force: bool = False, keep_alive: bool = True) -> dict[str, Any]: ...

    def give_back(self) -> None: ...


def _side_frame(hands: Sequence[str], side: str) -> str | None:
    named = [h for h in hands if side in h.lower()]
    if named:
        return named[0]
    i = 0 if side == "left" else 1
    return hands[i] if len(hands) > i else None


def _vec3(value: Any, what: str) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) < 3:
        raise TeleopError(f"{what}: expected [x, y, z], found {value!r}")
    v = [float(x) for x in value[:3]]
    if not all(math.isfinite(x) for x in v):
        raise TeleopError(f"{what}: not finite: {v}")
    return v


class TeleopSession:
    """Teleoperation of one service's hand (or CoM) targets; see the module's docstring for the
    lifecycle. `say`: where messages go. `hand`: left, right or both (a robot without hands moves its
    CoM whatever it says)."""

    def __init__(self, client: TeleopClient, *, hand: str = "left", limits: TeleopLimits | None = None,
                 force: bool = False, say: Callable[[str], None] = print, rate_hz: float = 50.0):
        if hand not in HAND_CYCLE:
            raise TeleopError(f"hand '{hand}': valid: {', '.join(HAND_CYCLE)}")
        self.client = client
        self.hand = hand
        self.mapper = TeleopMapper(limits)
        self.limits = self.mapper.limits
        self.force = force
        self.say = say
        self.period_s = 1.0 / float(rate_hz)
        self.hello: dict[str, Any] = {}
        self.frames: dict[str, str] = {}    # side -> hand frame
        self.active = False                 # we activated (or intervened) and have not held since
        self.intervened = False             # this session marked an intervention
        self.blocked = False                # a refusal: no new engagement until the deadman is released
        self.current: dict[str, list[float]] = {}
        self.origins: dict[str, list[float]] = {}
        self.at_limit: set[str] = set()
        self.lease_held = False
        self.sent = 0
        self.walk: WalkMapper | None = None  # the walk controller: base velocity instead of targets
        self.walked = False                  # this session sent a walk command

    # -- setup ------------------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """hello + status (no lease): the targets to move, and a robot that can be teleoperated.
        Returns the status."""
        self.hello = self.client.request("hello")
        controller = self.hello.get("controller")
        if controller in WALK_CONTROLLERS:
            b = self.hello.get("base_velocity") or {}
            self.walk = WalkMapper([b.get("max_vx_m_s", 0), b.get("max_vy_m_s", 0), b.get("max_wz_rad_s", 0)],
                                   self.limits)
            status = self.client.request("status")
            if status.get("safety_mode") not in ARMED:
                raise TeleopError(f"the robot is {status.get('safety_mode')}, not standing (HOLD or ACTIVE): enable "
                                  "and stand it first (its faults and mode: vertebra status)")
            return status
        if controller not in TARGET_CONTROLLERS:
            raise TeleopError(f"deploy '{self.hello.get('deploy')}' runs controller '{controller}', which takes no "
                              f"hand or CoM targets nor a base velocity; teleop needs controller: "
                              f"{' or '.join(TARGET_CONTROLLERS + WALK_CONTROLLERS)}")
        hands = [str(h) for h in self.hello.get("hands") or []]
        for side in ("left", "right"):
            frame = _side_frame(hands, side)
            if frame is not None:
                self.frames[side] = frame
        if hands and self.hand != "both" and self.hand not in self.frames:
            raise TeleopError(f"--hand {self.hand}: this robot's hand frames are {', '.join(hands)}")
        status = self.client.request("status")
        mode = status.get("safety_mode")
        if mode not in ARMED:
            raise TeleopError(f"the robot is {mode}, not standing (HOLD or ACTIVE): enable and stand it first "
                              "(its faults and mode: vertebra status)")
        if not hands and "com" not in status:
            raise TeleopError("this robot has no hands, so teleop moves its centre of mass, but the service's status "
                              "does not report the current CoM ('com'), so there is no value to start from: not "
                              "supported until the service reports it")
        return status

    def acquire(self) -> None:
        try:
            reply = self.client.acquire(self.force)
        except VertebraError as e:
            code = getattr(e, "code", "")
            hint = " (--force takes it over; that is logged)" if code == "lease_held" else ""
            raise TeleopError(f"cannot take the lease: {e}{hint}") from None
        self.lease_held = True
        prev = reply.get("previous")
        taken = f", taken over from {prev}" if prev and self.force else ""
        self.say(f"teleop: lease acquired as {reply.get('holder', '?')}{taken}")

    def targets(self) -> list[str]:
        """The targets the keys move now."""
        if not self.frames:
            return ["com"]
        if self.hand == "both":
            return [self.frames[s] for s in ("left", "right") if s in self.frames]
        return [self.frames[self.hand]]

    # -- engage, move, release --------------------------------------------------------------------
    def _engage(self) -> None:
        status = self.client.request("status")
        if status.get("episode") is not None and not status.get("intervention"):
            self.client.call("intervention", on=True)
            self.intervened = True
            self.say("teleop: intervention marked: the policy is paused while you move the robot (p resumes it)")
        else:
            self.client.call("activate")
        self.active = True  # from here on, leaving holds the robot
        if self.walk is not None:
            self.say("teleop: walking (ACTIVE under walk)")
            return
        status = self.client.request("status")
        self.current = {}
        for name in self.targets():
            value = status.get("com") if name == "com" else (status.get("hands") or {}).get(name)
            if value is None:
                raise TeleopError(f"the service's status gives no current position for '{name}' "
                                  f"(status hands: {', '.join(status.get('hands') or {}) or 'none'})")
            self.current[name] = _vec3(value, f"status {name}")
            self.origins.setdefault(name, list(self.current[name]))
        self.say(f"teleop: moving {', '.join(self.targets())} (ACTIVE)")

    def _hold(self, why: str) -> None:
        self.active = False
        try:
            self.client.call("hold")
        except VertebraError as e:
            self.say(f"teleop: hold refused: {e}")
            return
        extra = "; the policy stays paused (p resumes it)" if self.intervened else ""
        self.say(f"teleop: {why}: HOLD{extra}")

    def _walk_send(self, v: Vec3) -> None:
        self.client.call("walk", vx=round(v[0], 4), vy=round(v[1], 4), wz=round(v[2], 4))
        self.walked = True
        self.sent += 1

    def _walk_stop(self, why: str) -> None:
        """Zero velocity: the robot stops walking and stands under the walk controller (HOLD mid-step would
        freeze the legs on one foot)."""
        self.active = False
        try:
            self.client.call("walk", vx=0.0, vy=0.0, wz=0.0)
        except VertebraError as e:
            self.say(f"teleop: stop refused: {e} (the service's walk deadman stops the robot)")
            return
        self.say(f"teleop: {why}: stopping, the robot stands")

    def _hold_when_standing(self, timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        end = clock() + timeout_s
        while clock() < end:
            w = self.client.request("status").get("walk") or {}
            if w.get("phase") == "standing":
                break
            time.sleep(0.05)
        else:
            self.say("teleop: the robot did not come to stand; holding anyway")
        self._hold("teleop ends")

    def _move(self, delta: Vec3) -> None:
        if not any(delta):
            return
        out: dict[str, list[float]] = {}
        for name in self.targets():
            cur = self.current.get(name)
            if cur is None:
                continue
            pos, clamped = clamp_to_box([c + d for c, d in zip(cur, delta)], self.origins[name],
                                        self.limits.max_offset_m)
            if clamped and name not in self.at_limit:
                self.say(f"teleop: {name} at the {self.limits.max_offset_m:g} m limit around where it started")
            if clamped:
                self.at_limit.add(name)
            else:
                self.at_limit.discard(name)
            if pos != cur:
                out[name] = [round(v, 5) for v in pos]
        if out:
            self.client.call("targets", targets=out)
            self.current.update(out)
            self.sent += 1

    def _switch(self) -> None:
        if len(self.frames) < 2:
            self.say("teleop: this robot has one target to move; nothing to switch to")
            return
        self.hand = HAND_CYCLE[(HAND_CYCLE.index(self.hand) + 1) % len(HAND_CYCLE)]
        if self.active:
            status = self.client.request("status")
            for name in self.targets():
                if name not in self.current:
                    self.current[name] = _vec3((status.get("hands") or {}).get(name), f"status {name}")
                    self.origins.setdefault(name, list(self.current[name]))
        self.say(f"teleop: hand {self.hand} ({', '.join(self.targets())})")

    def _resume(self) -> None:
        status = self.client.request("status")
        if status.get("episode") is None or not status.get("intervention"):
            self.say("teleop: no paused policy to resume (p ends an intervention in a policy episode)")
            return
        self.mapper.release()
        if self.walk is not None:
            self.walk.release()
        self.active = False
        self.client.call("intervention", on=False)
        self.intervened = False
        self.say("teleop: intervention ended: the policy runs again")

    def estop(self) -> None:
        self.mapper.release()
        if self.walk is not None:
            self.walk.release()
        self.active = False
        try:
            reply = self.client.request("estop")
        except VertebraError as e:
            self.say(f"teleop: E-STOP NOT DELIVERED: {e}")
            raise
        self.say(f"teleop: E-STOP sent: safety mode {reply.get('safety_mode', '?')}")

    def step(self, inputs: Iterable[TeleopInput], now: float, dt: float) -> str | None:
        """One step: the inputs that came, then the targets. Returns "quit" or "estop" when the
        session is over, else None. Raises TeleopError when it cannot go on (the lease lost)."""
        mapper: Any = self.walk if self.walk is not None else self.mapper
        for inp in inputs:
            if isinstance(inp, Sticks):
                mapper.sticks(inp.axes, inp.deadman, now)
                continue
            cmd = mapper.key(inp.key, now)
            if cmd == "estop":
                self.estop()
                return "estop"
            if cmd == "quit":
                return "quit"
            if cmd == "switch":
                self._switch()
            elif cmd == "resume":
                self._resume()
        if self.client.token is None and self.lease_held:
            self.lease_held = False
            raise TeleopError(f"the lease was lost: {self.client.lease_lost or 'taken or expired'}")
        out = self.walk.update(now) if self.walk is not None else self.mapper.update(now, dt)
        if out.released:
            self.blocked = False
            if self.active:
                if self.walk is not None:
                    self._walk_stop("deadman released")
                else:
                    self._hold("deadman released")
            return None
        if not out.engaged or self.blocked:
            return None
        try:
            if not self.active:
                self._engage()
            if isinstance(out, WalkStep):
                self._walk_send(out.velocity)
            else:
                self._move(out.delta)
        except VertebraError as e:
            if getattr(e, "code", "") == "no_lease":
                self.lease_held = False
                raise TeleopError(f"the lease was lost: {e}") from None
            if isinstance(e, TeleopError):
                raise
            from vertebra.runtime.service.client import ServiceUnreachable

            if isinstance(e, ServiceUnreachable):
                raise TeleopError(f"the service stopped answering: {e}") from None
            self.say(f"teleop: refused: {e} (let go and try again; vertebra status shows why)")
            self.blocked = True
            if self.active:
                if self.walk is not None:
                    self._walk_stop("after a refusal")
                else:
                    self._hold("after a refusal")
        return None

    def run(self, device: TeleopDevice, clock: Callable[[], float] = time.monotonic) -> str:
        """Poll `device` and step until quit or e-stop; returns which."""
        last = clock()
        while True:
            inputs = device.poll(self.period_s)
            now = clock()
            end = self.step(inputs, now, now - last)
            last = now
            if end is not None:
                return end

    def close(self) -> None:
        """Hold if still moving, then return the lease (the robot stays in HOLD)."""
        try:
            if self.walk is not None and self.walked and self.client.token is not None:
                if self.active:
                    self._walk_stop("teleop ends")
                self._hold_when_standing()
            elif self.active and self.client.token is not None:
                self._hold("teleop ends")
        finally:
            self.active = False
            if self.lease_held:
                self.client.give_back()
                self.lease_held = False
                self.say("teleop: lease returned")

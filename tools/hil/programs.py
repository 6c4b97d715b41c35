"""Per-joint bench programs: what one joint is commanded tick by tick while the others hold
(cpp/hil/bench_mode.hpp plays them). Each builder returns the samples relative to the hold pose and
marks its segments, so the analysis (tools/hil/identify.py) knows which ticks are which.

A joint's identification program, in order:
  rest     the hold pose (the baseline torque and the noise floor)
  step     +a, then back to 0 (two edges; the torque's first response times the delay)
  doublet  feed-forward +F then -F for a few ms each (commanded vs measured torque)
  sweep_k  back-and-forth at constant speed v_k between -A and +A (friction: up vs down at one position)
  chirp    a sine whose frequency rises from f0 to f1, amplitude capped by the speed limit (Bode)
  rest     back at the hold pose
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Program:
    dt: float
    q: list[np.ndarray] = field(default_factory=list)      # offsets from the hold pose
    dq: list[np.ndarray] = field(default_factory=list)
    tau: list[np.ndarray] = field(default_factory=list)
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> [start, end) ticks
    meta: dict[str, float] = field(default_factory=dict)
    _n: int = 0

    def add(self, name: str, q: np.ndarray, dq: np.ndarray | None = None, tau: np.ndarray | None = None) -> None:
        q = np.asarray(q, dtype=float)
        self.q.append(q)
        self.dq.append(np.zeros_like(q) if dq is None else np.asarray(dq, dtype=float))
        self.tau.append(np.zeros_like(q) if tau is None else np.asarray(tau, dtype=float))
        self.segments[name] = (self._n, self._n + len(q))
        self._n += len(q)

    @property
    def ticks(self) -> int:
        return self._n

    def arrays(self, hold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return hold + np.concatenate(self.q), np.concatenate(self.dq), np.concatenate(self.tau)


def ticks(seconds: float, dt: float) -> int:
    return max(1, int(round(seconds / dt)))


def rest(p: Program, name: str, seconds: float, at: float = 0.0) -> None:
    """Hold still for `seconds`, `at` this offset from the hold pose."""
    p.add(name, np.full(ticks(seconds, p.dt), at))


def step(p: Program, amplitude: float, hold_s: float) -> None:
    n = ticks(hold_s, p.dt)
    p.add("step_up", np.full(n, amplitude))
    p.add("step_down", np.zeros(n))
    p.meta["step_rad"] = amplitude


def doublet(p: Program, torque: float, pulse_ticks: int, repeats: int, settle_s: float) -> None:
    """`repeats` x feed-forward (+F for k ticks, -F for 2k, +F for k): the joint's speed goes up, down
    and back to zero, so a strong torque moves a hanging link only a little."""
    k = max(1, pulse_ticks)
    one = np.concatenate([np.full(k, torque), np.full(2 * k, -torque), np.full(k, torque),
                          np.zeros(ticks(0.1, p.dt))])
    tau = np.tile(one, repeats)
    p.add("doublet", np.zeros(len(tau)), tau=tau)
    rest(p, "doublet_settle", settle_s)
    p.meta["doublet_nm"] = torque


def ramp(start: float, end: float, speed: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of a constant-speed move from `start` to `end` (at least 2 ticks)."""
    n = max(2, int(np.ceil(abs(end - start) / (speed * dt))))
    q = np.linspace(start, end, n + 1)[1:]
    return q, np.full(n, np.sign(end - start) * speed)


def sweep(p: Program, name: str, amplitude: float, speed: float, cycles: int) -> None:
    """0 -> +A, then cycles x (+A -> -A -> +A), then +A -> 0, at constant speed."""
    parts_q, parts_dq = [], []
    pos = 0.0
    for target in [amplitude] + [-amplitude, amplitude] * cycles + [0.0]:
        q, dq = ramp(pos, target, speed, p.dt)
        parts_q.append(q)
        parts_dq.append(dq)
        pos = target
    p.add(name, np.concatenate(parts_q), np.concatenate(parts_dq))
    p.meta[f"{name}_speed"] = speed


def chirp(p: Program, amplitude: float, speed_cap: float, f0: float, f1: float, seconds: float,
          fade_s: float = 0.2) -> None:
    """A linear chirp f(t) = f0 + (f1 - f0) t / T; amplitude min(A, speed_cap / (2 pi f)), faded in/out."""
    n = ticks(seconds, p.dt)
    t = np.arange(n) * p.dt
    f = f0 + (f1 - f0) * t / seconds
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t * t / seconds)
    amp = np.minimum(amplitude, speed_cap / (2 * np.pi * f))
    fade = np.clip(np.minimum(t, seconds - t) / fade_s, 0, 1)
    env = amp * 0.5 * (1 - np.cos(np.pi * fade))
    q = env * np.sin(phase)
    dq = np.gradient(q, p.dt)
    p.add("chirp", q, dq)
    p.meta.update(chirp_f0_hz=f0, chirp_f1_hz=f1, chirp_s=seconds)


def identification_program(dt: float, *, amplitude: float, speed_cap: float, kp: float, torque_cap: float,
                           inertia: float, step_s: float, sweep_speeds: list[float], sweep_cycles: int,
                           chirp_f0: float, chirp_f1: float, chirp_s: float) -> Program:
    """The whole per-joint program (see the module doc). `torque_cap`: the bench's torque cap for the
    joint (N·m); `inertia`: the joint's own (kg·m², the model's, with the rotor). The step stays
    under half the torque cap and under what the PD's natural frequency turns into half the speed cap
    (a ~ v / omega_n); the doublet's torque is 0.9 of the cap, its pulses as long as keeps the joint
    under half the speed cap."""
    p = Program(dt)
    rest(p, "rest", 0.3)
    omega_n = np.sqrt(max(kp, 1e-9) / max(inertia, 1e-6))
    step(p, min(0.5 * amplitude, 0.5 * torque_cap / max(kp, 1e-9), 0.5 * speed_cap / omega_n), step_s)
    force = 0.9 * torque_cap
    pulse = int(np.floor(0.5 * speed_cap * inertia / (force * dt)))
    if pulse < 1:  # even one tick is too much at that torque: lower it (the check then covers less)
        force = 0.5 * speed_cap * inertia / dt
        pulse = 1
    doublet(p, force, min(pulse, 5), 3, 0.3)
    for k, v in enumerate(sweep_speeds):
        sweep(p, f"sweep_{k}", amplitude, min(v, speed_cap), sweep_cycles)
        rest(p, f"sweep_{k}_settle", 0.2)
    chirp(p, amplitude, speed_cap, chirp_f0, chirp_f1, chirp_s)
    rest(p, "rest_end", 0.3)
    return p

"""`vertebra hil run`: the whole suite on one rig, in order, with the plan shown before anything moves,
the operator's Ctrl-C turned into the configured stop, and one RunResult at the end.

Scenario groups: the characterisation (bus, identify, wiring, limits, thermal) runs on the harness's
own runtime (tools/hil/bench.py; one arming for the whole group); the safety reactions and the
policy smoke run the service and the guard as deployed (tools/hil/reactions.py, policy_smoke.py). On a sim
rig each group gets its own sim bridge process (lockstep for the characterisation, real time for the
service).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from vertebra.tools.hil.context import HilStopped, ScenarioContext
from vertebra.tools.hil.results import Case, RunResult
from vertebra.runtime.provenance import file_sha256, software
from vertebra.tools.hil.rig import RigConfig

CHARACTERISATION = ("bus", "identify", "wiring", "limits", "thermal")
SERVICE = ("safety", "policy")


def config_hashes(ctx: ScenarioContext) -> dict[str, str]:
    d = ctx.deploy
    out = {"rig": file_sha256(ctx.rig.path), "deploy": file_sha256(d.file), "robot": file_sha256(ctx.robot.file),
           "safety": file_sha256(d.safety_path)}
    if getattr(d, "policy_path", None):
        out["policy_server"] = file_sha256(d.policy_path)
    return out


def plan(rig: RigConfig, ctx: ScenarioContext, only: list[str], joints: str | None) -> str:
    """What will move and how far, before anything does."""
    cfg = ctx.robot
    lines = [f"rig {rig.name}: {cfg.name} serial {rig.serial} via {Path(ctx.deploy.file).name} "
             f"(DDS domain {ctx.domain_id}{', interface ' + ctx.interface if ctx.interface else ''})"
             + (" -- SIMULATED (sim bridge)" if ctx.sim else ""),
             f"scenarios: {', '.join(only)}"]
    if ctx.sim and rig.sim.faults:
        lines.append(f"hardware faults injected on the bridge: {rig.sim.faults}")
    per_joint = [s for s in only if s in ("identify", "wiring")]
    if per_joint or "bus" in only or "limits" in only or "thermal" in only:
        lines.append(f"the robot is armed and moved from hanging to its default pose over {rig.bench.hold_s:g} s; "
                     "joints not listed below are held there")
    if per_joint:
        lines.append("each joint in turn (chirp, step, constant-speed sweeps, a short torque doublet):")
        for i, name in enumerate(cfg.joint_names):
            b = rig.bench_joint(name)
            if b is None or (joints and not re.search(joints, name)):
                continue
            j = cfg.joints[i]
            lines.append(f"  {name:28s} +/-{b.amplitude_rad:.3f} rad, <= {b.velocity_rad_s:.2f} rad/s, "
                         f"<= {b.torque_fraction * j.tau_max_nm:.1f} N·m ({100 * b.torque_fraction:.0f}% of {j.tau_max_nm:g})")
    if "limits" in only and rig.limits:
        lines.append(f"limits: {', '.join(rig.limits.joints)} driven to their soft limit, target "
                     f"{rig.limits.overshoot_rad:g} rad beyond it")
    if "thermal" in only and rig.thermal:
        lines.append(f"thermal: posture {rig.thermal.posture or '(the default pose)'} held {rig.thermal.duration_s:g} s")
    if "safety" in only and rig.safety:
        lines.append(f"safety: {', '.join(rig.safety.reactions)} (the robot held stiff, then damped/e-stopped; "
                     "the runtime is SIGKILLed once and the guard takes over)")
    if "policy" in only and rig.policy:
        lines.append(f"policy: {rig.policy.episodes} episodes of {rig.policy.episode_s:g} s "
                     f"({rig.policy.policy or 'the deploy config’s active policy'})")
    lines.append("Ctrl-C at any time: the configured stop (settle-then-cut), then damping.")
    return "\n".join(lines)


def run(rig: RigConfig, *, only: list[str] | None = None, joints: str | None = None, domain_id: int | None = None,
        workdir: str | os.PathLike[str] | None = None, confirm: Callable[[str], bool] | None = None,
        interactive: bool = True, out: Callable[[str], None] | None = None) -> RunResult:
    """Run the rig's scenarios (`only`: a subset, in the rig's order); `joints`: a regex restricting the
    per-joint scenarios; `confirm`: shown the plan, returns whether to go on (None: go on)."""
    order = [s for s in rig.scenarios if only is None or s in only]
    if only:
        unknown = [s for s in only if s not in rig.scenarios]
        if unknown:
            raise ValueError(f"--only {', '.join(unknown)}: not a scenario of {rig.name} ({', '.join(rig.scenarios)})")
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"vertebra-hil-{rig.name}-"))
    ctx = ScenarioContext(rig, work, domain_id=domain_id, interactive=interactive, out=out)
    result = RunResult(rig=rig.name, robot=rig.robot, serial=rig.serial, software=software(), config_hashes=config_hashes(ctx),
                       started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       profile=getattr(rig, "profile", "full"),
                       faults_injected=dict(rig.sim.faults) if ctx.sim and rig.sim.faults else {})
    text = plan(rig, ctx, order, joints)
    if confirm is not None and not confirm(text):
        result.stopped = "not confirmed: nothing moved"
        return result
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if ctx.stop.is_set():  # a second Ctrl-C: the default (KeyboardInterrupt)
            signal.signal(signal.SIGINT, previous)
        ctx.stop.set()
        ctx.log("Ctrl-C: stopping (the configured stop, then damping)")

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        pass
    t0 = time.monotonic()
    try:
        chars = [s for s in order if s in CHARACTERISATION]
        if chars:
            _characterisation(ctx, chars, joints, result)
        for s in (s for s in order if s in SERVICE):
            ctx.check_stop()
            from vertebra.tools.hil.policy_smoke import run_policy
            from vertebra.tools.hil.reactions import run_safety

            fn = run_safety if s == "safety" else run_policy
            ctx.log(f"scenario {s}")
            try:
                for c in fn(ctx):
                    result.add(c)
            finally:
                ctx.close_bridges()
    except HilStopped as e:
        result.stopped = str(e)
    finally:
        ctx.close_bridges()
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:
            pass
        result.duration_s = round(time.monotonic() - t0, 2)
    return result


def _characterisation(ctx: ScenarioContext, scenarios: list[str], joints: str | None, result: RunResult) -> None:
    from vertebra.tools.hil import scenarios as sc
    from vertebra.tools.hil.bench import BenchRuntime

    lockstep = bool(ctx.sim and ctx.rig.sim.lockstep)
    if ctx.sim:
        ctx.start_bridge(lockstep=lockstep)
    bench = BenchRuntime(ctx, lockstep=lockstep)
    try:
        ctx.log("arming: hanging -> the hold pose")
        bench.arm()
        analysed: dict[int, dict[str, Any]] | None = None
        for s in scenarios:
            ctx.check_stop()
            ctx.log(f"scenario {s}")
            t = time.monotonic()
            try:
                if s == "bus":
                    cases = sc.run_bus(bench)
                elif s in ("identify", "wiring"):
                    if analysed is None:
                        sel = [j for j in sc.movable(bench) if not joints or re.search(joints, bench.cfg.joint_names[j])]
                        analysed = sc.characterise(bench, sel)
                    cases = sc.identify_cases(bench, analysed) if s == "identify" else sc.wiring_cases(bench, analysed)
                elif s == "limits":
                    cases = sc.run_limits(bench)
                else:
                    cases = sc.run_thermal(bench)
            except HilStopped:
                raise
            except Exception as e:  # noqa: BLE001 - a broken scenario is reported, the rest still runs
                cases = [Case(s, "scenario", "error", f"{type(e).__name__}: {e}", duration_s=time.monotonic() - t)]
            for c in cases:
                result.add(c)
            if bench.rt.status()["safety_mode"] not in ("ACTIVE", "HOLD", "STANDUP"):
                snap = bench.rt.status()
                raise HilStopped(f"the robot left the bench during {s}: {snap['safety_mode']}, faults {list(snap['faults'])}")
    finally:
        bench.close(stop=True)
        ctx.close_bridges()

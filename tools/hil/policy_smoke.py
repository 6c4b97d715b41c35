"""The ``policy`` scenario, a policy smoke on the hoist, run on the deployed stack
(tools/hil/service_bench.py).

The policy smoke (``policy``): the deploy config's policy server (``policy.policy``: swapped to that
one first) runs ``episodes`` episodes of ``episode_s`` from HOLD; an episode passes when no fault
was raised meanwhile (the safety event log), it ended as the harness ended it (not aborted), the
robot ran it (ACTIVE) and the policy produced chunks at half its rate at least. A deploy config
without a policy server gives one skipped case (the G1's shipped ones: its only package needs a
camera, which the service has no source for).
"""

from __future__ import annotations

import time

from vertebra.tools.hil.context import ScenarioContext
from vertebra.tools.hil.results import Case
from vertebra.tools.hil.service_bench import ServiceBench, rounded, run_step, stack_error

def _episode(b: ServiceBench, k: int) -> Case:
    p = b.ctx.rig.policy
    name = f"episode_{k}"
    b.to_hold()
    st0 = b.status()
    pol0 = st0["policy"] or {}
    ch0 = st0["chunks"]
    since = b.mark()
    b.op.call("episode_start", instruction=p.instruction, timeout_s=30.0)
    t0 = time.monotonic()
    modes: set[str] = set()
    while time.monotonic() - t0 < p.episode_s:
        b.ctx.check_stop()
        b.services.check_service()
        st = b.status()
        modes.add(f"{st['safety_mode']}/{st['mode']}")
        if st["episode"] is None:
            break  # ended by the service (a fault, the lease)
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    st = b.status()
    ep = st["episode"]
    if ep is not None:
        ep = b.op.call("episode_stop", outcome="success", reason="the HIL episode's time is up")["episode"]
    else:
        ep = next((e for e in reversed(b.events(since)) if e.get("text") == "episode_end"), {})
    pol = st["policy"] or {}
    faults = sorted({str(e["fault"]) for e in b.events(since) if e.get("kind") == "fault"})
    steps = int(pol.get("steps", 0)) - int(pol0.get("steps", 0))
    rate = float(pol.get("rate_hz") or 0.0)
    expected = rate * elapsed
    lat = pol.get("latency_us") or {}
    measured = {"policy": pol.get("name"), "duration_s": rounded(elapsed, 2), "steps": steps,
                "steps_expected": rounded(expected, 1),
                "outages": int(pol.get("outages", 0)) - int(pol0.get("outages", 0)),
                "chunks_received": int(st["chunks"].get("chunks_received", 0)) - int(ch0.get("chunks_received", 0)),
                "starved_ticks": int(st["chunks"].get("starved_ticks", 0)) - int(ch0.get("starved_ticks", 0)),
                "latency_p50_ms": rounded((lat.get("p50") or 0) / 1000.0),
                "latency_max_ms": rounded((lat.get("max") or 0) / 1000.0),
                "faults": faults, "modes": sorted(modes), "outcome": ep.get("outcome"), "reason": ep.get("reason")}
    limits = {"faults_max": 0, "steps_min": rounded(0.5 * expected, 1), "episode_s": p.episode_s}
    problems = []
    if faults:
        problems.append(f"faults raised: {', '.join(faults)}")
    if ep.get("outcome") != "success":
        problems.append(f"the episode ended {ep.get('outcome')}: {ep.get('reason')}")
    if steps < 0.5 * expected:
        problems.append(f"{steps} policy steps in {elapsed:.1f} s (at {rate:g} Hz {expected:.0f} expected)")
    if not any(m.startswith("ACTIVE/") for m in modes):
        problems.append(f"the robot never ran the policy (modes seen: {', '.join(sorted(modes))})")
    msg = "; ".join(problems) if problems else (
        f"{pol.get('name')}: {steps} steps in {elapsed:.1f} s ({rate:g} Hz), {measured['chunks_received']} chunks, "
        f"no fault")
    return Case("policy", name, "failed" if problems else "passed", msg, measured, limits)


def run_policy(ctx: ScenarioContext) -> list[Case]:
    """One case per episode (``episode_<k>``): the policy runs ``episode_s`` on the hoist, producing
    actions, with no fault. A deploy config that names no policy server: one skipped case."""
    p = ctx.rig.policy
    if p is None:
        return [Case("policy", "config", "error", f"{ctx.rig.file}: no policy: section")]
    if ctx.deploy.policy_path is None and ctx.deploy.policy_remote is None:
        return [Case("policy", "policy", "skipped", f"the deploy config {ctx.rig.deploy} names no policy server "
                     "(policy: or policy_remote:): there is no policy to run on this rig")]
    names = [f"episode_{k}" for k in range(1, p.episodes + 1)]
    bench = ServiceBench(ctx, "policy")
    cases: list[Case] = []
    try:
        try:
            bench.start()
        except Exception as e:  # noqa: BLE001 - every case says why
            return stack_error("policy", names, e, ctx.stop.is_set())
        if p.policy is not None and bench.op.request("policy_list")["active"] != p.policy:
            ctx.log(f"policy: swapping to {p.policy}")
            try:
                bench.op.call("policy_swap", name=p.policy, timeout_s=90.0)
            except Exception as e:  # noqa: BLE001
                return [Case("policy", n, "error", f"the swap to policy '{p.policy}' failed: {e}") for n in names]
        for k, name in enumerate(names, 1):
            if ctx.stop.is_set():
                cases.append(Case("policy", name, "skipped", "not run: stopped by the operator"))
                continue
            ctx.log(f"policy: {name} of {p.episodes} ({p.episode_s:g} s)")
            cases.append(run_step(ctx, "policy", name, lambda k=k: _episode(bench, k)))
    finally:
        bench.close()
    return cases

"""Unitree's side of the DDS exchange, written with Unitree's official Python SDK (`unitree-sdk2` on
PyPI, module `unitree_sdk2py`) as a user of that SDK would write it: ChannelFactoryInitialize,
ChannelPublisher / ChannelSubscriber, the SDK's IDL types and its `utils.crc.CRC`.

This file is a standalone script for the SDK's own virtualenv (.venv-unitree-sdk, built by
scripts/setup_unitree_sdk.sh): it imports nothing from Vertebra, and Vertebra never imports it. It is
run in its own process, as on a robot, by tests/drivers/test_unitree_sdk_interop.py and by
`vertebra bench dds`:

    python unitree_sdk_peer.py follow     --spec JSON   # a controller: read LowState_, move a joint
    python unitree_sdk_peer.py fake-robot --spec JSON   # a robot: publish LowState_, obey LowCmd_
    python unitree_sdk_peer.py round-trip --spec JSON   # bench: LowCmd_ write -> LowState_ answer

`--spec` is one JSON object: messages ("hg": G1 / unitree_hg, "go": Go2 / unitree_go), domain,
interface, motors (the motor slots in use), and per mode the values below. Each mode prints one JSON
object on stdout when it ends; progress and errors go to stderr.

Discovery on "lo": the SDK's ChannelFactoryInitialize(domain, "lo") hands Cyclone DDS its
ChannelConfigHasInterface XML (unitree_sdk2py/core/channel_config.py: that interface,
multicast="default"). Loopback cannot multicast, so Cyclone disables multicast and adds 127.0.0.1 as
a peer at the unicast discovery ports of participant indices 0-8 (its trace, /tmp/cdds.LOG, says so:
"selected interface "lo" is not multicast-capable", "add_peer_addresses: add udp/127.0.0.1:..."),
while Vertebra's "lo" configuration (cpp/drivers/unitree/dds.cpp) gives its participants an automatic
index and peers 127.0.0.1 too: both meet with the SDK left as it is.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

# The Go2's motor board treats these q / dq as "no position / velocity term" (Unitree's
# unitree_sdk2_python example/go2/low_level/go2_low_level.py: PosStopF = 2.146e9, VelStopF = 16000.0).
GO_POS_STOP = 2.146e9
GO_VEL_STOP = 16000.0
GO_MOTORS, HG_MOTORS = 20, 35


def log(msg: str) -> None:
    print(f"[sdk-peer] {msg}", file=sys.stderr, flush=True)


class Sdk:
    """The SDK's types and helpers for one message set, the channel factory initialised."""

    def __init__(self, spec: dict[str, Any]):
        from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber
        from unitree_sdk2py.idl import default
        from unitree_sdk2py.utils.crc import CRC

        self.hg = spec["messages"] == "hg"
        if self.hg:
            from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_

            self.new_cmd, self.new_state = default.unitree_hg_msg_dds__LowCmd_, default.unitree_hg_msg_dds__LowState_
        else:
            from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_

            self.new_cmd, self.new_state = default.unitree_go_msg_dds__LowCmd_, default.unitree_go_msg_dds__LowState_
        self.LowCmd, self.LowState = LowCmd_, LowState_
        self.Publisher, self.Subscriber = ChannelPublisher, ChannelSubscriber
        self.crc = CRC()
        self.motors: list[int] = [int(m) for m in spec["motors"]]
        ChannelFactoryInitialize(int(spec["domain"]), spec.get("interface") or None)

    def command(self, q: list[float], kp: list[float], kd: list[float], mode_machine: int = 0) -> Any:
        """A LowCmd_ as Unitree's low-level examples fill it (g1_low_level_example.py,
        go2_low_level.py): motors in use enabled (mode 1) with their PD terms; on the Go2 the head and
        level flag of low-level control, and the motors not in use with PosStopF/VelStopF."""
        cmd = self.new_cmd()
        if self.hg:
            cmd.mode_pr = 0
            cmd.mode_machine = mode_machine
        else:
            cmd.head[0], cmd.head[1] = 0xFE, 0xEF
            cmd.level_flag = 0xFF
            cmd.gpio = 0
            for mc in cmd.motor_cmd:
                mc.mode, mc.q, mc.dq, mc.kp, mc.kd, mc.tau = 0x01, GO_POS_STOP, GO_VEL_STOP, 0.0, 0.0, 0.0
        self.fill(cmd, q, kp, kd)
        return cmd

    def fill(self, cmd: Any, q: list[float], kp: list[float], kd: list[float]) -> None:
        for j, m in enumerate(self.motors):
            mc = cmd.motor_cmd[m]
            mc.mode, mc.q, mc.dq, mc.kp, mc.kd, mc.tau = 1, float(q[j]), 0.0, float(kp[j]), float(kd[j]), 0.0

    def seal(self, msg: Any) -> Any:
        msg.crc = self.crc.Crc(msg)
        return msg

    def crc_ok(self, msg: Any) -> bool:
        return bool(self.crc.Crc(msg) == msg.crc)


class Latest:
    """The newest sample of a subscription (the SDK's handler runs on Cyclone's listener thread)."""

    def __init__(self, check: Any = None):
        self.cond = threading.Condition()
        self.sample: Any = None
        self.count = 0
        self.check = check
        self.good = self.bad = 0

    def __call__(self, msg: Any) -> None:
        if self.check is not None:
            if not self.check(msg):
                self.bad += 1  # dropped, as the robot drops a bad frame
                return
            self.good += 1
        with self.cond:
            self.sample = msg
            self.count += 1
            self.cond.notify_all()

    def wait_newer(self, than: int, timeout_s: float) -> Any:
        with self.cond:
            if not self.cond.wait_for(lambda: self.count > than, timeout=timeout_s):
                return None
            return self.sample


def motor_q(sdk: Sdk, state: Any) -> list[float]:
    return [float(state.motor_state[m].q) for m in sdk.motors]


def follow(spec: dict[str, Any]) -> dict[str, Any]:
    """A controller written with the SDK: subscribe rt/lowstate (every state's CRC checked with the
    SDK's CRC), then publish LowCmd_ at `rate_hz` holding every joint of `motors` where it is (gains
    `kp`, `kd`) while ramping joint `move` (an index into motors) to `target` (or `delta` from where
    it is, within `q_max`) over `ramp_s`, until it stayed within `tolerance` for `settle_s` or
    `timeout_s` passed."""
    sdk = Sdk(spec)
    states = Latest(check=None)
    crc_counts = {"ok": 0, "bad": 0}

    def on_state(msg: Any) -> None:
        crc_counts["ok" if sdk.crc_ok(msg) else "bad"] += 1
        states(msg)

    sub = sdk.Subscriber("rt/lowstate", sdk.LowState)
    sub.Init(on_state, 10)  # a handler behind a queue of 10, as Unitree's examples subscribe
    pub = sdk.Publisher("rt/lowcmd", sdk.LowCmd)
    pub.Init()
    first = states.wait_newer(0, float(spec.get("discovery_timeout_s", 20.0)))
    if first is None:
        return {"error": "no rt/lowstate received", "states": 0}
    q0 = motor_q(sdk, first)
    mode_machine = int(first.mode_machine) if sdk.hg else 0
    j = int(spec["move"])
    if "target" in spec:
        target = float(spec["target"])
    else:  # `delta` from where the joint is, away from the nearer of its limits `q_min`, `q_max`
        delta = float(spec["delta"])
        up = q0[j] + delta <= float(spec.get("q_max", float("inf"))) - 0.05
        target = q0[j] + delta if up else q0[j] - delta
    kp, kd = spec["kp"], spec["kd"]
    period, ramp = 1.0 / float(spec.get("rate_hz", 500.0)), float(spec.get("ramp_s", 0.5))
    tol, settle = float(spec.get("tolerance", 0.05)), float(spec.get("settle_s", 0.2))
    deadline = time.monotonic() + float(spec.get("timeout_s", 30.0))
    cmd = sdk.command(q0, kp, kd, mode_machine)
    t0 = time.monotonic()
    next_t, within_since, commands, reached_after = t0, None, 0, None
    q_now = q0
    while time.monotonic() < deadline:
        s = min(1.0, (time.monotonic() - t0) / ramp)
        q_cmd = list(q0)
        q_cmd[j] = q0[j] + s * (target - q0[j])
        sdk.fill(cmd, q_cmd, kp, kd)
        pub.Write(sdk.seal(cmd))
        commands += 1
        latest = states.sample
        q_now = motor_q(sdk, latest)
        if abs(q_now[j] - target) <= tol:
            within_since = within_since if within_since is not None else time.monotonic()
            if time.monotonic() - within_since >= settle:
                reached_after = round(time.monotonic() - t0, 3)
                break
        else:
            within_since = None
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    return {"states": states.count, "crc_ok": crc_counts["ok"], "crc_bad": crc_counts["bad"], "commands": commands,
            "mode_machine": mode_machine, "q_start": q0[j], "q_final": q_now[j], "target": target,
            "reached": reached_after is not None, "reached_after_s": reached_after}


def fake_robot(spec: dict[str, Any]) -> dict[str, Any]:
    """A robot written with the SDK: publishes LowState_ (sealed with the SDK's CRC) at `rate_hz`
    and takes LowCmd_, checking each command's CRC with the SDK (a bad one is dropped, as the motor
    boards drop it). Its motors are a first-order lag toward the commanded q (time constant `tau_s`)
    while a command with kp > 0 is in force; G1 commands must echo the `mode_machine` it reports.
    Runs until SIGTERM or `seconds`."""
    sdk = Sdk(spec)
    mode_machine = int(spec.get("mode_machine", 0))
    mismatched = [0]

    def check(cmd: Any) -> bool:
        ok = sdk.crc_ok(cmd)
        if ok and sdk.hg and int(cmd.mode_machine) != mode_machine:
            mismatched[0] += 1
        return ok

    commands = Latest(check=check)
    sub = sdk.Subscriber("rt/lowcmd", sdk.LowCmd)
    sub.Init(commands, 0)
    pub = sdk.Publisher("rt/lowstate", sdk.LowState)
    pub.Init()
    q = [float(v) for v in spec.get("q0", [0.0] * len(sdk.motors))]
    dt, tau = 1.0 / float(spec.get("rate_hz", 500.0)), float(spec.get("tau_s", 0.05))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    end = time.monotonic() + float(spec.get("seconds", 60.0))
    state = sdk.new_state()
    if sdk.hg:
        state.mode_machine = mode_machine
    else:
        state.head[0], state.head[1] = 0xFE, 0xEF
        state.level_flag = 0xFF
        state.power_v = float(spec.get("power_v", 28.8))
    state.imu_state.quaternion = [1.0, 0.0, 0.0, 0.0]  # upright (w, x, y, z)
    state.imu_state.accelerometer = [0.0, 0.0, 9.81]
    sent, tick_ms, next_t = 0, 0, time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        cmd = commands.sample
        dq = [0.0] * len(q)
        for j, m in enumerate(sdk.motors):
            if cmd is None:
                continue
            mc = cmd.motor_cmd[m]
            if mc.mode == 0 or mc.kp <= 0.0 or abs(mc.q) >= 0.99 * GO_POS_STOP:
                continue
            step = dt / tau * (float(mc.q) - q[j])
            q[j] += step
            dq[j] = step / dt
        for j, m in enumerate(sdk.motors):
            ms = state.motor_state[m]
            ms.mode, ms.q, ms.dq = 1, q[j], dq[j]
            if sdk.hg:
                ms.temperature = [35, 35]
            else:
                ms.temperature = 35
        tick_ms += round(dt * 1000)
        state.tick = tick_ms
        pub.Write(sdk.seal(state))
        sent += 1
        next_t += dt
        time.sleep(max(0.0, next_t - time.monotonic()))
    last = commands.sample
    return {"states_sent": sent, "commands": commands.count, "crc_ok": commands.good, "crc_bad": commands.bad,
            "mode_machine_mismatch": mismatched[0], "q_final": q,
            "q_commanded": [float(last.motor_cmd[m].q) for m in sdk.motors] if last is not None else None}


def round_trip(spec: dict[str, Any]) -> dict[str, Any]:
    """`vertebra bench dds`, the SDK's side: per sample, seal a LowCmd_ with the SDK's CRC and
    publish it (ChannelPublisher.Write), then wait for the LowState_ the lockstep bridge publishes in
    answer (ChannelSubscriber with a handler, called on Cyclone's listener thread: the SDK's quickest
    way to be told of a sample). Timed with time.perf_counter_ns from before the CRC to the handler
    having stored the answer. `warmup` samples first, untimed."""
    sdk = Sdk(spec)
    states = Latest()
    sub = sdk.Subscriber("rt/lowstate", sdk.LowState)
    sub.Init(states, 0)
    pub = sdk.Publisher("rt/lowcmd", sdk.LowCmd)
    pub.Init()
    first = states.wait_newer(0, float(spec.get("discovery_timeout_s", 20.0)))
    if first is None:
        return {"error": "no rt/lowstate received"}
    cmd = sdk.command(spec["q"], spec["kp"], spec["kd"], int(first.mode_machine) if sdk.hg else 0)
    answer_timeout = float(spec.get("answer_timeout_s", 1.0))
    ns: list[int] = []
    timeouts = 0
    n, warmup = int(spec["samples"]), int(spec.get("warmup", 20))
    for k in range(warmup + n):
        before = states.count
        t0 = time.perf_counter_ns()
        pub.Write(sdk.seal(cmd))
        got = states.wait_newer(before, answer_timeout)
        t1 = time.perf_counter_ns()
        if got is None:
            timeouts += 1
            continue
        if k >= warmup:
            ns.append(t1 - t0)
    last = states.sample
    return {"ns": ns, "timeouts": timeouts, "last_state_crc_ok": sdk.crc_ok(last) if last is not None else None}


MODES = {"follow": follow, "fake-robot": fake_robot, "round-trip": round_trip}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--spec", required=True, help="one JSON object (see the module docstring)")
    args = p.parse_args(argv)
    try:
        out = MODES[args.mode](json.loads(args.spec))
    except Exception as e:  # a failure is reported as JSON, so the caller can say what went wrong
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())

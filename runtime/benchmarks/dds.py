"""`vertebra bench dds`: the Unitree DDS exchange, Vertebra's C++ driver against Unitree's official
Python SDK, measured in the same run against the same simulated robot (`vertebra sim-bridge` in
another process, on the loopback interface).

1. Round trip, lockstep bridge (it publishes one rt/lowstate in answer to each rt/lowcmd): one
   LowCmd_ written -> the bridge's answer taken. Vertebra: UnitreeDdsDriver.write() then read(),
   looped and timed inside C++ (cpp/drivers/unitree/dds_bench.hpp), so no Python is in the timed
   path; the answer's CRC is checked on the driver's DDS thread within the span. SDK: the same
   exchange written with `unitree_sdk2py` (ChannelPublisher, ChannelSubscriber with a handler,
   CRC().Crc to seal the command) in the SDK's own virtualenv and process
   (runtime/benchmarks/unitree_sdk_peer.py), against the same bridge right after.
   The bridge simulates one control period per command (MuJoCo, the same for both sides), so the
   same two round trips are measured again against an echo robot (`_rt.testing.LowCmdEcho`, in
   another process: each LowCmd_ with a valid CRC answered at once with one LowState_, no
   simulation): the exchange and the two ends' code alone.
2. Per-tick cost on the real-time thread, real-time bridge (publishing at the control rate): the
   time of read() (non-blocking: the newest state from the seqlock) + write() (encode, CRC, hand-over
   to the driver's publisher thread) per tick, ticks paced at the control rate, timed in C++.

Nothing here asserts a time: the JSON reports the numbers, the ratio and whether the goals are met
(round trip p50 at least 10x lower than the SDK's, through the bridge and through the echo robot;
tick cost p99 at most 10 us).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vertebra.runtime.errors import VertebraError
from vertebra.runtime.numerics import summary

PEER_SCRIPT = Path(__file__).resolve().with_name("unitree_sdk_peer.py")
SUMMARY_KEYS = ("count", "p50", "p99", "p999", "max", "mean")
GOAL_RATIO_P50 = 10.0
GOAL_TICK_P99_US = 10.0


def repo_root() -> Path:
    """The source tree (this file is runtime/benchmarks/dds.py in it; the install is editable)."""
    return Path(__file__).resolve().parents[2]


def sdk_python() -> tuple[str | None, str | None]:
    """(the python of Unitree's SDK virtualenv, None), or (None, why it cannot be used).

    The virtualenv is .venv-unitree-sdk/ in the source tree, built by scripts/setup_unitree_sdk.sh
    (which records why it failed in .venv-unitree-sdk.log); $VERTEBRA_UNITREE_SDK_PYTHON names
    another python with `unitree_sdk2py` installed."""
    override = os.environ.get("VERTEBRA_UNITREE_SDK_PYTHON")
    if override:
        if Path(override).is_file():
            return override, None
        return None, f"VERTEBRA_UNITREE_SDK_PYTHON={override}: no such file"
    venv = repo_root() / ".venv-unitree-sdk"
    py, stamp = venv / "bin" / "python", venv / ".vertebra-unitree-sdk.sha256"
    log = repo_root() / ".venv-unitree-sdk.log"
    if py.is_file() and stamp.is_file():
        return str(py), None
    why = "not built (run: bash scripts/setup_unitree_sdk.sh)"
    if log.is_file():
        failed = [line for line in log.read_text(errors="replace").splitlines() if "FAILED:" in line]
        if failed:
            why = "scripts/setup_unitree_sdk.sh " + failed[-1].split("] ", 1)[-1]
    return None, f"Unitree SDK virtualenv {venv}: {why}"


def run_sdk_peer(python: str, mode: str, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run unitree_sdk_peer.py `mode` with the SDK's python; its JSON answer (raises VertebraError
    with its stderr if it fails or says nothing)."""
    try:
        p = subprocess.run([python, str(PEER_SCRIPT), mode, "--spec", json.dumps(spec)], check=False,
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise VertebraError(f"unitree_sdk_peer {mode}: no answer within {timeout_s:g} s; "
                            f"stderr: {err[-2000:]}") from None
    return parse_peer_output(mode, p.stdout, p.stderr)


def parse_peer_output(mode: str, stdout: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise VertebraError(f"unitree_sdk_peer {mode}: no JSON answer; stdout: {stdout[-500:]!r}; "
                            f"stderr: {stderr[-2000:]}") from None
    if not isinstance(out, dict):
        raise VertebraError(f"unitree_sdk_peer {mode}: answered {out!r}, not an object")
    return out


class PeerProcess:
    """A process on the DDS domain that Vertebra talks to, stopped (SIGTERM) on exit; `.counters`
    then holds the counters it printed as JSON."""

    def __init__(self, cmd: list[str]):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.counters: dict[str, Any] = {}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        try:
            self.counters = json.loads(out.strip().splitlines()[-1])["counters"]
        except (IndexError, KeyError, TypeError, json.JSONDecodeError):
            self.counters = {"error": f"no counters (exit {self.proc.returncode}): {err[-500:]}"}

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bridge_process(robot: str, domain: int, lockstep: bool) -> PeerProcess:
    """`vertebra sim-bridge` in another process (loopback), its built-in motion service released (as
    a controller finds the robot once it was released)."""
    return PeerProcess([sys.executable, "-m", "vertebra.runtime.cli", "sim-bridge", "--robot", robot, "--domain",
                        str(domain), "--interface", "lo", "--released", "--quiet", "--json"]
                       + (["--lockstep"] if lockstep else []))


def echo_process(messages: str, domain: int, motors: list[int]) -> PeerProcess:
    """The echo robot (`_rt.testing.LowCmdEcho`: each LowCmd_ answered at once, no simulation) in
    another process: this module run as a script (see `main`)."""
    return PeerProcess([sys.executable, "-m", "vertebra.runtime.benchmarks.dds", "echo", "--messages", messages,
                        "--domain", str(domain), "--motors", ",".join(str(m) for m in motors)])


def default_domain() -> int:
    """A DDS domain for this run, apart from the tests' 100-219 (valid ids: 0-232)."""
    return 220 + os.getpid() % 13


def _us(ns: list[int]) -> dict[str, float]:
    return summary([v / 1000.0 for v in ns], SUMMARY_KEYS)


def _split(ns: list[int]) -> dict[str, float]:
    return summary([v / 1000.0 for v in ns], ("p50", "p99", "max"))


def bench_dds(robot: str = "g1", samples: int = 2000, progress: Callable[[str], None] | None = None,
              domain: int | None = None, sdk: bool = True) -> dict[str, Any]:
    from vertebra import _rt
    from vertebra.drivers.registry import UnitreeDdsDriverConfig
    from vertebra.runtime.config import RobotConfig, loop_config

    say = progress or (lambda _m: None)
    if samples < 1:
        raise VertebraError(f"bench dds: samples: found {samples}; valid: >= 1")
    cfg = RobotConfig.load(robot)
    dom = default_domain() if domain is None else domain
    rate = float(cfg.control_rate_hz)
    q, kp, kd = cfg.column("default_rad"), cfg.column("kp"), cfg.column("kd")
    motors = [j.motor_index for j in cfg.joints]
    messages = UnitreeDdsDriverConfig.default_messages(cfg)
    warmup = min(50, max(5, samples // 10))
    sdk_py, sdk_why = sdk_python() if sdk else (None, "not requested (--no-sdk)")

    def driver(lockstep: bool) -> Any:
        d = UnitreeDdsDriverConfig.from_dict({"network_interface": "lo", "domain_id": dom, "lockstep": lockstep,
                                              "state_timeout_s": 30.0}).build(cfg, rate)
        d.activate()
        return d

    def stop(d: Any) -> None:
        d.deactivate()
        d.cleanup()

    def both_sides(against: str) -> dict[str, Any]:
        """Vertebra's round trips, then the SDK's, against the peer now running."""
        say(f"  Vertebra C++ driver: {samples} LowCmd_ -> LowState_ round trips ...")
        d = driver(lockstep=True)
        try:
            r = _rt.testing.dds_round_trips(d, q, kp, kd, samples, warmup)
        finally:
            stop(d)
        cpp: dict[str, Any] = {**_us(r["ns"]), "write_us": _split(r["write_ns"]), "read_us": _split(r["read_ns"]),
               "stale": int(r["stale"]), "errors": int(r["errors"])}
        if sdk_py is None:
            sdk_part: dict[str, Any] = {"skipped": sdk_why}
        else:
            say(f"  Unitree SDK (Python, {sdk_py}): {samples} round trips ...")
            spec = {"messages": messages, "domain": dom, "interface": "lo", "motors": motors, "q": q, "kp": kp,
                    "kd": kd, "samples": samples, "warmup": warmup}
            try:
                ans = run_sdk_peer(sdk_py, "round-trip", spec, timeout_s=60.0 + samples * 0.05)
            except VertebraError as e:
                ans = {"error": str(e)}
            sdk_part = ({"error": ans["error"]} if "error" in ans else
                        {**_us(ans["ns"]), "timeouts": int(ans["timeouts"]),
                         "last_state_crc_ok": ans["last_state_crc_ok"]})
        ratio = round(sdk_part["p50"] / cpp["p50"], 2) if "p50" in sdk_part and cpp["p50"] > 0 else None
        return {"against": against, "vertebra_cpp": cpp, "unitree_sdk_python": sdk_part,
                "ratio_p50_sdk_over_vertebra": ratio}

    if sdk_py is None:
        say(f"Unitree SDK part skipped: {sdk_why}")
    say(f"{robot}: sim bridge in lockstep on DDS domain {dom} (lo): one simulated control period per command")
    with bridge_process(robot, dom, lockstep=True) as bridge:
        via_bridge = both_sides("vertebra sim-bridge --lockstep")
    via_bridge["peer_counters"] = bridge.counters
    say(f"{robot}: echo robot (each command answered at once, no simulation)")
    with echo_process(messages, dom, motors) as echo:
        via_echo = both_sides("echo robot (no simulation)")
    via_echo["peer_counters"] = echo.counters
    say(f"{robot}: sim bridge in real time at {rate:g} Hz: read() + write() per tick, {samples} ticks ...")
    with bridge_process(robot, dom, lockstep=False) as rt_bridge:
        d = driver(lockstep=False)
        try:
            tick = _rt.testing.dds_tick_cost(d, q, kp, kd, samples, rate, warmup, loop_config(rate).fifo_priority)
        finally:
            stop(d)
    tick_part: dict[str, Any] = {**_us(tick["ns"]), "read_us": _split(tick["read_ns"]),
                                 "write_us": _split(tick["write_ns"]), "stale_reads": int(tick["stale"]),
                                 "errors": int(tick["errors"]), "rate_hz": rate,
                                 "sched_fifo": bool(tick["sched_fifo"]), "peer_counters": rt_bridge.counters}
    ratio = via_bridge["ratio_p50_sdk_over_vertebra"]
    return {
        "benchmark": "dds",
        "robot": robot,
        "messages": messages,
        "samples": samples,
        "warmup": warmup,
        "domain": dom,
        "round_trip_us": via_bridge,
        "ratio_p50_sdk_over_vertebra": ratio,
        "round_trip_echo_us": via_echo,
        "tick_read_write_us": tick_part,
        "goals": {
            f"round_trip_p50_at_least_{GOAL_RATIO_P50:g}x_lower": None if ratio is None else ratio >= GOAL_RATIO_P50,
            # The exchange alone: through the bridge both sides also wait for its physics step (the
            # same ~50-90 µs), which bounds the ratio there whatever either side does.
            f"echo_round_trip_p50_at_least_{GOAL_RATIO_P50:g}x_lower": (
                None if via_echo["ratio_p50_sdk_over_vertebra"] is None
                else via_echo["ratio_p50_sdk_over_vertebra"] >= GOAL_RATIO_P50),
            f"tick_p99_at_most_{GOAL_TICK_P99_US:g}us": tick_part["p99"] <= GOAL_TICK_P99_US,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m vertebra.runtime.benchmarks.dds echo --messages hg --domain N --motors 0,1,...`: the
    echo robot until SIGTERM, then its counters as JSON (the benchmark runs it in another process)."""
    import argparse
    import signal
    import threading

    from vertebra import _rt

    p = argparse.ArgumentParser(prog="python -m vertebra.runtime.benchmarks.dds")
    p.add_argument("what", choices=["echo"])
    p.add_argument("--messages", choices=["hg", "go"], required=True)
    p.add_argument("--domain", type=int, required=True)
    p.add_argument("--interface", default="lo")
    p.add_argument("--motors", required=True, help="motor slots, comma-separated")
    a = p.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    echo = _rt.testing.LowCmdEcho(a.messages, a.domain, a.interface, [int(m) for m in a.motors.split(",")])
    while not stop.is_set():
        stop.wait(0.1)
    echo.stop()
    print(json.dumps({"counters": echo.counters()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

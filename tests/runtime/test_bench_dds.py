"""`vertebra bench dds`: the report's structure and sanity on a few samples (no timing thresholds:
benchmarks report times, tests never assert them)."""

import json
import subprocess
import sys

import pytest
from vertebra.runtime.benchmarks.dds import sdk_python

from tests.drivers.test_unitree_dds import domain

SUMMARY = ("count", "p50", "p99", "p999", "max", "mean")


def check_summary(s, count):
    assert s["count"] == count
    assert 0 < s["p50"] <= s["p99"] <= s["p999"] <= s["max"], s
    assert 0 < s["mean"] <= s["max"], s


@pytest.mark.parametrize("robot", ["g1", "go2"])
def test_bench_dds_reports_both_sides_against_the_bridge_and_the_echo_and_the_tick_cost(robot):
    samples = 40
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "dds", "--robot", robot, "--samples",
                        str(samples), "--domain", str(domain()), "--json"],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["benchmark"] == "dds" and out["robot"] == robot and out["samples"] == samples
    assert out["messages"] == {"g1": "hg", "go2": "go"}[robot]
    sdk_py, why = sdk_python()
    for key in ("round_trip_us", "round_trip_echo_us"):
        part = out[key]
        cpp = part["vertebra_cpp"]
        check_summary(cpp, samples)
        assert cpp["errors"] == 0 and cpp["stale"] == 0, cpp  # every command answered, none lost
        assert cpp["write_us"]["p50"] <= cpp["p50"] and cpp["read_us"]["p50"] <= cpp["p50"]
        peer = part["peer_counters"]
        assert peer["crc_errors"] == 0 and peer["commands"] >= samples, peer  # every CRC valid, the SDK's too
        sdk = part["unitree_sdk_python"]
        if sdk_py is None:
            assert sdk == {"skipped": why}
            assert part["ratio_p50_sdk_over_vertebra"] is None
        else:
            check_summary(sdk, samples)
            assert sdk["timeouts"] == 0 and sdk["last_state_crc_ok"] is True, sdk
            assert part["ratio_p50_sdk_over_vertebra"] == pytest.approx(sdk["p50"] / cpp["p50"], rel=0.02)
            assert peer["commands"] >= 2 * samples  # both sides' commands reached the peer
    assert out["ratio_p50_sdk_over_vertebra"] == out["round_trip_us"]["ratio_p50_sdk_over_vertebra"]
    tick = out["tick_read_write_us"]
    check_summary(tick, samples)
    assert tick["errors"] == 0 and tick["rate_hz"] == 500.0 and isinstance(tick["sched_fifo"], bool)
    assert tick["read_us"]["p50"] <= tick["p50"] and tick["write_us"]["p50"] <= tick["p50"]
    assert tick["peer_counters"]["crc_errors"] == 0
    assert set(out["goals"]) == {"round_trip_p50_at_least_10x_lower", "echo_round_trip_p50_at_least_10x_lower",
                                 "tick_p99_at_most_10us"}


def test_bench_dds_without_the_sdk_says_so_in_its_table():
    r = subprocess.run([sys.executable, "-m", "vertebra.runtime.cli", "bench", "dds", "--robot", "go2", "--samples",
                        "10", "--domain", str(domain()), "--no-sdk"], check=False, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for row in ("Vertebra C++ driver, sim bridge", "Vertebra C++ driver, echo robot", "read()+write() per tick"):
        assert row in r.stdout, r.stdout
    assert r.stdout.count("not requested (--no-sdk)") == 2, r.stdout


def test_bench_dds_refuses_no_samples(capsys):
    from vertebra.runtime.cli import main

    assert main(["bench", "dds", "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err

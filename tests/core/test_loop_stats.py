import threading
import time

import numpy as np
import pytest
from vertebra import _rt

from tests.conftest import make_params


def test_percentiles_match_numpy_within_bin_resolution():
    rng = np.random.default_rng(0)
    samples_us = np.concatenate([rng.exponential(30.0, 50_000), rng.uniform(1000, 5000, 500)])
    h = _rt.testing.LatencyHistogram()
    h.record_many_ns([int(s * 1000) for s in samples_us])
    assert h.count == samples_us.size
    for q, tol in ((0.5, 1.0), (0.99, 50.0), (0.999, 50.0)):
        exact = np.percentile(samples_us, q * 100, method="inverted_cdf")
        assert abs(h.percentile_us(q) - exact) <= tol, (q, h.percentile_us(q), exact)
    assert h.max_us == pytest.approx(samples_us.max(), abs=0.001)
    assert h.mean_us == pytest.approx(samples_us.mean(), rel=1e-3)


def test_negative_overflow_and_reset():
    h = _rt.testing.LatencyHistogram()
    h.record_ns(-5000)          # early wake-ups count as zero lateness
    h.record_ns(250_000_000)    # 250 ms: beyond the last bin
    assert h.count == 2
    assert h.percentile_us(0.0) <= 1.0
    assert h.percentile_us(1.0) == pytest.approx(250_000.0)
    assert h.max_us == pytest.approx(250_000.0)
    h.reset()
    assert h.count == 0 and h.percentile_us(0.5) == 0.0 and h.max_us == 0.0


def test_stats_are_readable_while_a_real_time_loop_runs():
    driver = _rt.MockDriver()
    driver.init([f"j{i}" for i in range(6)], 1000.0)
    cfg = _rt.LoopConfig()
    cfg.rate_hz = 1000.0
    loop = _rt.RtLoop(driver, make_params(), cfg)
    counts = []
    errors = []

    def reader():
        try:
            for _ in range(50):
                s = loop.stats()
                counts.append(s["lateness_us"]["count"])
                assert s["lateness_us"]["p50"] <= s["lateness_us"]["p99"] <= s["lateness_us"]["p999"] <= s["lateness_us"]["max"] + 1e-9
                time.sleep(0.004)
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    loop.start()
    try:
        t = threading.Thread(target=reader)
        t.start()
        t.join()
    finally:
        loop.stop()
    assert not errors
    assert counts == sorted(counts), "counts must only grow while the loop runs"
    assert counts[-1] > counts[0] and counts[-1] > 0
    final = loop.stats()
    assert final["ticks"] >= counts[-1]
    assert final["compute_us"]["count"] == final["ticks"]
    report = loop.rt_report()
    assert set(report) >= {"sched_fifo", "mlockall", "affinity", "timer_slack", "notes"}
    # Whatever the OS refused is explained.
    if not (report["sched_fifo"] and report["mlockall"]):
        assert report["notes"]


def test_lockstep_counts_ticks_and_compute_but_no_lateness(mock_loop):
    _, loop = mock_loop
    loop.run_ticks(250)
    s = loop.stats()
    assert s["ticks"] == 250
    assert s["compute_us"]["count"] == 250
    assert s["lateness_us"]["count"] == 0
    assert s["overruns"] == 0


def test_lockstep_and_real_time_are_exclusive(mock_loop):
    _, loop = mock_loop
    with pytest.raises(RuntimeError, match="lockstep"):
        loop.start()
    driver = _rt.MockDriver()
    driver.init(["a"], 500.0)
    rt = _rt.RtLoop(driver, make_params(1), _rt.LoopConfig())
    with pytest.raises(RuntimeError, match="real time"):
        rt.run_ticks(1)


def test_loop_config_is_validated():
    driver = _rt.MockDriver()
    driver.init(["a"], 500.0)
    cfg = _rt.LoopConfig()
    cfg.rate_hz = 0.0
    with pytest.raises(ValueError, match="rate_hz"):
        _rt.RtLoop(driver, make_params(1), cfg)

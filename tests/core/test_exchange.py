"""Targets (Python -> C++) and snapshots (C++ -> Python) under a concurrent writer and reader."""

import threading

from vertebra import _rt

from tests.conftest import arm

from tests.conftest import N


def test_triple_buffer_never_tears_under_concurrent_writer():
    r = _rt.testing.stress_triple_buffer(5_000)
    assert r["torn"] == 0
    assert r["distinct_values_seen"] >= 200  # the reader really raced the writer (aims for 5000, time-capped)


def test_seqlock_never_tears_under_concurrent_writer():
    r = _rt.testing.stress_seqlock(5_000)
    assert r["torn"] == 0
    assert r["distinct_values_seen"] >= 200


def test_targets_taken_by_the_loop_are_never_torn(mock_loop):
    """A Python thread writes targets whose fields are all equal while the loop ticks on another
    thread (GIL released on both sides); every command the loop produced must be one whole target."""
    _, loop = mock_loop
    arm(loop)
    loop.request_mode(_rt.Mode.JOINT_PD)
    loop.run_ticks(1)
    stop = threading.Event()

    def writer():
        k = 1
        while not stop.is_set():
            v = 0.001 * (k % 1000)
            loop.set_targets([v] * N, [0.0] * N, [v + 1] * N, [v] * N, [v] * N, k)
            k += 1

    t = threading.Thread(target=writer)
    t.start()
    import time

    seen = set()
    deadline = time.monotonic() + 20.0
    try:
        # Until enough distinct targets raced through (the writer only runs when the GIL switches,
        # every 5 ms, so count values, not iterations), bounded in time.
        while len(seen) < 50 and time.monotonic() < deadline:
            loop.run_ticks(1)
            snap = loop.snapshot()
            if snap["targets_seq"] == 0:
                continue  # the writer has not been scheduled yet: the loop holds its pose
            c = snap["command"]
            q = c["q"]
            assert len(set(q.tolist())) == 1, f"torn targets: {q}"
            assert (c["kp"] == q[0] + 1).all() and (c["kd"] == q[0]).all() and (c["tau_ff"] == q[0]).all()
            seen.add(float(q[0]))
    finally:
        stop.set()
        t.join()
    assert len(seen) >= 50


def test_snapshot_readable_while_real_time_loop_runs():
    driver = _rt.MockDriver()
    driver.init([f"j{i}" for i in range(N)], 1000.0)
    from tests.conftest import make_params

    cfg = _rt.LoopConfig()
    cfg.rate_hz = 1000.0
    loop = _rt.RtLoop(driver, make_params(), cfg)
    loop.start()
    try:
        import time

        ticks = []
        deadline = time.monotonic() + 10.0
        while (not ticks or ticks[-1] < 50) and time.monotonic() < deadline:
            s = loop.snapshot()
            ticks.append(s["tick"])
            assert s["state"]["q"].shape == (N,)
            assert s["tick"] == 0 or s["state"]["seq"] == s["tick"]  # one tick, one consistent sample
    finally:
        loop.stop()
    assert ticks == sorted(ticks) and ticks[-1] >= 50

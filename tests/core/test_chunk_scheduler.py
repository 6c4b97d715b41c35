"""The chunk scheduler: interpolation, merging without a jump, starvation; and in the loop."""

import numpy as np
import pytest
from vertebra import _rt

from tests.conftest import RATE, N, arm

MS = 1_000_000
TICK = int(1e9 / RATE)


def ramp(t0_ms, steps, dim, start, slope_per_step, dt_ms=20):
    a = start + slope_per_step * np.arange(steps)[:, None] * np.ones((1, dim))
    return t0_ms * MS, dt_ms * MS, a


def run(cs, t_from, t_to):
    out = []
    for t in range(t_from, t_to, TICK):
        st, v = cs.sample(t)
        out.append((t, st, v.copy()))
    return out


def test_linear_interpolation_between_actions():
    cs = _rt.ChunkScheduler(2)
    cs.push(0, 20 * MS, np.array([[0.0, 1.0], [1.0, 3.0], [3.0, 3.0]]))
    for t, want in [(0, [0, 1]), (10 * MS, [0.5, 2.0]), (20 * MS, [1, 3]), (30 * MS, [2, 3]), (40 * MS, [3, 3])]:
        st, v = cs.sample(t)
        assert st == "ok" and np.allclose(v, want)


@pytest.mark.parametrize("mode", ["keep_prefix", "ensemble"])
def test_a_new_chunk_merges_with_a_bounded_jump(mode):
    blend = 0.1
    cs = _rt.ChunkScheduler(3, mode=mode, prefix_s=0.04, blend_s=blend, ensemble_decay=0.5)
    cs.push(*ramp(0, 50, 3, 0.0, 0.01))           # slow ramp: 0.01 per 20 ms step
    trace = run(cs, 0, 200 * MS)
    cs.push(*ramp(200, 50, 3, 1.0, 0.01))         # disagrees by ~0.5 with where the old one is
    trace += run(cs, 200 * MS, 600 * MS)
    vals = np.array([v for _, _, v in trace])
    steps = np.abs(np.diff(vals, axis=0)).max()
    slope = 0.01 / 20 * 2                          # per tick (2 ms)
    gap = 1.0                                      # |new - old| during the merge, at most
    bound = slope + gap * (2e-3 / blend) if mode == "keep_prefix" else slope + gap
    assert steps <= bound + 1e-9, (steps, bound)
    assert all(st == "ok" for _, st, _ in trace)
    end = trace[-1][2]
    if mode == "keep_prefix":
        # after prefix + blend the new chunk alone drives
        assert np.allclose(end, 1.0 + 0.01 * (398 / 20)), end  # last sample at 598 ms
        # the old chunk kept control during the prefix
        t_prefix = [v for t, _, v in trace if 200 * MS <= t < 240 * MS]
        assert np.allclose(t_prefix[-1], 0.01 * (238 / 20), atol=1e-9)
    else:
        assert 0.0 < float(end[0]) < 1.0 + 0.01 * (400 / 20)  # a weighted mean of both chunks


def test_starvation_holds_the_last_target_and_is_counted():
    cs = _rt.ChunkScheduler(2)
    cs.push(0, 10 * MS, np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert cs.sample(5 * MS)[0] == "ok"
    st, v = cs.sample(50 * MS)
    assert st == "no_new_data" and np.allclose(v, [0.5, 1.0])  # the last output, not the chunk's end
    cs.sample(52 * MS)
    s = cs.status()
    assert s["starved"] and s["starved_ticks"] == 2


def test_bad_chunks_are_refused():
    cs = _rt.ChunkScheduler(2)
    with pytest.raises(ValueError, match="2 values per action"):
        cs.push(0, MS, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="1..64 actions"):
        cs.push(0, MS, np.zeros((65, 2)))
    with pytest.raises(ValueError, match="dt_ns"):
        cs.push(0, 0, np.zeros((4, 2)))
    cs.push(0, MS, np.array([[0.0, np.nan]]))
    assert cs.sample(0)[0] == "no_new_data" and cs.status()["chunks_rejected"] == 1
    with pytest.raises(ValueError, match="modes are"):
        _rt.ChunkScheduler(2, mode="average")


def test_the_loop_follows_chunks_and_holds_when_they_stop(mock_loop):
    driver, loop = mock_loop
    sc = _rt.SafetyConfig()
    sc.starvation_hold_ms = 40
    sc.starvation_stop_ms = 400
    cfg = _rt.LoopConfig()
    cfg.rate_hz = RATE
    cfg.lockstep = True
    from tests.conftest import make_params

    loop = _rt.RtLoop(driver, make_params(), cfg, sc)
    cs = _rt.ChunkScheduler(N, blend_s=0.05)
    _rt.set_chunk_scheduler(loop, cs)
    arm(loop, pose=[0.3] * N)
    now = loop.snapshot()["time_s"]
    t0 = int(now * 1e9)
    cs.push(t0, 20 * MS, np.full((10, N), 0.3) + 0.02 * np.arange(10)[:, None])  # 200 ms of a slow ramp
    seq = loop.request_mode(_rt.Mode.JOINT_PD, stream=True)
    loop.run_ticks(1)
    assert loop.snapshot()["request_seq"] == seq and loop.snapshot()["request_status"] == "ok"
    loop.run_ticks(50)  # 100 ms in: half way along the ramp
    s = loop.snapshot()
    assert s["safety_mode"] == "ACTIVE" and np.allclose(s["command"]["q"], 0.3 + 0.02 * 5, atol=0.003)
    loop.run_ticks(75)  # chunks ran out at 180 ms; starvation hold after 40 ms more
    s = loop.snapshot()
    assert s["chunks"]["starved"] and s["safety_mode"] == "HOLD"
    assert np.allclose(s["command"]["q"], 0.3 + 0.02 * 9, atol=1e-6)  # holds the last target, no jump

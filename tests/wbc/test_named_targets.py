"""Whole-body task targets are a named sink: the chunk scheduler's columns are resolved to targets
by name when it is attached. The bug this fixes: columns were read by position (left hand xyz,
right hand xyz), so a package listing `com.x` first passed `policy check` and then drove the left
hand to centre-of-mass coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from vertebra import _rt

MS = 1_000_000


def hand_names(rt):
    return [f"{h}.{a}" for h in rt.cfg.hand_frames for a in "xyz"]


def test_the_sink_lists_its_targets_and_attach_refuses_bad_names():
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="wbc")
    names = rt.wb.ctrl.target_names
    assert names[:3] == ["com.x", "com.y", "com.z"] and names[3:] == hand_names(rt)
    sched = _rt.ChunkScheduler(3)
    with pytest.raises(ValueError, match="'com.w' is not a target of mode 'wbc'; targets are: com.x, com.y, com.z"):
        _rt.set_chunk_scheduler(rt.loop, sched, "wbc", ["com.x", "com.y", "com.w"])
    with pytest.raises(ValueError, match="target 'com' needs all of .x, .y and .z in the stream, found 2"):
        _rt.set_chunk_scheduler(rt.loop, _rt.ChunkScheduler(2), "wbc", ["com.x", "com.y"])
    with pytest.raises(ValueError, match="is named by columns 0 and 1"):
        _rt.set_chunk_scheduler(rt.loop, sched, "wbc", ["com.x", "com.x", "com.z"])
    with pytest.raises(ValueError, match="3 values per action; 2 target names"):
        _rt.set_chunk_scheduler(rt.loop, sched, "wbc", ["com.x", "com.y"])
    with pytest.raises(ValueError, match="no such mode is registered; registered: wbc"):
        _rt.set_chunk_scheduler(rt.loop, sched, "walk", ["com.x", "com.y", "com.z"])


def test_a_package_listing_com_first_drives_the_com_not_the_hand():
    from vertebra.runtime.numerics import tilt_deg
    from vertebra.runtime.sim_runtime import SimRuntime

    rt = SimRuntime("g1", controller="wbc")
    names = ["com.x", "com.y", "com.z"] + hand_names(rt)  # the CoM first: not the old positional layout
    sched = _rt.ChunkScheduler(len(names), blend_s=0.05)
    _rt.set_chunk_scheduler(rt.loop, sched, "wbc", names)
    rt.stand_up(hold_s=0.3)
    rt.engage_wbc()
    rt.wait(0.2)
    st = rt.wb.status()
    com0 = np.array(st["com"])
    q = rt.model.full_configuration(*(rt.loop.snapshot()["state"][k] for k in ("base_pos", "base_quat", "q")))
    hands0 = np.concatenate([np.asarray(rt.model.frame_translation(q, h)) for h in rt.cfg.hand_frames])
    target = np.concatenate([com0 + [0.0, 0.03, 0.0], hands0])
    t0 = int(rt.time_s() * 1e9)
    sched.push(t0, 20 * MS, np.tile(target, (60, 1)))  # 1.2 s of the same target
    rt.wait(1.0)
    snap = rt.loop.snapshot()
    st = rt.wb.status()
    q = rt.model.full_configuration(*(snap["state"][k] for k in ("base_pos", "base_quat", "q")))
    hands = np.concatenate([np.asarray(rt.model.frame_translation(q, h)) for h in rt.cfg.hand_frames])
    assert snap["faults"] == [] and tilt_deg(snap["state"]["base_quat"]) < 10.0
    # The CoM moved towards the 3 cm lateral target (against the hands held in place), and not along x/z.
    assert np.array(st["com"])[1] - com0[1] > 0.01, (st["com"], com0)
    assert np.max(np.abs(hands - hands0)) < 0.06  # the hands were told to stay, and roughly did
    # Read positionally (the old bug) the left hand would have been sent to the CoM, ~0.3 m away.
    assert np.linalg.norm(hands[:3] - target[:3]) > 0.15

"""The recorder (cpp/loop/record_ring.hpp, runtime/recorder.py) and its reader (tools/data/reader.py):
what the tick puts in the ring, what the writer puts in the MCAP file, and what survives a torn file."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from mcap.reader import make_reader

from tests.conftest import arm
from vertebra import _rt
from vertebra.runtime import record_schema as rs
from vertebra.runtime.recorder import RecordOptions, Recorder
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.tools.data import reader


def drain(ring: _rt.RecordRing) -> np.ndarray:
    buf = np.zeros(ring.capacity, dtype=rs.tick_dtype())
    k = ring.pop_into(buf)
    return buf[:k].copy()


# -- the record's layout -----------------------------------------------------------------------
def test_the_field_table_describes_the_whole_record():
    fields = _rt.tick_record_fields()
    dt = rs.tick_dtype()
    assert dt.itemsize == _rt.TICK_RECORD_BYTES
    end = 0
    for name, dtype, shape, off in fields:
        assert off >= end, f"{name} overlaps the field before it"
        assert off - end < 8, f"a gap of {off - end} bytes before {name}: a field the table leaves out"
        end = off + np.dtype(dtype).itemsize * int(np.prod(shape or (1,)))
    assert _rt.TICK_RECORD_BYTES - end < 8
    assert {"q", "cmd_q", "tau", "imu_acc", "contact_wrench", "faults_active", "lost_before"} <= set(dt.names)
    assert dt["contact_wrench"].shape == (4, 6)


def test_the_flag_names_are_the_cores():
    mine = {k[len("FLAG_"):].lower(): v for k, v in vars(rs).items() if k.startswith("FLAG_")}
    assert mine == dict(_rt.TICK_RECORD_FLAGS)


def test_a_ring_is_a_power_of_two_and_refuses_nonsense():
    assert _rt.RecordRing(100).capacity == 128
    with pytest.raises(ValueError, match="capacity"):
        _rt.RecordRing(1)
    with pytest.raises(ValueError, match="whole number of records"):
        _rt.RecordRing(4).pop_into(np.zeros(10, np.uint8))


# -- the tick side -----------------------------------------------------------------------------
def test_each_tick_records_what_it_read_and_wrote(mock_loop):
    _, loop = mock_loop
    ring = _rt.RecordRing(1024)
    loop.set_record_ring(ring)
    arm(loop)
    loop.run_ticks(10)
    recs = drain(ring)
    snap = loop.snapshot()
    assert len(recs) == snap["tick"] and list(recs["tick"]) == list(range(1, snap["tick"] + 1))
    last = recs[-1]
    n = len(snap["state"]["q"])
    assert last["n"] == n
    np.testing.assert_allclose(last["q"][:n], snap["state"]["q"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(last["cmd_q"][:n], snap["command"]["q"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(last["cmd_kp"][:n], snap["command"]["kp"], rtol=1e-6)
    assert _rt.safety_mode_names()[last["safety_mode"]] == "HOLD"
    assert last["flags"] & 1  # enabled
    assert (np.diff(recs["driver_ns"]) > 0).all()
    assert loop.record_cost()["count"] == len(recs)


def test_a_full_ring_loses_records_without_waiting_and_says_where(mock_loop):
    _, loop = mock_loop
    ring = _rt.RecordRing(64)
    loop.set_record_ring(ring)
    loop.run_ticks(100)  # nobody drains: 64 fit, 36 are lost, the tick never waits
    assert ring.pushed == 64 and ring.lost == 36 and loop.snapshot()["tick"] == 100
    first = drain(ring)
    assert list(first["tick"]) == list(range(1, 65)) and not first["lost_before"].any()
    loop.run_ticks(1)
    nxt = drain(ring)
    assert nxt["tick"][0] == 101 and nxt["lost_before"][0] == 36 and nxt["lost_since_ns"][0] > 0


def test_every_nth_tick(mock_loop):
    _, loop = mock_loop
    ring = _rt.RecordRing(64)
    with pytest.raises(ValueError, match="every_ticks"):
        loop.set_record_ring(ring, 0)
    loop.set_record_ring(ring, 5)
    loop.run_ticks(20)
    assert list(drain(ring)["tick"]) == [5, 10, 15, 20]


def test_the_ring_is_configured_before_the_first_tick(mock_loop):
    _, loop = mock_loop
    loop.run_ticks(1)
    with pytest.raises(Exception, match="set_record_ring"):
        loop.set_record_ring(_rt.RecordRing(8))


# -- the writer and the file -------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A Go2 stood up and held under a recording, with one episode (a fault and an intervention in it)."""
    d = tmp_path_factory.mktemp("runs")
    # fsync_s at its least: many chunks in a run that takes a second of wall time (the torn-file tests)
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(d), "joint_states_hz": 50, "fsync_s": 0.02}),
                    record_metadata={"serial": "GO2-TEST"}, fault_injection=True)
    try:
        rt.stand_up(hold_s=0.5)
        rt.recorder.episode_start("hold still", policy="none", task="hold")
        rt.wait(0.3)
        rt.recorder.intervention_start("teleop")
        rt.injector.set_motor_temp(0, 75.0)  # a hot motor: a warning fault inside the episode
        rt.wait(0.1)
        rt.injector.clear()
        rt.recorder.intervention_end()
        rt.wait(0.2)
        rt.recorder.episode_end("failure", "test")
        rt.recorder.note("the test's note", answer=42)
        rt.wait(0.1)
        ticks = rt.status()["tick"]
        events = rt.event_list()
    finally:
        rt.close()
    return {"dir": rt.recorder.run_dir, "ticks": ticks, "events": events, "summary": rt.recorder.summary(),
            "joints": list(rt.cfg.joint_names)}


def test_a_lockstep_recording_has_every_tick_once(recorded):
    ticks = reader.load_ticks(recorded["dir"])
    assert len(ticks) == recorded["ticks"] and list(ticks["tick"]) == list(range(1, recorded["ticks"] + 1))
    assert recorded["summary"]["lost"] == 0


def test_the_file_is_a_finished_mcap_with_foxglove_channels(recorded):
    (path,) = sorted(recorded["dir"].glob("*.mcap"))
    with open(path, "rb") as f:
        r = make_reader(f)
        summary = r.get_summary()
        assert summary is not None  # finished: a summary section (readers seek with it)
        assert r.get_header().profile == "vertebra"
        by_topic = {c.topic: c for c in summary.channels.values()}
        schemas = {s.id: s for s in summary.schemas.values()}
        for topic, name in ((rs.JOINT_STATES, "foxglove.JointStates"), (rs.LOG, "foxglove.Log"),
                            (rs.JOINT_COMMANDS, "foxglove.JointStates")):
            ch = by_topic[topic]
            assert ch.message_encoding == "json" and schemas[ch.schema_id].name == name
            assert schemas[ch.schema_id].encoding == "jsonschema"
        counts = summary.statistics.channel_message_counts
        n_js = counts[by_topic[rs.JOINT_STATES].id]
        seconds = recorded["ticks"] / 500.0
        assert abs(n_js - 50 * seconds) <= 2  # decimated to 50 Hz
        metas = {m.name: m.metadata for m in r.iter_metadata()}
        assert metas["vertebra"]["serial"] == "GO2-TEST" and metas["vertebra"]["robot"] == "go2"
        js = [json.loads(m.data) for _, _, m in r.iter_messages(topics=[rs.JOINT_STATES])]
    assert [j["name"] for j in js[0]["joints"]] == recorded["joints"]
    stamps = [j["timestamp"]["sec"] * 1_000_000_000 + j["timestamp"]["nsec"] for j in js]
    assert all(b - a == pytest.approx(20_000_000, abs=2_000_001) for a, b in zip(stamps, stamps[1:]))


def test_every_safety_event_is_in_the_recording(recorded):
    run = reader.load_run(recorded["dir"])
    seqs = [e["seq"] for e in run.events if e.get("kind") != "note"]
    assert seqs == [e["seq"] for e in recorded["events"]]
    assert any(e.get("kind") == "note" and e.get("answer") == 42 for e in run.events)


def test_the_episode_carries_its_outcome_intervention_and_fault(recorded):
    run = reader.load_run(recorded["dir"])
    (ep,) = run.episodes
    assert (ep.instruction, ep.task, ep.outcome, ep.reason) == ("hold still", "hold", "failure", "test")
    assert len(ep.interventions) == 1 and ep.interventions[0]["by"] == "teleop"
    assert ep.interventions[0]["end_s"] > ep.interventions[0]["start_s"]
    assert ep.faults and all(f["kind"] == "fault" for f in ep.faults)
    assert run.metadata["serial"] == "GO2-TEST" and not run.truncated


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_torn_file_is_read_up_to_its_last_whole_chunk(recorded, tmp_path, keep):
    (path,) = sorted(recorded["dir"].glob("*.mcap"))
    data = path.read_bytes()
    torn = tmp_path / "run"
    torn.mkdir()
    (torn / path.name).write_bytes(data[: int(len(data) * keep)])
    run = reader.load_run(torn)  # never raises
    assert run.truncated and run.segments[0].error
    assert run.metadata["robot"] == "go2"  # the metadata goes first
    ticks = reader.load_ticks(torn)
    assert 0 < len(ticks) < recorded["ticks"]
    assert list(ticks["tick"]) == list(range(1, len(ticks) + 1))  # a prefix: nothing out of order


def test_segments_rotate_and_each_is_whole(tmp_path):
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(tmp_path), "segment_s": 1.0}))
    try:
        rt.wait(3.5)
        n = rt.status()["tick"]
    finally:
        rt.close()
    segs = sorted(rt.recorder.run_dir.glob("*.mcap"))
    assert len(segs) >= 3
    run = reader.load_run(rt.recorder.run_dir)
    assert not run.truncated and run.ticks == n
    assert list(reader.load_ticks(rt.recorder.run_dir)["tick"]) == list(range(1, n + 1))


def test_records_the_ring_lost_become_a_dropout_message(mock_loop, tmp_path):
    from types import SimpleNamespace

    _, loop = mock_loop
    robot = SimpleNamespace(name="mock", joint_names=[f"j{i}" for i in range(6)])
    rec = Recorder(RecordOptions.from_dict({"dir": str(tmp_path), "ring_s": 0.1}), robot, rate_hz=500, lockstep=True)
    rec.attach(loop)
    loop.run_ticks(400)  # no writer yet: the ring fills and loses records, the tick goes on
    lost = rec.ring.lost
    assert lost == 400 - rec.ring.capacity
    rec.start()
    end = time.monotonic() + 10.0
    while rec.ring.size and time.monotonic() < end:  # the writer empties the ring: the next ticks fit
        time.sleep(0.005)
    loop.run_ticks(10)
    rec.close()
    (d,) = [m.json() for s in reader.segments_of(rec.run_dir) for m in s.scan({rs.DROPOUTS})]
    assert d["lost"] == lost and d["duration_s"] > 0 and d["before_tick"] == 401
    run = reader.load_run(rec.run_dir)
    assert run.lost == lost and run.ticks == 400 - lost + 10


def test_records_lost_at_the_end_of_a_run_are_reported_too(mock_loop, tmp_path):
    """No record after the loss carries it (the run ended): the writer reports it from the ring's count."""
    from types import SimpleNamespace

    _, loop = mock_loop
    robot = SimpleNamespace(name="mock", joint_names=[f"j{i}" for i in range(6)])
    rec = Recorder(RecordOptions.from_dict({"dir": str(tmp_path), "ring_s": 0.1}), robot, rate_hz=500, lockstep=True)
    rec.attach(loop)
    loop.run_ticks(400)
    lost = rec.ring.lost
    rec.start()
    rec.close()
    (d,) = [m.json() for s in reader.segments_of(rec.run_dir) for m in s.scan({rs.DROPOUTS})]
    assert d["lost"] == lost > 0 and d["before_tick"] == -1
    run = reader.load_run(rec.run_dir)
    assert run.lost == lost and run.ticks == 400 - lost


def test_episode_outcomes_are_checked(tmp_path):
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(tmp_path)}))
    try:
        with pytest.raises(Exception, match="no episode is open"):
            rt.recorder.episode_end("success")
        rt.recorder.episode_start("a")
        with pytest.raises(ValueError, match="success, failure, aborted"):
            rt.recorder.episode_end("great")
        rt.recorder.episode_start("b")  # ends "a" as aborted
    finally:
        rt.close()  # ends "b" as aborted: the recording stopped
    eps = reader.load_run(rt.recorder.run_dir).episodes
    assert [(e.instruction, e.outcome) for e in eps] == [("a", "aborted"), ("b", "aborted")]
    assert eps[1].reason == "the recording stopped"


def test_a_disabled_recording_records_nothing(tmp_path):
    rt = SimRuntime("go2", record=RecordOptions.from_dict({"dir": str(tmp_path), "enabled": False}))
    rt.wait(0.1)
    rt.close()
    assert rt.recorder is None and not any(tmp_path.iterdir())
    shutil.rmtree(tmp_path)


def test_a_named_camera_is_recorded_at_its_rate_in_robot_time(tmp_path):
    import base64
    import io

    from PIL import Image

    opts = RecordOptions.from_dict({"dir": str(tmp_path), "cameras": [{"name": "head", "fps": 10}]})
    rt = SimRuntime("g1", record=opts)
    try:
        rt.wait(1.0)
    finally:
        rt.close()
    frames = [m for s in reader.segments_of(rt.recorder.run_dir) for m in s.scan({rs.CAMERA_PREFIX + "head"})]
    assert len(frames) == 10 and {m.schema for m in frames} == {"foxglove.CompressedImage"}
    t = [m.json()["timestamp"] for m in frames]
    ns = [x["sec"] * 1_000_000_000 + x["nsec"] for x in t]
    assert all(b - a == pytest.approx(100_000_000, abs=2_000_001) for a, b in zip(ns, ns[1:]))  # every 0.1 s
    first = frames[0].json()
    assert first["format"] == "jpeg" and first["frame_id"] == "head"
    img = Image.open(io.BytesIO(base64.b64decode(first["data"])))
    spec = next(c for c in rt.cfg.sim.cameras if c.name == "head")
    assert img.size == (spec.width_px, spec.height_px)


def test_a_camera_the_driver_cannot_give_is_refused(tmp_path):
    from vertebra.drivers.registry import driver_config
    from vertebra.runtime.errors import ConfigError
    from vertebra.runtime.runtime import Runtime

    opts = RecordOptions.from_dict({"dir": str(tmp_path), "cameras": [{"name": "head"}]})
    mock = driver_config("mock")
    with pytest.raises(ConfigError, match="in-process simulator"):
        Runtime("g1", mock, lockstep=True, record=opts)
    assert not any(tmp_path.iterdir())  # refused before anything was recorded
    opts = RecordOptions.from_dict({"dir": str(tmp_path), "cameras": [{"name": "belly"}]})
    with pytest.raises(ConfigError, match="a camera of g1: head"):
        SimRuntime("g1", record=opts)


def test_two_runs_at_once_never_share_a_folder(tmp_path):
    from types import SimpleNamespace

    robot = SimpleNamespace(name="mock", joint_names=["j0"])
    opts = RecordOptions.from_dict({"dir": str(tmp_path)})
    a = Recorder(opts, robot, rate_hz=500, lockstep=True, run_id="same")
    b = Recorder(opts, robot, rate_hz=500, lockstep=True, run_id="same")
    assert a.run_dir != b.run_dir and b.run_id == "same-2" and a.run_dir.is_dir() and b.run_dir.is_dir()
    a.discard()
    b.discard()
    assert not any(tmp_path.iterdir())

"""The wire protocol: every dtype and shape round-trips; malformed input is refused with a code."""

import struct

import msgpack
import numpy as np
import pytest
from vertebra.policies.protocol import PROTOCOL_VERSION, ProtocolError, decode, encode

DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
          np.float16, np.float32, np.float64]
SHAPES = [(), (0,), (1,), (7,), (3, 4), (2, 0, 5), (224, 224, 3), (1, 1, 1, 1, 1, 1, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_dtype_and_shape_round_trips(dtype, shape):
    rng = np.random.default_rng(0)
    a = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    msg = decode(encode({"type": "infer", "obs": {"x": a, "nested": [a, {"y": a}]}, "id": 3}))
    for b in (msg["obs"]["x"], msg["obs"]["nested"][0], msg["obs"]["nested"][1]["y"]):
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    assert msg["v"] == PROTOCOL_VERSION and msg["id"] == 3


def test_non_contiguous_and_scalar_values_are_encoded():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    msg = decode(encode({"type": "infer", "obs": {"a": a, "s": np.float64(2.5), "i": np.int64(7)}}))
    assert np.array_equal(msg["obs"]["a"], a) and msg["obs"]["s"] == 2.5 and msg["obs"]["i"] == 7


def test_unsupported_arrays_are_refused_when_encoding():
    with pytest.raises(ProtocolError, match="big-endian"):
        encode({"type": "infer", "obs": {"a": np.zeros(3, dtype=">f4")}})
    with pytest.raises(ProtocolError, match="not supported"):
        encode({"type": "infer", "obs": {"a": np.zeros(3, dtype=np.complex64)}})
    with pytest.raises(TypeError, match="cannot encode object"):
        encode({"type": "infer", "obs": {"a": object()}})


def raw(msg: dict) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def ext(payload: bytes, code: int = 1) -> msgpack.ExtType:
    return msgpack.ExtType(code, payload)


GOOD_HEAD = bytes([3]) + b"<f4" + bytes([1]) + struct.pack("<Q", 2)


@pytest.mark.parametrize("frame,code", [
    (b"\xc1garbage", "malformed"),
    (b"", "malformed"),
    (raw([1, 2, 3]), "malformed"),
    (raw({"type": "infer", "obs": {}}), "version"),
    (raw({"v": 99, "type": "infer", "obs": {}}), "version"),
    (raw({"v": 1, "type": "launch_missiles"}), "unknown_type"),
    (raw({"v": 1}), "malformed"),
    (raw({"v": 1, "type": "infer"}), "schema"),
    (raw({"v": 1, "type": "infer", "obs": [1]}), "schema"),
    (raw({"v": 1, "type": "infer", "obs": {}, "id": "one"}), "schema"),
    (raw({"v": 1, "type": "load"}), "schema"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(GOOD_HEAD + b"\0" * 8, code=7)}}), "bad_ext"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(GOOD_HEAD + b"\0" * 7)}}), "bad_array"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(bytes([3]) + b"<c8" + bytes([0]))}}), "bad_dtype"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(bytes([3]) + b"<f4" + bytes([9]) + b"\0" * 72)}}), "bad_shape"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(bytes([3]) + b"<f4" + bytes([2]) + struct.pack("<Q", 2))}}),
     "bad_shape"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(bytes([3]) + b"<f4" + bytes([2]) + struct.pack("<2Q", 2**62, 2**62))}}),
     "bad_array"),
    (raw({"v": 1, "type": "infer", "obs": {"a": ext(b"\x09")}}), "bad_array"),
    (raw({"v": 1, 5: "x", "type": "hello"}), "malformed"),
])
def test_malformed_frames_are_refused_with_a_code(frame, code):
    with pytest.raises(ProtocolError) as e:
        decode(frame)
    assert e.value.code == code, str(e.value)


def test_size_is_checked_before_decoding():
    big = encode({"type": "infer", "obs": {"img": np.zeros((512, 512, 3), np.uint8)}})
    with pytest.raises(ProtocolError) as e:
        decode(big, max_bytes=100_000)
    assert e.value.code == "too_large"
    assert decode(big, max_bytes=len(big))["obs"]["img"].shape == (512, 512, 3)


def test_decoded_arrays_are_read_only_views():
    msg = decode(encode({"type": "infer", "obs": {"a": np.ones(4, np.float32)}}))
    with pytest.raises(ValueError):
        msg["obs"]["a"][0] = 2.0

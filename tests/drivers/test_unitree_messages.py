"""Unitree low-level messages as Vertebra builds them (cpp/drivers/unitree), checked against an
independent description of the published layouts (Python struct formats with explicit padding,
from unitree_sdk2_python's IDL) and two independent implementations of Unitree's CRC."""

import struct

import numpy as np
import pytest
from vertebra import _rt

T = _rt.testing

# -- an independent description of the layouts (natural alignment; "x" is a padding byte) ---------
HG_MOTOR_CMD = "B3x5fI"            # mode, q, dq, tau, kp, kd, reserve
HG_MOTOR_STATE = "B3x4f2hf2II4I"   # mode, q, dq, ddq, tau_est, temperature[2], vol, sensor[2], motorstate, reserve[4]
HG_IMU = "4f3f3f3fh2x"             # quaternion, gyroscope, accelerometer, rpy, temperature
HG_LOWCMD = "<BB2x" + HG_MOTOR_CMD * 35 + "4II"
HG_LOWSTATE = "<2IBB2xI" + HG_IMU + HG_MOTOR_STATE * 35 + "40B4II"
GO_HEAD = "2BBB2I2IH2x"            # head[2], level_flag, frame_reserve, sn[2], version[2], bandwidth
GO_MOTOR_CMD = "B3x5f3I"
GO_MOTOR_STATE = "B3x7fB3xI2I"     # mode, q..ddq_raw, temperature, lost, reserve[2]
GO_IMU = "4f3f3f3fB3x"
GO_BMS_STATE = "4BiH2B2B15H"
GO_LOWCMD = "<" + GO_HEAD + GO_MOTOR_CMD * 20 + "4B" + "40B12B2BBxII"
GO_LOWSTATE = ("<" + GO_HEAD + GO_IMU + GO_MOTOR_STATE * 20 + GO_BMS_STATE
               + "4h4hI40BB3xfBB2xff4HII")


def padding_offsets(fmt: str) -> list[int]:
    """Byte offsets of the padding bytes ("x") of a struct format."""
    offs, pos, count = [], 0, ""
    for ch in fmt.lstrip("<"):
        if ch.isdigit():
            count += ch
            continue
        n = int(count or 1)
        count = ""
        if ch == "x":
            offs.extend(range(pos, pos + n))
        pos += n * struct.calcsize("<" + ch)
    return offs


# -- two independent CRC implementations -------------------------------------------------------------
def crc_words_bitwise(words) -> int:
    """Unitree's description, word by word: polynomial 0x04C11DB7, init 0xFFFFFFFF, each 32-bit word
    most significant bit first, no reflection, no final XOR."""
    crc = 0xFFFFFFFF
    for w in words:
        for bit in range(31, -1, -1):
            top = (crc >> 31) ^ ((w >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= 0x04C11DB7
    return crc


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 over bytes (the catalogued algorithm)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def words_of(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 4}I", data))


def test_the_reference_crc_has_the_catalogued_check_value():
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # CRC-32/MPEG-2 check value (Greg Cook's CRC catalogue)


def test_the_crc_matches_both_independent_implementations():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 250, 522):
        words = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        data = words.astype("<u4").tobytes()
        got = T.unitree_crc32(data)
        assert got == crc_words_bitwise(words.tolist())
        assert got == crc32_mpeg2(words.astype(">u4").tobytes())  # the same words written big-endian
    assert T.unitree_crc32(b"\0\0\0\0") == crc32_mpeg2(b"\0\0\0\0") == 0xC704DD7B


def test_message_sizes_and_type_names_are_unitrees():
    sizes = T.unitree_message_sizes()
    assert sizes == {"hg.LowCmd_": 1004, "hg.LowState_": 2092, "go.LowCmd_": 812, "go.LowState_": 1180}
    for name, fmt in (("hg.LowCmd_", HG_LOWCMD), ("hg.LowState_", HG_LOWSTATE), ("go.LowCmd_", GO_LOWCMD),
                      ("go.LowState_", GO_LOWSTATE)):
        assert struct.calcsize(fmt) == sizes[name]  # the independent layout agrees with the generated C
    assert T.unitree_type_names() == {
        "hg.LowCmd_": "unitree_hg::msg::dds_::LowCmd_", "hg.LowState_": "unitree_hg::msg::dds_::LowState_",
        "go.LowCmd_": "unitree_go::msg::dds_::LowCmd_", "go.LowState_": "unitree_go::msg::dds_::LowState_",
        "go.WirelessController_": "unitree_go::msg::dds_::WirelessController_"}


@pytest.mark.parametrize("messages,fmt,per_motor,first_motor", [("hg", HG_LOWCMD, 7, 2), ("go", GO_LOWCMD, 9, 9)])
def test_a_command_is_fresh_zero_padded_mapped_and_sealed(messages, fmt, per_motor, first_motor):
    motors = [3, 0, 11]  # Vertebra joint j drives motor motors[j]
    q, dq, kp, kd, tau = [0.5, -0.25, 1.0], [0.1, 0.2, 0.3], [40.0, 50.0, 60.0], [1.0, 2.0, 3.0], [0.5, 0.0, -1.5]
    data = T.unitree_encode_lowcmd(messages, motors, q, dq, kp, kd, tau, 1, 7)
    pads = padding_offsets(fmt)
    assert pads and all(data[i] == 0 for i in pads)  # the encoder was handed a buffer full of 0xAB
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == crc_words_bitwise(words_of(data)[:-1])
    vals = struct.unpack(fmt, data)
    if messages == "hg":
        assert vals[:2] == (1, 7)  # mode_pr, mode_machine echoed from the robot
    else:
        assert vals[:3] == (0xFE, 0xEF, 0xFF)  # head, level_flag: low-level commands
    for j, m in enumerate(motors):
        mode, mq, mdq, mtau, mkp, mkd = vals[first_motor + m * per_motor:first_motor + m * per_motor + 6]
        assert mode == 1 and np.allclose([mq, mdq, mtau, mkp, mkd], [q[j], dq[j], tau[j], kp[j], kd[j]])
    for m in (1, 2, 4):  # no joint: disabled, all zero
        assert vals[first_motor + m * per_motor:first_motor + (m + 1) * per_motor] == (0,) * per_motor


def hg_lowstate(rng) -> tuple[bytes, dict]:
    motors = []
    truth = {"q": [], "dq": [], "tau": [], "temp": [], "err": []}
    for m in range(35):
        q, dq, tau = (float(np.float32(x)) for x in rng.uniform(-2, 2, 3))
        t0, t1 = (int(x) for x in rng.integers(20, 90, 2))
        err = int(rng.integers(0, 2**31))
        motors += [1, q, dq, 0.0, tau, t0, t1, 24.0, 0, 0, err, 0, 0, 0, 0]
        for k, v in zip(("q", "dq", "tau", "temp", "err"), (q, dq, tau, max(t0, t1), err)):
            truth[k].append(v)
    quat = [0.9238795, 0.0, 0.3826834, 0.0]
    imu = quat + [0.1, -0.2, 0.3] + [0.0, 0.0, 9.81] + [0.0, 0.785, 0.0] + [40]
    remote = [0] * 40
    fields = [2, 1, 0, 6, 12345, *imu, *motors, *remote, 0, 0, 0, 0, 0]
    data = bytearray(struct.pack(HG_LOWSTATE, *fields))
    struct.pack_into("<I", data, len(data) - 4, crc_words_bitwise(words_of(bytes(data))[:-1]))
    truth.update(quat=quat, gyro=[0.1, -0.2, 0.3], acc=[0.0, 0.0, 9.81])
    return bytes(data), truth


def test_a_g1_state_is_decoded_by_motor_index_and_its_crc_checked():
    data, truth = hg_lowstate(np.random.default_rng(4))
    motors = [5, 0, 34, 12]
    d = T.unitree_decode_lowstate("hg", data, motors)
    assert d["crc_ok"] and d["mode_machine"] == 6
    for j, m in enumerate(motors):
        assert d["q"][j] == pytest.approx(truth["q"][m]) and d["dq"][j] == pytest.approx(truth["dq"][m])
        assert d["tau"][j] == pytest.approx(truth["tau"][m]) and d["motor_temp_c"][j] == truth["temp"][m]
        assert d["motor_error"][j] == truth["err"][m]
    assert np.allclose(d["imu_quat"], truth["quat"]) and np.allclose(d["imu_gyro"], truth["gyro"])
    assert np.allclose(d["imu_acc"], truth["acc"], atol=1e-5) and not d["has_battery"]
    corrupt = bytearray(data)
    corrupt[100] ^= 0x01  # one bit of one motor's data
    assert not T.unitree_decode_lowstate("hg", bytes(corrupt), motors)["crc_ok"]


def test_a_go2_state_carries_battery_and_foot_forces():
    rng = np.random.default_rng(5)
    motors = []
    for m in range(20):
        motors += [1, 0.1 * m, -0.01 * m, 0.0, 0.5 * m, 0.0, 0.0, 0.0, 30 + m, 0, 0, 0]
    imu = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.81, 0.0, 0.0, 0.0, 35]
    bms = [1, 2, 0, 80, -1200, 7, 30, 31, 32, 33] + [3300] * 15
    ff = [int(x) for x in rng.integers(0, 400, 4)]
    tail = [*ff, 0, 0, 0, 0, 99, *([0] * 40), 0, 0.0, 40, 41, 28.4, 3.2, 0, 0, 0, 0, 0, 0]
    data = bytearray(struct.pack(GO_LOWSTATE, 0xFE, 0xEF, 0xFF, 0, 0, 0, 0, 0, 0, *imu, *motors, *bms, *tail))
    struct.pack_into("<I", data, len(data) - 4, crc_words_bitwise(words_of(bytes(data))[:-1]))
    d = T.unitree_decode_lowstate("go", bytes(data), list(range(12)))
    assert d["crc_ok"] and d["has_battery"] and d["battery_v"] == pytest.approx(28.4)
    assert d["foot_force"] == ff and d["motor_temp_c"][11] == 41
    assert np.allclose(d["q"], [0.1 * m for m in range(12)], atol=1e-6)


def test_the_wireless_remote_is_decoded_from_its_published_offsets():
    raw = bytearray(40)
    struct.pack_into("<H", raw, 2, 0b0000_0001_0010_0000)
    for off, v in ((4, 0.25), (8, -0.5), (12, 0.75), (16, 1.0), (20, -1.0)):
        struct.pack_into("<f", raw, off, v)
    r = T.unitree_decode_remote(bytes(raw))
    assert r == {"buttons": 0x0120, "lx": 0.25, "rx": -0.5, "ry": 0.75, "l2": 1.0, "ly": -1.0}
    with pytest.raises(ValueError, match="40 bytes"):
        T.unitree_decode_remote(b"\0" * 39)


def test_go2_foot_forces_round_trip_rounded_and_clamped_to_int16():
    """The bridge's encode puts State.foot_force into LowState_.foot_force (int16: nearest, clamped,
    NaN 0); the driver's decode reports them with has_foot_force (the Go2's message has them)."""
    r = T.unitree_go_foot_force_round_trip([12.4, -3.6, 40000.0, float("nan")])
    assert r["crc_ok"] and r["wire"] == [12, -4, 32767, 0]
    assert r["has_foot_force"] and r["foot_force"] == [12.0, -4.0, 32767.0, 0.0]
    r = T.unitree_go_foot_force_round_trip([-1e9, 0.5, 2.5, 100.0])
    assert r["wire"] == [-32768, 1, 3, 100]  # halves round away from zero (std::lround)
    r = T.unitree_go_foot_force_round_trip([50.0, 60.0, 70.0, 80.0], has_foot_force=False)
    assert r["wire"] == [0, 0, 0, 0] and r["has_foot_force"]  # a simulator without them sends zeros



# rt/sportmodestate, unitree_sdk2py/idl/unitree_go/msg/dds_/_SportModeState_.py (TimeSpec_, PathPoint_)
GO_SPORT_MODE_STATE = "<iI" + "I" + GO_IMU + "B3xfB3xf3ff3ff4f4h12f12f" + "7f" * 10


def test_the_rpc_and_sport_state_types_are_unitrees():
    t = T.unitree_service_types()
    assert t["api.Request_"] == "unitree_api::msg::dds_::Request_"
    assert t["api.Response_"] == "unitree_api::msg::dds_::Response_"
    assert t["go.SportModeState_"] == "unitree_go::msg::dds_::SportModeState_"
    assert t["go.SportModeState_.size"] == struct.calcsize(GO_SPORT_MODE_STATE)

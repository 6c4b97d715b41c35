"""Signed manifests, encryption and redaction of exported datasets (tools/data/security.py): a changed,
missing or added file is named; an encrypted export decrypts to identical bytes; tampering fails closed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vertebra.runtime.recorder import RecordOptions
from vertebra.runtime.sim_runtime import SimRuntime
from vertebra.tools.data.security import init_key

VERTEBRA = [sys.executable, "-m", "vertebra.runtime.cli"]


def vertebra(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*VERTEBRA, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("sec")
    rt = SimRuntime("g1", record=RecordOptions.from_dict({"dir": str(d / "runs"), "cameras": [{"name": "head", "fps": 10}]}))
    try:
        rt.stand_up(hold_s=0.2)
        rt.recorder.episode_start("wave", task="wave")
        rt.wait(0.4)
        rt.recorder.episode_end("success")
    finally:
        rt.close()
    out = vertebra("data", "export", str(rt.recorder.run_dir), "--out", str(d / "ds"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["signed"]["files"] > 5
    return d / "ds"


def copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_an_export_verifies(dataset):
    keys = Path(os.environ["VERTEBRA_KEYS_DIR"])
    out = vertebra("data", "verify", str(dataset), "--key", str(keys / "robot.pub"), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    r = json.loads(out.stdout)
    assert r["ok"] and r["signature"] == "valid" and r["trusted"] and not (r["changed"] or r["missing"] or r["added"])


def test_tampering_is_named(dataset, tmp_path):
    ds = copy(dataset, tmp_path / "ds")
    (ds / "meta/tasks.parquet").write_bytes((ds / "meta/tasks.parquet").read_bytes() + b"\0")
    (ds / "meta/stats.json").unlink()
    (ds / "meta/extra.txt").write_text("planted")
    out = vertebra("data", "verify", str(ds), "--json")
    assert out.returncode == 1
    r = json.loads(out.stdout)
    assert r["changed"] == ["meta/tasks.parquet"] and r["missing"] == ["meta/stats.json"] and r["added"] == ["meta/extra.txt"]
    assert not r["ok"]


def test_a_rewritten_manifest_fails_its_signature(dataset, tmp_path):
    ds = copy(dataset, tmp_path / "ds")
    lines = (ds / "manifest-sha256.txt").read_text().splitlines()
    lines = [ln for ln in lines if not ln.endswith("meta/stats.json")]  # hide a removal by editing the manifest
    (ds / "manifest-sha256.txt").write_text("\n".join(lines) + "\n")
    (ds / "meta/stats.json").unlink()
    r = json.loads(vertebra("data", "verify", str(ds), "--json").stdout)
    assert r["signature"] == "INVALID" and not r["ok"]


def test_a_dataset_signed_by_another_key_fails_against_the_trusted_one(dataset, tmp_path):
    ds = copy(dataset, tmp_path / "ds")
    init_key("mallory", "ed25519", tmp_path / "k")
    from vertebra.tools.data.security import sign

    (ds / "meta/stats.json").write_text("{}")
    sign(ds, tmp_path / "k" / "mallory.key")  # re-signed by someone else: consistent, but not the robot's
    keys = Path(os.environ["VERTEBRA_KEYS_DIR"])
    assert json.loads(vertebra("data", "verify", str(ds), "--json").stdout)["ok"]  # integrity only
    r = json.loads(vertebra("data", "verify", str(ds), "--key", str(keys / "robot.pub"), "--json").stdout)
    assert r["signature"] == "INVALID" and not r["ok"]


def test_an_unsigned_or_unsignable_export_is_refused_unless_asked(dataset, tmp_path):
    from vertebra.tools.data import reader

    runs = reader.run_dirs(dataset.parent / "runs")
    env = {"VERTEBRA_KEYS_DIR": str(tmp_path / "nokeys")}
    out = vertebra("data", "export", str(runs[0]), "--out", str(tmp_path / "a"), env=env)
    assert out.returncode == 2 and "vertebra keys init" in out.stderr and not (tmp_path / "a").exists()
    out = vertebra("data", "export", str(runs[0]), "--out", str(tmp_path / "b"), "--unsigned", env=env)
    assert out.returncode == 0
    v = vertebra("data", "verify", str(tmp_path / "b"))
    assert v.returncode == 1 and "not signed" in v.stderr


def test_keys_are_private_and_never_replaced_silently(tmp_path):
    out = vertebra("keys", "init", "--dir", str(tmp_path), "--name", "robot")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "robot.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    again = vertebra("keys", "init", "--dir", str(tmp_path), "--name", "robot")
    assert again.returncode == 2 and "exists" in again.stderr
    os.chmod(tmp_path / "robot.key", 0o644)
    from vertebra.tools.data.security import SecurityError, sign

    with pytest.raises(SecurityError, match="readable by others"):
        sign(tmp_path, tmp_path / "robot.key")


def test_an_encrypted_export_decrypts_to_identical_bytes(dataset, tmp_path):
    init_key("alice", "x25519", tmp_path / "alice")
    init_key("bob", "x25519", tmp_path / "bob")
    init_key("eve", "x25519", tmp_path / "eve")
    enc = tmp_path / "ds.vtenc"
    out = vertebra("data", "encrypt", str(dataset), "--to", str(tmp_path / "alice/alice.pub"), "--to",
                   str(tmp_path / "bob/bob.pub"), "--out", str(enc), "--json")
    assert out.returncode == 0, out.stderr
    assert b"wave" not in enc.read_bytes() and b"PAR1" not in enc.read_bytes()  # nothing readable inside
    for who in ("alice", "bob"):
        dst = tmp_path / f"out-{who}"
        r = vertebra("data", "decrypt", str(enc), "--key", str(tmp_path / who / f"{who}.key"), "--out", str(dst))
        assert r.returncode == 0, r.stderr
        files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
        assert all((dataset / f).read_bytes() == (dst / f).read_bytes() for f in files)
        assert vertebra("data", "verify", str(dst)).returncode == 0  # the signature travels with it
    r = vertebra("data", "decrypt", str(enc), "--key", str(tmp_path / "eve/eve.key"), "--out", str(tmp_path / "e"))
    assert r.returncode == 1 and "not encrypted to key" in r.stderr


@pytest.mark.parametrize("damage", ["flip", "cut", "drop_chunk"])
def test_a_damaged_encrypted_file_fails_closed(dataset, tmp_path, damage):
    import struct

    from vertebra.tools.data import security

    init_key("alice", "x25519", tmp_path / "k")
    enc = tmp_path / "ds.vtenc"
    security.encrypt(dataset, [tmp_path / "k/alice.pub"], enc)
    blob = bytearray(enc.read_bytes())
    (hlen,) = struct.unpack(">I", blob[len(security.MAGIC):len(security.MAGIC) + 4])
    body = len(security.MAGIC) + 4 + hlen
    if damage == "flip":
        blob[body + 100] ^= 1
    elif damage == "cut":
        blob = blob[: body + (len(blob) - body) // 2]
    else:  # the last chunk removed: the stream then ends without its last-chunk marker
        pos, starts = body, []
        while pos < len(blob):
            starts.append(pos)
            (n,) = struct.unpack(">I", blob[pos:pos + 4])
            pos += 4 + n
        blob = blob[: starts[-1]] if len(starts) > 1 else blob[:body]
    enc.write_bytes(bytes(blob))
    with pytest.raises(security.SecurityError):
        security.decrypt(enc, tmp_path / "k/alice.key", tmp_path / "out")

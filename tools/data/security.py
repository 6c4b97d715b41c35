"""Datasets that can be shared but not silently changed or read by the wrong people.

Keys (`vertebra keys init`): Ed25519 to sign (a robot's key), X25519 to receive encrypted datasets
(a recipient's key). Private keys are PEM (PKCS#8) files with mode 0600 in $VERTEBRA_KEYS_DIR, else
~/.config/vertebra/keys, never in a repository; public keys are `<name>.pub` next to them.

Manifest (BagIt-style): `manifest-sha256.txt` lists "<sha256>  <path>" for every file of the dataset
(sorted, paths relative, '/'-separated), `manifest.sig` is the Ed25519 signature of the manifest's
bytes, `manifest.pub` the signer's public key. `verify()` names every changed, missing or added file
and checks the signature, against a key the verifier trusts when one is given.

Encryption (`encrypt()` / `decrypt()`), streaming so a multi-gigabyte dataset is never held in
memory: the dataset is written as a tar stream, cut into 1 MiB chunks, each sealed with AES-256-GCM
under a random file key. The file key is sealed for each recipient: an ephemeral X25519 key agrees a
secret with the recipient's public key, HKDF-SHA256 derives a key from it, and AES-GCM seals the
file key under that. Each chunk's nonce is a random 8-byte prefix plus its counter, and its
associated data says whether it is the last chunk, so reordered, dropped or truncated chunks fail
to open (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, CRYPTO 2015).

    file := "VERTEBRA-ENC1\\n" | u32 header length | header JSON | chunk*
    chunk := u32 ciphertext length | ciphertext (AES-GCM, tag included)

What it protects against: the signature, against anyone changing, adding or removing a file after
export without the robot's private key; the encryption, against anyone without a recipient's private
key reading the data (at rest, in transit). Not against: a compromised robot (it holds its signing
key), a recipient who shares the data on, or traffic analysis (sizes and times are visible).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MANIFEST, SIGNATURE, SIGNER = "manifest-sha256.txt", "manifest.sig", "manifest.pub"
MAGIC = b"VERTEBRA-ENC1\n"
CHUNK = 1 << 20
HKDF_INFO = b"vertebra dataset file key v1"


class SecurityError(ValueError):
    pass


def keys_dir() -> Path:
    env = os.environ.get("VERTEBRA_KEYS_DIR")
    return Path(env) if env else Path.home() / ".config" / "vertebra" / "keys"


# -- keys -------------------------------------------------------------------------------------------
def init_key(name: str, kind: str = "ed25519", folder: str | Path | None = None, force: bool = False) -> tuple[Path, Path]:
    """Make `<name>.key` (private, 0600) and `<name>.pub` in `folder`; an existing key is kept unless `force`."""
    if kind not in ("ed25519", "x25519"):
        raise SecurityError(f"key kind {kind!r}; valid: ed25519 (signing), x25519 (receiving encrypted datasets)")
    d = Path(folder) if folder else keys_dir()
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    priv, pub = d / f"{name}.key", d / f"{name}.pub"
    if priv.exists() and not force:
        raise SecurityError(f"{priv} exists; keep it, or replace it with --force (datasets signed with it then "
                            "verify only against the old public key)")
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else x25519.X25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(priv, 0o600)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def load_private(path: str | Path, kind: type) -> Any:
    p = Path(path)
    if not p.is_file():
        raise SecurityError(f"no key file {p} (make one with 'vertebra keys init')")
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise SecurityError(f"{p} is readable by others (mode {mode:o}); a private key must be 0600: chmod 600 {p}")
    key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    if not isinstance(key, kind):
        raise SecurityError(f"{p} is not an {kind.__name__.replace('PrivateKey', '')} private key")
    return key


def load_public(path: str | Path, kind: type) -> Any:
    p = Path(path)
    if not p.is_file():
        raise SecurityError(f"no public key file {p}")
    key = serialization.load_pem_public_key(p.read_bytes())
    if not isinstance(key, kind):
        raise SecurityError(f"{p} is not an {kind.__name__.replace('PublicKey', '')} public key")
    return key


def fingerprint(pub: Any) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# -- manifests --------------------------------------------------------------------------------------
def _files(root: Path) -> list[str]:
    skip = {MANIFEST, SIGNATURE, SIGNER}
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and
                  p.relative_to(root).as_posix() not in skip)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sign(root: str | Path, key_path: str | Path) -> dict[str, Any]:
    """Write the manifest of every file under `root` and its Ed25519 signature."""
    root = Path(root)
    key = load_private(key_path, ed25519.Ed25519PrivateKey)
    text = "".join(f"{_sha256(root / f)}  {f}\n" for f in _files(root)).encode()
    (root / MANIFEST).write_bytes(text)
    (root / SIGNATURE).write_bytes(key.sign(text))
    pub = key.public_key()
    (root / SIGNER).write_bytes(pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"files": text.count(b"\n"), "signer": fingerprint(pub)}


def verify(root: str | Path, trusted: str | Path | None = None) -> dict[str, Any]:
    """{ok, signature, signer, changed, missing, added, trusted}: the manifest against the files and its
    signature against `trusted` (a public key file) or, without one, the key the dataset carries
    (integrity only: anyone can sign with a key of their own)."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise SecurityError(f"{root}: no {MANIFEST}: the dataset was not signed (or the manifest was removed)")
    text = (root / MANIFEST).read_bytes()
    listed: dict[str, str] = {}
    for no, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise SecurityError(f"{root / MANIFEST}: line {no} is not '<sha256>  <path>'")
        listed[name] = digest
    present = set(_files(root))
    changed = sorted(f for f in listed if f in present and _sha256(root / f) != listed[f])
    missing = sorted(f for f in listed if f not in present)
    added = sorted(present - set(listed))
    signature, signer = "missing", None
    if (root / SIGNATURE).is_file():
        pub = load_public(trusted, ed25519.Ed25519PublicKey) if trusted else (
            load_public(root / SIGNER, ed25519.Ed25519PublicKey) if (root / SIGNER).is_file() else None)
        if pub is None:
            signature = "no public key to check it against"
        else:
            signer = fingerprint(pub)
            try:
                pub.verify((root / SIGNATURE).read_bytes(), text)
                signature = "valid"
            except InvalidSignature:
                signature = "INVALID"
    ok = signature == "valid" and not (changed or missing or added)
    return {"ok": ok, "signature": signature, "signer": signer, "trusted": trusted is not None,
            "changed": changed, "missing": missing, "added": added, "files": len(listed)}


# -- encryption -------------------------------------------------------------------------------------
def _wrap_key(file_key: bytes, recipient: x25519.X25519PublicKey) -> dict[str, str]:
    eph = x25519.X25519PrivateKey.generate()
    shared = eph.exchange(recipient)
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    rec_pub = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kek = HKDF(hashes.SHA256(), 32, salt=eph_pub + rec_pub, info=HKDF_INFO).derive(shared)
    nonce = os.urandom(12)
    return {"to": fingerprint(recipient), "ephemeral": eph_pub.hex(), "nonce": nonce.hex(),
            "sealed": AESGCM(kek).encrypt(nonce, file_key, b"file key").hex()}


def _unwrap_key(header: dict[str, Any], key: x25519.X25519PrivateKey) -> bytes:
    me = fingerprint(key.public_key())
    for r in header["recipients"]:
        if r["to"] != me:
            continue
        eph_pub = bytes.fromhex(r["ephemeral"])
        shared = key.exchange(x25519.X25519PublicKey.from_public_bytes(eph_pub))
        rec_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kek = HKDF(hashes.SHA256(), 32, salt=eph_pub + rec_pub, info=HKDF_INFO).derive(shared)
        try:
            return AESGCM(kek).decrypt(bytes.fromhex(r["nonce"]), bytes.fromhex(r["sealed"]), b"file key")
        except InvalidTag:
            raise SecurityError("the file key does not open with this key (a damaged header?)") from None
    raise SecurityError(f"this file is not encrypted to key {me}; its recipients: "
                        + ", ".join(r["to"] for r in header["recipients"]))


class _ChunkWriter(io.RawIOBase):
    """A write-only stream that seals what it is given in CHUNK-sized AES-GCM chunks."""

    def __init__(self, out: BinaryIO, aead: AESGCM, prefix: bytes):
        self.out, self.aead, self.prefix = out, aead, prefix
        self.buf = bytearray()
        self.counter = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += b
        while len(self.buf) > CHUNK:  # keep at least one byte back: the last chunk is sealed as last
            self._seal(bytes(self.buf[:CHUNK]), last=False)
            del self.buf[:CHUNK]
        return len(b)

    def _seal(self, data: bytes, last: bool) -> None:
        nonce = self.prefix + struct.pack(">I", self.counter)
        ct = self.aead.encrypt(nonce, data, b"\x01" if last else b"\x00")
        self.out.write(struct.pack(">I", len(ct)) + ct)
        self.counter += 1

    def finish(self) -> None:
        self._seal(bytes(self.buf), last=True)
        self.buf.clear()


def encrypt(root: str | Path, recipients: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Encrypt the dataset folder `root` to each recipient's X25519 public key into the file `out`."""
    root, out = Path(root), Path(out)
    if not recipients:
        raise SecurityError("encrypt to at least one recipient (--to <name>.pub)")
    if out.exists():
        raise SecurityError(f"{out} exists; encrypt into a new file")
    pubs = [load_public(r, x25519.X25519PublicKey) for r in recipients]
    file_key, prefix = AESGCM.generate_key(256), os.urandom(8)
    header = json.dumps({"version": 1, "cipher": "AES-256-GCM", "chunk": CHUNK, "nonce_prefix": prefix.hex(),
                         "recipients": [_wrap_key(file_key, p) for p in pubs], "name": root.name}).encode()
    with open(out, "xb") as f:
        f.write(MAGIC + struct.pack(">I", len(header)) + header)
        w = _ChunkWriter(f, AESGCM(file_key), prefix)
        with tarfile.open(fileobj=w, mode="w|") as tar:
            for name in _files(root) + [x for x in (MANIFEST, SIGNATURE, SIGNER) if (root / x).is_file()]:
                tar.add(root / name, arcname=name, recursive=False)
        w.finish()
        f.flush()
        os.fsync(f.fileno())
    return {"out": str(out), "bytes": out.stat().st_size, "recipients": [fingerprint(p) for p in pubs],
            "chunks": w.counter}


class _ChunkReader(io.RawIOBase):
    def __init__(self, f: BinaryIO, aead: AESGCM, prefix: bytes):
        self.f, self.aead, self.prefix = f, aead, prefix
        self.counter, self.buf, self.done = 0, b"", False

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        head = self.f.read(4)
        if len(head) < 4:
            raise SecurityError("the file ends before its last chunk (truncated)")
        (n,) = struct.unpack(">I", head)
        ct = self.f.read(n)
        if len(ct) < n:
            raise SecurityError("the file ends inside a chunk (truncated)")
        nonce = self.prefix + struct.pack(">I", self.counter)
        for last in (False, True):
            try:
                self.buf += self.aead.decrypt(nonce, ct, b"\x01" if last else b"\x00")
                self.done = last
                break
            except InvalidTag:
                continue
        else:
            raise SecurityError(f"chunk {self.counter} does not open: the file was changed, reordered or cut")
        self.counter += 1

    def readinto(self, b: Any) -> int:
        while not self.buf and not self.done:
            self._next()
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def decrypt(path: str | Path, key_path: str | Path, out: str | Path) -> dict[str, Any]:
    """Open an encrypted dataset with a recipient's X25519 private key into the new folder `out`."""
    path, out = Path(path), Path(out)
    if out.exists() and any(out.iterdir()):
        raise SecurityError(f"{out} exists and is not empty; decrypt into a new folder")
    key = load_private(key_path, x25519.X25519PrivateKey)
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise SecurityError(f"{path} is not a Vertebra encrypted dataset")
        (n,) = struct.unpack(">I", f.read(4))
        header = json.loads(f.read(n))
        file_key = _unwrap_key(header, key)
        r = _ChunkReader(f, AESGCM(file_key), bytes.fromhex(header["nonce_prefix"]))
        out.mkdir(parents=True, exist_ok=True)
        names = []
        with tarfile.open(fileobj=io.BufferedReader(r, CHUNK), mode="r|") as tar:
            for m in tar:
                if not m.isfile() or Path(m.name).is_absolute() or ".." in Path(m.name).parts:
                    raise SecurityError(f"refusing {m.name!r}: not a plain file inside the dataset")
                tar.extract(m, out, filter="data")
                names.append(m.name)
        while r.readinto(bytearray(CHUNK)):  # what the tar reader left: its end-of-archive padding
            pass
        if not r.done or f.read(1):
            raise SecurityError("the file goes on after its last chunk, or ends before it")
    return {"out": str(out), "files": len(names)}

"""Where a result came from: the software that made it and the hashes of the configs it ran under.
Written into HIL reports and recordings, so a run can be matched to its exact software and files."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex), read in blocks (a recording can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recording_metadata(files: dict[str, str | os.PathLike[str] | None]) -> dict[str, str]:
    """A recording's provenance as flat strings: `software.<key>` (software()) and `sha256.<name>` of
    each of `files` that exists (config files, policy files)."""
    out = {f"software.{k}": str(v) for k, v in software().items()}
    for name, path in files.items():
        if path is not None and Path(path).is_file():
            out[f"sha256.{name}"] = file_sha256(path)
    return out


def software() -> dict[str, Any]:
    """The installed vertebra version, the checkout's git commit (empty outside a checkout) and the host."""
    try:
        version = metadata.version("vertebra")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = ""
    here = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"vertebra": version, "commit": commit, "hostname": socket.gethostname()}

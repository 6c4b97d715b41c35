"""The extension's type stub (cpp/bindings/_rt.pyi, installed as vertebra/_rt.pyi) matches the built
module: a binding changed without regenerating the stub (scripts/gen_rt_stubs.py) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_rt_stub_is_current():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_rt_stubs.py"), "--check"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_the_stub_types_the_loop_and_the_registry():
    text = (REPO / "cpp" / "bindings" / "_rt.pyi").read_text()
    for needle in ("class RtLoop", "def register_mode(self, name: str, mode: ControllerMode) -> int",
                   "def lifecycle_state(self) -> str", "def set_chunk_scheduler("):
        assert needle in text, needle

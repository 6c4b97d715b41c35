"""Lockstep runs are bit-identical across processes (DESIGN.md "two clock modes"): the same
whole-body-controller rollout, run in two fresh processes whose heaps are laid out differently,
gives the same bytes (robot state and the controller's torques, every 20 ms for 0.6 s)."""

from __future__ import annotations

import subprocess
import sys

ROLLOUT = r"""
import hashlib, sys
import numpy as np
padding = [bytearray(24 * int(sys.argv[1]) + 8) for _ in range(int(sys.argv[1]))]  # a different heap layout
from vertebra.runtime.sim_runtime import SimRuntime
rt = SimRuntime("g1", controller="wbc")
rt.stand_up(hold_s=0.2, limp_s=0.2, interpolate_s=1.0)
rt.engage_wbc()
rt.wb.set_target("com", (np.array(rt.wb.status()["com"]) + [0.0, 0.02, -0.01]).tolist())
h = hashlib.sha256()
for _ in range(30):
    rt.wait(0.02)
    h.update(np.asarray(rt.driver.qpos()[1], dtype=np.float64).tobytes())
    h.update(np.asarray(rt.wb.ctrl.last_tau(), dtype=np.float64).tobytes())
print(h.hexdigest())
"""


def test_the_same_wbc_rollout_gives_the_same_bytes_in_two_processes():
    digests = [subprocess.run([sys.executable, "-c", ROLLOUT, str(pad)], capture_output=True, text=True, timeout=300,
                              check=True).stdout.strip() for pad in (0, 37)]
    assert len(digests[0]) == 64 and digests[0] == digests[1], digests

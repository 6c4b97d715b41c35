"""Live MuJoCo viewer for `vertebra sim --view`: a window that mirrors the simulator's state."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


class SimViewer:
    def __init__(self, runtime: Any, fps: float = 60.0):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise RuntimeError("--view needs a display (DISPLAY is not set); run without --view, or under X/Xvfb")
        import mujoco
        import mujoco.viewer

        self._mj = mujoco
        self.model = mujoco.MjModel.from_xml_path(str(runtime.mjcf_path))
        self.data = mujoco.MjData(self.model)
        self.driver = runtime.driver
        self.handle = mujoco.viewer.launch_passive(self.model, self.data)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(1.0 / fps,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.is_set() and self.handle.is_running():
            _t, qpos = self.driver.qpos()
            with self.handle.lock():
                self.data.qpos[:] = qpos
                self._mj.mj_forward(self.model, self.data)
            self.handle.sync()
            time.sleep(period)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.handle.close()
        # mujoco.viewer renders on its own daemon thread (named after its target); GLFW is
        # terminated at interpreter exit, so wait here until that thread has torn down.
        for t in threading.enumerate():
            if "_launch_internal" in t.name and t is not threading.current_thread():
                t.join(timeout=5.0)

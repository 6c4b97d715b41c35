"""Cameras a recording names (`record.cameras`), each at its own rate, never on the tick: the
simulated ones render the in-process simulator's latest configuration (the driver publishes it after
every tick; drivers/camera.py) and hand the frame to the recorder, which JPEG-encodes it on its
writer thread. In real time each camera has its own thread; in lockstep the caller captures a frame
whenever robot time reaches the next one (Runtime.run_ticks), so the frames fall at the same robot
times on every run. A camera the runtime cannot open is refused when the runtime is built, never
silently left out of the recording."""

from __future__ import annotations

import threading
import time
from typing import Any

from vertebra.runtime.errors import ConfigError


class CameraFeed:
    """One camera: render at `fps`, record each frame with the robot time it shows."""

    def __init__(self, recorder: Any, runtime: Any, cam: Any):
        mjcf = getattr(runtime.driver_config, "mjcf_path", None) or getattr(runtime, "mjcf_path", "")
        if not mjcf or not hasattr(runtime.driver, "qpos"):
            raise ConfigError(runtime.cfg.file, f"record.cameras ({cam.name})", runtime.driver.name,
                              "the in-process simulator (driver mujoco): cameras of other drivers cannot be "
                              "recorded yet; remove the camera from record.cameras")
        from vertebra.drivers.camera import OffscreenCamera

        spec = next(c for c in runtime.cfg.sim.cameras if c.name == cam.name)
        self.camera = OffscreenCamera(mjcf, cam.name, spec.width_px, spec.height_px)
        self.recorder, self.runtime, self.options = recorder, runtime, cam
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{cam.name}", daemon=True)

        self.next_s = 0.0  # lockstep: robot time of the next frame

    def start(self) -> None:
        """Real time: the camera's thread."""
        self._thread.start()

    def capture(self) -> None:
        t_ns = int(round(self.runtime.time_s() * 1e9))
        img = self.camera.render_driver(self.runtime.driver)
        self.recorder.frame(self.options.name, img, t_ns, quality=self.options.quality)
        self.frames += 1

    def poll(self, now_s: float) -> None:
        """Lockstep: a frame when robot time has reached the next one."""
        if now_s + 1e-9 >= self.next_s:
            self.capture()
            self.next_s = now_s + 1.0 / self.options.fps

    def _run(self) -> None:
        period = 1.0 / self.options.fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.capture()
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.camera.close()

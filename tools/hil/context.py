"""What every HIL scenario is given: the rig, the robot, where to reach it, the run's folder, the
operator's stop (Ctrl-C), progress output, and on a sim rig the sim bridge it may start.

On a sim rig the robot exists only while a bridge runs: a scenario calls :meth:`start_bridge` (a
separate process on the rig's DDS domain, with the rig's injected hardware faults) and closes it when
done. On a real rig :meth:`start_bridge` returns None and the robot is simply there; what a scenario
needs a person for (press the remote's e-stop combination, pull a cable) goes through :meth:`ask`.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import yaml

from vertebra.runtime.config import RobotConfig
from vertebra.runtime.deploy import DeployConfig
from vertebra.tools.hil.rig import RigConfig


class HilStopped(Exception):
    """The operator stopped the run (Ctrl-C), or a scenario found the rig unsafe to go on."""


class ScenarioContext:
    def __init__(self, rig: RigConfig, workdir: str | os.PathLike[str], *, domain_id: int | None = None,
                 interactive: bool = True, out: Callable[[str], None] | None = None):
        """`domain_id`: run on this DDS domain instead of the deploy config's (tests: one per test).
        `interactive`: a person is at the rig (ask() waits for Enter); False: ask() fails the step."""
        self.rig = rig
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.deploy = DeployConfig.load(rig.deploy_path())
        self.robot: RobotConfig = self.deploy.robot_config()
        if self.robot.name != rig.robot:
            raise ValueError(f"{rig.file}: robot '{rig.robot}' but deploy config {rig.deploy} runs '{self.robot.name}'")
        self.domain_id = int(domain_id if domain_id is not None else getattr(self.deploy.driver, "domain_id", 0))
        self.interface = str(getattr(self.deploy.driver, "network_interface", "") or "")
        self.interactive = interactive
        self.stop = threading.Event()
        self._out = out or (lambda s: print(s, file=sys.stderr, flush=True))
        self.bridges: list[Any] = []

    @property
    def sim(self) -> bool:
        return self.rig.sim is not None

    def log(self, msg: str) -> None:
        self._out(f"[hil] {msg}")

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise HilStopped("stopped by the operator")

    def ask(self, prompt: str) -> None:
        """A step a person does at the rig: print it and wait for Enter (not interactive: refused)."""
        if not self.interactive:
            raise HilStopped(f"needs a person at the rig ({prompt}); run interactively, without --yes")
        self._out(f"[hil] >>> {prompt} -- then press Enter")
        sys.stdin.readline()
        self.check_stop()

    # -- the robot on a sim rig -------------------------------------------------------------
    def start_bridge(self, *, lockstep: bool) -> Any:
        """A sim rig's robot: a BridgeProcess on this run's domain with the rig's faults (None on a real rig)."""
        if not self.sim:
            return None
        from vertebra.drivers.bridge_process import BridgeProcess

        faults = dict(self.rig.sim.faults or {})
        extra = {"faults": faults} if faults else {}
        b = BridgeProcess(self.robot.name, domain_id=self.domain_id, interface=self.interface or "lo",
                          lockstep=lockstep, **extra)
        self.bridges.append(b)
        return b

    def close_bridges(self) -> None:
        for b in self.bridges:
            try:
                b.close()
            except Exception:  # noqa: BLE001 - best effort at the end of a scenario
                pass
        self.bridges.clear()

    # -- deploy configs for this run --------------------------------------------------------
    def deploy_dict(self) -> dict[str, Any]:
        """The rig's deploy config as a mapping, on this run's domain (relative paths made absolute)."""
        d = yaml.safe_load(Path(self.deploy.file).read_text())
        base = Path(self.deploy.file).resolve().parent
        for key in ("robot", "safety", "policy"):
            v = d.get(key)
            if isinstance(v, str) and Path(v).suffix and not Path(v).is_absolute():
                d[key] = str(base / v)
        d.setdefault("driver", {})["domain_id"] = self.domain_id
        return d

    def write_deploy(self, name: str, **overrides: Any) -> Path:
        """A deploy YAML in the run's folder: the rig's, on this run's domain, with `overrides` merged
        one level deep (e.g. ``loop={"lockstep": True}``)."""
        d = self.deploy_dict()
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(d.get(k), dict):
                d[k] = {**d[k], **v}
            else:
                d[k] = v
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        return path

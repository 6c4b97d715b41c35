"""What a HIL run produces: one :class:`Case` per scenario and joint (or per reaction), gathered in a
:class:`RunResult` with the robot and software it ran on. The reports (JUnit XML, HTML, JSON) and
``vertebra hil compare`` read only these; the scenarios only write them.

A case's verdict is one of ``passed`` / ``failed`` / ``skipped`` (not observable on this rig, or not
run: ``message`` says why; never counted as a pass) / ``error`` (the scenario itself broke). Its
``measured`` numbers become JUnit properties and the JSON; ``limits`` are the thresholds applied
(the rig config's), so a report shows what was compared with what. ``plots`` carry the data a plot is
drawn from (never images: the HTML report draws them), each a dict with a ``kind``:

* ``bode``: ``freq_hz``, ``gain_db``, ``phase_deg`` (lists of equal length), optional ``bandwidth_hz``
* ``step``: ``t_s``, ``command``, ``response`` (and optional ``torque``)
* ``histogram``: ``values`` (samples), ``unit``
* ``series``: ``t_s`` and ``series``: {label: values}, ``unit``
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERDICTS = ("passed", "failed", "skipped", "error")
RESULT_FORMAT = "vertebra-hil/1"


@dataclass
class Case:
    scenario: str                 # bus, identify, wiring, limits, thermal, safety, policy
    name: str                     # a joint name, a link ("lowstate"), a reaction ("estop_api")
    verdict: str                  # one of VERDICTS
    message: str = ""             # what was found (why it failed, or why it was skipped)
    measured: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"case {self.scenario}/{self.name}: verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")

    @property
    def id(self) -> str:
        return f"{self.scenario}/{self.name}"


@dataclass
class RunResult:
    rig: str                      # the rig config's name
    robot: str                    # robot config name (g1, go2)
    serial: str                   # the robot's serial number as the rig config names it
    software: dict[str, Any]      # vertebra version, git commit where known
    config_hashes: dict[str, str] # sha256 of the rig, robot, safety and deploy configs
    started: str                  # ISO 8601 UTC
    duration_s: float = 0.0
    profile: str = "full"         # full | quick
    faults_injected: dict[str, Any] = field(default_factory=dict)  # sim rigs: the bridge's hardware faults
    stopped: str = ""             # "" or why the run stopped early (Ctrl-C, a fault)
    cases: list[Case] = field(default_factory=list)
    format: str = RESULT_FORMAT

    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(f"no case {case_id!r}; cases are: {', '.join(c.id for c in self.cases)}")

    def failed(self) -> list[Case]:
        return [c for c in self.cases if c.verdict in ("failed", "error")]

    @property
    def passed(self) -> bool:
        """Fit to run: every case passed or was skipped, and the run was not stopped early."""
        return not self.stopped and not self.failed()

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for c in self.cases if c.verdict == v) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        if d.get("format") != RESULT_FORMAT:
            raise ValueError(f"not a HIL result: format {d.get('format')!r}; expected {RESULT_FORMAT!r}")
        cases = [Case(**c) for c in d.get("cases", [])]
        return cls(**{**d, "cases": cases})

    def save(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(_finite(self.to_dict()), indent=1, allow_nan=False, default=_jsonable))
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunResult:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read a HIL result: {e}") from None
        return cls.from_dict(d)


def _finite(v: Any) -> Any:
    """NaN and infinities (a bandwidth not found, a ratio not measurable) become None: strict JSON."""
    import math

    import numpy as np

    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, np.ndarray):
        return _finite(v.tolist())
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    return v


def _jsonable(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")

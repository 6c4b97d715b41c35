"""The policies a server serves: what `load` builds from a config entry. Each has `needs_mapping`
(it reads joint state, so an observation must name its joint mapping), `metadata()`,
`infer(obs, joint_names)` (de-normalised actions [chunk, dim]), `infer_all(obs, joint_names)` (the
actions and the feasibility output, None where the policy has none) and `limit(actions)` (the
package's declared action range)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class NoopPolicy:
    """Zeros of the configured chunk shape: for transport benchmarks and integration tests."""

    needs_mapping = False

    def __init__(self, name: str, chunk_length: int, action_dim: int, rate_hz: float):
        self.name = name
        self.chunk = np.zeros((chunk_length, action_dim), dtype=np.float32)
        self.rate_hz = rate_hz

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "noop", "chunk_length": self.chunk.shape[0],
                "action_dim": self.chunk.shape[1], "rate_hz": self.rate_hz, "action_space": "none"}

    def infer(self, obs: dict[str, Any], joint_names: list[str] | None) -> np.ndarray:
        return self.chunk

    def infer_all(self, obs: dict[str, Any], joint_names: list[str] | None) -> tuple[np.ndarray, float | None]:
        return self.chunk, None

    def limit(self, actions: np.ndarray) -> np.ndarray:
        return actions


class PackagePolicy:
    def __init__(self, name: str, path: Path, intra_op: int):
        from vertebra.policies.package import OnnxPolicy, PolicyPackage

        self.name = name
        self.policy = OnnxPolicy(PolicyPackage.load(path), intra_op)
        self._names: list[str] | None = None

    @property
    def spec(self) -> Any:
        return self.policy.spec

    @property
    def needs_mapping(self) -> bool:
        return bool(self.spec.state_fields)

    def metadata(self) -> dict[str, Any]:
        return {"kind": "package", **self.spec.metadata()}

    def infer(self, obs: dict[str, Any], joint_names: list[str] | None) -> np.ndarray:
        return self.infer_all(obs, joint_names)[0]

    def infer_all(self, obs: dict[str, Any], joint_names: list[str] | None) -> tuple[np.ndarray, float | None]:
        """(actions, P(the instruction can be done) where the package declares outputs.feasibility)."""
        if joint_names is not None:
            state = obs.get("state") or {}
            if not isinstance(state, dict):
                raise ValueError("observation: 'state' must be a map of arrays")
            for kind, _ in self.spec.state_fields:
                v = state.get(kind)
                if isinstance(v, np.ndarray) and v.shape != (len(joint_names),):
                    raise ValueError(f"observation: state '{kind}' has shape {list(v.shape)}; the mapping names "
                                     f"{len(joint_names)} joints")
            if joint_names is not self._names:
                missing = [j for _, js in self.spec.state_fields for j in js if j not in joint_names]
                if missing:
                    raise ValueError(f"observation: the mapping lacks joint(s) the policy reads: {', '.join(missing[:5])}")
                self.policy.set_joint_names(joint_names)
                self._names = joint_names
        return self.policy.infer_all(obs)

    def limit(self, actions: np.ndarray) -> np.ndarray:
        lo, hi = getattr(self.spec, "action_min", None), getattr(self.spec, "action_max", None)
        if lo is None or hi is None:
            return actions
        return np.clip(actions, lo, hi).astype(actions.dtype, copy=False)

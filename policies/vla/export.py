"""Export: the trained network to ONNX and its policy package (`policy.yaml` with the inputs,
outputs (the actions and the feasibility), normalisation, model hash and training record, with the
distribution the demonstrations were drawn from). torch is imported by `export()` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from vertebra.policies.package import sha256_file
from vertebra.policies.vla import randomise
from vertebra.policies.vla.collect import COLLECT_TABLE
from vertebra.policies.vla.tasks import CHUNK, IMAGE, RATE_HZ, TOKENS, TRAIN_PHRASINGS, VOCAB, arm_joints

FEASIBLE_THRESHOLD = 0.5


def export(net: Any, info: dict[str, Any], robot_cfg: Any, out_dir: Path, seed: int, episodes: int,
           workers: int = 1) -> Path:
    """Write `out_dir`/model.onnx and `out_dir`/policy.yaml; `info` is what `train()` returned."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    st = info["stats"]
    net.eval()
    arm = arm_joints(robot_cfg)
    dummy = (torch.zeros(1, 3, IMAGE, IMAGE), torch.zeros(1, TOKENS, dtype=torch.long), torch.zeros(1, 2 * len(arm)))
    torch.onnx.export(net, dummy, str(out_dir / "model.onnx"), input_names=["image", "tokens", "state"],
                      output_names=["actions", "feasible"], dynamo=False, opset_version=17)
    hands = robot_cfg.hand_frames
    spec = {
        "name": f"{robot_cfg.name}_vla", "version": "1",
        "description": "Tabletop vision-language-action policy (vertebra train vla): touch, point, raise, wave; "
                       "says when the named object is not there (cannot comply).",
        "robots": [robot_cfg.name],
        "model": {"file": "model.onnx", "sha256": sha256_file(out_dir / "model.onnx")},
        "runtime": {"intra_op_threads": 1},
        "inputs": {
            "cameras": [{"name": "head", "height": IMAGE, "width": IMAGE, "input": "image"}],
            "state": {"input": "state", "fields": [{"kind": "q", "joints": arm}, {"kind": "dq", "joints": arm}]},
            "instruction": {"input": "tokens",
                            "tokenizer": {"kind": "words", "vocab": list(VOCAB), "max_tokens": TOKENS, "stem": True}},
        },
        "outputs": {"output": "actions", "action_space": "wbc_targets",
                    "targets": [f"{h}.{a}" for h in hands for a in "xyz"], "chunk_length": CHUNK, "rate_hz": RATE_HZ,
                    "feasibility": {"output": "feasible", "threshold": FEASIBLE_THRESHOLD}},
        "normalization": {
            "state": {"mean": st["state_mean"].tolist(), "std": st["state_std"].tolist()},
            "actions": {"mean": st["act_mean"].tolist(), "std": st["act_std"].tolist()},
            "image": {"mean": st["img_mean"].tolist(), "std": st["img_std"].tolist()},
        },
        "training": {"pipeline": "vertebra train vla", "seed": seed, "episodes": episodes, "workers": workers,
                     "samples": info["samples"],
                     **{k: round(v, 5) for k, v in info["losses"].items()},
                     # what the demonstrations were drawn from: the conditions the policy was trained for
                     "distribution": {**randomise.DISTRIBUTION, "table": COLLECT_TABLE,
                                      "phrasings": {t: len(v) for t, v in TRAIN_PHRASINGS.items()}}},
    }
    (out_dir / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=120))
    return out_dir

"""Domain randomisation for the demonstrations: how each rendered scene looks (light, camera
mounting, table and object colours, object sizes) and the image augmentation of training. What it
draws from is `DISTRIBUTION`, recorded in the package's `policy.yaml` (training.distribution) as the
conditions the policy was trained for.

Colours stay within their names: a red object's hue moves by at most HUE_JITTER (red is hue 0,
orange about 0.08 on the 0-1 hue circle), so "red" under warm light is still told from the other
colours by the model, not renamed by the randomisation.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from vertebra.drivers.scene import COLORS, OBJECT_SIZE_M, TABLE_RGBA, TABLE_TOP_Z, Look, SceneObject

HUE_JITTER = 0.02
DISTRIBUTION: dict[str, Any] = {
    "light_scale": [0.4, 1.6],          # x the scene's light and headlight
    "light_kelvin": [2700, 9000],       # colour temperature (6500 K: white)
    "light_tilt_deg": 25.0,             # the overhead light's direction, about x and y
    "camera_pitch_yaw_deg": 5.0,        # the head camera's mounting
    "camera_roll_deg": 2.0,
    "camera_offset_m": 0.01,
    "table_brightness": [0.6, 1.3],     # the table's colour x this, each channel x 0.85-1.15 more
    "object_hue": HUE_JITTER,           # +- on the 0-1 hue circle
    "object_saturation": [0.75, 1.0],   # x the colour's
    "object_value": [0.7, 1.1],         # x the colour's (capped at 1)
    "object_size": [0.8, 1.2],          # x OBJECT_SIZE_M
    "objects": [2, 5],                  # on the table
    "placement_spread": 1.3,            # x the evaluation's placement range
    "image": {"brightness": 0.25, "contrast": 0.25, "channel_gain": 0.1, "noise_std": 0.03, "blur_p": 0.3},
}


def _u(rng: np.random.Generator, lo_hi: Any) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def random_look(rng: np.random.Generator) -> Look:
    from vertebra.drivers.scene import light_rgb

    d = DISTRIBUTION
    a, r, o = d["camera_pitch_yaw_deg"], d["camera_roll_deg"], d["camera_offset_m"]
    table = np.asarray(TABLE_RGBA[:3]) * _u(rng, d["table_brightness"]) * rng.uniform(0.85, 1.15, 3)
    return Look(light_scale=_u(rng, d["light_scale"]), light_rgb=tuple(light_rgb(_u(rng, d["light_kelvin"]))),
                light_tilt_deg=tuple(rng.uniform(-d["light_tilt_deg"], d["light_tilt_deg"], 2)),
                cam_pitch_deg=float(rng.uniform(-a, a)), cam_yaw_deg=float(rng.uniform(-a, a)),
                cam_roll_deg=float(rng.uniform(-r, r)), cam_offset_m=tuple(rng.uniform(-o, o, 3)),
                table_rgb=tuple(np.clip(table, 0.0, 1.0)))


def dress(objects: list[SceneObject], rng: np.random.Generator, keep_size: SceneObject | None = None) -> list[SceneObject]:
    """The objects with random colours within their names and random sizes (resting on the table).
    `keep_size`: an object whose size stays (the one the simulated motion was planned for)."""
    d = DISTRIBUTION
    out = []
    for ob in objects:
        h, s, v = colorsys.rgb_to_hsv(*COLORS[ob.color][:3])
        h = (h + rng.uniform(-d["object_hue"], d["object_hue"])) % 1.0
        s = min(1.0, s * _u(rng, d["object_saturation"]))
        v = min(1.0, v * _u(rng, d["object_value"]))
        size = ob.size_m if ob is keep_size else OBJECT_SIZE_M * _u(rng, d["object_size"])
        pos = ob.pos.copy()
        pos[2] = TABLE_TOP_Z + size
        out.append(SceneObject(ob.color, ob.shape, pos, size, (*colorsys.hsv_to_rgb(h, s, v), 1.0)))
    return out


def augment(x: Any, gen: Any) -> Any:
    """Training's image augmentation on a batch of float images in [0, 1] ([B, 3, H, W], torch):
    brightness, contrast and per-channel gain jitter, a 3x3 blur on some, Gaussian noise."""
    import torch

    a = DISTRIBUTION["image"]
    b = x.shape[0]

    def u(shape: tuple[int, ...], half: float) -> Any:
        return 1.0 + (torch.rand(shape, generator=gen) * 2 - 1) * half

    x = x * u((b, 1, 1, 1), a["brightness"]) * u((b, 3, 1, 1), a["channel_gain"])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u((b, 1, 1, 1), a["contrast"]) + mean
    blur = torch.rand(b, generator=gen) < a["blur_p"]
    if bool(blur.any()):
        k = torch.full((3, 1, 3, 3), 1.0 / 9.0)
        x[blur] = torch.nn.functional.conv2d(torch.nn.functional.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k, groups=3)
    x = x + a["noise_std"] * torch.randn(x.shape, generator=gen)
    return x.clamp(0.0, 1.0)

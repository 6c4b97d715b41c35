"""`vertebra eval --perturb NAME=VALUE,...`: the tabletop tasks under the ways a real workstation
differs from the training scenes, so a user can stress their own policy before a workstation sees it.

One `--perturb` argument is one condition: comma-separated settings, all applied together.
  light=S          light intensity x S (the scene's lights and the headlight; 1: as trained)
  tint=warm|cool   colour of the light (warm: about 3000 K, cool: about 8000 K against 6500 K white)
  cam_pitch=DEG    head camera pitched by DEG (positive: looks down), as if remounted
  cam_yaw=DEG      head camera turned by DEG (positive: to the robot's left)
  placement=S      objects placed over S x the training range about the table's centre
  distractors=N    N more objects on the table
  phrasing=heldout instructions in phrasings of PARAPHRASES, none of them the training's
  hand=cross       touch with the hand on the far side of the object (the object moved within
                   tasks.CROSS_REACH_Y_M of the midline, where either hand reaches it)
  absent=1         the named object is not on the table (touch, point): success is the policy
                   saying it cannot comply, with both hands within ABSENT_STILL_M of where they started
  none             the training conditions (a baseline row)

Success rates are reported with Wilson 95% score intervals (`wilson`): with n = 8 episodes of a
task, 8/8 only shows that the true rate is at least 68%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from vertebra.drivers.scene import (COLORS, OBJECT_SIZE_M, SHAPES, TABLE_CENTER, TABLE_HALF, TABLE_TOP_Z, Look, SceneObject,
                                    light_rgb)
from vertebra.policies.vla.tasks import CROSS_REACH_Y_M, Episode, phrase, sample_episode

# The light's colour for a warm (3000 K) and a cool (8000 K) source (scene.light_rgb: the sRGB colour
# of a blackbody, 6500 K as white).
TINTS = {"warm": tuple(light_rgb(3000)), "cool": tuple(light_rgb(8000))}
ABSENT_STILL_M = 0.05
# Held-out phrasings: none is a training phrasing (tasks.TRAIN_PHRASINGS; a test checks it), each
# keeps the task's meaning. {obj}: "red cube"; {hand}: left/right.
PARAPHRASES = {
    "touch": ["use your {hand} hand to touch the {obj}", "reach out and touch the {obj} with your {hand} hand",
              "with your {hand} hand, touch the {obj}", "put your {hand} hand on the {obj}"],
    "point": ["point to the {obj}", "show me the {obj} by pointing", "point your arm at the {obj}",
              "can you point at the {obj}"],
    "raise": ["raise your arms", "lift both arms up", "put both hands up", "raise both of your arms"],
    "wave": ["wave your right hand", "give a wave with your right hand", "wave hello with your right hand",
             "use your right hand to wave"],
}
NAMES = ("light", "tint", "cam_pitch", "cam_yaw", "placement", "distractors", "phrasing", "hand", "absent")


class PerturbError(ValueError):
    pass


@dataclass
class Perturbation:
    light: float = 1.0
    tint: str | None = None
    cam_pitch_deg: float = 0.0
    cam_yaw_deg: float = 0.0
    placement: float = 1.0
    distractors: int = 0
    phrasing: str | None = None
    hand: str | None = None
    absent: bool = False
    text: str = "none"
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Perturbation:
        """`light=0.5,cam_pitch=3`; `none`: no change. A bad name or value names the valid ones."""
        p = cls(text=text.strip() or "none")
        if p.text == "none":
            return p
        for item in p.text.split(","):
            name, eq, value = item.strip().partition("=")
            if not eq or name not in NAMES:
                raise PerturbError(f"--perturb {item.strip()!r}: expected NAME=VALUE with NAME one of {', '.join(NAMES)}")
            if name in p.settings:
                raise PerturbError(f"--perturb {p.text!r}: {name} given twice")
            p.settings[name] = value
            try:
                if name == "light":
                    p.light = _number(value, 0.05, 5.0)
                elif name == "tint":
                    if value not in TINTS:
                        raise PerturbError(f"one of {', '.join(TINTS)}")
                    p.tint = value
                elif name in ("cam_pitch", "cam_yaw"):
                    setattr(p, name + "_deg", _number(value, -30.0, 30.0))
                elif name == "placement":
                    p.placement = _number(value, 0.1, 1.5)
                elif name == "distractors":
                    n = int(value) if value.isdigit() else -1
                    if not 0 <= n <= 4:
                        raise PerturbError("an integer 0..4")
                    p.distractors = n
                elif name == "phrasing":
                    if value != "heldout":
                        raise PerturbError("heldout")
                    p.phrasing = value
                elif name == "hand":
                    if value != "cross":
                        raise PerturbError("cross")
                    p.hand = value
                else:
                    if value not in ("0", "1"):
                        raise PerturbError("0 or 1")
                    p.absent = value == "1"
            except PerturbError as e:
                raise PerturbError(f"--perturb {name}={value}: valid: {e}") from None
        return p

    # -- the camera ------------------------------------------------------------------------------
    def look(self) -> Look:
        rgb = TINTS[self.tint] if self.tint else (1.0, 1.0, 1.0)
        return Look(light_scale=self.light, light_rgb=rgb, cam_pitch_deg=self.cam_pitch_deg, cam_yaw_deg=self.cam_yaw_deg)

    def apply_to_camera(self, cam: Any) -> None:
        """Light and camera mounting on a SceneCamera (its own model copy: the physics is untouched)."""
        cam.set_look(self.look())

    # -- the episode -----------------------------------------------------------------------------
    def episode(self, rng: np.random.Generator, task: str) -> Episode:
        """A held-out episode of `task` under this condition, in a training phrasing (drawn) unless
        `phrasing=heldout`."""
        ep = sample_episode(rng, task, phrasing_rng=rng, cross=0.0 if self.hand == "cross" else 0.5)
        objects = [SceneObject(o.color, o.shape, self._placed(o.pos)) for o in ep.objects]
        target = objects[ep.objects.index(ep.target)] if ep.target is not None else None
        hand = ep.hand
        if self.hand == "cross" and task == "touch":
            side = 1.0 if target.pos[1] > 0.0 else -1.0
            if abs(target.pos[1]) > CROSS_REACH_Y_M:  # where either hand reaches, on its side
                target.pos[1] = side * float(rng.uniform(0.02, CROSS_REACH_Y_M))
            hand = 0 if side < 0 else 1  # the far side's hand
            # (an object it moved next to is taken off: objects stay 10 cm apart)
            objects = [o for o in objects if o is target or np.linalg.norm(o.pos[:2] - target.pos[:2]) >= 0.10]
        for _ in range(self.distractors):
            extra = _free_object(rng, objects)
            if extra is not None:
                objects.append(extra)
        feasible = True
        if self.absent and target is not None:
            objects = [o for o in objects if o is not target]
            feasible = False
        text = phrase(task, target, hand, rng, PARAPHRASES if self.phrasing == "heldout" else None)
        return Episode(task, text, objects, target, hand, feasible)

    def _placed(self, pos: np.ndarray) -> np.ndarray:
        if self.placement == 1.0:
            return pos.copy()
        cx, cy = TABLE_CENTER
        out = pos.copy()
        out[0] = cx + self.placement * (pos[0] - cx)
        out[1] = cy + self.placement * (pos[1] - cy)
        # on the table, whatever the scale
        out[0] = float(np.clip(out[0], cx - TABLE_HALF[0] + OBJECT_SIZE_M, cx + TABLE_HALF[0] - OBJECT_SIZE_M))
        out[1] = float(np.clip(out[1], cy - TABLE_HALF[1] + OBJECT_SIZE_M, cy + TABLE_HALF[1] - OBJECT_SIZE_M))
        return out


def _number(value: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise PerturbError(f"a number in [{lo:g}, {hi:g}]") from None
    if not (lo <= x <= hi):
        raise PerturbError(f"a number in [{lo:g}, {hi:g}]")
    return x


def _free_object(rng: np.random.Generator, objects: list[SceneObject]) -> SceneObject | None:
    """A (colour, shape) not yet on the table, at a free spot on it (10 cm from the others)."""
    used = {(o.color, o.shape) for o in objects}
    kinds = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in used]
    if not kinds:
        return None
    c, s = kinds[int(rng.integers(0, len(kinds)))]
    for _ in range(200):
        x = rng.uniform(TABLE_CENTER[0] - TABLE_HALF[0] + 0.04, TABLE_CENTER[0] + TABLE_HALF[0] - 0.04)
        y = rng.uniform(-0.26, 0.26)
        p = np.array([x, y, TABLE_TOP_Z + OBJECT_SIZE_M])
        if all(np.linalg.norm(p[:2] - o.pos[:2]) > 0.10 for o in objects):
            return SceneObject(c, s, p)
    return None


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% for z = 1.96): (low, high).
    E. B. Wilson, "Probable inference, the law of succession, and statistical inference", JASA 1927."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)

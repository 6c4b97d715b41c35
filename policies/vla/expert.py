"""The scripted expert on the whole-body controller: a standing G1 with the tabletop scene and head
camera (`G1Session`), and the minimum-jerk hand targets that carry out each task (`expert_targets`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from vertebra.policies.vla.tasks import IMAGE, RATE_HZ, Episode, arm_joints
from vertebra.runtime.numerics import rotation_to_quat

MOVE_S = 1.5  # the expert reaches each task's goal in this long
TABLE_MODES = ("visual", "solid", "keep_out")  # G1Session(table=...)
WAVE_AMP_M = 0.10    # the expert's wave: +/-10 cm at 0.8 Hz, tracked as a 7.4 cm sweep (+/-7 cm at 1 Hz
WAVE_HZ = 0.8        # gave 5.5 cm, and the learned policy's wave fell short of the 4 cm)


def shoulders(model: Any, q_full: np.ndarray, robot_cfg: Any) -> list[np.ndarray]:
    names = ["left_shoulder_pitch_link", "right_shoulder_pitch_link"]
    return [np.asarray(model.frame_translation(q_full, n)) for n in names]


def goal(ep: Episode, t: float, home: list[np.ndarray], sh: list[np.ndarray]) -> list[np.ndarray]:
    """The expert's hand targets at time t of the episode (before min-jerk shaping)."""
    g = [home[0].copy(), home[1].copy()]
    if ep.task == "touch":
        g[ep.hand] = ep.target.pos + np.array([-0.01, 0.0, 0.03])  # the fingertips come from above-behind
    elif ep.task == "point":
        d = ep.target.pos - sh[ep.hand]
        g[ep.hand] = sh[ep.hand] + 0.40 * d / np.linalg.norm(d)
    elif ep.task == "raise":
        g[0] = np.array([0.22, 0.25, 1.12])
        g[1] = np.array([0.22, -0.25, 1.12])
    elif ep.task == "wave":
        phase = max(0.0, t - MOVE_S)
        g[1] = np.array([0.16, -0.33 + WAVE_AMP_M * math.sin(2 * math.pi * WAVE_HZ * phase), 1.10])
    return g


def min_jerk(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    """The minimum-jerk path from a to b at phase s (clamped to [0, 1])."""
    s = min(max(s, 0.0), 1.0)
    return a + (b - a) * (s ** 3 * (10 - 15 * s + 6 * s * s))


def expert_targets(ep: Episode, t: float, start: list[np.ndarray], home: list[np.ndarray],
                   sh: list[np.ndarray]) -> np.ndarray:
    """Both hands' targets [6] (left xyz, right xyz) at time t, from the hands' positions at the start."""
    g = goal(ep, t, home, sh)
    out = [min_jerk(start[h], g[h], t / MOVE_S) if t < MOVE_S else g[h] for h in range(2)]
    return np.concatenate(out)


class G1Session:
    """A standing G1 on the whole-body controller with the tabletop scene and head camera."""

    def __init__(self, chunk_scheduler: bool = False, target_names: list[str] | None = None, record: Any = None,
                 record_metadata: dict[str, str] | None = None, table: str = "visual"):
        """`chunk_scheduler`: stream action chunks to the whole-body controller's named targets;
        `target_names`: what each chunk column drives (a package's outputs.targets; default: the
        hands' x, y, z in frame order, what the expert's demonstrations hold). `record`,
        `record_metadata`: record the session (runtime/recorder.py). `table` (TABLE_MODES): `visual`,
        only seen (what the shipped g1_vla was trained with: its touches pass through the tabletop);
        `solid`, the simulator's robot collides with it; `keep_out`, solid and the whole-body
        controller keeps the hands and forearms out of it (wbc.keep_out.points)."""
        from vertebra import _rt
        from vertebra.drivers.registry import driver_config
        from vertebra.drivers.scene import SceneCamera, table_box
        from vertebra.runtime.sim_runtime import SimRuntime

        if table not in TABLE_MODES:
            raise ValueError(f"table {table!r}; valid: {', '.join(TABLE_MODES)}")
        self.table_mode = table
        self.table = table_box()
        furniture = [self.table.to_dict()] if table != "visual" else []
        self.rt = SimRuntime("g1", controller="wbc", record=record, record_metadata=record_metadata,
                             driver=driver_config("mujoco", furniture=furniture),
                             keep_out=[self.table] if table == "keep_out" else None)
        # the hands' collision geometry (the robot config's capsules on the hand links)
        self.hand_capsules = [c for c in self.rt.cfg.sim.collision_capsules if c.body in self.rt.cfg.hand_frames]
        self.sched = None
        if chunk_scheduler:
            names = target_names or [f"{h}.{a}" for h in self.rt.cfg.hand_frames for a in "xyz"]
            self.sched = _rt.ChunkScheduler(len(names), mode="keep_prefix", blend_s=0.15)
            _rt.set_chunk_scheduler(self.rt.loop, self.sched, "wbc", names)
        self.cam = SceneCamera(self.rt.mjcf_path, "head", IMAGE, IMAGE)
        self.rt.stand_up(hold_s=0.3)
        self.rt.engage_wbc()
        self.rt.wait(0.2)
        self.names = list(self.rt.cfg.joint_names)
        self.arm = [self.names.index(n) for n in arm_joints(self.rt.cfg)]
        self.home = self.hands()
        q = self.q_full()
        self.home_quat = [rotation_to_quat(np.asarray(self.rt.model.frame_rotation(q, n)))
                          for n in self.rt.cfg.hand_frames]
        self.sh = shoulders(self.rt.model, q, self.rt.cfg)
        self.period = int(round(self.rt.rate_hz / RATE_HZ))

    def q_full(self) -> np.ndarray:
        s = self.rt.loop.snapshot()["state"]
        return self.rt.model.full_configuration(s["base_pos"], s["base_quat"], s["q"])

    def hands(self) -> list[np.ndarray]:
        q = self.q_full()
        return [np.asarray(self.rt.model.frame_translation(q, n)) for n in self.rt.cfg.hand_frames]

    def hand_table_clearance(self) -> float:
        """The least signed distance (m) of the hands' collision capsules to the table block now
        (negative: a hand is that deep in the table). Measured whatever the table mode."""
        from vertebra.drivers.scene import capsule_box_clearance

        q = self.q_full()
        out = float("inf")
        for c in self.hand_capsules:
            p = np.asarray(self.rt.model.frame_translation(q, c.body))
            R = np.asarray(self.rt.model.frame_rotation(q, c.body))
            out = min(out, capsule_box_clearance(p + R @ np.asarray(c.from_m), p + R @ np.asarray(c.to_m), c.radius_m,
                                                 self.table))
        return out

    def set_hand_targets(self, x: np.ndarray) -> None:
        names = self.rt.cfg.hand_frames
        for h in range(2):
            self.rt.wb.set_target(names[h], (x[3 * h:3 * h + 3], self.home_quat[h]))

    def observe(self, ep: Episode) -> dict[str, Any]:
        s = self.rt.loop.snapshot()
        self.cam.set_objects(ep.objects)
        img = self.cam.render_driver(self.rt.driver)
        return {"images": {"head": img}, "instruction": ep.instruction,
                "state": {"q": np.asarray(s["state"]["q"], np.float32), "dq": np.asarray(s["state"]["dq"], np.float32)},
                "t_s": float(s["time_s"])}

    def close(self) -> None:
        self.cam.close()
        self.rt.close()

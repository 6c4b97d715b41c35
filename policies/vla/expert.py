"""The scripted expert on the whole-body controller: a standing G1 with the tabletop scene and head
camera (`G1Session`), and the minimum-jerk hand targets that carry out each task (`expert_targets`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from vertebra.drivers.scene import TABLE_CENTER, TABLE_HALF, TABLE_TOP_Z
from vertebra.policies.vla.tasks import IMAGE, POINT_REACH_M, RATE_HZ, Episode, arm_joints
from vertebra.runtime.numerics import rotation_between

MOVE_S = 1.5  # the expert reaches each task's goal in this long ...
VIA_S = 0.9   # ... a touch or point over the table by way of a point above its plane, reached by then
APPROACH_CLEAR_M = 0.05  # the hand's lowest point this far above the tabletop on its way over the table
TOUCH_HOVER_M = 0.005    # a touch: the hand's lowest point this far above the object's top
POINT_CLEAR_M = 0.03     # a point: the hand's geometry at least this far from the table
POINT_REACH_MAX_M = 0.40
TABLE_MODES = ("visual", "solid", "keep_out")  # G1Session(table=...)
WAVE_AMP_M = 0.10    # the expert's wave: +/-10 cm at 0.8 Hz, tracked as a 7.4 cm sweep (+/-7 cm at 1 Hz
WAVE_HZ = 0.8        # gave 5.5 cm, and the learned policy's wave fell short of the 4 cm)


def shoulders(model: Any, q_full: np.ndarray, robot_cfg: Any) -> list[np.ndarray]:
    names = ["left_shoulder_pitch_link", "right_shoulder_pitch_link"]
    return [np.asarray(model.frame_translation(q_full, n)) for n in names]


@dataclass
class HandShape:
    """A hand's collision capsule as the whole-body controller holds it: at home, its segment's ends
    as world-frame offsets `a`, `b` from the hand frame and its radius; elsewhere, turned as the
    controller aims the hand (wbc.hand_aim: by the smallest rotation from the home direction,
    shoulder to hand, to the direction shoulder to frame). The expert plans with it."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    shoulder: np.ndarray | None = None  # None: the orientation is held in the world (no aim)
    home_dir: np.ndarray | None = None

    def ends(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The segment's ends (offsets from the frame) with the hand frame at `frame`."""
        d = np.asarray(frame) - self.shoulder if self.shoulder is not None else None
        if d is None or np.linalg.norm(d) < 1e-3:  # no aim, or no direction (as the controller: unturned)
            return self.a, self.b
        R = rotation_between(self.home_dir, d)
        return R @ self.a, R @ self.b

    def lowest(self, frame: np.ndarray) -> np.ndarray:
        """The offset from the hand frame to the capsule's lowest point, with the frame at `frame`."""
        a, b = self.ends(frame)
        return (a if a[2] < b[2] else b) - np.array([0.0, 0.0, self.radius])

    def front(self, frame: np.ndarray) -> float:
        """How far the hand's geometry reaches in front of (+x) its frame at `frame`."""
        a, b = self.ends(frame)
        return max(a[0], b[0]) + self.radius

    def table_clearance(self, frame: np.ndarray) -> float:
        from vertebra.drivers.scene import capsule_box_clearance, table_box

        a, b = self.ends(frame)
        return capsule_box_clearance(frame + a, frame + b, self.radius, table_box())


TABLE_FRONT_X = TABLE_CENTER[0] - TABLE_HALF[0]
FACE_CLEAR_M = 0.03  # on its way up, the hand's geometry this far in front of the table's front face


def _over_table(p: np.ndarray, shape: HandShape | None) -> bool:
    """Whether a hand whose frame is at p has geometry over (or in) the table's footprint."""
    r = shape.radius if shape is not None else 0.0
    return p[0] + (shape.front(p) if shape is not None else 0.0) > TABLE_FRONT_X and abs(p[1] - TABLE_CENTER[1]) < TABLE_HALF[1] + r


def goal(ep: Episode, t: float, home: list[np.ndarray], sh: list[np.ndarray],
         shapes: list[HandShape] | None = None) -> list[np.ndarray]:
    """The expert's hand targets at time t of the episode (before min-jerk shaping). `shapes`: the
    hands' geometry (G1Session.shapes); without it, the hand frame stands for the hand."""
    g = [home[0].copy(), home[1].copy()]
    if not ep.feasible:
        return g  # the named object is not there: nothing to do
    if ep.task == "touch":
        if shapes:  # the hand's lowest point just above the object's top (as it is aimed there)
            top = ep.target.pos + np.array([0.0, 0.0, ep.target.size_m + TOUCH_HOVER_M])
            g[ep.hand] = top
            for _ in range(4):  # the aim depends on where the frame ends: a fixed point, found in a few steps
                g[ep.hand] = top - shapes[ep.hand].lowest(g[ep.hand])
        else:  # the hand frame just above-behind the object (its fingers overlap it)
            g[ep.hand] = ep.target.pos + np.array([-0.01, 0.0, 0.03])
    elif ep.task == "point":
        d = ep.target.pos - sh[ep.hand]
        d = d / np.linalg.norm(d)
        r = POINT_REACH_MAX_M
        if shapes:  # as far along the line as the hand's geometry stays clear of the table
            while r > POINT_REACH_M + 0.04 and shapes[ep.hand].table_clearance(sh[ep.hand] + r * d) < POINT_CLEAR_M:
                r -= 0.01
        g[ep.hand] = sh[ep.hand] + r * d
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


def via(start: np.ndarray, end: np.ndarray, shape: HandShape | None) -> np.ndarray | None:
    """Where a hand going from `start` to `end` over the table passes first: above the end, with its
    lowest point APPROACH_CLEAR_M above the tabletop, its geometry still FACE_CLEAR_M in front of the
    table's front face (None: `end` is not over the table, or the straight path is above it already).
    The hand rises in front of the table, then goes over it: a path straight at the goal would meet
    the front face, where the controller's keep-out stops it."""
    if not _over_table(end, shape):
        return None
    lowest = shape.lowest(end) if shape is not None else np.zeros(3)
    z = TABLE_TOP_Z + APPROACH_CLEAR_M - lowest[2]
    if start[2] >= z and end[2] >= z:
        return None
    w = np.array([min(end[0], TABLE_FRONT_X - FACE_CLEAR_M), end[1], max(z, end[2])])
    for _ in range(3):  # the hand's geometry at the via point itself (aimed there) in front of the table
        front = shape.front(w) if shape is not None else 0.0
        lowest = shape.lowest(w) if shape is not None else np.zeros(3)
        w = np.array([min(end[0], TABLE_FRONT_X - FACE_CLEAR_M - front), end[1],
                      max(TABLE_TOP_Z + APPROACH_CLEAR_M - lowest[2], end[2])])
    return w


def expert_targets(ep: Episode, t: float, start: list[np.ndarray], home: list[np.ndarray],
                   sh: list[np.ndarray], shapes: list[HandShape] | None = None) -> np.ndarray:
    """Both hands' targets [6] (left xyz, right xyz) at time t, from the hands' positions at the
    start: minimum-jerk paths, over the table by way of `via()` (from above its plane)."""
    g = goal(ep, t, home, sh, shapes)
    out = []
    for h in range(2):
        w = via(start[h], g[h], shapes[h]) if shapes else None
        if t >= MOVE_S:
            out.append(g[h])
        elif w is None:
            out.append(min_jerk(start[h], g[h], t / MOVE_S))
        elif t < VIA_S:
            out.append(min_jerk(start[h], w, t / VIA_S))
        else:
            out.append(min_jerk(w, g[h], (t - VIA_S) / (MOVE_S - VIA_S)))
    return np.concatenate(out)


class G1Session:
    """A standing G1 on the whole-body controller with the tabletop scene and head camera."""

    def __init__(self, chunk_scheduler: bool = False, target_names: list[str] | None = None, record: Any = None,
                 record_metadata: dict[str, str] | None = None, table: str = "keep_out"):
        """`chunk_scheduler`: stream action chunks to the whole-body controller's named targets;
        `target_names`: what each chunk column drives (a package's outputs.targets; default: the
        hands' x, y, z in frame order, what the expert's demonstrations hold). `record`,
        `record_metadata`: record the session (runtime/recorder.py). `table` (TABLE_MODES): `visual`,
        only seen (nothing stops a hand going into it); `solid`, the simulator's robot collides with
        it; `keep_out` (default; what the shipped g1_vla was trained at), solid and the whole-body
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
        self.sh = shoulders(self.rt.model, q, self.rt.cfg)
        self.period = int(round(self.rt.rate_hz / RATE_HZ))
        self.shapes = []
        aim = bool(self.rt.cfg.wbc.hand_aim)  # the controller turns the hands with the arms
        for h, name in enumerate(self.rt.cfg.hand_frames):
            c = next(c for c in self.hand_capsules if c.body == name)
            R = np.asarray(self.rt.model.frame_rotation(q, name))
            self.shapes.append(HandShape(R @ np.asarray(c.from_m), R @ np.asarray(c.to_m), c.radius_m,
                                         shoulder=self.sh[h] if aim else None,
                                         home_dir=(self.home[h] - self.sh[h]) if aim else None))

    def expert(self, ep: Episode, t: float, start: list[np.ndarray]) -> np.ndarray:
        """The expert's targets for this robot's hands: with the table kept out, planned with the
        hands' shapes (over the table from above its plane); else the hand frames' straight paths."""
        return expert_targets(ep, t, start, self.home, self.sh, self.shapes if self.table_mode == "keep_out" else None)

    def touch_gap(self, ep: Episode) -> float | None:
        """Now, the named hand's collision capsule to the named object's surface (m; negative:
        overlapping); None when the episode is not a touch of an object on the table."""
        from vertebra.drivers.scene import capsule_object_gap

        if ep.task != "touch" or ep.target is None or not ep.feasible:
            return None
        name = self.rt.cfg.hand_frames[ep.hand]
        (a, b, r), = [self._capsule(c, self.q_full()) for c in self.hand_capsules if c.body == name]
        return capsule_object_gap(a, b, r, ep.target)

    def _capsule(self, c: Any, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """A collision capsule in the world at configuration q: its segment's ends and radius."""
        p = np.asarray(self.rt.model.frame_translation(q, c.body))
        R = np.asarray(self.rt.model.frame_rotation(q, c.body))
        return p + R @ np.asarray(c.from_m), p + R @ np.asarray(c.to_m), c.radius_m

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
        return min(capsule_box_clearance(*self._capsule(c, q), self.table) for c in self.hand_capsules)

    def set_hand_targets(self, x: np.ndarray) -> None:
        """The hands' positions [6]; their orientations are the controller's (wbc.hand_aim: as it was
        when the controller was engaged, turned with the arm), as for a policy's streamed chunks."""
        names = self.rt.cfg.hand_frames
        for h in range(2):
            self.rt.wb.set_target(names[h], np.asarray(x[3 * h:3 * h + 3], float))

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

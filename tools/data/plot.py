"""`vertebra data plot`: a run's force/position curves and tracking errors with matplotlib (for those
without Foxglove). One row per joint: position (measured and commanded), torque (measured and
feed-forward), and the tracking error; the safety mode changes and faults as vertical lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from vertebra.tools.data.reader import joint_names, load_run, load_ticks


def select_joints(names: list[str], pattern: str | None) -> list[int]:
    """Joint indices whose name matches `pattern` (a regex; None: all); an error names the joints."""
    if not pattern:
        return list(range(len(names)))
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"--joints {pattern!r}: not a regular expression ({e})") from None
    out = [i for i, n in enumerate(names) if rx.search(n)]
    if not out:
        raise ValueError(f"--joints {pattern!r} matches no joint; joints are: {', '.join(names)}")
    return out


def plot_run(run_dir: str | Path, out: str | Path, joints: str | None = None, t_from: float | None = None,
             t_to: float | None = None, max_joints: int = 12) -> dict[str, Any]:
    """Draw the run's joints (at most `max_joints`) between robot times `t_from`..`t_to` (s) into `out`
    (png, svg or pdf by its suffix); returns what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = load_run(run_dir)
    names = joint_names(run)
    ticks = load_ticks(run_dir)
    if not len(ticks):
        raise ValueError(f"{run_dir}: the recording holds no ticks")
    sel = select_joints(names, joints)
    if len(sel) > max_joints:
        raise ValueError(f"--joints selects {len(sel)} joints; at most {max_joints} fit a figure (narrow the pattern)")
    t = ticks["driver_ns"].astype(np.float64) * 1e-9
    keep = np.ones(len(t), bool)
    if t_from is not None:
        keep &= t >= t_from
    if t_to is not None:
        keep &= t <= t_to
    if not keep.any():
        raise ValueError(f"no ticks between {t_from} and {t_to} s (the run spans {t[0]:.3f}..{t[-1]:.3f} s)")
    tk, T = ticks[keep], t[keep]
    fig, axes = plt.subplots(len(sel), 3, figsize=(15, 2.2 * len(sel) + 0.8), squeeze=False, sharex=True)
    marks = [(e.get("robot_time_s", 0.0), e) for e in run.events if e.get("kind") in ("fault", "mode")]
    for row, j in enumerate(sel):
        q, cq = tk["q"][:, j], tk["cmd_q"][:, j]
        tau, ff = tk["tau"][:, j], tk["cmd_tau_ff"][:, j]
        ax = axes[row]
        ax[0].plot(T, q, lw=1, label="measured")
        ax[0].plot(T, cq, lw=1, ls="--", label="commanded")
        ax[0].set_ylabel(f"{names[j]}\nq (rad)", fontsize=8)
        ax[1].plot(T, tau, lw=1, label="measured")
        ax[1].plot(T, ff, lw=1, ls="--", label="feed-forward")
        ax[1].set_ylabel("torque (N·m)", fontsize=8)
        ax[2].plot(T, cq - q, lw=1, color="tab:red")
        ax[2].set_ylabel("q* - q (rad)", fontsize=8)
        for a in ax:
            for ts, e in marks:
                if T[0] <= ts <= T[-1]:
                    a.axvline(ts, color="tab:red" if e.get("kind") == "fault" else "0.6", lw=0.6, alpha=0.7)
            a.grid(alpha=0.3)
        if row == 0:
            ax[0].legend(fontsize=7)
            ax[1].legend(fontsize=7)
            ax[0].set_title("position")
            ax[1].set_title("torque")
            ax[2].set_title("tracking error")
    for a in axes[-1]:
        a.set_xlabel("robot time (s)")
    fig.suptitle(f"{run.id}: {run.metadata.get('robot', '')} ({len(tk)} ticks)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return {"run": run.id, "out": str(out), "joints": [names[j] for j in sel], "ticks": int(len(tk)),
            "from_s": float(T[0]), "to_s": float(T[-1]),
            "tracking_rms_rad": {names[j]: float(np.sqrt(np.mean((tk["cmd_q"][:, j] - tk["q"][:, j]) ** 2))) for j in sel}}

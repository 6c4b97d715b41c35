"""`vertebra report RUNS... --html out.html`: the figures a real-scene site uses to decide whether a robot
is ready for regular operation, from its recordings: per task success rate and mean time to success,
interventions and faults per hour, mean time between faults, uptime; with the plots embedded.

Definitions (docs/data.md): hours are powered hours (every recorded tick) unless said otherwise;
interventions per hour are per hour of episodes; a *stopping* fault is one whose response is more than
a warning (hold, stop, damp, cut); mean time between faults is powered hours / stopping faults (None
without one); uptime is the share of powered time outside FAULT, ESTOP and STOPPING. Time to success
is what the episode recorded (vertebra eval records when the task was first achieved), else the
successful episode's length.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import Any

import numpy as np

from vertebra.runtime.recorder import SAFETY_MODES
from vertebra.runtime.run_stats import RunStats
from vertebra.tools.data.reader import joint_names, load_run, load_ticks

WARN_RESPONSES = ("warn", "none")


def build(run_dirs: list[str | Path]) -> dict[str, Any]:
    runs, per_run = [], []
    tasks: dict[str, dict[str, Any]] = {}
    t_cum, faults_cum, iv_cum = [0.0], [0], [0]
    totals = {"powered_s": 0.0, "available_s": 0.0, "episode_s": 0.0, "faults": 0, "stopping_faults": 0,
              "interventions": 0, "episodes": 0, "lost_records": 0}
    for d in run_dirs:
        run = load_run(d)
        ticks = load_ticks(d)
        every = float(run.metadata.get("every_ticks", "1") or 1)
        rate = float(run.metadata.get("rate_hz", "500") or 500)
        names = joint_names(run)
        st = RunStats(names, [1.0] * len(names), every / rate, SAFETY_MODES)
        if len(ticks):
            st.add_ticks(ticks)
        stopping = [f for f in run.faults if f.get("response") not in WARN_RESPONSES]
        ep_s = sum((e.end_s if e.end_s is not None else (run.end_s or e.start_s)) - e.start_s for e in run.episodes)
        totals["powered_s"] += st.powered_s
        totals["available_s"] += st.available_s
        totals["episode_s"] += ep_s
        totals["faults"] += len(run.faults)
        totals["stopping_faults"] += len(stopping)
        totals["interventions"] += len(run.interventions)
        totals["episodes"] += len(run.episodes)
        totals["lost_records"] += run.lost
        for e in run.episodes:
            t = tasks.setdefault(e.task or e.instruction, {"task": e.task or e.instruction, "attempted": 0,
                                                          "succeeded": 0, "times_s": []})
            t["attempted"] += 1
            if e.outcome == "success":
                t["succeeded"] += 1
                tts = e.time_to_success_s if e.time_to_success_s is not None else (
                    (e.end_s or e.start_s) - e.start_s)
                t["times_s"].append(float(tts))
        # cumulative faults and interventions over powered time, run after run
        base = t_cum[-1]
        t0 = run.start_s or 0.0
        marks = sorted([(f.get("robot_time_s", t0) - t0, "f") for f in run.faults] +
                       [(iv["start_s"] - t0, "i") for iv in run.interventions])
        for t, kind in marks:
            t_cum.append(base + max(0.0, t) / 3600)
            faults_cum.append(faults_cum[-1] + (kind == "f"))
            iv_cum.append(iv_cum[-1] + (kind == "i"))
        t_cum.append(base + st.powered_s / 3600)
        faults_cum.append(faults_cum[-1])
        iv_cum.append(iv_cum[-1])
        per_run.append({"run": run.id, "robot": run.metadata.get("robot", ""), "serial": run.metadata.get("serial", ""),
                        "powered_h": st.powered_s / 3600, "episodes": len(run.episodes), "faults": len(run.faults),
                        "stopping_faults": len(stopping), "interventions": len(run.interventions),
                        "uptime": st.available_s / st.powered_s if st.powered_s else None, "truncated": run.truncated,
                        "lost_records": run.lost})
        runs.append(run)
    powered_h = totals["powered_s"] / 3600
    episode_h = totals["episode_s"] / 3600
    task_rows = []
    for t in tasks.values():
        times = t.pop("times_s")
        task_rows.append({**t, "success_rate": t["succeeded"] / t["attempted"] if t["attempted"] else None,
                          "mean_time_to_success_s": float(np.mean(times)) if times else None, "times_s": times})
    return {
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": per_run, "tasks": task_rows,
        "powered_h": powered_h, "episode_h": episode_h, "episodes": totals["episodes"],
        "success_rate": (sum(t["succeeded"] for t in task_rows) / totals["episodes"]) if totals["episodes"] else None,
        "interventions": totals["interventions"], "faults": totals["faults"], "stopping_faults": totals["stopping_faults"],
        "interventions_per_hour": totals["interventions"] / episode_h if episode_h else None,
        "faults_per_hour": totals["faults"] / powered_h if powered_h else None,
        "mtbf_h": powered_h / totals["stopping_faults"] if totals["stopping_faults"] else None,
        "uptime": totals["available_s"] / totals["powered_s"] if totals["powered_s"] else None,
        "lost_records": totals["lost_records"],
        "plots": {"cumulative": {"kind": "series", "t_s": [x * 3600 for x in t_cum], "unit": "count",
                                 "series": {"faults": faults_cum, "interventions": iv_cum}},
                  "time_to_success": {"kind": "histogram", "values": [x for t in task_rows for x in t["times_s"]],
                                      "unit": "s"}},
    }


def _fmt(v: Any, pct: bool = False, nd: int = 3) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def write_html(rep: dict[str, Any], out: str | Path) -> Path:
    """A self-contained HTML page (plots as base64 PNG)."""
    from vertebra.tools.hil.plots import render_png

    e = html.escape
    imgs = {k: base64.b64encode(render_png(p, t)).decode() for k, p, t in (
        ("cumulative", rep["plots"]["cumulative"], "faults and interventions over powered time"),
        ("time_to_success", rep["plots"]["time_to_success"], "time to success (successful episodes)"))}
    rows = "".join(f"<tr><td>{e(t['task'])}</td><td>{t['attempted']}</td><td>{t['succeeded']}</td>"
                   f"<td>{_fmt(t['success_rate'], True)}</td><td>{_fmt(t['mean_time_to_success_s'])}</td></tr>"
                   for t in rep["tasks"])
    runs = "".join(f"<tr><td>{e(r['run'])}</td><td>{e(r['serial'] or r['robot'])}</td><td>{_fmt(r['powered_h'], nd=4)}</td>"
                   f"<td>{r['episodes']}</td><td>{r['interventions']}</td><td>{r['faults']} ({r['stopping_faults']} stopping)</td>"
                   f"<td>{_fmt(r['uptime'], True)}</td><td>{r['lost_records']}{' TRUNCATED' if r['truncated'] else ''}</td></tr>"
                   for r in rep["runs"])
    summary = [("powered hours", _fmt(rep["powered_h"], nd=4)), ("episode hours", _fmt(rep["episode_h"], nd=4)),
               ("episodes", rep["episodes"]), ("success rate", _fmt(rep["success_rate"], True)),
               ("interventions per episode hour", _fmt(rep["interventions_per_hour"], nd=2)),
               ("faults per powered hour", _fmt(rep["faults_per_hour"], nd=2)),
               ("mean time between stopping faults (h)", _fmt(rep["mtbf_h"], nd=3)),
               ("uptime", _fmt(rep["uptime"], True)), ("records lost", rep["lost_records"])]
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Vertebra verification report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#eee}}img{{max-width:100%}}</style></head><body>
<h1>Verification report</h1><p>{len(rep['runs'])} runs, generated {e(rep['generated'])}</p>
<table>{''.join(f'<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>' for k, v in summary)}</table>
<h2>Tasks</h2><table><tr><th>task</th><th>attempted</th><th>succeeded</th><th>success rate</th><th>mean time to success (s)</th></tr>{rows}</table>
<h2>Over time</h2><img alt="faults and interventions" src="data:image/png;base64,{imgs['cumulative']}">
<img alt="time to success" src="data:image/png;base64,{imgs['time_to_success']}">
<h2>Runs</h2><table><tr><th>run</th><th>robot</th><th>powered h</th><th>episodes</th><th>interventions</th><th>faults</th><th>uptime</th><th>lost</th></tr>{runs}</table>
<p>Definitions: docs/data.md (tools/data/report.py).</p></body></html>"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out

"""`vertebra status`: the operator's live view of a running service (``vertebra run``), for an SSH
terminal.

    render_status(status, width) -> lines    # pure: the status map of Service.status() as text
    live_view(client, keys, screen)          # redrawn from the status stream until `q`

The view shows what an operator must see at a glance: the mode and safety mode, each fault with its
cause (latched / still present, the joint, the value, the declared response), who holds the lease
and how fresh it is, the policy and whether its chunks are starving, the episode and any
intervention, the loop's lateness and overruns, a compact joint table (temperature, torque margin,
limit margin; the worst of each column marked), battery, guard and watchdog.

Line prefixes carry the emphasis (``vertebra.tools.terminal``): ``!`` an alert line (a fault, a
stale lease, an e-stop), ``>`` the worst joint rows; the live view colours them on a tty. Keys in
the live view (stdin a tty): ``e`` or space sends an e-stop (no lease needed), ``q`` quits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from vertebra.tools.terminal import ALERT_PREFIX, WORST_PREFIX, KeyReader, Screen, clip

LABEL_WIDTH = 10
ESTOP_KEYS = ("e", "E", " ")
QUIT_KEYS = ("q", "Q")
READ_OK = ("ok", "no_new_data")


class StatusClient(Protocol):
    """What the status view needs of vertebra.runtime.service.client.ControlClient."""

    endpoint: str

    def request(self, type_: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]: ...

    def stream(self, endpoint: str | None = None, timeout_s: float = 2.0) -> Iterator[dict[str, Any]]: ...


# -- formatting helpers ---------------------------------------------------------------------------
def _num(v: Any, fmt: str = "g", unit: str = "", missing: str = "-") -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return missing
    return f"{v:{fmt}}{unit}"


def _line(label: str, text: str, alert: bool = False) -> str:
    prefix = ALERT_PREFIX if alert else " "
    return f"{prefix}{label:<{LABEL_WIDTH - 1}} {text}"


def _vec(v: Any) -> str:
    if not isinstance(v, Sequence) or isinstance(v, str):
        return "-"
    return "[" + ", ".join(_num(x, ".3f") for x in v) + "]"


def _dict(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


# -- sections ------------------------------------------------------------------------------------
def _header(s: Mapping[str, Any]) -> list[str]:
    head = (f" vertebra status  {s.get('deploy', '?')} ({s.get('robot', '?')})  service {s.get('service', '?')}"
            f"  pid {s.get('pid', '?')}  up {_num(s.get('uptime_s'), '.0f', ' s')}")
    if "tick" in s:
        head += f"  t {_num(s.get('time_s'), '.1f', ' s')}  tick {s.get('tick')}"
    lines = [head]
    if s.get("service") != "running":
        lines.append(_line("service", f"{s.get('service', 'unknown')}: the runtime is not serving requests",
                           alert=True))
    prev = s.get("previous_run")
    if isinstance(prev, Mapping) and not prev.get("clean", True):
        lines.append(_line("last run", f"{prev.get('end', 'ended uncleanly')}", alert=True))
    return lines


def _mode(s: Mapping[str, Any]) -> list[str]:
    safety = s.get("safety_mode", "?")
    text = f"{safety} ({s.get('mode', '?')})  {'enabled' if s.get('enabled') else 'disabled'}"
    progress = s.get("progress")
    if isinstance(progress, (int, float)) and 0.0 < progress < 1.0:
        text += f"  progress {progress:.0%}"
    lines = [_line("mode", text, alert=safety in ("FAULT", "ESTOP"))]
    req = _dict(s.get("request"))
    if req and req.get("status") not in (None, "ok"):
        why = f": {req['reason']}" if req.get("reason") else ""
        lines.append(_line("request", f"last mode request {req.get('status')}{why}", alert=True))
    job = s.get("job")
    if isinstance(job, Mapping):
        text = f"{job.get('kind', '?')} {job.get('state', '?')}"
        if job.get("error"):
            text += f": {job['error']}"
        lines.append(_line("job", text, alert=job.get("state") == "failed"))
    return lines


def _faults(s: Mapping[str, Any]) -> list[str]:
    faults = s.get("faults")
    if not faults:
        return [_line("faults", "none")]
    names = [str(_dict(j).get("name", "?")) for j in s.get("joints") or []]
    lines = []
    for f in faults:
        f = _dict(f)
        latched, present = bool(f.get("latched")), bool(f.get("present"))
        if latched and present:
            state = "LATCHED, present"
        elif latched:
            state = "latched (cause gone: reset to clear)"
        else:
            state = "present (not latched)"
        parts = [str(f.get("fault", "?")), state]
        j = f.get("joint")
        if isinstance(j, int) and not isinstance(j, bool) and 0 <= j < len(names):
            parts.append(f"joint {names[j]}")  # the event log names a joint by its index
        elif j is not None:
            parts.append(f"joint {j}")
        if f.get("value") is not None:
            v = f["value"]
            parts.append(f"value {_num(v, '.4g') if isinstance(v, (int, float)) else v}")
        if f.get("response") is not None:
            parts.append(f"response {f['response']}")
        lines.append(_line("fault", "  ".join(parts), alert=True))
    return lines


def _lease(s: Mapping[str, Any]) -> list[str]:
    lease = s.get("lease")
    if not isinstance(lease, Mapping):
        return [_line("lease", "free (nobody holds motion authority)")]
    state = lease.get("state", "?")
    text = (f"{lease.get('holder', '?')}  {state} for {_num(lease.get('held_s'), '.1f', ' s')}  retained "
            f"{_num(lease.get('retained_ago_s'), '.2f', ' s')} ago (timeout {_num(lease.get('timeout_s'), 'g', ' s')})")
    if state == "stale":
        text += "  STALE: the holder stopped retaining it"
    return [_line("lease", text, alert=state == "stale")]


def _policy(s: Mapping[str, Any]) -> list[str]:
    pol = s.get("policy")
    chunks = _dict(s.get("chunks"))
    lines = []
    if not isinstance(pol, Mapping):
        lines.append(_line("policy", "none (this deploy config names no policy)"))
    else:
        lat = _dict(pol.get("latency_us"))
        latency = (f"latency p50 {_num(lat.get('p50', 0) / 1000 if lat.get('p50') is not None else None, '.1f')} ms"
                   f" max {_num(lat.get('max', 0) / 1000 if lat.get('max') is not None else None, '.1f')} ms"
                   if lat else "latency -")
        text = (f"{pol.get('name', '?')} {'running' if pol.get('running') else 'idle'}  server {pol.get('server', '?')}"
                f"  steps {pol.get('steps', '-')}  outages {pol.get('outages', '-')}  {latency}")
        lines.append(_line("policy", text, alert=pol.get("server") in ("failed", "restarting")))
        if pol.get("last_error"):
            lines.append(_line("policy", f"last error: {pol['last_error']}", alert=True))
    if chunks:
        starved = bool(chunks.get("starved"))
        running = isinstance(pol, Mapping) and bool(pol.get("running"))
        text = (f"received {chunks.get('chunks_received', '-')}  dropped {chunks.get('chunks_dropped', '-')}  "
                f"rejected {chunks.get('chunks_rejected', '-')}  starved ticks {chunks.get('starved_ticks', '-')}")
        if starved:
            text += "  STARVED (no chunk to play)" if running else "  starved"
        lines.append(_line("chunks", text, alert=starved and running))
    return lines


def _episode(s: Mapping[str, Any]) -> list[str]:
    ep = s.get("episode")
    count = s.get("episodes", 0)
    if not isinstance(ep, Mapping):
        return [_line("episode", f"none ({count} so far)")]
    inter = ep.get("interventions") or []
    text = (f"#{ep.get('id', '?')} \"{ep.get('instruction', '')}\"  policy {ep.get('policy', '?')}  by "
            f"{ep.get('by', '?')}  interventions {len(inter)}")
    if s.get("intervention"):
        who = inter[-1].get("by", "?") if inter and isinstance(inter[-1], Mapping) else "?"
        text += f"  INTERVENTION by {who} (policy paused)"
    return [_line("episode", text)]


def _loop(s: Mapping[str, Any]) -> list[str]:
    loop = _dict(s.get("loop"))
    if not loop:
        return []
    lat = _dict(loop.get("lateness_us"))
    read, write = loop.get("last_read"), loop.get("last_write")
    text = (f"{_num(loop.get('rate_hz'), 'g', ' Hz')}  lateness p50 {_num(lat.get('p50'), '.0f')} p99 "
            f"{_num(lat.get('p99'), '.0f')} max {_num(lat.get('max'), '.0f')} us  overruns {loop.get('overruns', '-')}"
            f"  read {read}  write {write}  clamps {s.get('clamps', '-')}")
    return [_line("loop", text, alert=read not in READ_OK or write not in READ_OK)]


def _power_guard(s: Mapping[str, Any]) -> list[str]:
    lines = []
    if "battery_v" in s:
        bat = s.get("battery_v")
        lines.append(_line("battery", f"{bat:.2f} V" if isinstance(bat, (int, float)) else "n/a (not reported)"))
    guard = s.get("guard")
    if isinstance(guard, Mapping):
        watching = bool(guard.get("watching"))
        text = (f"{guard.get('state', '?')}{'' if watching else '  NOT WATCHING'}"
                f"  takeovers {guard.get('takeovers', '-')}")
        lines.append(_line("guard", text, alert=not watching))
    elif "guard" in s:
        lines.append(_line("guard", "not used (no guard for this driver)"))
    wd = s.get("watchdog")
    if isinstance(wd, Mapping):
        lines.append(_line("watchdog", f"pings {wd.get('pings', '-')}  skipped {wd.get('skipped', '-')}"))
    elif "watchdog" in s:
        lines.append(_line("watchdog", "off (no systemd watchdog)"))
    return lines


def _pose(s: Mapping[str, Any]) -> list[str]:
    lines = []
    hands = _dict(s.get("hands"))
    if hands:
        lines.append(_line("hands", "  ".join(f"{name} {_vec(pos)}" for name, pos in hands.items())))
    base = _dict(s.get("base"))
    if base:
        lines.append(_line("base", f"{_vec(base.get('pos'))} ({base.get('source', '?')})"))
    return lines


# -- joints --------------------------------------------------------------------------------------
def worst_joints(joints: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Index of the worst joint per column: 'limit' (smallest limit margin), 'torque' (smallest torque
    margin), 'temp' (hottest); a column with no values is left out."""
    out: dict[str, int] = {}
    for key, column, pick in (("limit", "limit_margin_rad", min), ("torque", "torque_margin", min),
                              ("temp", "temp_c", max)):
        vals = [(j.get(column), i) for i, j in enumerate(joints)
                if isinstance(j.get(column), (int, float)) and not isinstance(j.get(column), bool)]
        if vals:
            out[key] = pick(vals)[1]
    return out


def _joints(s: Mapping[str, Any], width: int) -> list[str]:
    joints = [_dict(j) for j in s.get("joints") or []]
    if not joints:
        return []
    worst = worst_joints(joints)
    names = [str(j.get("name", "?")) for j in joints]
    nw = max(5, min(24, max(len(n) for n in names)))

    def cell(v: Any, fmt: str, w: int, star: bool) -> str:
        return f"{_num(v, fmt) + ('*' if star else ' '):>{w}}"

    full = 2 + nw + 43
    compact = width < full  # a narrow terminal: the margins only, the names shortened to fit
    if compact:
        nw = max(5, min(nw, width - 2 - 27))
    rows = []
    for i, j in enumerate(joints):
        is_worst = i in worst.values()
        err = j.get("error")
        mark = ALERT_PREFIX if isinstance(err, int) and err != 0 else (WORST_PREFIX if is_worst else " ")
        qt = "" if compact else f"{cell(j.get('q'), '.3f', 8, False)}{cell(j.get('tau'), '.1f', 8, False)}"
        rows.append(f"{mark} {clip(names[i], nw):<{nw}}{qt}{cell(j.get('temp_c'), '.1f', 7, worst.get('temp') == i)}"
                    f"{cell(j.get('limit_margin_rad'), '.3f', 8, worst.get('limit') == i)}"
                    f"{cell(j.get('torque_margin'), '.0%', 7, worst.get('torque') == i)}"
                    f"{_num(err, 'd'):>5}")
    qt_head = "" if compact else f"{'q rad':>8}{'tau Nm':>8}"
    header = f"  {'joint':<{nw}}{qt_head}{'temp C':>7}{'lim rad':>8}{'tau mg':>7}{'err':>5}"
    summary = []
    for key, label, column, fmt, unit in (("limit", "limit margin", "limit_margin_rad", ".3f", " rad"),
                                          ("torque", "torque margin", "torque_margin", ".0%", ""),
                                          ("temp", "temp", "temp_c", ".1f", " C")):
        if key in worst:
            j = joints[worst[key]]
            summary.append(f"{label} {_num(j.get(column), fmt)}{unit} ({names[worst[key]]})")
    errors = [names[i] for i, j in enumerate(joints) if isinstance(j.get("error"), int) and j.get("error") != 0]
    one = _line("worst", "  ".join(summary) or "-")
    if len(one) <= width or len(summary) < 2:
        lines = [one]
    else:  # one line each rather than a cut
        lines = [_line("worst" if i == 0 else "", item) for i, item in enumerate(summary)]
    if errors:
        lines.append(_line("motors", "error flags on " + ", ".join(errors), alert=True))
    row_w = len(header)
    gap = "   "
    if width >= 2 * row_w + len(gap) and len(rows) > 1:
        half = (len(rows) + 1) // 2
        lines.append(header + gap + header)
        for a in range(half):
            right = rows[a + half] if a + half < len(rows) else ""
            lines.append((rows[a] + (gap + right if right else "")).rstrip())
    else:
        lines.append(header)
        lines.extend(rows)
    return lines


def render_status(status: Mapping[str, Any], width: int) -> list[str]:
    """The status map (Service.status(), a status request's reply or a status stream message) as
    lines of at most `width` characters (any width >= 1; missing sections are left out, so a service
    that is still starting renders too). Alert lines start with '!', the worst joints' rows with '>'."""
    s = status
    lines = (_header(s) + _mode(s) + _faults(s) + _lease(s) + _policy(s) + _episode(s) + _loop(s)
             + _power_guard(s) + _pose(s) + _joints(s, width))
    return [clip(line, width) for line in lines]


def snapshot(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status reply without its envelope (v, type, id): what --json prints."""
    return {k: v for k, v in status.items() if k not in ("v", "type", "id")}


# -- the live view -------------------------------------------------------------------------------
def live_view(client: StatusClient, keys: KeyReader, screen: Screen, *, interval_s: float = 0.15,
              clock: Callable[[], float] = time.monotonic, max_frames: int | None = None) -> int:
    """Redraw the status from the service's stream every `interval_s` until `q` (or `max_frames`
    frames: tests). `e` / space: an e-stop. The stream's loss is shown over the last status, and the
    view reconnects by itself. Returns the exit code (0)."""
    stream: Iterator[dict[str, Any]] | None = None
    last: Mapping[str, Any] | None = None
    last_at = 0.0
    lost: str | None = None
    notes: list[str] = []
    frames = 0
    try:
        while max_frames is None or frames < max_frames:
            started = clock()
            try:
                if stream is None:
                    stream = client.stream()
                last, last_at, lost = next(stream), clock(), None
            except StopIteration:
                stream, lost = None, "the status stream ended"
            except Exception as e:  # ServiceUnreachable or a transport error: show it and retry
                if stream is not None:
                    stream.close()
                stream, lost = None, str(e)
            width, _ = screen.size()
            top = []
            if lost is not None:
                age = f"; last status {clock() - last_at:.0f} s ago" if last is not None else ""
                top.append(clip(f"! {lost}{age}; retrying", width))
            top += [clip(n, width) for n in notes[-3:]]
            hint = " keys: e/space e-stop, q quit" if keys.enabled else " Ctrl-C quits"
            body = render_status(last, width) if last is not None else [" waiting for the service ..."]
            screen.draw(top + body + [clip(hint, width)])
            frames += 1
            deadline = started + interval_s
            while True:
                for k in keys.read(max(0.0, deadline - clock())):
                    if k in QUIT_KEYS:
                        return 0
                    if k in ESTOP_KEYS:
                        notes.append(send_estop(client))
                if clock() >= deadline:
                    break
        return 0
    finally:
        if stream is not None:
            stream.close()


def send_estop(client: StatusClient) -> str:
    """Send an e-stop (no lease needed); the line to show about it."""
    try:
        reply = client.request("estop")
    except Exception as e:  # noqa: BLE001 - whatever failed, the operator must know it did not go out
        return f"! E-STOP NOT DELIVERED: {e}"
    return f"! e-stop sent at {time.strftime('%H:%M:%S')}: safety mode {reply.get('safety_mode', '?')}"

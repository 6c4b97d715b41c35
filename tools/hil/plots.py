"""The plots of the HIL HTML report, drawn with matplotlib's Agg canvas into small PNGs.

    render_png(plot, title="") -> bytes       # one ``Case.plots`` entry as a PNG

A plot is the data dict a scenario stored (``tools/hil/results.py`` names the kinds): ``bode``
(gain and phase over a log frequency axis, stacked, with a marker at ``bandwidth_hz``), ``step``
(command and response over time, torque on a twin axis), ``histogram`` (samples, their unit, with
the p50 / p99 / max marked) and ``series`` (labelled curves over time, one unit).

Drawing never fails the report: empty, NaN-only or mismatched data draws a "no data" panel, an
unknown kind or malformed entry a panel that says so. Long curves are decimated before drawing
(time curves by a min/max envelope, which keeps spikes; Bode curves by stride) and the PNG is
written at a low dpi and palette-quantised, so a report with tens of plots stays a few hundred KB.

Figures are made with ``matplotlib.figure.Figure`` on a ``FigureCanvasAgg`` directly: no pyplot,
no global backend switch, nothing shared between calls.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

DPI = 80
WIDTH_IN = 7.0              # 560 px at DPI
HEIGHT_IN = 3.0             # 240 px
BODE_HEIGHT_IN = 4.4        # two stacked axes
MAX_POINTS = 1200           # per drawn curve, after decimation
MAX_BINS = 80
PALETTE_COLOURS = 96        # the PNG's palette (line plots need few colours)
LEGEND_INSIDE_MAX = 8       # more labels than this: the legend goes to the right of the axes

COMMAND_COLOUR = "#444444"
RESPONSE_COLOUR = "#1f77b4"
TORQUE_COLOUR = "#d62728"
MARK_COLOUR = "#d62728"

FloatArray = np.ndarray


# -- data cleaning --------------------------------------------------------------------------------
def floats(values: Any) -> FloatArray:
    """`values` as a 1-D float array (``None`` becomes NaN); empty when it is not a flat sequence of
    numbers (a string, a scalar, nested lists, text entries)."""
    if values is None or isinstance(values, (str, bytes, Mapping)):
        return np.empty(0)
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return np.empty(0)
    return a if a.ndim == 1 else np.empty(0)


def number(value: Any) -> float:
    """`value` as a float; NaN when it is not a finite-or-infinite real number (``None``, text, a bool)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def paired(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The points of (x, y) where both are finite, truncated to the shorter of the two."""
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def decimate_envelope(x: FloatArray, y: FloatArray, max_points: int = MAX_POINTS) -> tuple[FloatArray, FloatArray]:
    """At most about `max_points` of the curve (x, y): in each of ``max_points // 2`` buckets of
    consecutive samples, the sample with the lowest and the one with the highest y, in their order.
    Spikes (a torque peak, a temperature jump) survive, unlike with a plain stride."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        i_min, i_max = lo + int(np.argmin(seg)), lo + int(np.argmax(seg))
        keep.extend(sorted({i_min, i_max}))
    idx = np.asarray(keep, dtype=int)
    return x[idx], y[idx]


def decimate_stride(x: FloatArray, *ys: FloatArray, max_points: int = MAX_POINTS) -> tuple[FloatArray, ...]:
    """Every k-th point of x and of each y (same length), so that at most `max_points` remain; the
    last point is kept. For smooth curves (a Bode sweep)."""
    n = len(x)
    if n <= max_points:
        return (x, *ys)
    idx = np.unique(np.append(np.arange(0, n, math.ceil(n / max_points)), n - 1))
    return (x[idx], *(y[idx] for y in ys))


# -- panels ---------------------------------------------------------------------------------------
def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#888888",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax: Axes, handles: Sequence[Any] | None = None, count: int | None = None) -> None:
    """A small legend: inside the axes for a few labels, to their right (in columns) for many."""
    n = count if count is not None else len(ax.get_legend_handles_labels()[0])
    if n == 0:
        return
    kw: dict[str, Any] = {"fontsize": 7, "framealpha": 0.8}
    if handles is not None:
        kw["handles"] = handles
    if n <= LEGEND_INSIDE_MAX:
        ax.legend(loc="best", **kw)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=math.ceil(n / 14), borderaxespad=0.0, **kw)


def _bode(fig: Figure, plot: Mapping[str, Any]) -> None:
    ax_gain, ax_phase = fig.subplots(2, 1, sharex=True)
    freq, gain, phase = floats(plot.get("freq_hz")), floats(plot.get("gain_db")), floats(plot.get("phase_deg"))
    ok_f = np.isfinite(freq) & (freq > 0)          # a log axis: positive frequencies only
    f_gain, gain = paired(np.where(ok_f, freq, np.nan), gain)
    f_phase, phase = paired(np.where(ok_f, freq, np.nan), phase)
    drawn = False
    for ax, f, y, label in ((ax_gain, f_gain, gain, "gain [dB]"), (ax_phase, f_phase, phase, "phase [deg]")):
        ax.set_ylabel(label)
        if len(f) == 0:
            _no_data(ax)
            continue
        order = np.argsort(f)
        f, y = decimate_stride(f[order], y[order])
        ax.semilogx(f, y, color=RESPONSE_COLOUR, lw=1.2)
        ax.grid(True, which="both", alpha=0.3)
        drawn = True
    if drawn:
        ax_phase.set_xlabel("frequency [Hz]")
    bw = number(plot.get("bandwidth_hz"))
    if drawn and math.isfinite(bw) and bw > 0:
        for ax in (ax_gain, ax_phase):
            ax.axvline(bw, color=MARK_COLOUR, ls="--", lw=1.0)
        if len(f_gain):
            order = np.argsort(f_gain)
            g_bw = float(np.interp(math.log10(bw), np.log10(f_gain[order]), gain[order]))
            ax_gain.plot([bw], [g_bw], "o", color=MARK_COLOUR, ms=6, label=f"bandwidth {bw:.3g} Hz")
            _legend(ax_gain)


def _step(fig: Figure, plot: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    t = floats(plot.get("t_s"))
    command, response, torque = (floats(plot.get(k)) for k in ("command", "response", "torque"))
    longest = max(len(command), len(response), len(torque))
    x_label = "time [s]"
    if len(t) == 0 and longest:
        t, x_label = np.arange(longest, dtype=float), "sample"
    handles: list[Any] = []
    for y, label, colour, style in ((command, "command", COMMAND_COLOUR, "--"),
                                    (response, "response", RESPONSE_COLOUR, "-")):
        x, y = paired(t, y)
        if len(x):
            handles += ax.plot(*decimate_envelope(x, y), style, color=colour, lw=1.2, label=label)
    x_tau, tau = paired(t, torque)
    if len(x_tau):
        ax_tau = ax.twinx()
        handles += ax_tau.plot(*decimate_envelope(x_tau, tau), color=TORQUE_COLOUR, lw=0.9, alpha=0.8,
                               label="torque")
        ax_tau.set_ylabel("torque [Nm]", color=TORQUE_COLOUR)
        ax_tau.tick_params(axis="y", colors=TORQUE_COLOUR)
        ax.set_zorder(ax_tau.get_zorder() + 1)      # command, response and the legend above the torque
        ax.patch.set_visible(False)
    if not handles:
        _no_data(ax)
        return
    ax.set_xlabel(x_label)
    ax.set_ylabel("command / response")
    ax.grid(True, alpha=0.3)
    _legend(ax, handles=handles, count=len(handles))


def _histogram(fig: Figure, plot: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    raw = floats(plot.get("values"))
    values = raw[np.isfinite(raw)]
    unit = str(plot.get("unit") or "")
    if len(values) == 0:
        _no_data(ax)
        return
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) - 1 > MAX_BINS:
        edges = np.histogram_bin_edges(values, bins=MAX_BINS)
    counts, edges = np.histogram(values, bins=edges)
    ax.stairs(counts, edges, fill=True, color=RESPONSE_COLOUR, alpha=0.75)
    suffix = f" {unit}" if unit else ""
    for q, style in ((50, ":"), (99, "--"), (100, "-")):
        v = float(np.percentile(values, q))
        name = "max" if q == 100 else f"p{q}"
        ax.axvline(v, color=MARK_COLOUR, ls=style, lw=1.0, label=f"{name} {v:.4g}{suffix}")
    dropped = len(raw) - len(values)
    note = f"n = {len(values)}" + (f" ({dropped} non-finite dropped)" if dropped else "")
    ax.text(0.99, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=7, color="#555555")
    ax.set_xlabel(unit or "value")
    ax.set_ylabel("count")
    ax.grid(True, alpha=0.3)
    _legend(ax)


def _series(fig: Figure, plot: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    t = floats(plot.get("t_s"))
    series = plot.get("series")
    drawn = 0
    if isinstance(series, Mapping):
        styles = ("-", "--", ":", "-.")
        for i, (label, values) in enumerate(series.items()):
            x, y = paired(t, floats(values))
            if len(x):
                ax.plot(*decimate_envelope(x, y), styles[(i // 10) % len(styles)], lw=1.1, label=str(label))
                drawn += 1
    if not drawn:
        _no_data(ax)
        return
    ax.set_xlabel("time [s]")
    unit = str(plot.get("unit") or "")
    if unit:
        ax.set_ylabel(unit)
    ax.grid(True, alpha=0.3)
    _legend(ax)


DRAWERS: dict[str, Callable[[Figure, Mapping[str, Any]], None]] = {
    "bode": _bode, "step": _step, "histogram": _histogram, "series": _series,
}


# -- rendering ------------------------------------------------------------------------------------
def _to_png(fig: Figure) -> bytes:
    """The figure as a palette PNG (lines and text need far fewer than 256 colours)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    image = Image.fromarray(rgba[..., :3].copy(), "RGB").quantize(colors=PALETTE_COLOURS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _figure(kind: str) -> Figure:
    height = BODE_HEIGHT_IN if kind == "bode" else HEIGHT_IN
    return Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")


def render_png(plot: Mapping[str, Any], title: str = "") -> bytes:
    """One plot's data (a ``Case.plots`` value) drawn as a PNG. Never raises for bad data: an
    unknown kind, a malformed entry or a drawing error gives a panel that says what went wrong."""
    kind = str(plot.get("kind", "")) if isinstance(plot, Mapping) else ""
    fig = _figure(kind)
    drawer = DRAWERS.get(kind)
    try:
        if not isinstance(plot, Mapping):
            raise TypeError(f"plot data is a {type(plot).__name__}, not a mapping")
        if drawer is None:
            _no_data(fig.subplots(), f"unknown plot kind {kind!r}; known: {', '.join(DRAWERS)}")
        else:
            drawer(fig, plot)
    except Exception as e:  # a report must still be written: say what broke in the panel
        fig = _figure("")
        _no_data(fig.subplots(), f"plot could not be drawn: {type(e).__name__}: {e}"[:200])
    if title:
        fig.suptitle(title, fontsize=10)
    return _to_png(fig)

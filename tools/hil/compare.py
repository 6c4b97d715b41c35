"""``vertebra hil compare A.json B.json``: what changed between two HIL runs of the same robot.

    compare(a, b, rel_tol=0.10, abs_floor=1e-3, force=False) -> dict   # JSON-safe; `--json` prints it
    format_compare(d) -> str                                            # the text the CLI prints

A is the reference, B the run being judged. The comparison holds:

* ``verdicts``: the cases whose verdict changed, worse ones (passed -> failed, ...) first;
* ``cases``: per case present in both, the measured numbers that changed by more than `rel_tol`
  of A's value *and* by more than `abs_floor` in absolute terms (so noise near zero is ignored),
  biggest relative change first; also measured values that are not numbers and changed (a flag, a
  text, NaN), keys measured in only one run, and limits that changed (a verdict may change because
  the rig config's limit did). Cases are ordered by their biggest change;
* ``only_in_a`` / ``only_in_b``: case ids present in one run only;
* the two runs' identity, verdict and counts, and what changed in software and config hashes.

Two runs of different serials are refused (:class:`CompareError`) unless ``force=True``.
Every value in the dict is JSON-safe: non-finite floats are written as "nan", "inf", "-inf".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vertebra.tools.hil.report import short_text
from vertebra.tools.hil.results import Case, RunResult

DEFAULT_REL_TOL = 0.10
DEFAULT_ABS_FLOOR = 1e-3
SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}


class CompareError(ValueError):
    """The two runs cannot be compared as asked (different robots without ``force``)."""


# -- values ---------------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    """`v` as a JSON-safe Python value: numpy types unwrapped, non-finite floats as text."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _finite_number(v: Any) -> float | None:
    """`v` as a float when it is a finite real number (not a bool), else None."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _flatten(prefix: str, d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(key, v))
        else:
            out[key] = v
    return out


def _same(x: Any, y: Any) -> bool:
    """Equal, counting NaN as equal to NaN (JSON-safe forms compared)."""
    return bool(_plain(x) == _plain(y))


def _dict_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{key: {"a": ..., "b": ...}} for each key of either (flattened) whose value differs."""
    fa, fb = _flatten("", a), _flatten("", b)
    return {k: {"a": _plain(fa.get(k)), "b": _plain(fb.get(k))}
            for k in sorted(set(fa) | set(fb)) if k not in fa or k not in fb or not _same(fa[k], fb[k])}


# -- one case -------------------------------------------------------------------------------------
def _magnitude(change: Mapping[str, Any]) -> float:
    """Sort key of a number's change: its relative size; from zero counts as infinite."""
    rel = change["relative"]
    return math.inf if rel is None else abs(rel)


def _case_changes(ca: Case, cb: Case, rel_tol: float, abs_floor: float) -> dict[str, Any] | None:
    ma, mb = _flatten("", ca.measured), _flatten("", cb.measured)
    numbers: list[dict[str, Any]] = []
    values: list[dict[str, Any]] = []
    for key in (k for k in ma if k in mb):
        xa, xb = _finite_number(ma[key]), _finite_number(mb[key])
        if xa is not None and xb is not None:
            delta = xb - xa
            if abs(delta) <= abs_floor:
                continue
            relative = delta / abs(xa) if xa != 0 else None
            if relative is not None and abs(relative) <= rel_tol:
                continue
            numbers.append({"key": key, "a": _plain(ma[key]), "b": _plain(mb[key]), "change": delta,
                            "relative": relative})
        elif not _same(ma[key], mb[key]):
            values.append({"key": key, "a": _plain(ma[key]), "b": _plain(mb[key])})
    numbers.sort(key=_magnitude, reverse=True)
    entry = {
        "case": ca.id, "numbers": numbers, "values": values,
        "only_in_a": sorted(k for k in ma if k not in mb), "only_in_b": sorted(k for k in mb if k not in ma),
        "limits": [{"key": k, **v} for k, v in _dict_changes(ca.limits, cb.limits).items()],
    }
    return entry if any(entry[k] for k in ("numbers", "values", "only_in_a", "only_in_b", "limits")) else None


def _run_summary(r: RunResult) -> dict[str, Any]:
    return {"robot": r.robot, "serial": r.serial, "rig": r.rig, "started": r.started, "profile": r.profile,
            "software": _plain(r.software), "fit_to_run": r.passed, "stopped": r.stopped, "counts": r.counts()}


# -- the comparison -------------------------------------------------------------------------------
def compare(a: RunResult, b: RunResult, rel_tol: float = DEFAULT_REL_TOL, abs_floor: float = DEFAULT_ABS_FLOOR,
            force: bool = False) -> dict[str, Any]:
    """What changed from run `a` (the reference) to run `b`. Raises :class:`CompareError` when the
    two are of different serials and `force` is not set."""
    if rel_tol < 0 or abs_floor < 0:
        raise ValueError(f"rel_tol ({rel_tol}) and abs_floor ({abs_floor}) must not be negative")
    if a.serial != b.serial and not force:
        raise CompareError(f"these are runs of two different robots: A is {a.robot} serial {a.serial!r} "
                           f"(rig {a.rig}, {a.started}), B is {b.robot} serial {b.serial!r} (rig {b.rig}, "
                           f"{b.started}); compare runs of one robot, or force it (force=True, --force)")
    cases_a = {c.id: c for c in a.cases}
    cases_b = {c.id: c for c in b.cases}
    both = [i for i in cases_a if i in cases_b]
    verdicts = []
    for i in both:
        va, vb = cases_a[i].verdict, cases_b[i].verdict
        if va != vb:
            direction = SEVERITY[vb] - SEVERITY[va]
            verdicts.append({"case": i, "a": va, "b": vb,
                             "change": "worse" if direction > 0 else ("better" if direction < 0 else "changed"),
                             "message_a": cases_a[i].message, "message_b": cases_b[i].message})
    verdicts.sort(key=lambda v: {"worse": 0, "changed": 1, "better": 2}[v["change"]])
    cases = [e for i in both if (e := _case_changes(cases_a[i], cases_b[i], rel_tol, abs_floor)) is not None]
    cases.sort(key=lambda e: max((_magnitude(n) for n in e["numbers"]), default=-1.0), reverse=True)
    return {
        "a": _run_summary(a), "b": _run_summary(b),
        "serials_differ": a.serial != b.serial, "forced": bool(force and a.serial != b.serial),
        "tolerance": {"relative": rel_tol, "absolute": abs_floor},
        "software": _dict_changes(a.software, b.software),
        "config_hashes": _dict_changes(a.config_hashes, b.config_hashes),
        "faults_injected": _dict_changes(a.faults_injected, b.faults_injected),
        "verdicts": verdicts,
        "cases": cases,
        "only_in_a": [i for i in cases_a if i not in cases_b],
        "only_in_b": [i for i in cases_b if i not in cases_a],
    }


# -- text -----------------------------------------------------------------------------------------

def _run_line(label: str, r: Mapping[str, Any]) -> str:
    sw = r.get("software") or {}
    software = " ".join(short_text(sw[k]) for k in ("version", "commit") if k in sw) or "-"
    counts = ", ".join(f"{n} {v}" for v, n in r["counts"].items() if n)
    fit = "FIT TO RUN" if r["fit_to_run"] else "NOT FIT"
    stopped = f", stopped: {r['stopped']}" if r.get("stopped") else ""
    return (f"  {label}: {r['started']}  rig {r['rig']}  vertebra {software}  {r['profile']}  "
            f"{fit} ({counts or 'no cases'}{stopped})")


def _relative(n: Mapping[str, Any]) -> str:
    return "from 0" if n["relative"] is None else f"{n['relative'] * 100:+.1f}%"


def format_compare(d: Mapping[str, Any]) -> str:
    """The comparison dict of :func:`compare` as the text ``vertebra hil compare`` prints."""
    a, b = d["a"], d["b"]
    lines = [f"HIL compare: {a['robot']} serial {a['serial']}"
             + (f"  vs  {b['robot']} serial {b['serial']}  (different robots, forced)" if d["serials_differ"] else ""),
             _run_line("A", a), _run_line("B", b)]
    for title, key, cut in (("software", "software", None), ("config hashes", "config_hashes", 12),
                            ("injected faults", "faults_injected", None)):
        if d[key]:
            changes = "; ".join(f"{k} {short_text(v['a'])[:cut]} -> {short_text(v['b'])[:cut]}" for k, v in d[key].items())
            lines.append(f"{title} changed: {changes}")
    if a["fit_to_run"] != b["fit_to_run"]:
        lines.append(f"VERDICT: {'FIT TO RUN' if a['fit_to_run'] else 'NOT FIT'} -> "
                     f"{'FIT TO RUN' if b['fit_to_run'] else 'NOT FIT'}")
    if d["verdicts"]:
        lines += ["", f"Verdicts changed ({len(d['verdicts'])}):"]
        width = max(len(v["case"]) for v in d["verdicts"])
        for v in d["verdicts"]:
            mark = {"worse": "WORSE ", "better": "better", "changed": "      "}[v["change"]]
            why = f"  {v['message_b']}" if v["message_b"] else ""
            lines.append(f"  {mark} {v['case']:<{width}}  {v['a']} -> {v['b']}{why}")
    tol = d["tolerance"]
    if d["cases"]:
        lines += ["", f"Measured changes (beyond {tol['relative'] * 100:g}% and {tol['absolute']:g} absolute), "
                      "biggest first:"]
        for e in d["cases"]:
            lines.append(f"  {e['case']}")
            rows = [(n["key"], f"{short_text(n['a'])} -> {short_text(n['b'])}", _relative(n)) for n in e["numbers"]]
            rows += [(x["key"], f"{short_text(x['a'])} -> {short_text(x['b'])}", "") for x in e["values"]]
            rows += [(k, "measured in A only", "") for k in e["only_in_a"]]
            rows += [(k, "measured in B only", "") for k in e["only_in_b"]]
            rows += [(f"limit {x['key']}", f"{short_text(x['a'])} -> {short_text(x['b'])}", "") for x in e["limits"]]
            kw = max(len(r[0]) for r in rows)
            vw = max(len(r[1]) for r in rows)
            lines += [f"    {k:<{kw}}  {v:<{vw}}  {r}".rstrip() for k, v, r in rows]
    for label, key in (("A", "only_in_a"), ("B", "only_in_b")):
        if d[key]:
            lines += ["", f"Only in {label} ({len(d[key])}): " + ", ".join(d[key])]
    if not (d["verdicts"] or d["cases"] or d["only_in_a"] or d["only_in_b"]):
        lines += ["", f"No case changed (tolerance {tol['relative'] * 100:g}%, {tol['absolute']:g} absolute)."]
    return "\n".join(lines)

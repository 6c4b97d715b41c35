"""The reports of ``vertebra hil run``, written from a :class:`~vertebra.tools.hil.results.RunResult`:

    write_junit(result, path) -> Path              # JUnit XML for CI (validated by junit.xsd here)
    validate_junit(path) -> list[str]              # schema + count errors; [] = valid
    write_html(result, path) -> Path               # one self-contained HTML file, plots inlined
    write_reports(result, junit=, html=, json_path=) -> dict[str, Path]   # each given; ReportError
    screenshot(html_path, png_path, width=, height=) -> Path   # the HTML rendered by headless Chromium

JUnit: one ``<testsuite name="hil.<scenario>">`` per scenario (in the order the scenarios first
appear), one ``<testcase classname="hil.<scenario>" name="<case>">`` per case, with
``<failure>`` / ``<error>`` / ``<skipped>`` carrying the case's message. The run's identity (robot,
serial, rig, software, config hashes) is in each suite's ``<properties>``; each case's numbers are
in its own ``<properties>`` as ``measured.<key>`` and ``limit.<key>`` (nested dicts flattened with
dots). A run that stopped early gets one more suite, ``hil.run``, whose single case
``completed`` is an error: CI must not go green on a run that did not finish. The suite's
``timestamp`` is the run's start (cases carry no start time of their own), its ``hostname`` the
rig's name (``software["hostname"]`` when the harness records one).

HTML: a header with the identity of the run and the overall verdict (FIT TO RUN / NOT FIT, as
``RunResult.passed`` decides it), a summary table (failed and error cases first, then skipped, then
passed; the numbers that have a limit shown next to it), then a section per scenario with each
case's numbers and plots (``tools/hil/plots.py``) as base64 PNGs. No external resource of any
kind; every text from the result is escaped.

JSON is the result's own :meth:`RunResult.save`.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lxml import etree

from vertebra.tools.hil.plots import render_png
from vertebra.tools.hil.results import VERDICTS, Case, RunResult

JUNIT_XSD = Path(__file__).with_name("junit.xsd")
PACKAGE = "hil"
STOPPED_SUITE = "run"                      # the extra suite of a run that stopped early
FAILURE_TYPE = "hil.failed"
ERROR_TYPE = "hil.error"
STOPPED_TYPE = "hil.stopped"
CHROMIUM_PATHS = ("/usr/bin/chromium",)
CHROMIUM_NAMES = ("chromium", "chromium-browser")
SCREENSHOT_TIMEOUT_S = 90.0
SUMMARY_MAX_KEYS = 6                       # numbers per case in the summary table (all in its section)
TEXT_MAX = 300                             # a value's text in the HTML, before it is cut

PathLike = str | os.PathLike[str]

# Characters XML 1.0 does not allow (control characters, surrogates, U+FFFE/U+FFFF).
_XML_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportError(RuntimeError):
    """One or more reports of :func:`write_reports` could not be written."""


class ScreenshotError(RuntimeError):
    """Chromium is absent, failed, or wrote no image."""


# -- shared helpers -------------------------------------------------------------------------------
def scenarios(result: RunResult) -> list[tuple[str, list[Case]]]:
    """The result's cases grouped by scenario, scenarios in the order they first appear."""
    groups: dict[str, list[Case]] = {}
    for case in result.cases:
        groups.setdefault(case.scenario, []).append(case)
    return list(groups.items())


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as Python values (results built in memory may hold them)."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    return v


def _flatten(prefix: str, d: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of a nested mapping: {"a": {"b": 1}} -> ("<prefix>.a.b", 1)."""
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            yield from _flatten(key, v)
        else:
            yield key, _plain(v)


def _text(v: Any) -> str:
    """A value as exact text for a JUnit property (full precision; lists and dicts as JSON)."""
    v = _plain(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str)
    return str(v)


def short_text(v: Any) -> str:
    """A value as readable text for the HTML (4 significant digits, long values cut)."""
    v = _plain(v)
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(short_text(x) for x in v) + "]"
    s = json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else str(v)
    return s if len(s) <= TEXT_MAX else s[: TEXT_MAX - 1] + "…"


def _numbers_rows(case: Case) -> list[tuple[str, Any, Any, bool]]:
    """(key, measured, limit, has_limit) for each key, the keys with a limit first, then the rest,
    then limits nothing was measured for."""
    measured = dict(_flatten("", case.measured))
    limits = dict(_flatten("", case.limits))
    with_limit = [(k, v, limits[k], True) for k, v in measured.items() if k in limits]
    without = [(k, v, None, False) for k, v in measured.items() if k not in limits]
    limit_only = [(k, None, v, True) for k, v in limits.items() if k not in measured]
    return with_limit + without + limit_only


def _seconds(v: Any) -> float:
    """A duration that is safe to report: finite and not negative, else 0."""
    try:
        s = float(v)
    except (TypeError, ValueError):
        return 0.0
    return s if math.isfinite(s) and s > 0 else 0.0


def _duration(s: Any) -> str:
    t = _seconds(s)
    if t < 60:
        return f"{t:.1f} s"
    if t < 3600:
        return f"{int(t // 60)} min {int(t % 60):02d} s"
    return f"{int(t // 3600)} h {int(t % 3600 // 60):02d} min"


def _utc(started: str) -> datetime | None:
    """An ISO 8601 time ("…Z", "+00:00" or naive, taken as UTC) as an aware UTC datetime."""
    try:
        t = datetime.fromisoformat(started.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _write_atomic(path: PathLike, data: bytes) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, p)
    return p


# -- JUnit ----------------------------------------------------------------------------------------
def _xml(s: Any) -> str:
    """Text XML 1.0 can hold: characters it forbids become U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", str(s))


def _junit_timestamp(started: str) -> str:
    """The Ant form (no zone, whole seconds, UTC); the epoch when `started` cannot be read."""
    t = _utc(started)
    return (t or datetime(1970, 1, 1, tzinfo=timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S")


def _properties(parent: etree._Element, items: list[tuple[str, Any]]) -> None:
    if not items:
        return
    props = etree.SubElement(parent, "properties")
    for name, value in items:
        etree.SubElement(props, "property", name=_xml(name), value=_xml(_text(value)))


def _run_properties(result: RunResult) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = [("robot", result.robot), ("serial", result.serial), ("rig", result.rig),
                                    ("profile", result.profile), ("started", result.started),
                                    ("fit_to_run", result.passed)]
    items += list(_flatten("software", result.software))
    items += list(_flatten("config_hash", result.config_hashes))
    items += list(_flatten("fault_injected", result.faults_injected))
    if result.stopped:
        items.append(("stopped", result.stopped))
    return items


def _numbers_text(case: Case) -> str:
    """The case's numbers as lines "key = measured (limit ...)" for a failure's details."""
    lines = []
    for key, value, limit, has_limit in _numbers_rows(case):
        measured = "(not measured)" if value is None and has_limit else _text(value)
        lines.append(f"{key} = {measured}" + (f" (limit {_text(limit)})" if has_limit else ""))
    return "\n".join(lines)


def _testcase(suite: etree._Element, case: Case, classname: str) -> None:
    tc = etree.SubElement(suite, "testcase", name=_xml(case.name or "?"), classname=_xml(classname),
                          time=f"{_seconds(case.duration_s):.3f}")
    _properties(tc, [("verdict", case.verdict)] + list(_flatten("measured", case.measured))
                + list(_flatten("limit", case.limits)))
    message = _xml(case.message)
    if case.verdict in ("failed", "error"):
        tag, type_ = ("failure", FAILURE_TYPE) if case.verdict == "failed" else ("error", ERROR_TYPE)
        el = etree.SubElement(tc, tag, message=message or case.verdict, type=type_)
        details = _numbers_text(case)
        el.text = _xml(case.message + ("\n\n" + details if details else ""))
    elif case.verdict == "skipped":
        etree.SubElement(tc, "skipped", message=message)


def _suite(root: etree._Element, name: str, index: int, timestamp: str, hostname: str,
           run_props: list[tuple[str, Any]], cases: list[Case]) -> etree._Element:
    counts = {v: sum(1 for c in cases if c.verdict == v) for v in VERDICTS}
    suite = etree.SubElement(root, "testsuite", name=_xml(f"{PACKAGE}.{name}"), tests=str(len(cases)),
                             failures=str(counts["failed"]), errors=str(counts["error"]),
                             skipped=str(counts["skipped"]),
                             time=f"{sum(_seconds(c.duration_s) for c in cases):.3f}", timestamp=timestamp,
                             hostname=hostname, id=str(index), package=PACKAGE)
    _properties(suite, run_props)
    for case in cases:
        _testcase(suite, case, f"{PACKAGE}.{name}")
    return suite


def junit_tree(result: RunResult) -> etree._Element:
    """The JUnit ``<testsuites>`` element of a result (what :func:`write_junit` writes)."""
    timestamp = _junit_timestamp(result.started)
    hostname = _xml(str(result.software.get("hostname") or result.rig or "localhost")).strip() or "localhost"
    run_props = _run_properties(result)
    groups = scenarios(result)
    if result.stopped:
        stop = Case(scenario=STOPPED_SUITE, name="completed", verdict="error",
                    message=f"the run stopped early: {result.stopped}")
        groups.append((STOPPED_SUITE, [stop]))
    all_cases = [c for _, cases in groups for c in cases]
    root = etree.Element("testsuites", name=_xml(f"vertebra hil {result.robot} {result.serial} on {result.rig}"),
                         tests=str(len(all_cases)),
                         failures=str(sum(c.verdict == "failed" for c in all_cases)),
                         errors=str(sum(c.verdict == "error" for c in all_cases)),
                         skipped=str(sum(c.verdict == "skipped" for c in all_cases)),
                         time=f"{_seconds(result.duration_s) or sum(_seconds(c.duration_s) for c in all_cases):.3f}")
    for i, (scenario, cases) in enumerate(groups):
        _suite(root, scenario, i, timestamp, hostname, run_props, cases)
    if result.stopped:
        stopped_suite = root[-1]
        err = etree.SubElement(stopped_suite, "system-err")
        err.text = _xml(f"stopped: {result.stopped}")
    return root


def write_junit(result: RunResult, path: PathLike) -> Path:
    """Write the result as JUnit XML (UTF-8) at `path`; returns the path."""
    data = etree.tostring(junit_tree(result), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return _write_atomic(path, data)


@functools.cache
def _junit_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(JUNIT_XSD)))


def _count_errors(root: etree._Element) -> list[str]:
    """The counts the schema cannot check: each suite's tests/failures/errors/skipped against its
    testcases, and the totals on <testsuites> against the suites."""
    errors: list[str] = []
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        found = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
                 "errors": sum(c.find("error") is not None for c in cases),
                 "skipped": sum(c.find("skipped") is not None for c in cases)}
        for key, n in found.items():
            totals[key] += n
            if int(suite.get(key, "0")) != n:
                errors.append(f"line {suite.sourceline}: testsuite {suite.get('name')!r}: {key}="
                              f"{suite.get(key)} but it holds {n}")
    if root.tag == "testsuites":
        for key, n in totals.items():
            if root.get(key) is not None and int(root.get(key, "0")) != n:
                errors.append(f"line {root.sourceline}: testsuites: {key}={root.get(key)} but the suites hold {n}")
    return errors


def validate_junit(path: PathLike) -> list[str]:
    """The ways the file at `path` is not JUnit XML as ``junit.xsd`` here defines it, plus count
    mismatches the schema cannot see; an empty list when it is valid."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        doc = etree.parse(str(path), parser)
    except (OSError, etree.XMLSyntaxError) as e:
        return [f"{path}: not readable as XML: {e}"]
    schema = _junit_schema()
    if not schema.validate(doc):
        return [f"line {e.line}: {e.message}" for e in schema.error_log]
    return _count_errors(doc.getroot())


# -- HTML -----------------------------------------------------------------------------------------
def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


VERDICT_ORDER = {"error": 0, "failed": 1, "skipped": 2, "passed": 3}

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;font-size:14px;
 color:#1d1d1f;background:#fff;margin:0 auto;max-width:1240px;padding:16px 20px 40px}
h1{font-size:20px;margin:0 0 8px}
h2{font-size:18px;margin:32px 0 8px;padding-bottom:4px;border-bottom:2px solid #ddd}
h3{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #e4e4e4}
th{background:#f4f4f6;font-weight:600}
.verdict{display:inline-block;font-size:40px;font-weight:800;letter-spacing:1px;color:#fff;padding:10px 28px;
 border-radius:8px;margin:8px 0}
.verdict.fit{background:#1b7f3b}.verdict.unfit{background:#b3261e}
.why{font-size:15px;margin:4px 0 12px}
.meta th{width:150px;background:none;color:#555}
.meta td,.meta th{border:none;padding:2px 8px}
.warn{color:#8a4b00;font-weight:600}
.stopped{color:#b3261e;font-weight:700}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:2px 7px;border-radius:4px;color:#fff;
 text-transform:uppercase}
.badge.passed{background:#1b7f3b}.badge.failed{background:#b3261e}.badge.error{background:#7b1fa2}
.badge.skipped{background:#8a8a8a}
tr.failed td,tr.error td{background:#fdecea}
tr.skipped td{color:#666}
.summary td.msg{max-width:420px;white-space:pre-wrap;word-break:break-word}
.nums{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.lim{color:#666}
.case{border:1px solid #e0e0e0;border-left:6px solid #8a8a8a;border-radius:4px;padding:10px 12px;margin:12px 0}
.case.passed{border-left-color:#1b7f3b}.case.failed{border-left-color:#b3261e}.case.error{border-left-color:#7b1fa2}
.case .msg{white-space:pre-wrap;word-break:break-word;margin:4px 0 8px}
.plots{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}
figure{margin:0}
figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
nav{margin:10px 0}
nav a{margin-right:12px}
a{color:#0b57d0;text-decoration:none}
"""


def _number_spans(case: Case, anchor: str) -> str:
    rows = _numbers_rows(case)
    parts = []
    for key, value, limit, has_limit in rows[:SUMMARY_MAX_KEYS]:
        lim = f' <span class="lim">(limit {_e(short_text(limit))})</span>' if has_limit else ""
        parts.append(f"{_e(key)} {_e(short_text(value))}{lim}")
    if len(rows) > SUMMARY_MAX_KEYS:
        parts.append(f'<a href="#{anchor}">+{len(rows) - SUMMARY_MAX_KEYS} more</a>')
    return "<br>".join(parts)


def _header(result: RunResult) -> list[str]:
    counts = result.counts()
    fit = result.passed
    if fit:
        why = f"{counts['passed']} passed, {counts['skipped']} skipped: no case failed"
    else:
        bad = [f"{counts[v]} {v}" for v in ("failed", "error") if counts[v]]
        why = ", ".join(bad) + (f"; the run stopped early: {result.stopped}" if result.stopped else "")
        why = why.lstrip("; ")
    software = ", ".join(f"{k} {short_text(v)}" for k, v in _flatten("", result.software)) or "–"
    rows = [("Rig", _e(result.rig)), ("Robot", _e(result.robot)), ("Serial", _e(result.serial)),
            ("Software", _e(software)), ("Started", _e(result.started)), ("Duration", _e(_duration(result.duration_s))),
            ("Profile", _e(result.profile)),
            ("Cases", _e(", ".join(f"{n} {v}" for v, n in counts.items())))]
    if result.faults_injected:
        faults = ", ".join(f"{k} = {short_text(v)}" for k, v in _flatten("", result.faults_injected))
        rows.append(("Injected faults", f'<span class="warn">{_e(faults)}</span>'))
    if result.stopped:
        rows.append(("Stopped early", f'<span class="stopped">{_e(result.stopped)}</span>'))
    if result.config_hashes:
        hashes = ", ".join(f'{_e(k)} <span class="nums" title="{_e(v)}">{_e(str(v)[:12])}</span>'
                           for k, v in result.config_hashes.items())
        rows.append(("Config hashes", hashes))
    out = ["<header>", "<h1>Vertebra HIL report</h1>",
           f'<div class="verdict {"fit" if fit else "unfit"}">{"FIT TO RUN" if fit else "NOT FIT"}</div>',
           f'<p class="why">{_e(why)}</p>']
    if fit and result.cases and counts["passed"] == 0:
        out.append('<p class="warn">No case passed: every case was skipped (nothing was observed).</p>')
    if not result.cases:
        out.append('<p class="warn">The run holds no cases.</p>')
    out.append('<table class="meta">')
    out += [f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows]
    out += ["</table>", "</header>"]
    return out


def _summary(result: RunResult, anchors: dict[int, str]) -> list[str]:
    order = sorted(range(len(result.cases)), key=lambda i: (VERDICT_ORDER[result.cases[i].verdict], i))
    out = ["<h2>Summary</h2>", '<table class="summary">',
           "<tr><th>Scenario</th><th>Case</th><th>Verdict</th><th>Message</th><th>Measured (limit)</th></tr>"]
    for i in order:
        c = result.cases[i]
        out.append(f'<tr class="{c.verdict}"><td>{_e(c.scenario)}</td>'
                   f'<td><a href="#{anchors[i]}">{_e(c.name)}</a></td>'
                   f'<td><span class="badge {c.verdict}">{c.verdict}</span></td>'
                   f'<td class="msg">{_e(c.message)}</td>'
                   f'<td class="nums">{_number_spans(c, anchors[i])}</td></tr>')
    out.append("</table>")
    return out


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _case_section(case: Case, anchor: str) -> list[str]:
    out = [f'<div class="case {case.verdict}" id="{anchor}">',
           f'<h3><span class="badge {case.verdict}">{case.verdict}</span> {_e(case.name)}'
           f' <span class="lim">({_e(_duration(case.duration_s))})</span></h3>']
    if case.message:
        out.append(f'<div class="msg">{_e(case.message)}</div>')
    rows = _numbers_rows(case)
    if rows:
        out.append('<table class="nums"><tr><th>key</th><th>measured</th><th>limit</th></tr>')
        out += [f"<tr><td>{_e(k)}</td><td>{_e(short_text(v))}</td>"
                f"<td>{_e(short_text(limit)) if lim else ''}</td></tr>" for k, v, limit, lim in rows]
        out.append("</table>")
    if case.plots:
        out.append('<div class="plots">')
        for name, plot in case.plots.items():
            png = render_png(plot, f"{case.id}: {name}")
            kind = plot.get("kind", "?") if isinstance(plot, Mapping) else "?"
            out.append(f'<figure><img src="{_png_uri(png)}" alt="{_e(f"{case.id} {name} ({kind})")}">'
                       f"<figcaption>{_e(name)} ({_e(kind)})</figcaption></figure>")
        out.append("</div>")
    out.append("</div>")
    return out


def html_report(result: RunResult) -> str:
    """The HTML report of a result as a string (what :func:`write_html` writes)."""
    anchors = {i: f"case-{i}" for i in range(len(result.cases))}
    index = {id(c): i for i, c in enumerate(result.cases)}
    groups = scenarios(result)
    verdict = "FIT TO RUN" if result.passed else "NOT FIT"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(f'HIL {result.robot} {result.serial} on {result.rig}: {verdict}')}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>"]
    out += _header(result)
    if groups:
        links = []
        for j, (scenario, cases) in enumerate(groups):
            bad = sum(c.verdict in ("failed", "error") for c in cases)
            links.append(f'<a href="#scenario-{j}">{_e(scenario)}'
                         + (f' <span class="stopped">({bad} failed)</span>' if bad else "") + "</a>")
        out.append("<nav>" + "".join(links) + "</nav>")
    out += _summary(result, anchors)
    for j, (scenario, cases) in enumerate(groups):
        counts = ", ".join(f"{n} {v}" for v in VERDICTS if (n := sum(c.verdict == v for c in cases)))
        out.append(f'<section id="scenario-{j}"><h2>{_e(scenario)} <span class="lim">({_e(counts)})</span></h2>')
        for case in cases:
            out += _case_section(case, anchors[index[id(case)]])
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def write_html(result: RunResult, path: PathLike) -> Path:
    """Write the self-contained HTML report of the result at `path`; returns the path."""
    return _write_atomic(path, html_report(result).encode("utf-8"))


# -- all of them ----------------------------------------------------------------------------------
def write_reports(result: RunResult, junit: PathLike | None = None, html: PathLike | None = None,
                  json_path: PathLike | None = None) -> dict[str, Path]:
    """Write each report whose path is given; returns {"json"|"junit"|"html": path} for those
    written. One report failing (e.g. ``RunResult.save`` refusing a NaN) does not stop the others:
    they are all tried, then :class:`ReportError` names what failed and what was written."""
    jobs = (("json", json_path, result.save), ("junit", junit, lambda p: write_junit(result, p)),
            ("html", html, lambda p: write_html(result, p)))
    written: dict[str, Path] = {}
    failed: list[tuple[str, Exception]] = []
    for key, path, write in jobs:
        if path is None:
            continue
        try:
            written[key] = write(path)
        except Exception as e:  # the other reports are still written; reported together below
            failed.append((key, e))
    if failed:
        what = "; ".join(f"{key}: {type(e).__name__}: {e}" for key, e in failed)
        done = ", ".join(f"{k} {p}" for k, p in written.items()) or "nothing"
        raise ReportError(f"HIL reports not written: {what} (written: {done})") from failed[0][1]
    return written


# -- screenshot -----------------------------------------------------------------------------------
def find_chromium() -> str | None:
    """The Chromium executable: /usr/bin/chromium, else chromium or chromium-browser on PATH."""
    for p in CHROMIUM_PATHS:
        if os.access(p, os.X_OK):
            return p
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: PathLike, png_path: PathLike, width: int = 1280, height: int = 2000, *,
               chromium: str | None = None, timeout_s: float = SCREENSHOT_TIMEOUT_S) -> Path:
    """Render the HTML file with headless Chromium into a `width` x `height` PNG at `png_path`.
    Raises :class:`ScreenshotError` when Chromium is absent, fails, times out or writes no image.
    Each call gets a fresh, temporary profile; nothing is fetched over the network."""
    exe = chromium or find_chromium()
    if exe is None:
        raise ScreenshotError(f"Chromium is not installed (looked for {', '.join(CHROMIUM_PATHS)} and "
                              f"{', '.join(CHROMIUM_NAMES)} on PATH): install it (apt-get install chromium) "
                              "or pass chromium=<path>")
    page = Path(html_path).resolve()
    if not page.is_file():
        raise ScreenshotError(f"{page}: no such HTML file")
    out = Path(png_path).resolve()
    out.unlink(missing_ok=True)
    profile = tempfile.mkdtemp(prefix="vertebra-hil-chromium-")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--screenshot={out}", f"--window-size={int(width)},{int(height)}", page.as_uri()]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)       # its own session: the browser and its helpers
            proc.communicate()
            raise ScreenshotError(f"Chromium did not finish within {timeout_s:g} s") from None
    except OSError as e:
        raise ScreenshotError(f"cannot run {exe}: {e}") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not out.is_file() or out.stat().st_size == 0:
        tail = err.decode("utf-8", "replace").strip()[-2000:]
        raise ScreenshotError(f"Chromium (exit {proc.returncode}) wrote no screenshot at {out}: {tail}")
    return out

"""The reports of `vertebra hil run` (tools/hil/report.py, plots.py, compare.py) on a RunResult built
by hand: every verdict, every plot kind, NaN and empty data. JUnit against the shipped XSD (and a
broken file against it), the HTML's self-containment and escaping, the comparison of two runs, and
(where /usr/bin/chromium exists) a screenshot of the HTML."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lxml import etree
from lxml import html as lxml_html
from vertebra.tools.hil import report
from vertebra.tools.hil.compare import CompareError, compare, format_compare
from vertebra.tools.hil.plots import decimate_envelope, render_png
from vertebra.tools.hil.report import (ReportError, ScreenshotError, screenshot, validate_junit, write_html,
                                       write_junit, write_reports)
from vertebra.tools.hil.results import RESULT_FORMAT, Case, RunResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = math.nan
SCRIPT_MESSAGE = 'tracking error 0.31 rad > 0.2 <script>alert("x")</script> & more'


# -- a result built by hand -----------------------------------------------------------------------
def bode(bandwidth_hz: float = 14.0) -> dict[str, Any]:
    f = np.logspace(-1, 2, 200)
    h = 1.0 / (1.0 + 1j * f / bandwidth_hz)
    return {"kind": "bode", "freq_hz": f.tolist(), "gain_db": (20 * np.log10(abs(h))).tolist(),
            "phase_deg": np.degrees(np.angle(h)).tolist(), "bandwidth_hz": bandwidth_hz}


def step(n: int = 5000, torque: bool = True) -> dict[str, Any]:
    t = np.linspace(0.0, 2.0, n)
    command = (t > 0.2).astype(float) * 0.5
    response = 0.5 * (1 - np.exp(-np.clip(t - 0.2, 0, None) * 12))
    plot = {"kind": "step", "t_s": t.tolist(), "command": command.tolist(), "response": response.tolist()}
    if torque:
        plot["torque"] = (np.gradient(response) * 4000).tolist()
    return plot


def make_result() -> RunResult:
    t = np.linspace(0, 600, 3000)
    r = RunResult(rig="bench_a", robot="g1", serial="G1-0042", software={"version": "0.1.0", "commit": "abc1234"},
                  config_hashes={"rig": "a" * 64, "robot": "b" * 64, "safety": "c" * 64, "deploy": "d" * 64},
                  started="2025-03-04T10:11:12.345Z", duration_s=754.2, profile="full",
                  faults_injected={"bus_drop_rate": 0.01})
    r.add(Case("identify", "left_knee_joint", "passed", "bandwidth above the limit",
               measured={"bandwidth_hz": 14.0, "tracking_rms_rad": 0.012, "samples": 5000},
               limits={"bandwidth_hz": 8.0, "tracking_rms_rad": 0.05}, duration_s=31.5,
               plots={"bode": bode(), "step": step()}))
    r.add(Case("identify", "right_knee_joint", "failed", SCRIPT_MESSAGE,
               measured={"bandwidth_hz": 5.5, "tracking_rms_rad": 0.31},
               limits={"bandwidth_hz": 8.0, "tracking_rms_rad": 0.2}, duration_s=30.0,
               plots={"bode": {"kind": "bode", "freq_hz": [1.0, 2.0, NAN], "gain_db": [NAN, NAN, NAN],
                               "phase_deg": [NAN, NAN, NAN], "bandwidth_hz": NAN},
                      "step": {"kind": "step", "t_s": [], "command": [], "response": []}}))
    r.add(Case("bus", "lowstate", "passed", measured={"latency_p99_us": 212.0, "drops": 0},
               limits={"latency_p99_us": 500.0}, duration_s=60.0,
               plots={"latency": {"kind": "histogram", "unit": "us",
                                  "values": np.r_[np.random.default_rng(1).lognormal(4.5, 0.3, 20000),
                                                  [NAN, math.inf]].tolist()}}))
    r.add(Case("bus", "lowcmd", "error", "scenario raised TimeoutError: no lowcmd echo in 2 s",
               plots={"latency": {"kind": "histogram", "unit": "us", "values": []}}))
    r.add(Case("thermal", "legs", "passed", measured={"max_temp_c": 61.0, "rise": {"left_knee_joint": 21.0}},
               limits={"max_temp_c": 75.0}, duration_s=600.0,
               plots={"temperature": {"kind": "series", "unit": "degC", "t_s": t.tolist(),
                                      "series": {"left_knee_joint": (40 + 21 * (1 - np.exp(-t / 200))).tolist(),
                                                 "right_knee_joint": (40 + 18 * (1 - np.exp(-t / 200))).tolist(),
                                                 "broken_sensor": [NAN] * len(t)}},
                      "nothing": {"kind": "series", "unit": "degC", "t_s": [], "series": {}},
                      "mystery": {"kind": "spectrogram", "data": [1, 2, 3]}}))
    r.add(Case("wiring", "waist_yaw_joint", "skipped", "not observable on this rig: no encoder access"))
    r.add(Case("safety", "estop_api", "failed", "damped after 31 ms; limit 20 ms",
               measured={"reaction_ms": 31.0, "phases": {"damp_ms": 31.0, "cut_ms": NAN}},
               limits={"reaction_ms": 20.0}, duration_s=4.0))
    r.add(Case("policy", "pick_cube", "skipped", "no policy server configured"))
    return r


@pytest.fixture(scope="module")
def result() -> RunResult:
    return make_result()


@pytest.fixture(scope="module")
def written(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hil-report")
    return {"junit": write_junit(result, folder / "junit.xml"), "html": write_html(result, folder / "report.html")}


def plot_count(r: RunResult) -> int:
    return sum(len(c.plots) for c in r.cases)


# -- JUnit ----------------------------------------------------------------------------------------
def test_junit_validates_against_the_shipped_xsd(written: dict[str, Path]) -> None:
    assert validate_junit(written["junit"]) == []


def test_junit_suites_counts_and_time(written: dict[str, Path], result: RunResult) -> None:
    root = etree.parse(str(written["junit"])).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("8", "2", "1", "2")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["hil.identify", "hil.bus", "hil.thermal", "hil.wiring", "hil.safety", "hil.policy"]
    identify = suites["hil.identify"]
    assert [identify.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["2", "1", "0", "0"]
    assert float(identify.get("time")) == pytest.approx(61.5)
    assert identify.get("timestamp") == "2025-03-04T10:11:12"
    assert identify.get("hostname") == "bench_a" and identify.get("package") == "hil"
    assert [suites["hil.bus"].get(k) for k in ("tests", "failures", "errors", "skipped")] == ["2", "0", "1", "0"]
    names = [(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase")]
    assert names == [(f"hil.{c.scenario}", c.name) for c in result.cases]


def test_junit_suite_properties_name_the_robot_and_software(written: dict[str, Path]) -> None:
    root = etree.parse(str(written["junit"])).getroot()
    for suite in root.findall("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.find("properties")}
        assert props["robot"] == "g1" and props["serial"] == "G1-0042" and props["rig"] == "bench_a"
        assert props["software.version"] == "0.1.0" and props["software.commit"] == "abc1234"
        assert props["config_hash.safety"] == "c" * 64 and props["fault_injected.bus_drop_rate"] == "0.01"
        assert props["fit_to_run"] == "false"


def test_junit_case_properties_failures_errors_and_skips(written: dict[str, Path]) -> None:
    root = etree.parse(str(written["junit"])).getroot()
    cases = {tc.get("name"): tc for tc in root.iter("testcase")}
    ok = cases["left_knee_joint"]
    props = {p.get("name"): p.get("value") for p in ok.find("properties")}
    assert props["measured.bandwidth_hz"] == "14.0" and props["limit.bandwidth_hz"] == "8.0"
    assert props["measured.samples"] == "5000" and props["verdict"] == "passed"
    assert ok.find("failure") is None and ok.find("error") is None and ok.find("skipped") is None
    bad = cases["right_knee_joint"].find("failure")
    assert bad.get("message") == SCRIPT_MESSAGE and bad.get("type") == report.FAILURE_TYPE
    assert "tracking_rms_rad = 0.31 (limit 0.2)" in bad.text
    estop = {p.get("name"): p.get("value") for p in cases["estop_api"].find("properties")}
    assert estop["measured.phases.damp_ms"] == "31.0" and estop["measured.phases.cut_ms"] == "nan"
    error = cases["lowcmd"].find("error")
    assert error.get("message").startswith("scenario raised TimeoutError") and cases["lowcmd"].find("failure") is None
    assert cases["waist_yaw_joint"].find("skipped").get("message").startswith("not observable on this rig")


def test_a_run_stopped_early_is_an_error_in_junit(result: RunResult, tmp_path: Path) -> None:
    passing = RunResult(**{**result.__dict__, "cases": [result.cases[0]], "stopped": "Ctrl-C"})
    path = write_junit(passing, tmp_path / "j.xml")
    assert validate_junit(path) == []
    root = etree.parse(str(path)).getroot()
    assert root.get("errors") == "1" and root.get("tests") == "2"
    run = root.find("testsuite[@name='hil.run']")
    assert "Ctrl-C" in run.find("testcase/error").get("message")


def test_junit_holds_messages_with_characters_xml_forbids(tmp_path: Path) -> None:
    r = RunResult(rig="r", robot="g1", serial="s", software={}, config_hashes={}, started="not a time")
    r.add(Case("bus", "lowcmd", "failed", "driver said \x1b[31mCRC\x1b[0m \x00 twice"))
    path = write_junit(r, tmp_path / "j.xml")
    assert validate_junit(path) == []
    suite = etree.parse(str(path)).getroot().find("testsuite")
    assert suite.get("timestamp") == "1970-01-01T00:00:00" and suite.get("hostname") == "r"
    assert "CRC" in suite.find("testcase/failure").get("message")


@pytest.mark.parametrize("breakage, expect", [
    (lambda s: s.replace('name="left_knee_joint"', ""), "name"),                       # attribute missing
    (lambda s: s.replace('tests="2"', 'tests="3"', 1), "holds 2"),                     # counts wrong
    (lambda s: s.replace('timestamp="2025-03-04T10:11:12"', 'timestamp="yesterday"', 1), "timestamp"),
    (lambda s: s.replace("<skipped ", "<ignored ", 1).replace("</skipped>", "</ignored>", 1), "ignored"),
    (lambda s: s.replace("</testsuites>", ""), "not readable as XML"),                 # not well-formed
])
def test_a_broken_junit_file_does_not_validate(written: dict[str, Path], tmp_path: Path, breakage: Any,
                                               expect: str) -> None:
    text = written["junit"].read_text()
    broken = breakage(text)
    assert broken != text
    path = tmp_path / "broken.xml"
    path.write_text(broken)
    errors = validate_junit(path)
    assert errors and any(expect in e for e in errors), errors


# -- HTML -----------------------------------------------------------------------------------------
def test_html_is_self_contained(written: dict[str, Path], result: RunResult) -> None:
    text = written["html"].read_text()
    doc = lxml_html.fromstring(text)
    for el in doc.iter():
        for attr in ("src", "href"):
            value = (el.get(attr) or "").strip().lower()
            assert not re.match(r"^(https?:)?//", value), f"external {attr}: {value[:80]}"
            assert not value.startswith(("http:", "https:", "file:")), value[:80]
    assert doc.findall(".//script") == [] and doc.findall(".//link") == []
    assert "url(" not in text and "@import" not in text
    images = doc.findall(".//img")
    assert len(images) == plot_count(result)
    for img in images:
        src = img.get("src")
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)


def test_html_shows_the_run_each_case_and_the_verdict(written: dict[str, Path], result: RunResult) -> None:
    text = written["html"].read_text()
    doc = lxml_html.fromstring(text)
    verdict = doc.find_class("verdict")[0]
    assert verdict.text_content() == "NOT FIT" and "unfit" in verdict.get("class")
    for c in result.cases:
        assert c.name in text
    for s in ("bench_a", "G1-0042", "0.1.0", "abc1234", "2025-03-04T10:11:12.345Z", "12 min 34 s", "full",
              "bus_drop_rate"):
        assert s in text, s
    size = written["html"].stat().st_size
    print(f"HTML report: {size / 1024:.0f} KiB for {plot_count(result)} plots")
    assert size < 600_000


def test_html_escapes_the_messages(written: dict[str, Path]) -> None:
    text = written["html"].read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in text


def test_html_summary_puts_failed_cases_first(written: dict[str, Path]) -> None:
    doc = lxml_html.fromstring(written["html"].read_text())
    rows = doc.find_class("summary")[0].findall(".//tr")[1:]
    verdicts = [r.get("class") for r in rows]
    assert verdicts == ["error", "failed", "failed", "skipped", "skipped", "passed", "passed", "passed"]
    first_failed = rows[1].text_content()
    assert "right_knee_joint" in first_failed and "bandwidth_hz 5.5 (limit 8)" in first_failed


def test_html_of_a_passing_run_says_fit_to_run(tmp_path: Path) -> None:
    r = make_result()
    r.cases = [c for c in r.cases if c.verdict in ("passed", "skipped")]
    for c in r.cases:
        c.plots = {}
    doc = lxml_html.fromstring(write_html(r, tmp_path / "ok.html").read_text())
    verdict = doc.find_class("verdict")[0]
    assert verdict.text_content() == "FIT TO RUN" and "fit" in verdict.get("class").split()


@pytest.mark.parametrize("plot", [
    {"kind": "bode", "freq_hz": [], "gain_db": [], "phase_deg": []},
    {"kind": "bode", "freq_hz": [NAN, -1.0, 0.0], "gain_db": [1, 2, 3], "phase_deg": [1, 2], "bandwidth_hz": "x"},
    {"kind": "step", "t_s": [NAN] * 4, "command": [None] * 4, "response": [NAN] * 4, "torque": [NAN] * 4},
    {"kind": "step", "command": [0.0, 1.0, 1.0]},                                 # no time: samples
    {"kind": "histogram", "values": [NAN, math.inf], "unit": "us"},
    {"kind": "histogram", "values": [3.0] * 10},                                  # one value only
    {"kind": "series", "t_s": "abc", "series": 5},
    {"kind": "series", "t_s": [0, 1, 2], "series": {"a": [1, 2], "b": [[1], [2]]}},
    {"kind": "nope"},
    {},
])
def test_plots_never_fail(plot: dict[str, Any]) -> None:
    assert render_png(plot, "t").startswith(PNG_MAGIC)


def test_decimation_keeps_a_spike() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.zeros_like(x)
    y[54_321] = 9.0
    xd, yd = decimate_envelope(x, y, 1000)
    assert len(xd) <= 1000 and yd.max() == 9.0 and np.all(np.diff(xd) > 0)


# -- JSON and all reports -------------------------------------------------------------------------
def test_write_reports_writes_each_report_asked_for(tmp_path: Path) -> None:
    r = make_result()
    for c in r.cases:                      # RunResult.save writes strict JSON (allow_nan=False)
        c.plots = {}
        c.measured = {k: v for k, v in c.measured.items() if k != "phases"}
    paths = write_reports(r, junit=tmp_path / "j.xml", html=tmp_path / "r.html", json_path=tmp_path / "r.json")
    assert set(paths) == {"junit", "html", "json"} and all(p.is_file() for p in paths.values())
    assert RunResult.load(paths["json"]).to_dict() == r.to_dict()
    assert write_reports(r, html=tmp_path / "only.html") == {"html": tmp_path / "only.html"}


def test_write_reports_writes_the_others_when_one_fails(tmp_path: Path) -> None:
    r = make_result()
    (tmp_path / "r.json").mkdir()          # the JSON cannot be written there
    with pytest.raises(ReportError, match=r"json: .*written: junit .*html "):
        write_reports(r, junit=tmp_path / "j.xml", html=tmp_path / "r.html", json_path=tmp_path / "r.json")
    assert (tmp_path / "j.xml").is_file() and (tmp_path / "r.html").is_file()


def test_json_keeps_a_result_with_nan_as_null(tmp_path: Path) -> None:
    r = make_result()                      # NaN in its plots and numbers: strict JSON has no NaN
    back = RunResult.load(r.save(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text())["format"] == RESULT_FORMAT
    assert [c.id for c in back.cases] == [c.id for c in r.cases]


# -- compare --------------------------------------------------------------------------------------
def changed_run(a: RunResult) -> RunResult:
    b = copy.deepcopy(a)
    b.started = "2025-03-05T09:00:00Z"
    b.software = {"version": "0.2.0", "commit": "def5678"}
    left = b.case("identify/left_knee_joint")
    left.verdict, left.message = "failed", "bandwidth below the limit"
    left.measured["bandwidth_hz"] = 7.0                # -50 %
    left.measured["tracking_rms_rad"] = 0.0125         # +4 %: within the tolerance
    b.case("bus/lowstate").measured["latency_p99_us"] = 300.0                  # +41.5 %
    b.case("thermal/legs").measured["max_temp_c"] = 61.5                       # +0.8 %
    b.case("safety/estop_api").measured["reaction_ms"] = 31.0004               # below the absolute floor
    b.cases = [c for c in b.cases if c.id != "policy/pick_cube"]
    b.add(Case("policy", "wave", "passed"))
    return b


def test_compare_finds_changed_verdicts_and_numbers() -> None:
    a = make_result()
    d = compare(a, changed_run(a))
    assert [(v["case"], v["a"], v["b"], v["change"]) for v in d["verdicts"]] == [
        ("identify/left_knee_joint", "passed", "failed", "worse")]
    by_case = {e["case"]: e for e in d["cases"]}
    assert set(by_case) == {"identify/left_knee_joint", "bus/lowstate"}
    assert [e["case"] for e in d["cases"]] == ["identify/left_knee_joint", "bus/lowstate"]   # biggest first
    (bw,) = by_case["identify/left_knee_joint"]["numbers"]
    assert bw["key"] == "bandwidth_hz" and bw["a"] == 14.0 and bw["b"] == 7.0 and bw["relative"] == pytest.approx(-0.5)
    assert by_case["bus/lowstate"]["numbers"][0]["relative"] == pytest.approx(88 / 212)
    assert d["only_in_a"] == ["policy/pick_cube"] and d["only_in_b"] == ["policy/wave"]
    assert d["software"]["version"] == {"a": "0.1.0", "b": "0.2.0"}
    json.dumps(d, allow_nan=False)                     # the CLI's --json
    text = format_compare(d)
    assert "WORSE  identify/left_knee_joint" in text and "passed -> failed" in text
    assert "bandwidth_hz" in text and "14 -> 7" in text and "-50.0%" in text
    assert "Only in A (1): policy/pick_cube" in text and "Only in B (1): policy/wave" in text
    assert "VERDICT" not in text                       # NOT FIT in both runs
    b = changed_run(a)
    b.config_hashes["safety"] = "e" * 64
    assert "config hashes changed: safety cccccccccccc -> eeeeeeeeeeee" in format_compare(compare(a, b))


def test_compare_tolerances_are_adjustable() -> None:
    a = make_result()
    d = compare(a, changed_run(a), rel_tol=1e-6, abs_floor=0.0)
    keys = {(e["case"], n["key"]) for e in d["cases"] for n in e["numbers"]}
    assert ("thermal/legs", "max_temp_c") in keys and ("safety/estop_api", "reaction_ms") in keys
    assert ("identify/left_knee_joint", "tracking_rms_rad") in keys


def test_compare_of_identical_runs_says_so() -> None:
    a = make_result()
    d = compare(a, copy.deepcopy(a))
    assert not (d["verdicts"] or d["cases"] or d["only_in_a"] or d["only_in_b"])
    assert "No case changed" in format_compare(d)


def test_compare_refuses_two_robots_unless_forced() -> None:
    a = make_result()
    b = copy.deepcopy(a)
    b.serial = "G1-0099"
    with pytest.raises(CompareError, match="different robots.*G1-0042.*G1-0099.*force"):
        compare(a, b)
    d = compare(a, b, force=True)
    assert d["forced"] and "different robots, forced" in format_compare(d)


# -- screenshot -----------------------------------------------------------------------------------
def test_screenshot_without_chromium_says_so(written: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "find_chromium", lambda: None)
    with pytest.raises(ScreenshotError, match="Chromium is not installed"):
        screenshot(written["html"], tmp_path / "shot.png")
    with pytest.raises(ScreenshotError, match="cannot run"):
        screenshot(written["html"], tmp_path / "shot.png", chromium=str(tmp_path / "no-chromium"))


def test_screenshot_renders_the_report(written: dict[str, Path], tmp_path: Path) -> None:
    """The report opened in a real browser: Debian's Chromium, headless (scripts/test.sh installs it)."""
    from PIL import Image

    png = screenshot(written["html"], tmp_path / "shot.png", width=1000, height=1400)
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", data[16:24])           # the IHDR chunk
    assert (width, height) == (1000, 1400)
    img = Image.open(png).convert("RGB")
    # the NOT FIT banner is drawn (a large red area near the top) and the page is more than a blank
    top = img.crop((0, 0, 1000, 200))
    reds = sum(n for n, (r, g, b) in top.getcolors(1_000_000) if r > 150 and g < 90 and b < 90)
    assert reds > 2000
    assert len(img.getcolors(1_000_000)) > 50

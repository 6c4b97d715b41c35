"""Fault-suite reports: the terminal table, the `--json` document, and the markdown table that
`vertebra faults run --docs <file>` writes into the generated block of docs/safety.md."""

from __future__ import annotations

import os
from typing import Any

from vertebra.safety.faults.harness import ScenarioResult

DOC_BEGIN = "<!-- BEGIN GENERATED: vertebra faults run --docs -->"
DOC_END = "<!-- END GENERATED -->"


def json_report(results: list[ScenarioResult]) -> dict[str, Any]:
    """The `--json` document: pass counts and every result."""
    passed = sum(r.passed for r in results)
    return {"passed": passed, "total": len(results), "all_passed": passed == len(results),
            "results": [r.to_dict() for r in results]}


def table_report(results: list[ScenarioResult]) -> str:
    """One line per result (failed checks named), a header and a pass count; no trailing newline."""
    passed = sum(r.passed for r in results)
    lines = [f"{'robot':<6}{'scenario':<24}{'declared':<10}{'taken':<10}{'detect':>8}{'safe':>8}{'fell':>6}"
             f"{'v_down':>8}  result"]
    for r in results:
        lines.append(f"{r.robot:<6}{r.scenario:<24}{r.declared:<10}{r.response:<10}{str(r.ticks_to_detection):>8}"
                     f"{str(r.ticks_to_safe):>8}{('yes' if r.fell else 'no'):>6}{r.peak_down_velocity_m_s:>8.2f}  "
                     f"{'pass' if r.passed else 'FAIL ' + str({k: v for k, v in r.checks.items() if not v})}")
    lines.append(f"{passed}/{len(results)} scenarios passed (ticks counted from the first tick that saw the fault)")
    return "\n".join(lines)


def markdown_report(results: list[ScenarioResult], rate_hz: dict[str, float]) -> str:
    """The fault -> response -> measured reaction table (docs/safety.md's generated part).
    rate_hz: each robot's control rate, to give tick counts in milliseconds too."""
    lines = [
        "| robot | scenario | fault | declared response | response taken | detected after | safe state after | "
        "fell | peak down velocity | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ticks(n: int | None, robot: str) -> str:
        if n is None:
            return "—"
        ms = n * 1000.0 / rate_hz[robot]
        return f"{n} ticks ({ms:.0f} ms)" if n else "same tick"

    for r in results:
        fell = "yes (expected)" if r.fell and r.fell_expected else ("yes" if r.fell else "no")
        if r.fell_expected is None:
            fell += " (not judged)"
        lines.append(
            f"| {r.robot} | {r.scenario} | {r.fault} | {r.declared} | {r.response} | "
            f"{ticks(r.ticks_to_detection, r.robot)} | {ticks(r.ticks_to_safe, r.robot)} | {fell} | "
            f"{r.peak_down_velocity_m_s:.2f} m/s | {'pass' if r.passed else 'FAIL'} |")
    notes = [f"- **{r.robot} {r.scenario}**: {r.notes}" for r in results if r.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_docs(path: str, table: str) -> None:
    """Replace the generated block of `path` (or append one) with `table`."""
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{DOC_BEGIN}\n{table}{DOC_END}\n"
    if DOC_BEGIN in text and DOC_END in text:
        a = text.index(DOC_BEGIN)
        b = text.index(DOC_END) + len(DOC_END) + 1
        text = text[:a] + block + text[b:]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block
    with open(path, "w") as f:
        f.write(text)

"""JSON and a markdown table from the rows of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from setpoint_bench.harness import Row, Stats
from setpoint_bench.machine import summary_lines


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt(stats: Stats | None, unit: str, style: str = "median") -> str:
    if stats is None:
        return ""
    if style == "latency":
        return f"p50 {_num(stats.median)} {unit}, p95 {_num(stats.pct(95))} {unit} (n={stats.n})"
    if stats.n == 1:
        return f"{_num(stats.median)} {unit} (n=1)"
    return f"{_num(stats.median)} {unit} [{_num(stats.min)}–{_num(stats.max)}] (n={stats.n})"


def _cell(text: str) -> str:
    """One table cell: a multi-line error message must not break the table."""
    text = " ".join(str(text).split())
    return (text[:240] + "…" if len(text) > 240 else text).replace("|", "\\|")


def markdown(rows: list[Row], machine: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"Run {meta['started']} ({'smoke' if meta['smoke'] else 'full'}, {meta['reps']} repetitions after "
             f"{meta['warmup']} warm-up, {meta['seconds']:.0f} s)", ""]
    lines += [f"- {line}" for line in summary_lines(machine)]
    lines += ["", "| Case | Measurement | setpoint | Anchor | Anchor result | Ratio | Target | Met | Load (1 min) | Notes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.status != "ok":
            met = "—"
            result = f"**{row.status}**: {_cell(row.note)}"
            lines.append(f"| {row.case} | {row.name} | {result} | {row.anchor_name} | | | {row.target} | {met} | "
                         f"{row.extra.get('load', '')} | |")
            continue
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(f"| {row.case} | {row.name} | {fmt(row.setpoint, row.unit, row.style)} | {row.anchor_name} | "
                     f"{fmt(row.anchor, row.unit)} | {ratio} | {row.target} | {met} | {row.extra.get('load', '')} | "
                     f"{_cell(row.note)} |")
    lines.append("")
    lines.append("Ratio: anchor median / setpoint median unless the note says otherwise (above 1: setpoint is "
                 "faster). Spread: [min–max]. Load: the 1-minute load average at the start and end of the case.")
    return "\n".join(lines) + "\n"


def write(out: Path, rows: list[Row], machine: dict[str, Any], meta: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    name = "smoke" if meta["smoke"] else "results"
    json_path = out / f"{name}.json"
    md_path = out / f"{name}.md"
    json_path.write_text(json.dumps({"meta": meta, "machine": machine, "rows": [r.as_dict() for r in rows]},
                                    indent=2, default=str) + "\n")
    md_path.write_text(markdown(rows, machine, meta))
    return json_path, md_path

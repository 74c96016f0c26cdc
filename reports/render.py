"""Markdown (PNGs beside it) and self-contained HTML (PNGs as base64 data URIs) from the same parts."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from reports.plots import Plot
from reports.tables import Table


FINDINGS_TITLE = "What this study shows"
NO_FINDINGS = ("No comparison of the primary metric reaches a Holm-adjusted p < 0.05: this study does not "
               "show an effect (which is not evidence that there is none).")


@dataclass(frozen=True)
class ReportParts:
    title: str
    header: list[tuple[str, str]]
    tables: list[Table]
    plots: list[Plot]
    csv_files: list[Path]
    findings: list[str]  # sentences: effects with a Holm-adjusted exact p < 0.05, or why none can be claimed
    findings_note: str  # what the sentences rest on, and what the study could not tell


def findings_markdown(parts: ReportParts) -> str:
    """The opening section: one bullet per supported effect, or a sentence saying there is none."""
    lines = [f"## {FINDINGS_TITLE}", ""]
    lines += [f"- {sentence}" for sentence in parts.findings] or [NO_FINDINGS]
    return "\n".join(lines + ["", parts.findings_note, ""])


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    """A table without rows (a section that could not be computed) is its title and its note, which says why."""
    lines = [f"## {table.title}", ""]
    if table.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
        lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for i, row in enumerate(table.rows):
        cells = [f"**{_md_cell(c)}**" if (i, j) in table.bold else _md_cell(c) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    if table.note:
        lines += ["", table.note] if table.rows else [table.note]
    return lines + [""]


def markdown(parts: ReportParts, out: Path) -> str:
    """Images and CSVs are linked by file name: the Markdown file sits beside them."""
    lines = [f"# {parts.title}", "", findings_markdown(parts), "| | |", "|---|---|"]
    lines += [f"| {_md_cell(label)} | {_md_cell(value)} |" for label, value in parts.header]
    lines.append("")
    for table in parts.tables:
        lines += _md_table(table)
    for plot in parts.plots:
        lines += [f"## {plot.title}", "", f"![{plot.title}]({plot.path.relative_to(out).as_posix()})", "",
                  plot.caption, ""]
    if parts.csv_files:
        lines += ["## Data", ""] + [f"- [{p.name}]({p.relative_to(out).as_posix()})" for p in parts.csv_files] + [""]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = "".join(f"<td><b>{html.escape(c)}</b></td>" if (i, j) in table.bold else f"<td>{html.escape(c)}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    note = f"<p class='note'>{html.escape(table.note)}</p>" if table.note else ""
    grid = f"<table><tr>{head}</tr>{''.join(body)}</table>" if body else ""  # no rows: the note says why
    return f"<h2>{html.escape(table.title)}</h2>{grid}{note}"


STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f2f2f2; }
.note { color: #555; font-size: 0.85em; max-width: 60em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def html_page(parts: ReportParts) -> str:
    """One file that needs nothing else: every image is a data:image/png;base64 URI."""
    header = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                     for label, value in parts.header)
    findings = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in parts.findings)
    findings = f"<ul>{findings}</ul>" if findings else f"<p>{html.escape(NO_FINDINGS)}</p>"
    sections = [f"<h2>{FINDINGS_TITLE}</h2>{findings}<p class='note'>{html.escape(parts.findings_note)}</p>",
                f"<table>{header}</table>"] + [_html_table(t) for t in parts.tables]
    for plot in parts.plots:
        data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
        sections.append(f"<h2>{html.escape(plot.title)}</h2><img alt='{html.escape(plot.title)}' "
                        f"src='data:image/png;base64,{data}'><p class='note'>{html.escape(plot.caption)}</p>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(parts.title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(parts.title)}</h1>{''.join(sections)}</body></html>")

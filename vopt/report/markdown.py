"""report.md: the same document as report.html, as Markdown (plots linked as PNG files)."""

from __future__ import annotations

from typing import Any

from vopt.report.document import PLOTS, Document, Table, build_document


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return lines


def document_md(doc: Document, plots: dict[str, str]) -> str:
    lines = [f"# {doc.title}", ""]
    lines.append(" · ".join(f"{k}: **{v}**" for k, v in doc.facts))
    lines.append("")
    for w in doc.warnings:
        lines += [f"> **Warning:** {w}", ""]
    for sec in doc.sections:
        lines += [f"## {sec.title}", ""]
        for block in sec.blocks:
            if isinstance(block, Table):
                lines += table_md(block)
            elif isinstance(block, tuple) and block[0] == "plot":
                lines.append(f"![{PLOTS[block[1]]}]({plots[block[1]]})")
            else:
                lines.append(str(block))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(manifest: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    plots = plots or {}
    return document_md(build_document(manifest, plots), plots)

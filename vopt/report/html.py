"""report.html: one self-contained file (inline CSS, plots as base64 PNG), readable offline."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from vopt.report.document import PLOTS, Document, Table, build_document

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;
color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 14px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:14px}
.fact{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px;min-width:110px}
.fact .k{font-size:11px;color:#5b6576;text-transform:uppercase;letter-spacing:.04em}
.fact .v{font-size:15px;font-weight:600}
.warn{background:#fff7e6;border-left:4px solid #e0a100;padding:8px 12px;margin:8px 0;font-size:14px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 10px;width:100%}
th,td{border:1px solid #dde1e7;padding:5px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td:last-child{color:#17803d;font-weight:600}tr.fail td{background:#fdecec}
tr.fail td:last-child{color:#b3261e;font-weight:700}
p{font-size:14px;line-height:1.45;margin:6px 0}code{background:#eef1f5;padding:1px 4px;border-radius:3px}
figure{margin:10px 0;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12px;color:#5b6576;margin-top:4px}
"""
_NUM = re.compile(r"^[-+]?(\d[\d.,]*|\.\d+)(e[-+]?\d+)?( ?(ms|MB|kB|GB|B|x|%))?$", re.I)


def _inline(text: str) -> str:
    """Escape, then the two bits of Markdown the document uses: `code` and **bold**."""
    s = html.escape(str(text))
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = []
    for i, row in enumerate(t.rows):
        cls = f' class="{t.marks[i]}"' if i in t.marks else ""
        cells = "".join(
            f'<td class="num">{_inline(c)}</td>' if _NUM.match(str(c)) else f"<td>{_inline(c)}</td>"
            for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def document_html(doc: Document, images: dict[str, bytes]) -> str:
    parts = [f"<h1>{html.escape(doc.title)}</h1>", '<div class="facts">']
    parts += [
        f'<div class="fact"><div class="k">{html.escape(k)}</div><div class="v">{html.escape(v)}</div></div>'
        for k, v in doc.facts
    ]
    parts.append("</div>")
    parts += [f'<div class="warn"><strong>Warning:</strong> {_inline(w)}</div>' for w in doc.warnings]
    for sec in doc.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        for block in sec.blocks:
            if isinstance(block, Table):
                parts.append(table_html(block))
            elif isinstance(block, tuple) and block[0] == "plot":
                data = base64.b64encode(images[block[1]]).decode()
                caption = html.escape(PLOTS[block[1]])
                parts.append(
                    f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            else:
                parts.append(f"<p>{_inline(block)}</p>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(doc.title)}</title>"
        f"<style>{CSS}</style></head><body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )


def render_html(manifest: dict[str, Any], images: dict[str, bytes] | None = None) -> str:
    images = images or {}
    return document_html(build_document(manifest, {k: f"plots/{k}.png" for k in images}), images)

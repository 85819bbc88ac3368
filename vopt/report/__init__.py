"""Reports rendered from the manifest. See vopt/report/markdown.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_reports(manifest: dict[str, Any], out_dir: Path) -> None:
    from vopt.report.markdown import render_markdown

    (Path(out_dir) / "report.md").write_text(render_markdown(manifest))

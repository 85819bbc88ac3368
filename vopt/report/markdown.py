from __future__ import annotations

from typing import Any


def render_markdown(manifest: dict[str, Any]) -> str:
    lines = [f"# vopt build: {manifest['recipe']['name']}", ""]
    lines.append(f"Target: `{manifest['target']}` · status: **{manifest['status']}** · vopt {manifest['vopt_version']}")
    lines.append("")
    for w in manifest.get("warnings", []):
        lines.append(f"> **Warning:** {w}")
    lines += ["", "## Stages", "", "| stage | cached | seconds | output sha256 |", "|---|---|---|---|"]
    for s in manifest["steps"]:
        sha = (s.get("output_sha256") or "")[:12]
        lines.append(f"| {s['stage']} | {'yes' if s['cached'] else 'no'} | {s['seconds']:.2f} | `{sha}` |")
    val = manifest.get("validation") or {}
    if val.get("metrics"):
        lines += ["", "## Validation", "", "| output | metric | value |", "|---|---|---|"]
        for out_name, metrics in val["metrics"].items():
            for k, v in metrics.items():
                lines.append(f"| {out_name} | {k} | {v:.6g} |" if isinstance(v, float) else f"| {out_name} | {k} | {v} |")
    return "\n".join(lines) + "\n"

from __future__ import annotations

import typer

from vopt.cli.output import handles_errors, out, print_json
from vopt.errors import first_line


def _state(available: bool, hardware: bool) -> str:
    if available and hardware:
        return "ready"
    return "build only" if available else "unavailable"


@handles_errors
def command(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    import importlib.metadata
    import importlib.util

    from vopt.registry import BACKENDS, TARGETS, get_target

    # An extra that cannot go into this environment (tflite: its own venv) installs as its target says.
    hints = {
        get_target(n).extra: get_target(n).install_hint() for n in TARGETS if get_target(n).install_commands
    }
    backends = []
    for module, dist, extra, what in BACKENDS:
        installed = importlib.util.find_spec(module) is not None
        try:
            version = importlib.metadata.version(dist) if installed else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        install = "core" if extra == "core" else hints.get(extra, f"pip install 'vopt[{extra}]'")
        backends.append(
            {
                "module": module,
                "installed": installed,
                "version": version,
                "extra": extra,
                "what": what,
                "install": install,
            }
        )
    targets = []
    for name in TARGETS:
        target = get_target(name)
        ok, why = target.available()
        # Asked even when the target cannot build: "no GPU" and "not installed" are different answers.
        try:
            hw_ok, hw_why = target.hardware()
        except Exception as exc:  # a half-installed backend must not take doctor down
            hw_ok, hw_why = (
                False,
                f"hardware probe failed: {first_line(exc, limit=160, with_type=True)}",
            )
        targets.append(
            {
                "target": name,
                "state": _state(ok, hw_ok),
                "available": ok,
                "reason": why,
                "hardware": hw_ok,
                "hardware_detail": hw_why,
                "extra": target.extra,
            }
        )
    if json_out:
        print_json({"backends": backends, "targets": targets})
        return
    from rich.markup import escape

    from vopt.cli.output import print_table

    rows = []
    for b in backends:
        rows.append(
            [
                escape(b["module"]),
                "[green]yes[/]" if b["installed"] else "[red]no[/]",
                escape(b["version"] or "-"),
                escape(b["install"]),
                escape(b["what"]),
            ]
        )
    print_table(["backend", "installed", "version", "install with", "for"], rows)
    out.print()
    colors = {"ready": "green", "build only": "yellow", "unavailable": "red"}
    print_table(
        ["target", "state", "can build here", "device / runtime here"],
        [
            [
                escape(tg["target"]),
                f"[{colors[tg['state']]}]{tg['state']}[/]",
                "yes" if tg["available"] else escape(tg["reason"]),
                escape(tg["hardware_detail"]),
            ]
            for tg in targets
        ],
    )
    out.print(
        "[dim]ready: builds and runs on the target's device (or its simulator) here; build only: the "
        "artifact "
        "is built and checked, but its device is not here[/]"
    )

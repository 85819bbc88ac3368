from __future__ import annotations

import typer

from vopt.cli.output import handles_errors, out, print_json


@handles_errors
def command(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    import importlib.metadata
    import importlib.util

    from vopt.registry import BACKENDS, TARGETS, get_target

    backends = []
    for module, dist, extra, what in BACKENDS:
        installed = importlib.util.find_spec(module) is not None
        try:
            version = importlib.metadata.version(dist) if installed else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        backends.append({"module": module, "installed": installed, "version": version, "extra": extra, "what": what})
    targets = []
    for name in TARGETS:
        target = get_target(name)
        ok, why = target.available()
        hw_ok, hw_why = target.hardware() if ok else (False, "-")
        targets.append({"target": name, "available": ok, "reason": why, "hardware": hw_ok, "hardware_detail": hw_why, "extra": target.extra})
    if json_out:
        print_json({"backends": backends, "targets": targets})
        return
    from rich.table import Table

    t = Table("backend", "installed", "version", "install with", "for", box=None, header_style="bold")
    for b in backends:
        t.add_row(b["module"], "[green]yes[/]" if b["installed"] else "[red]no[/]", b["version"] or "-",
                  "core" if b["extra"] == "core" else f"pip install 'vopt[{b['extra']}]'", b["what"])
    out.print(t)
    out.print()
    t2 = Table("target", "can build", "runtime / hardware here", box=None, header_style="bold")
    for tg in targets:
        t2.add_row(tg["target"], "[green]yes[/]" if tg["available"] else f"[red]no[/]: {tg['reason']}", tg["hardware_detail"])
    out.print(t2)

"""The `vopt` command. Each command lives in its own module and is imported only when it runs."""

from __future__ import annotations

import importlib
from typing import Any

import typer

import vopt

app = typer.Typer(
    name="vopt",
    help="Optimize and export vision models from one YAML recipe, with verified artifacts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

# name -> (module, help). The modules import heavy libraries only inside the command body.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("vopt.cli.build", "Build one or more recipes into verified artifacts."),
    "plan": ("vopt.cli.plan", "Show the resolved recipe and the steps that would run (runs nothing)."),
    "check": ("vopt.cli.check", "Validate recipes without building."),
    "recipes": ("vopt.cli.recipes", "List the recipes under recipes/."),
    "doctor": ("vopt.cli.doctor", "Show every backend: installed, version, extra, hardware."),
    "schema": ("vopt.cli.schema", "Write the JSON Schema of a recipe."),
    "inspect": ("vopt.cli.inspect", "Describe an artifact: I/O, ops, precision mix, metadata."),
    "bench": ("vopt.cli.bench", "Benchmark an artifact or a build directory."),
    "compare": ("vopt.cli.compare", "Compare build directories side by side."),
    "verify": ("vopt.cli.verify", "Run an artifact on a runtime (e.g. in a browser) and compare with a reference."),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vopt {vopt.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """vopt: one recipe, verified deployment artifacts."""


def _register() -> None:
    import sys

    # Only the command being run is imported; --help lists them all from the table above.
    argv = [a for a in sys.argv[1:] if not a.startswith("-")]
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        if wanted is None or name == wanted:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name == module:
                    continue  # command not shipped yet
                raise
            app.command(name=name, help=help_text)(mod.command)
        else:
            app.command(name=name, help=help_text)(_placeholder)


def _placeholder() -> Any:  # pragma: no cover - replaced before running
    raise typer.Exit(0)


def make_app() -> typer.Typer:
    """All commands registered (for tests and docs)."""
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        full.command(name=name, help=help_text)(mod.command)
    return full


full = typer.Typer(
    name="vopt",
    help=app.info.help,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
full.callback()(_root)


def main() -> None:
    _register()
    app()

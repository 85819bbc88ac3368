"""The `vopt` command. Each command lives in its own module and is imported only when it runs."""

from __future__ import annotations

import importlib
from typing import Any

import typer

import vopt

# name -> (module, help). The modules import heavy libraries only inside the command body.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("vopt.cli.build", "Build one or more recipes into verified artifacts."),
    "plan": ("vopt.cli.plan", "Show the resolved recipe and the steps that would run (runs nothing)."),
    "check": ("vopt.cli.check", "Validate recipes without building."),
    "recipes": ("vopt.cli.recipes", "List the recipes under recipes/."),
    "matrix": (
        "vopt.cli.matrix",
        "Emit the CI job matrix (GitHub Actions, GitLab) for recipes, with runner labels.",
    ),
    "doctor": ("vopt.cli.doctor", "Show every backend: installed, version, extra, hardware."),
    "schema": ("vopt.cli.schema", "Write the JSON Schema of a recipe."),
    "inspect": ("vopt.cli.inspect", "Describe an artifact: I/O, ops, precision mix, metadata."),
    "bench": ("vopt.cli.bench", "Benchmark an artifact or a build directory."),
    "compare": ("vopt.cli.compare", "Compare build directories side by side."),
    "tune": (
        "vopt.cli.tune",
        "Try the settings a target allows; keep the fastest artifact that passes the gates.",
    ),
    "profile": ("vopt.cli.profile", "Per-op time breakdown of an artifact on its runtime's own profiler."),
    "estimate": (
        "vopt.cli.estimate",
        "Estimate parameter and activation memory per batch size before building.",
    ),
    "verify": (
        "vopt.cli.verify",
        "Run an artifact on a runtime, such as a browser, and compare it with a reference.",
    ),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vopt {vopt.__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """vopt: one recipe, verified deployment artifacts."""


def start_children_cleanly() -> None:
    """Child processes that libraries start come from a fork server, not from a fork of this process.
    OpenVINO's telemetry starts a sender process from a worker thread on every `convert_model` (and NNCF's on
    each call). A child forked from a multi-threaded process can block forever on a lock it inherited, and a
    Python SIGTERM handler inherited from vopt's build never runs there, so the `terminate()` meant to end it
    does nothing, and the build then hung at exit waiting for it (seen once in the test suite: three such
    children, each stuck on a futex). Python 3.14 makes forkserver the default on Linux for this reason."""
    import multiprocessing
    import sys

    # "fork" too: a library may have fixed the default by asking for it before the CLI started
    current = multiprocessing.get_start_method(allow_none=True)
    if sys.platform.startswith("linux") and current in (None, "fork"):
        multiprocessing.set_start_method("forkserver", force=True)
        multiprocessing.set_forkserver_preload([])  # the server need not import this process's main module


def make_app(only: str | None = None) -> typer.Typer:
    """The CLI. With `only`, just that command's module is imported (the others are listed for --help
    but not loaded), which keeps `vopt --help` and each command's start-up fast."""
    start_children_cleanly()
    app = typer.Typer(
        name="vopt",
        help="Optimize and export vision models from one YAML recipe, with verified artifacts.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            app.command(name=name, help=help_text)(_placeholder)
            continue
        app.command(name=name, help=help_text)(importlib.import_module(module).command)
    return app


def _placeholder() -> Any:  # pragma: no cover - only listed in --help, never run
    raise typer.Exit(0)


def main() -> None:
    import sys

    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    make_app(only=words[0] if words and words[0] in COMMANDS else "")()

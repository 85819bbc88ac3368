"""`vopt matrix RECIPES... --format github|gitlab|json`: the CI job matrix, one job per recipe, with the
runner each target needs. vopt scales past one machine on the CI engine users already run, not on a scheduler
of its own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import typer

from vopt.cli.output import handles_errors

# Platform names (recipes/targets/<platform>.yaml) that are target names under another name, for --runner.
PLATFORM_TARGET = {"cuda": "tensorrt", "mps": "coreml", "qualcomm": "qnn"}


def runner_for(target: Any, system: str, overrides: dict[str, list[str]] | None = None) -> list[str]:
    """The target's own CI runner labels (Target.ci_runners), unless --runner overrides them."""
    if overrides and target.name in overrides:
        return overrides[target.name]
    return list(target.ci_runners[system])


def jobs(recipes: list[Path], sets: list[str], cache_dir: Path | None) -> list[dict[str, Any]]:
    """One job per recipe: what to run, where, and the cache key (the resolved recipe and its plan keys)."""
    from vopt.cli.library import _platform
    from vopt.core.cache import Cache
    from vopt.pipeline.plan import dry_run, make_plan
    from vopt.recipe.resolve import load_recipe

    cache = Cache(cache_dir)
    out = []
    for path in recipes:
        loaded = load_recipe(path, sets)
        steps, target = make_plan(loaded.recipe)
        planned = dry_run(steps, target, cache)
        material = json.dumps(
            {"recipe": loaded.resolved(), "keys": [p.key for p in planned]}, sort_keys=True, default=str
        )
        digest = hashlib.sha256(material.encode()).hexdigest()[:16]
        name = loaded.recipe.name
        out.append(
            {
                "name": name,
                "recipe": Path(path).as_posix(),
                "target": target.name,
                "platform": _platform(loaded),
                "extra": target.extra,
                "install": list(target.install_commands),  # empty: pip install with constraints.txt
                "install_bin": target.install_bin,
                "browser": target.browser,
                "cache-key": f"vopt-{name}-{digest}",
                "cache-prefix": f"vopt-{name}-",
            }
        )
    return out


@handles_errors
def command(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML file(s).", show_default=False),
    fmt: str = typer.Option(
        "github",
        "--format",
        "-f",
        help="github (a strategy.matrix JSON), gitlab (a child pipeline YAML) or json.",
    ),
    runner: list[str] = typer.Option(
        [], "--runner", help="TARGET=label[,label...]: runner labels/tags for a target."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a recipe value in every recipe: key.path=value."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache directory the plan keys are computed against."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.errors import RecipeError

    if fmt not in ("github", "gitlab", "json"):
        raise RecipeError(f"--format {fmt}: use github, gitlab or json")
    overrides = {}
    for item in runner:
        key, _, labels = item.partition("=")
        if not key or not labels:
            raise RecipeError(f"--runner {item}: expected TARGET=label[,label...]")
        overrides[PLATFORM_TARGET.get(key, key)] = [x.strip() for x in labels.split(",") if x.strip()]
    found = jobs(recipes, set_, cache_dir)
    from vopt.registry import get_target

    for job in found:
        target = get_target(job["target"])
        job["runs-on"] = runner_for(target, "github", overrides)
        job["tags"] = runner_for(target, "gitlab", overrides)
    if fmt == "json":
        typer.echo(json.dumps(found, indent=1))
    elif fmt == "github":
        # One line, for `echo "matrix=$(vopt matrix ...)" >> "$GITHUB_OUTPUT"` and `fromJSON()`.
        include = [
            {k: v for k, v in job.items() if k not in ("tags", "install", "install_bin")} for job in found
        ]
        typer.echo(json.dumps({"include": include}, separators=(",", ":")))
    else:
        typer.echo(gitlab_pipeline(found, overrides))


def gitlab_pipeline(found: list[dict[str, Any]], overrides: dict[str, list[str]]) -> str:
    """A child pipeline (trigger it with `include: artifact:`): one job per recipe on its runner tags, caching
    VOPT_CACHE_DIR keyed by the recipe and its plan keys, with the build directory as the job's artifacts."""
    import yaml

    doc: dict[str, Any] = {
        "default": {"image": "python:3.11"},
        "variables": {
            "VOPT_CACHE_DIR": "$CI_PROJECT_DIR/.vopt-cache",
            "PIP_CACHE_DIR": "$CI_PROJECT_DIR/.pip-cache",
        },
        "stages": ["build"],
    }
    for job in found:
        extras = "simplify" if job["extra"] == "core" else f"{job['extra']},simplify"
        install = (
            f'pip install -c constraints.txt torch==2.13.0 && pip install -c constraints.txt -e ".[{extras}]"'
        )
        script = [install]
        if job["install"]:  # a backend with its own venv (tflite): install it the way its target says
            script = [*job["install"], f'export PATH="$CI_PROJECT_DIR/{job["install_bin"]}:$PATH"']
        if job["browser"]:
            script.insert(0, "make browser-deps")
        script += [
            f"vopt build {job['recipe']} --out build",
            f"vopt compare build/{job['name']} --format markdown > build/{job['name']}/summary.md",
        ]
        spec: dict[str, Any] = {
            "stage": "build",
            "tags": list(job["tags"]),
            # GitLab matches cache keys exactly; the key changes with the recipe and its plan keys.
            "cache": [{"key": job["cache-key"], "paths": [".vopt-cache/"], "when": "always"}],
            "script": script,
            "artifacts": {"when": "always", "paths": [f"build/{job['name']}/"], "expire_in": "30 days"},
        }
        doc[f"build:{job['name']}"] = spec

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(doc, Dumper=NoAliases, sort_keys=False, width=120)

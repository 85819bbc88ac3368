from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.pipeline.artifact import Artifact
from vopt.pipeline.progress import QuietReporter, Reporter


@dataclass
class Context:
    """What a stage may use besides its input artifact and config."""

    recipe: Any  # vopt.recipe.models.Recipe
    target: Any  # vopt.targets.base.Target
    workdir: Path  # write outputs here; the engine moves them into the cache
    reporter: Reporter = field(default_factory=QuietReporter)
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # earlier steps of this build, by stage
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # earlier steps' reports
    report: dict[str, Any] = field(default_factory=dict)  # this step's report; goes into the manifest
    debug: bool = False

    def out(self, name: str) -> Path:
        return self.workdir / name

    def warn(self, message: str) -> None:
        self.report.setdefault("warnings", []).append(message)
        self.reporter.warn(message)

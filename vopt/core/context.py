from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.core.artifact import Artifact
from vopt.core.progress import QuietReporter, Reporter


@dataclass
class Context:
    """What a stage may use besides its input artifact and config."""

    target: Any  # vopt.targets.base.Target
    workdir: Path  # write outputs here; the engine moves them into the cache
    reporter: Reporter = field(default_factory=QuietReporter)
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # earlier steps of this build, by stage
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # earlier steps' reports
    report: dict[str, Any] = field(default_factory=dict)  # this step's report; goes into the manifest
    debug: bool = False
    # The build's cache directory: where a stage may keep what its steps' keys do not cover (the reference
    # model's outputs, vopt.validate.reference_memo). None (no cache, or --no-cache): nothing is kept.
    cache_root: Path | None = None
    # The component this step runs on, for an artifact of components (the engine runs transform stages on
    # each); None for a single model.
    component: str | None = None
    # Set by the compile stage from its own config, for the target: the build's name (artifact metadata)
    # and the recipe's model input (name, example shape, dynamic axes).
    build_name: str = ""
    model_input: Any = None  # vopt.recipe.sections.model.InputSpec
    # The whole recipe. Stages read their own resolved config instead (it is their cache key); only the
    # quantize stage still reads this, until its config carries the build name.
    recipe: Any = None

    def out(self, name: str) -> Path:
        return self.workdir / name

    def warn(self, message: str) -> None:
        self.report.setdefault("warnings", []).append(message)
        self.reporter.warn(message)

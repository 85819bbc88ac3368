"""What every stage provides: a config built from the recipe, and run(artifact, config, ctx)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from vopt.core.artifact import Artifact
    from vopt.core.context import Context


def loads_torch_module(recipe: Any) -> bool:
    """Whether the recipe's source gives a PyTorch module (fuse, prune and export take one), as its format
    plugin says; an ONNX source goes straight to quantize and compile."""
    from vopt.registry import get_format, get_source

    return bool(get_format(get_source(recipe.model.source).output_format).torch_module)


class Stage:
    name: ClassVar[str]
    # A transform makes a new artifact; a check (validate, benchmark) only reports on its input.
    transforms: ClassVar[bool] = True
    # Distributions whose versions enter the cache key.
    tools: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> BaseModel | None:
        """The stage's fully resolved settings, or None when the recipe skips it.
        Everything the stage reads must be in here: it is the cache key."""
        raise NotImplementedError

    @classmethod
    def fingerprint(cls, config: BaseModel) -> dict[str, Any]:
        """Extra cache-key material that is not in the config, e.g. hashes of data files."""
        return {}

    @classmethod
    def extra_tools(cls, config: BaseModel, target: Any) -> list[str]:
        return []

    @classmethod
    def requirements(cls, config: BaseModel, target: Any) -> list[tuple[str, str]]:
        """(import name, pip extra) pairs this step needs; checked before any step runs."""
        return []

    def run(self, artifact: Artifact | None, config: BaseModel, ctx: Context) -> Artifact:
        raise NotImplementedError

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

# A gate condition, e.g. ">=0.99" or "<1e-3": checked when the recipe loads, evaluated by vopt.validate.gates.
CONDITION = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


class Section(BaseModel):
    """Every recipe section rejects unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _check_condition(cond: str) -> str:
    """Gate conditions are checked when the recipe loads, not after an hour of work."""
    if not CONDITION.match(str(cond)):
        raise ValueError(f"bad condition {cond!r}: use e.g. '>=0.99' or '<1e-3'")
    return cond


# metric name -> condition string, e.g. {centered_cosine: ">=0.98"}
Gates = dict[str, Annotated[str, AfterValidator(_check_condition)]]

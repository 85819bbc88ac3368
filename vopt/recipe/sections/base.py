from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Every recipe section rejects unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

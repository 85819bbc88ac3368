from __future__ import annotations

from typing import Any


def recipe_schema() -> dict[str, Any]:
    from vopt.recipe.models import Recipe

    schema = Recipe.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vopt recipe"
    props = schema.setdefault("properties", {})
    props["extends"] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "Recipe files merged first, in order.",
    }
    return schema

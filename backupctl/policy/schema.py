"""JSON Schema of the policy format, for editors and CI."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter


def policy_json_schema() -> dict[str, Any]:
    """Return one JSON Schema accepting any driver's policy (selected by ``driver``)."""
    from typing import Annotated, Union

    from pydantic import Field

    from backupctl.policy.registry import POLICY_MODELS

    models = tuple(POLICY_MODELS.values())
    union = Annotated[Union[models], Field(discriminator="driver")]  # type: ignore[valid-type]  # noqa: UP007
    schema = TypeAdapter(union).json_schema(mode="validation")
    for definition in schema.get("$defs", {}).values():
        required = definition.get("required", [])
        if "repository" in required and "repositories" in definition.get("properties", {}):
            # `repositories:` stands in for `repository:` (the model fills it from the list)
            required.remove("repository")
            definition["oneOf"] = [{"required": ["repository"]}, {"required": ["repositories"]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "backupctl policy"
    return schema

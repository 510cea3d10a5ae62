"""``setpoint schema``: the JSON Schema of setpoint.yaml, with the settings of every installed kind and
decryptor, for editors (yaml-language-server) and CI checks. Built from the same pydantic models that
validate the file, so the schema and ``setpoint validate`` cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from setpoint.config import Config, TargetConfig
from setpoint.plugins import Registry

SCHEMA_ID = "https://setpoint.dev/schema/setpoint.yaml.json"
#: Fields of the models that setpoint fills in itself; they are not written in setpoint.yaml.
_INTERNAL = {"base_dir", "file", "kind_block"}


def config_schema(registry: Registry) -> dict[str, Any]:
    mode: Literal["validation"] = "validation"
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [(Config, mode), (TargetConfig, mode)]
    kinds = {kind: cls.Settings for kind, cls in sorted(registry.kinds.items()) if cls.Settings is not None}
    decryptors = {name: cls.Settings for name, cls in sorted(registry.decryptors.items()) if cls.Settings is not None}
    models += [(model, mode) for model in {*kinds.values(), *decryptors.values()}]
    refs, schema = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    root = defs.pop(Config.__name__)
    target = defs.pop(TargetConfig.__name__)
    for model_schema in (root, target):
        for name in _INTERNAL:
            model_schema.get("properties", {}).pop(name, None)
            if name in model_schema.get("required", []):
                model_schema["required"].remove(name)
    # the kind block: one property per installed kind, named after it (validated by the kind's plugin)
    target["properties"]["kind"] = {"title": "Kind", "enum": sorted(registry.kinds),
                                    "description": "The target kind; its settings go in a block of the same name."}
    for kind, model in kinds.items():
        target["properties"][kind] = {**ref(model), "description": f"Settings of the {kind} kind."}
    target["allOf"] = [{"if": {"properties": {"kind": {"const": kind}}}, "then": {"required": [kind]}}
                       for kind in kinds if model_requires_block(kinds[kind])]
    secrets = {"type": "object", "description": "Decryptor settings, one block per decryptor.",
               "properties": {name: ref(model) for name, model in decryptors.items()}}
    root["properties"]["secrets"] = secrets
    target["properties"]["secrets"] = {**secrets, "description": "Per-target decryptor settings, merged over secrets:."}
    defs[TargetConfig.__name__] = target
    root["properties"]["targets"] = {"type": "array", "items": {"$ref": f"#/$defs/{TargetConfig.__name__}"}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **root, "title": "setpoint.yaml", "$defs": defs}


def model_requires_block(model: type[BaseModel]) -> bool:
    return any(field.is_required() for field in model.model_fields.values())

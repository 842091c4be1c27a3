"""AsyncAPI documents generated from the FastStream apps.

Subscribers take raw bytes (so a malformed ticket can be rejected rather than crash the
handler); the payload schema they document is filled in from the contract models here.
"""

from __future__ import annotations

from typing import Any

from faststream import FastStream
from pydantic import BaseModel


def asyncapi_document(app: FastStream) -> dict[str, Any]:
    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    payloads: dict[str, type[BaseModel]] = getattr(app, "pinworks_payloads", {})
    messages = document.setdefault("components", {}).setdefault("messages", {})
    schemas = document["components"].setdefault("schemas", {})
    for title, model in payloads.items():
        for name, message in messages.items():
            if name.startswith(f"{title}:"):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for definition_name, definition in schema.pop("$defs", {}).items():
                    schemas[definition_name] = definition
                schemas[model.__name__] = schema
                message["payload"] = {"$ref": f"#/components/schemas/{model.__name__}"}
    return document

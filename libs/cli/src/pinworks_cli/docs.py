"""Generate the AsyncAPI documents from the services' FastStream apps (nothing connects)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from pinworks_common.asyncapi import asyncapi_document

SERVICES = ("classifier", "router", "specialists", "verifier", "escalation")


def write_asyncapi(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICES:
        try:
            module = importlib.import_module(f"pinworks_{service}.app")
        except ImportError:
            continue
        document = asyncapi_document(module.create_app())
        path = out / f"{service}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written

"""Generate the AsyncAPI documents from the services' FastStream apps (nothing connects).

Each service offers its `create_app` through the entry-point group `pinworks.asyncapi`; a service
that is not installed has no document.
"""

from __future__ import annotations

import json
from pathlib import Path

from pinworks_common.commands.plugins import app_factories
from pinworks_devtools.asyncapi import asyncapi_document

SERVICES = ("classifier", "router", "specialists", "verifier", "escalation")
"""Pipeline order, the order the documents are written in."""


def write_asyncapi(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    factories = app_factories()
    written = []
    for service in sorted(factories, key=lambda name: (SERVICES + (name,)).index(name)):
        document = asyncapi_document(factories[service]())
        path = out / f"{service}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written

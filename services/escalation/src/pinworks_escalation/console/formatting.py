"""How the console's pages write times and JSON, and where a sign-in may send the agent."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from pinworks_contracts.intents import intent_label
from pinworks_contracts.messages import utcnow

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"


def page_templates() -> Jinja2Templates:
    """The pages' Jinja2 templates with the console's filters."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["when"] = when
    templates.env.filters["intent_label"] = intent_label
    templates.env.filters["stamp"] = stamp
    templates.env.filters["pretty"] = pretty
    return templates


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def safe_next(target: str) -> str:
    """Only same-site paths: a sign-in link cannot bounce the agent to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def stamp(value: str | datetime | None) -> str:
    """An absolute time, for moments whose distance from now no longer matters."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def when(value: str | datetime | None) -> str:
    """An absolute time with how far it is from now (`in 1h 5m`, `5m ago`)."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    delta = moment - utcnow()
    seconds = int(delta.total_seconds())
    span = abs(seconds)
    moment_text = moment.strftime("%Y-%m-%d %H:%M UTC")
    if span < 5:
        return f"{moment_text} (just now)"
    if span < 60:
        text = f"{span}s"
    elif span < 3600:
        text = f"{span // 60}m"
    elif span < 86400:
        text = f"{span // 3600}h {span % 3600 // 60}m"
    else:
        text = f"{span // 86400}d {span % 86400 // 3600}h"
    return f"{moment_text} (in {text})" if seconds >= 0 else f"{moment_text} ({text} ago)"

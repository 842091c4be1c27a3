"""What a template is made of: its parts, the variables they may use and how they are filled.

A part joins the answer only when every variable it names was found in the ticket, else its
`otherwise` text (if any) stands in; nothing unfilled can reach a customer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS: frozenset[str] = frozenset({"first_name", "amount", "date", "card_last4", "currency"})
"""The only variables a template may reference."""

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """The template YAML is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class TemplatePart:
    text: str
    when: tuple[str, ...] = ()
    otherwise: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class Template:
    intent: str
    template_id: str
    required_terms: tuple[str, ...]
    parts: tuple[TemplatePart, ...]


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER_RE.findall(text))


def fill(text: str, variables: Mapping[str, str], used: set[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        used.add(name)
        return variables[name]

    return PLACEHOLDER_RE.sub(replace, text)


def compose(template: Template, variables: Mapping[str, str], used: set[str] | None = None) -> str:
    """Join the parts into paragraphs, dropping any whose variables are not available."""
    used = used if used is not None else set()
    paragraphs: list[str] = []
    for part in template.parts:
        if all(variables.get(v) for v in part.when):
            piece = fill(part.text, variables, used)
        elif part.otherwise is not None:
            piece = part.otherwise
        else:
            continue
        if part.inline and paragraphs:
            paragraphs[-1] = f"{paragraphs[-1]} {piece}"
        else:
            paragraphs.append(piece)
    return "\n\n".join(paragraphs)


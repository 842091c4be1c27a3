"""Reading the template YAML: every entry validated on load, so a broken template fails at
start-up, not in front of a customer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from pinworks_specialists.template_parts import (
    PLACEHOLDER_RE,
    PLACEHOLDERS,
    Template,
    TemplateError,
    TemplatePart,
    compose,
    placeholders,
)

_REQUIRED_TERM_RE = re.compile(r"^[a-z0-9][a-z0-9 '\-]*[a-z0-9]$")


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain PyYAML silently overwrites."""


def _construct_unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise TemplateError(
                f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                "every intent must appear exactly once"
            )
        seen.add(key)
    return loader.construct_mapping(node)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _check_braces(text: str, where: str) -> None:
    """Reject stray braces so a typo like ``{amount`` cannot leak to a customer."""
    stripped = PLACEHOLDER_RE.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise TemplateError(f"{where}: unbalanced or malformed brace in {text[:60]!r}")
    unknown = placeholders(text) - PLACEHOLDERS
    if unknown:
        raise TemplateError(
            f"{where}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}"
        )


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{where}: expected a non-empty string")
    return " ".join(value.split())


def _parse_part(raw: Any, where: str) -> TemplatePart:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: each part must be a mapping with 'text'")
    extra = set(raw) - {"text", "when", "otherwise", "inline"}
    if extra:
        raise TemplateError(f"{where}: unexpected key(s) {sorted(extra)}")
    text = _as_str(raw.get("text"), f"{where}.text")
    _check_braces(text, where)
    when_raw = raw.get("when", [])
    if isinstance(when_raw, str):
        when_raw = [when_raw]
    if not isinstance(when_raw, list) or not all(isinstance(w, str) for w in when_raw):
        raise TemplateError(f"{where}.when: expected a list of variable names")
    when = tuple(when_raw)
    unknown = set(when) - PLACEHOLDERS
    if unknown:
        raise TemplateError(f"{where}.when: unknown variable(s) {sorted(unknown)}")
    unguarded = placeholders(text) - set(when)
    if unguarded:
        raise TemplateError(
            f"{where}: placeholder(s) {sorted(unguarded)} used without being listed in 'when', "
            "so they could reach a customer unfilled"
        )
    otherwise = raw.get("otherwise")
    if otherwise is not None:
        if not when:
            raise TemplateError(f"{where}: 'otherwise' only makes sense with 'when'")
        otherwise = _as_str(otherwise, f"{where}.otherwise")
        _check_braces(otherwise, f"{where}.otherwise")
        if placeholders(otherwise):
            raise TemplateError(f"{where}.otherwise: must not contain placeholders")
    inline = raw.get("inline", False)
    if not isinstance(inline, bool):
        raise TemplateError(f"{where}.inline: expected true or false")
    return TemplatePart(text=text, when=when, otherwise=otherwise, inline=inline)


def _entry_hash(entry: Any) -> str:
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]


def _parse_intent(intent: str, raw: Any) -> Template:
    where = f"intent {intent!r}"
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: expected a mapping with 'required_terms' and 'parts'")
    extra = set(raw) - {"required_terms", "parts", "title"}
    if extra:
        raise TemplateError(f"{where}: unexpected key(s) {sorted(extra)}")
    terms_raw = raw.get("required_terms")
    if not isinstance(terms_raw, list) or not 2 <= len(terms_raw) <= 5:
        raise TemplateError(f"{where}: 'required_terms' must list 2-5 terms")
    terms: list[str] = []
    for term in terms_raw:
        if not isinstance(term, str) or not _REQUIRED_TERM_RE.match(term):
            raise TemplateError(f"{where}: required term {term!r} must be a lowercase word/phrase")
        terms.append(term)
    parts_raw = raw.get("parts")
    if not isinstance(parts_raw, list) or not parts_raw:
        raise TemplateError(f"{where}: 'parts' must be a non-empty list")
    parts = tuple(_parse_part(p, f"{where} part {i + 1}") for i, p in enumerate(parts_raw))
    if parts[0].inline:
        raise TemplateError(f"{where} part 1: the first part cannot be inline")
    template = Template(
        intent=intent,
        template_id=f"{intent}@{_entry_hash(raw)}",
        required_terms=tuple(terms),
        parts=parts,
    )
    bare = compose(template, {}).lower()
    missing = [t for t in terms if t not in bare]
    if missing:
        raise TemplateError(
            f"{where}: required term(s) {missing} do not appear in the answer when no variables are available"
        )
    return template


def parse_book(data: Any, expected: Iterable[str]) -> tuple[str, str, str, dict[str, Template]]:
    if not isinstance(data, Mapping):
        raise TemplateError("template file: top level must be a mapping")
    greeting = data.get("greeting")
    if not isinstance(greeting, Mapping):
        raise TemplateError("template file: 'greeting' must map 'with_name' and 'without_name'")
    with_name = _as_str(greeting.get("with_name"), "greeting.with_name")
    without_name = _as_str(greeting.get("without_name"), "greeting.without_name")
    if placeholders(with_name) != {"first_name"}:
        raise TemplateError("greeting.with_name: must use exactly the {first_name} placeholder")
    _check_braces(with_name, "greeting.with_name")
    _check_braces(without_name, "greeting.without_name")
    if placeholders(without_name):
        raise TemplateError("greeting.without_name: must not contain placeholders")
    sign_off_raw = data.get("sign_off")
    if not isinstance(sign_off_raw, str) or not sign_off_raw.strip():
        raise TemplateError("sign_off: expected a non-empty string")
    sign_off = sign_off_raw.strip()
    _check_braces(sign_off, "sign_off")
    if placeholders(sign_off):
        raise TemplateError("sign_off: must not contain placeholders")
    intents_raw = data.get("intents")
    if not isinstance(intents_raw, Mapping):
        raise TemplateError("template file: 'intents' must be a mapping of intent -> entry")
    expected_set = set(expected)
    unknown = sorted(set(intents_raw) - expected_set, key=str)
    if unknown:
        raise TemplateError(f"template file: unknown intent(s) {unknown}")
    missing = sorted(expected_set - set(intents_raw))
    if missing:
        raise TemplateError(f"template file: missing intent(s) {missing}")
    templates = {name: _parse_intent(name, raw) for name, raw in intents_raw.items()}
    return with_name, without_name, sign_off, templates


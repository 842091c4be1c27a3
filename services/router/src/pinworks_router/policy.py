"""The routing policy: ordered rules in YAML, validated at load with errors that name the line.

The policy version is the hash of its content, so every audit row says exactly which rules ran.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

KNOWN_HANDLERS = frozenset({"template", "kb", "llm_small", "llm_frontier", "human"})
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")


class PolicyError(ValueError):
    """A policy that must not be loaded; the message names the file, line and field."""


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents: list[str] | None = Field(default=None, description="Any of these intents.")
    intent_groups: list[str] | None = Field(default=None, description="Any intent of these groups.")
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    max_confidence: float | None = Field(default=None, ge=0, le=1)
    out_of_scope: bool | None = None
    business_units: list[str] | None = None
    channels: list[str] | None = None

    @model_validator(mode="after")
    def _range(self) -> Conditions:
        low, high = self.min_confidence, self.max_confidence
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_confidence {low} is above max_confidence {high}")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    when: Conditions = Field(default_factory=Conditions)
    handler: str
    fallbacks: list[str] = Field(default_factory=list)
    reason: str | None = None

    @field_validator("handler", "fallbacks")
    @classmethod
    def _known_handlers(cls, value: str | list[str]) -> str | list[str]:
        for handler in [value] if isinstance(value, str) else value:
            if handler not in KNOWN_HANDLERS:
                known = ", ".join(sorted(KNOWN_HANDLERS))
                raise ValueError(f"unknown handler {handler!r} (known: {known})")
        return value


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    intent_groups: dict[str, frozenset[str]]
    version: str
    source: str


def _line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
    return None


def _rule_node(root: yaml.Node, index: int) -> yaml.Node | None:
    rules = _child(root, "rules")
    if isinstance(rules, yaml.SequenceNode) and index < len(rules.value):
        return rules.value[index]
    return None


def _locate(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    for part in loc:
        if node is None:
            return None
        if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
            node = node.value[part] if part < len(node.value) else None
        elif isinstance(part, str):
            located = _child(node, part)
            if located is None:
                return node
            node = located
    return node


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate and build a policy; raise PolicyError naming the offending line."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if root is None or not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a mapping with a `rules:` list")
    unknown = set(data) - {"rules", "intent_groups", "description"}
    if unknown:
        raise PolicyError(f"{source} line {_line_of(_child(root, sorted(unknown)[0]))}: "
                          f"unknown top-level key(s) {sorted(unknown)}")
    groups_data = data.get("intent_groups") or {}
    if not isinstance(groups_data, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in groups_data.values()
    ):
        raise PolicyError(f"{source} line {_line_of(_child(root, 'intent_groups'))}: "
                          "intent_groups maps a group name to a list of intents")
    groups = {name: frozenset(intents) for name, intents in groups_data.items()}
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise PolicyError(f"{source} line {_line_of(_child(root, 'rules')) or 1}: "
                          "`rules` must be a non-empty list")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(rules_data):
        node = _rule_node(root, index)
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _locate(node, tuple(first["loc"]))
            label = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
            field = ".".join(str(p) for p in first["loc"]) or "rule"
            raise PolicyError(f"{source} line {_line_of(where)}: rule {label!r}: {field}: "
                              f"{first['msg']}") from None
        if rule.name in names:
            raise PolicyError(f"{source} line {_line_of(node)}: duplicate rule name {rule.name!r}")
        for group in rule.when.intent_groups or []:
            if group not in groups:
                raise PolicyError(f"{source} line {_line_of(node)}: rule {rule.name!r}: "
                                  f"unknown intent group {group!r}")
        names.add(rule.name)
        rules.append(rule)
    version = "policy-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return Policy(rules=tuple(rules), intent_groups=groups, version=version, source=source)


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from None
    return parse_policy(text, str(path))

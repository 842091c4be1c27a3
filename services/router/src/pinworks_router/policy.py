"""The routing policy: ordered rules in YAML, validated at load with errors that name the line.

The policy version is the hash of its content, so every audit row says exactly which rules ran.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pinworks_contracts.messages import CustomerSignalKind

KNOWN_HANDLERS = frozenset({"template", "kb", "llm_small", "llm_frontier", "human"})
DEFAULT_POLICY = Path(__file__).with_name("default_policy.yaml")


class PolicyError(ValueError):
    """A policy that must not be loaded; the message names the file, line and field."""


def _valid_regex(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents: list[str] | None = Field(default=None, description="Any of these intents.")
    intent_groups: list[str] | None = Field(default=None, description="Any intent of these groups.")
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    max_confidence: float | None = Field(default=None, ge=0, le=1)
    out_of_scope: bool | None = None
    business_units: list[str] | None = None
    channels: list[str] | None = None
    metadata: dict[str, list[str | int | float | bool]] | None = Field(
        default=None,
        description="Customer metadata: each key's value must be one of the listed values "
        "(compared as text, case-insensitive), e.g. {tier: [premium, vip]}. A missing key fails.",
    )
    keywords: list[str] | None = Field(
        default=None,
        description="Any of these words or phrases occurs in subject or body "
        "(whole words, case-insensitive).",
    )
    patterns: list[Annotated[str, AfterValidator(_valid_regex)]] | None = Field(
        default=None,
        description="Any of these regular expressions matches subject or body (case-insensitive).",
    )
    min_sentiment: float | None = Field(default=None, ge=-1, le=1,
                                        description="VADER compound sentiment at least this.")
    max_sentiment: float | None = Field(default=None, ge=-1, le=1,
                                        description="VADER compound sentiment at most this.")
    urgency: list[Literal["low", "medium", "high"]] | None = Field(
        default=None, description="Urgency level (from the urgency lexicon) is one of these.")
    customer_state: list[CustomerSignalKind] | None = Field(
        default=None,
        description="Any of these customer-state signals (legal_threat, fraud, vulnerability, "
        "very_negative) is in the classifier stage's recorded reading of the ticket.")

    _keyword_res: tuple[re.Pattern[str], ...] = PrivateAttr(default=())
    _pattern_res: tuple[re.Pattern[str], ...] = PrivateAttr(default=())

    @field_validator("metadata", mode="before")
    @classmethod
    def _scalar_to_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("keywords", "metadata", "business_units", "channels", "intents",
                     "intent_groups", "patterns", "urgency", "customer_state")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value is not None and len(value) == 0:
            raise ValueError("must not be empty (omit the condition instead)")
        if isinstance(value, dict):
            for key, allowed in value.items():
                if not allowed:
                    raise ValueError(f"{key}: list of allowed values must not be empty")
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        for keyword in value or []:
            if not keyword.strip():
                raise ValueError("a keyword must not be blank")
        return value

    @model_validator(mode="after")
    def _range(self) -> Conditions:
        low, high = self.min_confidence, self.max_confidence
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_confidence {low} is above max_confidence {high}")
        low, high = self.min_sentiment, self.max_sentiment
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_sentiment {low} is above max_sentiment {high}")
        self._keyword_res = tuple(
            re.compile(r"(?<!\w)" + re.escape(k.strip()) + r"(?!\w)", re.IGNORECASE)
            for k in self.keywords or [])
        self._pattern_res = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns or [])
        return self

    @property
    def keyword_res(self) -> tuple[re.Pattern[str], ...]:
        return self._keyword_res

    @property
    def pattern_res(self) -> tuple[re.Pattern[str], ...]:
        return self._pattern_res


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


class Budget(BaseModel):
    """A quota on one handler for one business unit (`*`: every unit, each its own counter).

    Counted atomically across router replicas in Postgres; an exhausted budget sends the ticket
    down its rule's fallback chain. A unit's own budget replaces the `*` one for that handler."""

    model_config = ConfigDict(extra="forbid")

    business_unit: str = Field(min_length=1)
    handler: str
    calls_per_day: int | None = Field(default=None, ge=0, description="Routed tickets per UTC day.")
    usd_per_month: Decimal | None = Field(
        default=None, ge=0, max_digits=14, decimal_places=6,
        description="Estimated handler dollars per UTC calendar month (pinworks_common.pricing).")

    @field_validator("handler")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_HANDLERS:
            raise ValueError(f"unknown handler {value!r} (known: {', '.join(sorted(KNOWN_HANDLERS))})")
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.calls_per_day is None and self.usd_per_month is None:
            raise ValueError("a budget needs calls_per_day and/or usd_per_month")
        return self


class WrongRateLimit(BaseModel):
    """A business unit's or intent group's own budget; it may only tighten the policy's."""

    model_config = ConfigDict(extra="forbid")

    max_wrong_rate: float = Field(gt=0, lt=1, description="Wrong share of automatic answers.")
    confidence: float | None = Field(
        default=None, gt=0, lt=1, description="Confidence of the bound; default: the policy's.")


class ErrorBudget(BaseModel):
    """The most automatic answers may be wrong, certified at a confidence level.

    `pinworks policy calibrate` derives the confidence thresholds that honour it from a
    calibration set (pinworks_router.calibration); routing itself never reads it."""

    model_config = ConfigDict(extra="forbid")

    max_wrong_rate: float = Field(gt=0, lt=1, description="Wrong share of automatic answers.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence of the bound.")
    business_units: dict[str, WrongRateLimit] = Field(default_factory=dict)
    intent_groups: dict[str, WrongRateLimit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _only_tighter(self) -> ErrorBudget:
        for kind, limits in (("business unit", self.business_units),
                             ("intent group", self.intent_groups)):
            for name, limit in limits.items():
                if limit.max_wrong_rate > self.max_wrong_rate:
                    raise ValueError(f"{kind} {name!r}: max_wrong_rate {limit.max_wrong_rate} is "
                                     f"looser than the policy's {self.max_wrong_rate}")
                if limit.confidence is not None and limit.confidence < self.confidence:
                    raise ValueError(f"{kind} {name!r}: confidence {limit.confidence} is below "
                                     f"the policy's {self.confidence}")
        return self


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    intent_groups: dict[str, frozenset[str]]
    version: str
    source: str
    budgets: tuple[Budget, ...] = ()
    error_budget: ErrorBudget | None = None

    def budgets_for(self, business_unit: str, handler: str) -> Budget | None:
        fallback = None
        for budget in self.budgets:
            if budget.handler != handler:
                continue
            if budget.business_unit == business_unit:
                return budget
            if budget.business_unit == "*":
                fallback = budget
        return fallback


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


def content_version(text: str) -> str:
    """A policy's version: the hash of its exact text (`routing_policies.version`)."""
    return "policy-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate and build a policy; raise PolicyError naming the offending line."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if root is None or not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a mapping with a `rules:` list")
    unknown = set(data) - {"rules", "intent_groups", "description", "budgets", "error_budget"}
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
    budgets = _budgets(root, data.get("budgets"), source)
    error_budget = _error_budget(root, data.get("error_budget"), groups, source)
    return Policy(rules=tuple(rules), intent_groups=groups, version=content_version(text),
                  source=source,
                  budgets=budgets, error_budget=error_budget)


def _error_budget(root: yaml.Node, raw: Any, groups: dict[str, frozenset[str]],
                  source: str) -> ErrorBudget | None:
    if raw is None:
        return None
    node = _child(root, "error_budget")
    try:
        budget = ErrorBudget.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "error_budget"
        raise PolicyError(f"{source} line {_line_of(_locate(node, tuple(first['loc'])))}: "
                          f"error_budget: {field}: {first['msg']}") from None
    for group in budget.intent_groups:
        if group not in groups:
            raise PolicyError(f"{source} line {_line_of(node)}: error_budget: unknown intent "
                              f"group {group!r}")
    return budget


def _budgets(root: yaml.Node, raw: Any, source: str) -> tuple[Budget, ...]:
    if raw is None:
        return ()
    node = _child(root, "budgets")
    if not isinstance(raw, list):
        raise PolicyError(f"{source} line {_line_of(node)}: `budgets` must be a list")
    budgets: list[Budget] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        item_node = node.value[index] if isinstance(node, yaml.SequenceNode) else None
        try:
            budget = Budget.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _locate(item_node, tuple(first["loc"]))
            field = ".".join(str(p) for p in first["loc"]) or "budget"
            raise PolicyError(f"{source} line {_line_of(where)}: budget #{index + 1}: {field}: "
                              f"{first['msg']}") from None
        key = (budget.business_unit, budget.handler)
        if key in seen:
            raise PolicyError(f"{source} line {_line_of(item_node)}: a second budget for "
                              f"business unit {key[0]!r} and handler {key[1]!r}")
        seen.add(key)
        budgets.append(budget)
    return tuple(budgets)


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from None
    return parse_policy(text, str(path))

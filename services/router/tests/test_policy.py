from pathlib import Path

import pytest

from pinworks_contracts.messages import Classification, IntentScore, TicketSubmission
from pinworks_router import domain
from pinworks_router.domain import RuleEvaluationError, route
from pinworks_router.policy import PolicyError, load_policy, parse_policy

POLICY = """\
intent_groups:
  security: [compromised_card, lost_or_stolen_card]
rules:
  - name: oos
    when: {out_of_scope: true}
    handler: human
  - name: security
    when: {intent_groups: [security]}
    handler: human
  - name: vip-chat
    when: {business_units: [wealth], channels: [chat], intents: [card_arrival]}
    handler: kb
    fallbacks: [human]
  - name: mid-band
    when: {min_confidence: 0.4, max_confidence: 0.7}
    handler: llm_small
    fallbacks: [kb, human]
  - name: confident
    when: {min_confidence: 0.7}
    handler: template
"""


def ticket(unit: str = "retail", channel: str | None = None) -> TicketSubmission:
    return TicketSubmission(ticket_id="T", business_unit=unit, body="b", channel=channel)


def classified(intent: str = "card_arrival", confidence: float = 0.9, oos: bool = False
               ) -> Classification:
    return Classification(intent=intent, confidence=confidence, out_of_scope=oos,
                          alternatives=[IntentScore(intent=intent, score=confidence)],
                          model_version="m1")


@pytest.mark.parametrize(
    ("unit", "channel", "cls", "rule", "handler"),
    [
        ("retail", None, classified(oos=True), "oos", "human"),
        ("retail", None, classified("compromised_card"), "security", "human"),
        ("wealth", "chat", classified(), "vip-chat", "kb"),
        ("wealth", "email", classified(), "confident", "template"),
        ("retail", None, classified(confidence=0.5), "mid-band", "llm_small"),
        ("retail", None, classified(confidence=0.2), "<no rule matched>", "human"),
    ],
)
def test_first_matching_rule_decides(unit: str, channel: str | None, cls: Classification,
                                     rule: str, handler: str) -> None:
    policy = parse_policy(POLICY)
    evaluation = route(policy, ticket(unit, channel), cls)
    assert (evaluation.decision.rule, evaluation.decision.handler) == (rule, handler)
    assert evaluation.decision.policy_version == policy.version


def test_passed_over_rules_say_why() -> None:
    evaluation = route(parse_policy(POLICY), ticket(), classified(confidence=0.5))
    why = {entry["rule"]: entry["why"] for entry in evaluation.passed_over}
    assert why["oos"] == "out_of_scope is False, rule needs True"
    assert "not in groups ['security']" in why["security"]
    assert why["vip-chat"] == "business unit retail not in ['wealth']"


GATES = """\
rules:
  - name: oos
    when: {out_of_scope: true}
    handler: human
  - name: gate-a
    when: {intents: [getting_spare_card], max_confidence: 0.9}
    handler: human
  - name: gate-b
    when: {intents: [top_up_failed, top_up_limits], max_confidence: 0.9}
    handler: human
  - name: gate-c
    when: {intents: [card_arrival], max_confidence: 0.95}
    handler: human
  - name: gate-d
    when: {intents: [exchange_rate], max_confidence: 0.9}
    handler: human
  - name: gate-e
    when: {intents: [pin_blocked], max_confidence: 0.9}
    handler: human
  - name: gate-f
    when: {intents: [age_limit], max_confidence: 0.9}
    handler: human
  - name: confident
    when: {min_confidence: 0.7}
    handler: template
"""


def test_rules_whose_intents_leave_out_the_tickets_are_one_entry_per_run() -> None:
    evaluation = route(parse_policy(GATES), ticket(), classified(confidence=0.97))
    assert evaluation.decision.rule == "confident"
    assert evaluation.passed_over == [
        {"rule": "oos", "why": "out_of_scope is False, rule needs True"},
        {"rule": "gate-a", "through": "gate-b", "rules": 2,
         "why": "intent card_arrival not in the intents of these 2 rules, gate-a through gate-b"},
        {"rule": "gate-c", "why": "confidence 0.970 above 0.95"},
        {"rule": "gate-d", "through": "gate-f", "rules": 3,
         "why": "intent card_arrival not in the intents of these 3 rules, gate-d through gate-f"},
    ]


def test_a_lone_rule_leaving_out_the_intent_says_why_as_any_other() -> None:
    policy = parse_policy(GATES.replace("gate-b\n    when: {intents: [top_up_failed, top_up_limits]",
                                        "gate-b\n    when: {intents: [card_arrival]"))
    evaluation = route(policy, ticket(), classified(confidence=0.97))
    assert evaluation.passed_over[1:3] == [
        {"rule": "gate-a", "why": "intent card_arrival not in ['getting_spare_card']"},
        {"rule": "gate-b", "why": "confidence 0.970 above 0.9"},
    ]


def test_a_lone_rule_passed_over_whose_conditions_hold_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreachable while `mismatch` reads intents: a real error, not an `assert` that `-O`
    strips (the entry would be stored without its why)."""
    policy = parse_policy(GATES.replace("gate-b\n    when: {intents: [top_up_failed, top_up_limits]",
                                        "gate-b\n    when: {intents: [card_arrival]"))
    real = domain.mismatch
    monkeypatch.setattr(domain, "mismatch", lambda conditions, *args: None
                        if conditions is policy.rules[1].when else real(conditions, *args))
    with pytest.raises(RuleEvaluationError, match="gate-a was passed over"):
        route(policy, ticket(), classified(confidence=0.97))


def covered(policy_rules: list[str], passed_over: list[dict[str, str | int]]) -> list[str]:
    """The rule names the entries account for, in order, a run expanded by its count."""
    names: list[str] = []
    for entry in passed_over:
        start = policy_rules.index(str(entry["rule"]))
        run = policy_rules[start:start + int(entry.get("rules", 1))]
        assert run[-1] == entry.get("through", entry["rule"])
        names += run
    return names


@pytest.mark.parametrize(("intent", "confidence"), [
    ("card_arrival", 0.999), ("getting_virtual_card", 0.5), ("receiving_money", 0.99),
    ("compromised_card", 0.99), ("not_an_intent_of_the_policy", 0.1)])
def test_the_shipped_policy_accounts_for_every_rule_passed_over(intent: str,
                                                                confidence: float) -> None:
    policy = load_policy()
    evaluation = route(policy, ticket(), classified(intent, confidence))
    names = [rule.name for rule in policy.rules]
    decided = names.index(evaluation.decision.rule) if evaluation.decision.rule in names else None
    assert covered(names, evaluation.passed_over) == names[:decided]
    assert len(evaluation.passed_over) <= 8


def test_version_is_the_content_hash() -> None:
    assert parse_policy(POLICY).version == parse_policy(POLICY).version
    assert parse_policy(POLICY).version != parse_policy(POLICY + "\n# changed\n").version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("rules: []", "line 1: `rules` must be a non-empty list"),
        ("rules:\n  - name: a\n    handler: robot\n", "line 3: rule 'a': handler: Value error, "
         "unknown handler 'robot'"),
        ("rules:\n  - name: a\n    handler: kb\n    when:\n      min_confidence: 2\n",
         "line 5: rule 'a': when.min_confidence: Input should be less than or equal to 1"),
        ("rules:\n  - name: a\n    handler: kb\n    when: {colour: red}\n",
         "line 4: rule 'a': when.colour: Extra inputs are not permitted"),
        ("rules:\n  - name: a\n    handler: kb\n  - name: a\n    handler: human\n",
         "line 4: duplicate rule name 'a'"),
        ("rules:\n  - name: a\n    handler: kb\n    when: {intent_groups: [nope]}\n",
         "line 2: rule 'a': unknown intent group 'nope'"),
        ("rulez: []\n", "line 1: unknown top-level key(s) ['rulez']"),
    ],
)
def test_broken_policies_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("p.yaml")


def test_the_shipped_default_policy_loads() -> None:
    policy = load_policy()
    assert [rule.name for rule in policy.rules][-1] == "unsure-to-person"
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(Path("/nonexistent/policy.yaml"))

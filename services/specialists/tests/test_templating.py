"""Tests for the intent templates and the variable extraction that fills them."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinworks_specialists.templating import (
    INTENTS,
    TemplateBook,
    TemplateContext,
    TemplateError,
    extract_variables,
)

FULL_TICKET = TemplateContext(
    subject="Problem with my card ending 4821",
    body=(
        "Hello, on 3 March I paid £25.40 with my card and something went wrong. "
        "Can you help?\n\nThanks,\nMaria"
    ),
    metadata={"customer_name": "Maria Lopez"},
)
BARE_TICKET = TemplateContext(body="help please")
LEAKS = re.compile(r"\{|\}|\bNone\b|\bnull\b")


@pytest.fixture(scope="module")
def book() -> TemplateBook:
    return TemplateBook.load()


@pytest.fixture(scope="module")
def raw_yaml() -> dict[str, Any]:
    path = Path(__file__).parents[1] / "src/pinworks_specialists/templates/intents.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _book_from(data: dict[str, Any]) -> TemplateBook:
    return TemplateBook.from_bytes(yaml.safe_dump(data, sort_keys=False).encode("utf-8"))


def test_book_covers_exactly_the_77_intents(book: TemplateBook) -> None:
    assert len(INTENTS) == 77
    assert book.intents() == frozenset(INTENTS)
    assert re.fullmatch(r"templates-[0-9a-f]{8}", book.version)


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("context", [BARE_TICKET, FULL_TICKET], ids=["bare", "full"])
def test_every_intent_renders_cleanly(book: TemplateBook, intent: str, context: TemplateContext) -> None:
    answer = book.render(intent, context)
    assert answer is not None
    assert not LEAKS.search(answer.text), answer.text
    assert answer.template_id.startswith(f"{intent}@")
    assert re.fullmatch(r"[0-9a-f]{8}", answer.template_id.split("@", 1)[1])
    words = len(answer.text.split())
    assert 60 <= words <= 180, f"{intent}: {words} words"
    lowered = answer.text.lower()
    for term in book.required_terms(intent):
        assert term in lowered, f"{intent}: required term {term!r} missing"
    for name, value in answer.variables.items():
        assert value in answer.text, f"{intent}: {name}={value!r} reported but not in text"


@pytest.mark.parametrize("intent", INTENTS)
def test_required_terms_are_short_lowercase_lists(book: TemplateBook, intent: str) -> None:
    terms = book.required_terms(intent)
    assert 2 <= len(terms) <= 5
    assert all(term == term.lower() and term.strip() == term for term in terms)


def test_greeting_uses_name_only_when_known(book: TemplateBook) -> None:
    named = book.render("card_arrival", FULL_TICKET)
    anonymous = book.render("card_arrival", BARE_TICKET)
    assert named is not None and anonymous is not None
    assert named.text.startswith("Hi Maria,")
    assert named.variables["first_name"] == "Maria"
    assert anonymous.text.startswith("Hi there,")
    assert "first_name" not in anonymous.variables


def test_variables_fill_optional_sections(book: TemplateBook) -> None:
    answer = book.render("lost_or_stolen_card", FULL_TICKET)
    assert answer is not None
    assert "card ending 4821" in answer.text
    assert answer.variables == {"card_last4": "4821", "first_name": "Maria"}
    bare = book.render("lost_or_stolen_card", BARE_TICKET)
    assert bare is not None
    assert "ending" not in bare.text
    assert bare.variables == {}


def test_amount_and_date_reach_the_answer(book: TemplateBook) -> None:
    context = TemplateContext(body="I sent €250 to my sister on 12 May and she has nothing yet.")
    answer = book.render("transfer_not_received_by_recipient", context)
    assert answer is not None
    assert "€250" in answer.text and "12 May" in answer.text
    assert answer.variables == {"amount": "€250", "date": "12 May"}


def test_unknown_intent_renders_none(book: TemplateBook) -> None:
    assert book.render("order_pizza", BARE_TICKET) is None
    assert book.required_terms("order_pizza") == ()


def test_template_id_is_stable_and_tracks_content(raw_yaml: dict[str, Any]) -> None:
    first = _book_from(raw_yaml).render("card_arrival", BARE_TICKET)
    again = _book_from(raw_yaml).render("card_arrival", BARE_TICKET)
    changed = copy.deepcopy(raw_yaml)
    changed["intents"]["card_arrival"]["parts"][0]["text"] = "Sorry, your card is late."
    other = _book_from(changed)
    edited = other.render("card_arrival", BARE_TICKET)
    untouched = other.render("card_linking", BARE_TICKET)
    original_linking = _book_from(raw_yaml).render("card_linking", BARE_TICKET)
    assert first and again and edited and untouched and original_linking
    assert first.template_id == again.template_id
    assert edited.template_id != first.template_id
    assert untouched.template_id == original_linking.template_id


def test_load_from_explicit_path(tmp_path: Path, raw_yaml: dict[str, Any]) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(yaml.safe_dump(raw_yaml), encoding="utf-8")
    assert TemplateBook.load(path).intents() == frozenset(INTENTS)


# --------------------------------------------------------------------------- validation


def test_missing_intent_is_named(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    del data["intents"]["card_swallowed"]
    with pytest.raises(TemplateError, match="missing intent.*card_swallowed"):
        _book_from(data)


def test_unknown_intent_is_named(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["open_mortgage"] = data["intents"]["age_limit"]
    with pytest.raises(TemplateError, match="unknown intent.*open_mortgage"):
        _book_from(data)


def test_duplicate_intent_is_rejected(raw_yaml: dict[str, Any]) -> None:
    text = yaml.safe_dump(raw_yaml, sort_keys=False)
    block = yaml.safe_dump({"age_limit": raw_yaml["intents"]["age_limit"]}, sort_keys=False)
    duplicated = text + "".join(f"  {line}\n" for line in block.splitlines())
    with pytest.raises(TemplateError, match="duplicate key 'age_limit'"):
        TemplateBook.from_bytes(duplicated.encode("utf-8"))


def test_unknown_placeholder_names_the_entry(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["pin_blocked"]["parts"].append({"when": ["amount"], "text": "Hi {amout}."})
    with pytest.raises(TemplateError, match=r"pin_blocked.*part \d+.*amout"):
        _book_from(data)


def test_unguarded_placeholder_is_rejected(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["exchange_rate"]["parts"].append({"text": "You paid {amount}."})
    with pytest.raises(TemplateError, match=r"exchange_rate.*'when'"):
        _book_from(data)


def test_stray_brace_is_rejected(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["change_pin"]["parts"].append({"when": ["amount"], "text": "Pay {amount"})
    with pytest.raises(TemplateError, match="change_pin.*brace"):
        _book_from(data)


def test_required_term_missing_from_text_is_rejected(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["age_limit"]["required_terms"] = ["18", "mortgage"]
    with pytest.raises(TemplateError, match="age_limit.*mortgage"):
        _book_from(data)


def test_bad_required_terms_shape_is_rejected(raw_yaml: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_yaml)
    data["intents"]["age_limit"]["required_terms"] = ["Junior"]
    with pytest.raises(TemplateError, match="age_limit"):
        _book_from(data)


def test_invalid_yaml_is_reported() -> None:
    with pytest.raises(TemplateError, match="not valid YAML"):
        TemplateBook.from_bytes(b"intents: [unclosed")


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "I was charged £25.40 twice at the supermarket on 3 March, card ending 4821.",
            {"amount": "£25.40", "currency": "GBP", "date": "3 March", "card_last4": "4821"},
        ),
        (
            "My transfer of $1,200 to my landlord failed yesterday. What happened?",
            {"amount": "$1,200", "currency": "USD"},
        ),
        (
            "The ATM in Lisbon only gave me 25 EUR on 2024-05-01 instead of 100.",
            {"amount": "25 EUR", "currency": "EUR", "date": "2024-05-01"},
        ),
        (
            "I topped up 50 pounds last week and it's gone. The last four digits are 9931.",
            {"amount": "£50", "currency": "GBP", "card_last4": "9931"},
        ),
        (
            "Card **** **** **** 1234 declined at a hotel, March 14th 2025.",
            {"card_last4": "1234", "date": "March 14th 2025"},
        ),
        (
            "How do I exchange USD into GBP in the app?",
            {"currency": "USD"},
        ),
        (
            "I tried 3 times over the last 4 days, it still says 2000 errors. Yesterday too.",
            {},
        ),
    ],
)
def test_extract_variables_from_ticket_text(body: str, expected: dict[str, str]) -> None:
    assert extract_variables(TemplateContext(body=body)) == expected


def test_name_from_signature_only_after_sign_off() -> None:
    signed = TemplateContext(body="My card is stuck in the ATM.\n\nKind regards,\nTom Baker")
    assert extract_variables(signed)["first_name"] == "Tom"
    inline = TemplateContext(body="Where is my PIN? Thanks, Aisha")
    assert extract_variables(inline)["first_name"] == "Aisha"
    unsigned = TemplateContext(body="Paris is lovely but my card is not working.\nHelp")
    assert "first_name" not in extract_variables(unsigned)


def test_metadata_wins_and_bad_metadata_is_ignored() -> None:
    context = TemplateContext(
        body="Card ending 1111 charged €10.",
        metadata={"first_name": "jane", "customer_name": "Someone Else", "card_last4": "2222"},
    )
    variables = extract_variables(context)
    assert variables["first_name"] == "Jane"
    assert variables["card_last4"] == "2222"
    junk = TemplateContext(
        body="hello",
        metadata={"first_name": None, "customer_name": "None", "card_last4": "12345"},
    )
    assert extract_variables(junk) == {}


def test_a_context_reads_the_ticket_once(book: TemplateBook,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent assist renders three templates and a greeting from one context: the ticket's text
    is searched for its variables once, and every rendering is the one a fresh context gives."""
    from pinworks_specialists import ticket_variables

    reads: list[TemplateContext] = []

    def counted(context: TemplateContext) -> dict[str, str]:
        reads.append(context)
        return extract_variables(context)

    monkeypatch.setattr(ticket_variables, "extract_variables", counted)
    context = dataclasses.replace(FULL_TICKET)
    intents = ("card_arrival", "card_payment_fee_charged", "request_refund")
    rendered = [book.render(intent, context) for intent in intents]
    greeting = book.greeting(context)
    assert reads == [context]
    fresh = [book.render(intent, dataclasses.replace(FULL_TICKET)) for intent in intents]
    assert rendered == fresh and greeting == book.greeting(dataclasses.replace(FULL_TICKET))
    assert "first_name" in context.variables
    with pytest.raises(TypeError):
        context.variables["first_name"] = "Eve"  # type: ignore[index]


def test_currency_metadata_overrides_text() -> None:
    context = TemplateContext(body="I paid $40", metadata={"currency": "eur"})
    assert extract_variables(context)["currency"] == "EUR"


def test_subject_is_searched_too() -> None:
    context = TemplateContext(subject="Refund of €19.99 missing", body="Still nothing.")
    assert extract_variables(context)["amount"] == "€19.99"


@pytest.mark.parametrize("text", ["yesterday", "last Monday", "today", "on 31 February", "2024-13-01"])
def test_relative_or_impossible_dates_are_not_echoed(text: str) -> None:
    assert "date" not in extract_variables(TemplateContext(body=f"It happened {text}."))

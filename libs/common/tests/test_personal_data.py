"""pinworks_common.personal_data: each kind found and redacted, look-alikes left alone."""

from __future__ import annotations

import pytest

from pinworks_common.personal_data import Kind, find, finding_summary, keyed_hash, redact, redact_value


def kinds(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(f.kind.value, f.text) for f in find(text, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("card 4111 1111 1111 1111 was declined", [("CARD", "4111 1111 1111 1111")]),
    ("card 5500-0000-0000-0004", [("CARD", "5500-0000-0000-0004")]),
    ("amex 378282246310005 ok", [("CARD", "378282246310005")]),
    ("mistyped 4111 1111 1111 1112", [("CARD", "4111 1111 1111 1112")]),   # grouped as a card
    ("mistyped GB82 WEST 1234 5698 7654 33", [("IBAN", "GB82 WEST 1234 5698 7654 33")]),  # check digits
    ("my IBAN is GB82 WEST 1234 5698 7654 32 please", [("IBAN", "GB82 WEST 1234 5698 7654 32")]),
    ("DE89370400440532013000", [("IBAN", "DE89370400440532013000")]),
    ("write to jane.doe+bank@example.co.uk today", [("EMAIL", "jane.doe+bank@example.co.uk")]),
    ("call me on 07700 900123", [("PHONE", "07700 900123")]),
    ("or +44 20 7946 0321", [("PHONE", "+44 20 7946 0321")]),
    ("US: (212) 555-0199", [("PHONE", "(212) 555-0199")]),
    ("sort code 20-00-00, account number 31926819", [("ACCOUNT", "20-00-00"), ("ACCOUNT", "31926819")]),
    ("acct no. 123456789", [("ACCOUNT", "123456789")]),
    ("paid into 31926819 yesterday", [("ACCOUNT", "31926819")]),
])
def test_numbers_and_addresses_of_each_kind(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize("text", [
    "ref 4111111111111112 was declined",              # fails Luhn, not grouped as a card
    "IBAN GB82 WEST 1234 5698",                       # too short for a GB IBAN
    "I was charged £1,234.56 on 12/11/2026 at 14:05",
    "my card ending 1234 expires 09/27",
    "The Chase Bank payment to Amazon failed on Monday",
    "Will you refund me? May I ask why?",
    "order 123 of 4 items",
])
def test_look_alikes_are_left_alone(text: str) -> None:
    assert kinds(text) == []


def test_names_by_gazetteer_cue_title_signature_and_known_value() -> None:
    assert kinds("I spoke to Jane Doe yesterday") == [("NAME", "Jane Doe")]
    assert kinds("my name is Chidi Okonkwo-Eze") == [("NAME", "Chidi Okonkwo-Eze")]
    assert kinds("Dear Mr. Okafor, hello") == [("NAME", "Mr. Okafor")]
    assert kinds("my husband Tom paid") == [("NAME", "Tom")]
    assert kinds("Please help.\nKind regards,\nPriya Raghunathan\n") == [("NAME", "Priya Raghunathan")]
    assert kinds("Sent by Zanele here", known_names=["Zanele"]) == [("NAME", "Zanele")]
    assert kinds("my name is sarah and I") == [("NAME", "sarah")]  # a cue reads lower case too
    assert kinds("my name is on the account") == []


def test_addresses_street_town_postcode_and_cued_town() -> None:
    assert kinds("I live at 12 Acacia Avenue, Leeds, LS1 4AP now") == [
        ("ADDRESS", "12 Acacia Avenue, Leeds, LS1 4AP")]
    assert kinds("Jane Doe of Leeds wrote") == [("NAME", "Jane Doe"), ("ADDRESS", "Leeds")]
    assert kinds("I moved to Milton Keynes") == [("ADDRESS", "Milton Keynes")]
    assert kinds("post it to SW1A 1AA") == [("ADDRESS", "SW1A 1AA")]
    assert kinds("1600 Pennsylvania Avenue, Washington, DC 20500") == [
        ("ADDRESS", "1600 Pennsylvania Avenue, Washington, DC 20500")]


def test_redact_puts_typed_placeholders_and_keeps_the_rest() -> None:
    text = "Card 4111 1111 1111 1111, Jane Doe of Leeds, jane@example.com"
    redacted, findings = redact(text)
    assert redacted == "Card [CARD], [NAME] of [ADDRESS], [EMAIL]"
    assert [f.kind for f in findings] == [Kind.CARD, Kind.NAME, Kind.ADDRESS, Kind.EMAIL]
    assert redact("nothing personal here") == ("nothing personal here", [])


def test_an_iban_is_not_also_read_as_a_card_or_an_account() -> None:
    assert [f.kind for f in find("GB29 NWBK 6016 1331 9268 19")] == [Kind.IBAN]


def test_a_letter_case_folding_takes_for_a_z_is_no_iban_and_no_error() -> None:
    # (?i)[A-Z] matches "İ"; python-stdnum's check-digit arithmetic raised ValueError on it
    assert kinds("İS12 WEST 1234 5698 7654 ok") == []
    assert kinds("GB82 WEſT 1234 5698 7654 32") == [("IBAN", "GB82 WEſT 1234 5698 7654 32")]


def test_keyed_hash_matches_one_value_written_two_ways_and_depends_on_the_key() -> None:
    a = keyed_hash(Kind.CARD, "4111 1111 1111 1111", b"k1")
    assert a == keyed_hash(Kind.CARD, "4111-1111-1111-1111", b"k1")
    assert a != keyed_hash(Kind.CARD, "4111 1111 1111 1111", b"k2")
    email = keyed_hash(Kind.EMAIL, "jane@example.com", b"k")
    assert keyed_hash(Kind.EMAIL, "Jane@Example.com", b"k") == email
    finding = find("jane@example.com")[0]
    assert finding_summary(finding, None) == {"kind": "EMAIL"}
    assert finding_summary(finding, b"k") == {"kind": "EMAIL", "hash": email}


def test_redact_value_walks_json() -> None:
    value = {"body": "mail jane@example.com", "n": 3, "list": ["card 4111111111111111"]}
    assert redact_value(value) == {"body": "mail [EMAIL]", "n": 3, "list": ["card [CARD]"]}


def _found(text: str) -> list[tuple[str, str]]:
    return [(f.kind.value, f.text) for f in find(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("My sister Ngozi Eze sent it", [("NAME", "Ngozi Eze")]),
    ("Someone called Tadeusz Wróbel rang me", [("NAME", "Tadeusz Wróbel")]),
    ("The payee is Oyelaran Adebisi, not me", [("NAME", "Oyelaran Adebisi")]),
    ("hi its wanjiru kamau, my card is blocked", [("NAME", "wanjiru kamau")]),
    ("Eero Virtanen\nFlat 3, 12 Mill Lane, Tring", [("NAME", "Eero Virtanen"),
                                                     ("ADDRESS", "Flat 3, 12 Mill Lane, Tring")]),
])
def test_names_by_relation_greeting_and_letter_heading(text: str,
                                                       expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Send it to 12/4, Gandhi Marg, Nashik-422001 please", [("ADDRESS", "12/4, Gandhi Marg, Nashik-422001")]),
    ("post to PO Box 77, Oamaru 9444", [("ADDRESS", "PO Box 77, Oamaru 9444")]),
    ("We moved to Ullapool in May", [("ADDRESS", "Ullapool")]),
])
def test_numeric_postcodes_and_where_someone_lives(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize("text", [
    "Transaction 6088673633 failed twice",
    "Reference 4471-2290-113 on the statement",
    "I called your helpline on 0800 028 0000",
    "The payment on 12 June 2024 was £40",
])
def test_references_helplines_and_dates_are_not_phones_or_addresses(text: str) -> None:
    assert _found(text) == []


def test_a_number_to_ring_is_still_a_phone() -> None:
    assert _found("call me on 2125550143 tonight") == [("PHONE", "2125550143")]
    assert _found("my mobile: 07700 900123") == [("PHONE", "07700 900123")]
def test_a_text_found_again_gives_the_same_findings_without_a_second_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pinworks_common.personal_data import detect

    text = "Hi Jane Doe, your card 4111 1111 1111 1111 is on its way (cache test)."
    searched: list[str] = []
    real = detect._candidates
    monkeypatch.setattr(detect, "_candidates", lambda t, *a: searched.append(t) or real(t, *a))
    first = find(text)
    first.clear()  # a caller's list is its own
    assert [(f.kind, f.text) for f in find(text)] == [(Kind.NAME, "Jane Doe"),
                                                       (Kind.CARD, "4111 1111 1111 1111")]
    assert searched == [text]
    # other known names or regions are another search
    find(text, known_names=("Jane",))
    find(text, regions=["GB"])
    assert len(searched) == 3
    # a text past the cached length is searched every time
    long = text + " " * detect.CACHED_TEXT_CHARS
    find(long)
    find(long)
    assert searched[3:] == [long, long]


def test_known_names_in_ascii_text_are_found_where_the_expression_finds_them() -> None:
    """`_ascii_spans` (no compile per name) against the expression it stands for, on texts
    built to hit its edges: every case, the value inside longer words, next to `_` and digits,
    repeated and overlapping ("anan" in "ananan"), at either end, with punctuation in it, and
    beside or among letters beyond ASCII (ı, ſ, İ and the Kelvin sign match ASCII letters)."""
    import itertools
    import random
    import re

    from pinworks_common.personal_data.names import _known_spans

    def expected(text: str, value: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in
                re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE)]

    generator = random.Random(20)
    values = ["an", "Ana", "anan", "o'neil", "Mary-Jo", "Jo Li", "x_y", "a1", "is", "kai", "Ñan"]
    pieces = ["an", "AN", "aN", "ana", "Ana", "n", " ", "_", "1", "-", "'", "o'Neil", "MARY-JO",
              "jo li", "x_Y", "A1", ".", "\n", "£", "’", "é", "Ñ", "²", "\u0131", "\u017f",
              "\u0130", "\u212a", "ß"]
    for length in range(1, 9):
        for _ in range(300):
            text = "".join(generator.choice(pieces) for _ in range(length))
            for value in values:
                assert list(_known_spans(text, [value])) == expected(text, value), (text, value)
    for text, value in itertools.product(["ananan", "Ana ana ANA", "anA_ana ana1 ana"], values):
        assert list(_known_spans(text, [value])) == expected(text, value), (text, value)
    assert list(_known_spans("Ilıa ılia", ["ilia"])) == expected("Ilıa ılia", "ilia") != []
    assert list(_known_spans("\u212aai £5", ["kai"])) == expected("\u212aai £5", "kai") != []

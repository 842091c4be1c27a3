"""Numbered placeholders for what goes to a model, and only the issued ones put back."""

from __future__ import annotations

from pinworks_common.personal_data import Pseudonyms


def test_one_value_keeps_one_placeholder_and_kinds_are_numbered_apart() -> None:
    pseudonyms = Pseudonyms()
    first = pseudonyms.apply("Card 4111 1111 1111 1111 or 5555 5555 5555 4444, mail a@example.com")
    again = pseudonyms.apply("The card 4111-1111-1111-1111 again; b@example.com too")
    assert first == "Card [CARD_1] or [CARD_2], mail [EMAIL_1]"
    assert again == "The card [CARD_1] again; [EMAIL_2] too", "the same card written another way"
    assert pseudonyms.counts == {"CARD": 2, "EMAIL": 2}


def test_restore_puts_back_only_issued_placeholders_and_reports_the_rest() -> None:
    pseudonyms = Pseudonyms(known_names=("Zuzanna Wróbel",))
    assert pseudonyms.apply("From Zuzanna Wróbel") == "From [NAME_1]"
    restored = pseudonyms.restore("Dear [name_1], about [CARD_1] and [NAME]: [NAME_1].")
    assert restored.text == "Dear Zuzanna Wróbel, about [CARD_1] and [NAME]: Zuzanna Wróbel."
    assert restored.used == ["[NAME_1]"]
    assert restored.unknown == ["[CARD_1]", "[NAME]"]


def test_placeholders_typed_by_the_customer_are_defused() -> None:
    pseudonyms = Pseudonyms()
    assert pseudonyms.apply("Please write [EMAIL_1] back") == "Please write (EMAIL_1) back"
    assert pseudonyms.restore("(EMAIL_1)").unknown == []

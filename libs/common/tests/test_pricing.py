from decimal import Decimal

import pytest

from pinworks_common.pricing import (
    Price,
    default_prices,
    estimated_cost,
    estimated_tokens,
    load_prices,
)


def test_prices_from_the_environment() -> None:
    assert load_prices({}) == default_prices()
    table = load_prices({"SPECIALISTS_PRICES": '{"llm_frontier": {"per_call": "0.5"}}'})
    assert table == {"llm_frontier": Price(per_call=Decimal("0.5"))}
    with pytest.raises(ValueError, match="SPECIALISTS_PRICES is not a JSON price table"):
        load_prices({"SPECIALISTS_PRICES": "{nope"})
    with pytest.raises(ValueError) as invalid:
        load_prices({"SPECIALISTS_PRICES": '{"kb": {"per_call": "lots"}}'})
    assert str(invalid.value).startswith(
        "SPECIALISTS_PRICES is not a JSON price table: kb.per_call: ")
    assert "Value error" not in str(invalid.value) and "validation error" not in str(invalid.value)


def test_estimate_is_documented_arithmetic() -> None:
    assert estimated_tokens("x" * 9) == (3 + 400, 200)
    price = Price(per_call=Decimal("0.001"), per_1k_input_tokens=Decimal("0.0025"),
                  per_1k_output_tokens=Decimal("0.01"))
    assert estimated_cost(price, "x" * 400) == Decimal("0.001") + Decimal("0.0025") * Decimal(
        "0.5") + Decimal("0.002")
    assert estimated_cost(None, "anything") == 0


def test_priced_text_counts_subject_and_body_as_sent() -> None:
    """Not the classifier's model input: the subject is kept even when the body repeats it."""
    from pinworks_common.pricing import priced_text

    assert priced_text("Card", "Card lost") == "Card\nCard lost"
    assert priced_text(None, "hi") == priced_text("", "hi") == "hi"

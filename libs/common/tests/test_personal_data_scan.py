"""personal_data.scan: the folded text finds every case-insensitive match's words, and a pattern
tried only where it can start gives what finditer gives."""

from __future__ import annotations

import re
import string

import pytest

from pinworks_common.personal_data import find
from pinworks_common.personal_data.scan import DIRECT_CHARS, folded, matches_at, occurrences

EVERY_CHARACTER = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)


def test_folding_keeps_length_and_finds_every_letter_case_insensitive_matching_takes() -> None:
    low = folded(EVERY_CHARACTER)
    assert len(low) == len(EVERY_CHARACTER)
    for letter in string.ascii_lowercase:
        taken = {m.start() for m in re.finditer(f"(?i){letter}", EVERY_CHARACTER)}
        assert taken <= {m.start() for m in re.finditer(letter, low)}, letter


def test_occurrences_overlap_and_come_in_order() -> None:
    assert occurrences("tata ta", ("ta", "at")) == [0, 1, 2, 5]
    assert occurrences("nothing", ("xyz",)) == []


def test_matches_at_every_start_is_finditer() -> None:
    pattern = re.compile(r"\b(?:to|from)\s+(\w+)")
    text = "go to town from to Leeds, onto from"
    starts = occurrences(text, ("to", "from"))
    assert [m.span(1) for m in matches_at(pattern, text, starts)] == [
        m.span(1) for m in pattern.finditer(text)]


@pytest.mark.parametrize("pad", ["", " I waited a long time for a reply and nobody answered me." * 3])
def test_a_lower_case_name_after_a_greeting_at_the_start_whatever_the_length(pad: str) -> None:
    text = "  hi its wanjiru kamau, my card is blocked." + pad
    assert (len(text) > DIRECT_CHARS) == bool(pad)
    assert [(f.kind.value, f.text) for f in find(text)] == [("NAME", "wanjiru kamau")]

"""Texts the personal-data detector is timed on (bench_detect.py) and held to its recorded
findings on (record_reference.py, tools/tests/test_detector_reference.py): the labelled set,
the answer templates as drafts, help-centre paragraphs, the bench's tickets, log lines, and
seeded generated strings built from the pieces every detector reads (digit runs cut every way,
cards, IBANs, e-mail addresses, names, cues, sign-offs, postcodes, and the characters that fold
oddly under case-insensitive matching)."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from pathlib import Path

import yaml
from eval_set import load
from stdnum import iban as stdnum_iban
from stdnum import luhn

from pinworks_cli.bench_texts import MULTI_SENTENCE, ONE_OR_TWO_SENTENCES, SHORT_QUERIES

REPO = Path(__file__).resolve().parents[2]
SPECIALISTS = REPO / "services" / "specialists" / "src" / "pinworks_specialists"
TEMPLATES = SPECIALISTS / "templates" / "intents.yaml"
ARTICLES = SPECIALISTS / "kb" / "articles"
GAZETTEER = REPO / "libs" / "common" / "src" / "pinworks_common" / "personal_data" / "data"
VARIABLES = {"first_name": "Sam", "amount": "£54.20", "date": "3 June", "card_last4": "4242",
             "currency": "EUR"}

LOG_LINES = (
    "stage specialist-llm_small: batch of 8 applied in 0.034s",
    "Received",
    "ticket T-1042 handed to a person: verifier refused the draft",
    "reply for Jane Okafor <jane.okafor@example.org> on card 4111 1111 1111 1111",
    "consumer pinworks-verifier fetched 16 messages in 0.012s (pending 240)",
    "ticket bench-3f2a~T-000417 routed to template (confidence 0.981, policy v12)",
    "customer called from +44 20 7946 0321 about transfer TX-20261203-5521",
    "publish tickets.outcome.resolved.support failed: nats: timeout after 2.000s",
)


def drafts() -> list[str]:
    """Every answer template as the verifier reads it: greeting, parts, sign-off, once with
    the ticket's variables filled and once with the variable-free fallbacks."""
    doc = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    texts = []
    for intent in doc["intents"].values():
        for filled in (True, False):
            parts = [doc["greeting"]["with_name" if filled else "without_name"]]
            for part in intent["parts"]:
                if "when" not in part or filled:
                    parts.append(part["text"])
                elif part.get("otherwise"):
                    parts.append(part["otherwise"])
            texts.append(("\n\n".join(parts) + "\n\n" + doc["sign_off"]).format(**VARIABLES))
    return texts


def articles() -> list[str]:
    """Help-centre paragraphs (what a knowledge-base draft quotes)."""
    return [paragraph.strip() for path in sorted(ARTICLES.glob("*.md"))
            for paragraph in path.read_text(encoding="utf-8").split("\n\n") if paragraph.strip()]


def tickets() -> list[str]:
    """The bench's ticket texts: short queries, one or two sentences, several sentences."""
    return [body for texts in (SHORT_QUERIES, ONE_OR_TWO_SENTENCES, MULTI_SENTENCE)
            for _, body in texts]


def labelled() -> list[tuple[str, tuple[str, ...]]]:
    """The labelled set's texts, each alone and with its marked names as the caller's known
    names (how the verifier and the ledger call the detector)."""
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for example in load():
        names = tuple(example.text[s.start:s.end] for s in example.spans if s.kind.value == "NAME")
        pairs.append((example.text, ()))
        if names:
            pairs.append((example.text, names))
    return pairs


def _gazetteer(file: str) -> list[str]:
    lines = (GAZETTEER / file).read_text(encoding="utf-8").splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


class Pieces:
    """Random pieces of text for one seeded generator."""

    WORDS = ("the", "card", "my", "to", "from", "with", "on", "at", "of", "is", "account",
             "payment", "please", "refund", "transfer", "Will", "June", "Mark", "Bank", "Street",
             "Road", "Avenue", "Flat", "Level", "PO Box", "ext", "x", "int", "tel", "ta", "Ta")
    CUES = ("my name is", "My name's", "name on the card is", "signed", "account holder:",
            "Mr", "Mrs.", "Dr", "Prof.", "my husband", "our landlord,", "someone called",
            "a man named", "the payee is", "beneficiary:", "Hi", "hello, it's", "Dear", "hey",
            "Kind regards,\n", "Thanks -", "Best wishes\n", "Cheers,", "Yours sincerely,\n",
            "I live in", "we moved to", "based in", "I am", "this is", "called", "of",
            "account number", "sort code", "acct no.", "a/c #", "call me on", "phone:",
            "whatsapp", "ring", "IBAN", "email", "reach me on", "I’m", "I'm")
    ODD = ("İ", "ı", "ſ", "\u212a", "Juhász", "Pușcașu", "O'Brien", "Smith-Jones", "’", "\xa0",
           "\t", "£", "€", "%", "#", "@", "(", ")", "+", "/", ":", ";", ",", ".", "-", "\n",
           "０７７００ ９００１２３", "٠٧٧٠٠٩٠٠١٢٣", "[CARD]", "[NAME_1]", "e.g.", "St.")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.firsts = _gazetteer("first_names.txt")
        self.surnames = _gazetteer("surnames.txt")
        self.towns = _gazetteer("towns.txt")
        self.not_names = _gazetteer("not_names.txt")

    def digits(self, low: int, high: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(self.rng.randint(low, high)))

    def grouped(self, digits: str) -> str:
        """``digits`` cut into groups by one separator, or several, or none."""
        rng, parts, pos = self.rng, [], 0
        while pos < len(digits):
            size = rng.randint(1, 6)
            parts.append(digits[pos:pos + size])
            pos += size
        seps = rng.choice([[" "], ["-"], ["."], ["/"], [""], [" ", "-", ". ", " - ", "  "]])
        out = parts[0]
        for part in parts[1:]:
            out += rng.choice(seps) + part
        return out

    def card(self) -> str:
        """A Luhn-valid card number, plain or grouped."""
        body = self.rng.choice("3456") + self.digits(11, 17)
        card = body + luhn.calc_check_digit(body)
        return self.grouped(card) if self.rng.random() < 0.5 else card

    def iban(self) -> str:
        """An IBAN, maybe mistyped, maybe grouped in fours."""
        rng = self.rng
        country = rng.choice(["GB", "DE", "FR", "NL", "IE", "ES", "gb", "XX"])
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + self.digits(10, 18)
        check = stdnum_iban.calc_check_digits(country.upper() + "00" + bban)
        number = country + (check if rng.random() < 0.8 else self.digits(2, 2)) + bban
        if rng.random() < 0.5:
            return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
        return number

    def look_alike(self) -> str:
        """Sort codes, account numbers, amounts, dates, times, percentages."""
        d = self.digits
        return self.rng.choice([f"{d(2, 2)}-{d(2, 2)}-{d(2, 2)}", d(8, 8), d(6, 6),
                                f"£{d(1, 4)}.{d(2, 2)}", f"{d(1, 2)}/{d(1, 2)}/{d(2, 4)}",
                                f"20{d(2, 2)}-{d(2, 2)}-{d(2, 2)} {d(2, 2)}:{d(2, 2)}",
                                f"{d(1, 2)}:{d(2, 2)}", f"{d(1, 3)}%"])

    def place(self) -> str:
        """A postcode, a ZIP after a state, a numeric postcode after a town, a street line."""
        rng, d = self.rng, self.digits
        letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(1, 2)))
        street = rng.choice(["Street", "Road", "Avenue", "Close", "Pines", "Way", "St."])
        return rng.choice([f"{letters}{d(1, 2)} {d(1, 1)}{rng.choice(['AB', 'ZZ', 'NG'])}",
                           f"{rng.choice(['NY', 'CA', 'TX'])} {d(5, 5)}",
                           f"{rng.choice(['NY', 'CA'])} {d(5, 5)}-{d(4, 4)}",
                           f"{rng.choice(self.towns)}-{d(6, 6)}",
                           f"{d(1, 4)}{rng.choice(['', 'A', ','])} {rng.choice(self.surnames)} {street}"])

    def number(self) -> str:
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0:
            return self.card()
        if kind == 1:
            return self.iban()
        if kind == 2:
            prefix = rng.choice(["+44 ", "+1 ", "0044 ", "(0)", "0", "(020) ", "+353 ", "", "", "0800 "])
            return prefix + self.grouped(self.digits(6, 12))
        if kind == 3:
            return self.look_alike()
        if kind == 4:
            return self.place()
        return self.grouped(self.digits(1, 24))

    def email(self) -> str:
        rng = self.rng
        local = rng.choice(["jane.doe", "a", "j+bank", "x_y-z", "", "first.last%tag", "Ana.Pérez"])
        domain = rng.choice(["example.org", "mail.co.uk", "b", "x-y.z.io", "localhost", "ex.c"])
        return f"{local}{rng.choice(['@', '@', ' @ ', '@@'])}{domain}"

    def name(self) -> str:
        rng = self.rng
        first = rng.choice(self.firsts + self.not_names + self.towns)
        rest = [rng.choice(self.surnames + self.not_names) for _ in range(rng.randint(0, 2))]
        name = " ".join([first, *rest])
        return name.lower() if rng.random() < 0.15 else name

    def piece(self) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.25:
            return self.number()
        if pick < 0.32:
            return self.email()
        if pick < 0.50:
            return self.name()
        if pick < 0.62:
            return rng.choice(self.CUES)
        if pick < 0.72:
            return rng.choice(self.ODD)
        return rng.choice(self.WORDS)

    def text(self) -> str:
        rng = self.rng
        out = ""
        for _ in range(rng.randint(1, 22)):
            out += self.piece() + rng.choice([" ", " ", " ", ", ", "\n", ". ", "", " - "])
        return out.strip() if rng.random() < 0.7 else out


def generated(count: int, seed: int = 20) -> list[str]:
    """``count`` seeded generated strings (the same ones on every run)."""
    pieces = Pieces(seed)
    return [pieces.text() for _ in range(count)]


def everything(count: int = 3000) -> Iterator[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(text, known names, regions) for every text of the differential check."""
    default = ("GB", "US")
    yield from ((text, known, default) for text, known in labelled())
    for text in [*drafts(), *articles(), *tickets(), *LOG_LINES]:
        yield text, (), default
    drafted = drafts()
    yield from ((text, ("Sam",), default) for text in drafted[::3])
    for n, text in enumerate(generated(count)):
        regions = (default, ("GB",), ("US",), ("IN", "GB"))[n % 7] if n % 7 < 4 else default
        yield text, (("Zanele Mokoena",), (), (), ())[n % 4], regions

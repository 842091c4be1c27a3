"""Writes eval/generated.jsonl: synthetic support tickets with their personal data marked, for the
redaction precision/recall report (tools/personal_data/bench_redaction.py).

Names come from Faker person providers of locales that the shipped gazetteer was NOT built from
(build_gazetteer.py's GAZETTEER_LOCALES), so the report shows how names from outside it fare;
addresses, phone numbers, IBANs and cards from Faker's providers; towns after a cue from a
hand-written list of real towns that are not in the detector's towns.txt. Each ticket is a
template written to read like a support ticket, about half of them without any cue such as
"my name is". Seeded: the same file each run.

    .venv/bin/python tools/personal_data/build_eval_set.py
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from build_gazetteer import GAZETTEER_LOCALES
from faker import Faker

SEED = 20261202
COUNT = 480
OUT = Path(__file__).resolve().parent / "eval" / "generated.jsonl"
NAME_LOCALES = ("en_IN", "en_PK", "en_KE", "en_NZ", "yo_NG", "cs_CZ", "sv_SE", "fi_FI", "ro_RO",
                "hu_HU", "hr_HR", "lv_LV")
ADDRESS_LOCALES = ("en_GB", "en_GB", "en_GB", "en_US", "en_NZ", "en_IN")
PHONE_LOCALES = ("en_GB", "en_GB", "en_GB", "en_US", "en_IN", "en_NZ")
IBAN_LOCALES = ("en_GB", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "pl_PL")
TOWNS = ("Kettering", "Stafford", "Tamworth", "Harrogate", "Shrewsbury", "Telford",
         "Loughborough", "Bedford", "Mansfield", "Rochdale", "Burnley", "Grimsby", "Hastings",
         "Eastbourne", "Worthing", "Margate", "Falkirk", "Paisley", "Llanelli", "Kendal")
assert not set(NAME_LOCALES) & set(GAZETTEER_LOCALES)

TEMPLATES = (
    "Hi, my name is {NAME} and my card still hasn't arrived. Can you check? {ORDER}",
    "{NAME} here. I was charged {AMOUNT} twice on {DATE}, please refund one of them.",
    "Please send the replacement card to {ADDRESS}. Thanks",
    "My new address is {ADDRESS}, can you update it before the card is posted?",
    "Can you call me back on {PHONE}? It's about a payment I don't recognise.",
    "my number is {PHONE} and email {EMAIL}, nobody has replied in a week",
    "I paid {NAME} {AMOUNT} by mistake, the reference was {ORDER}. How do I get it back?",
    "The transfer to {IBAN} has been pending since {DATE}. Is something wrong?",
    "Please refund to my other account, sort code {SORT} account number {ACCOUNT}.",
    "My card {CARD} was declined at the supermarket even though I have money.",
    "Card number {CARD}, expiry 09/28. It was swallowed by the ATM this morning.",
    "Dear Larkspur,\n\nI moved to {TOWN} last month and my statement went to the old place."
    "\n\nRegards,\n{NAME}",
    "Hello, this is {FIRST}. My husband {NAME} can't log in to the app since the update.",
    "{TITLED} asked me to write on his behalf, he can't use the phone. {ORDER}",
    "Why was {AMOUNT} taken from my account on {DATE}? I never agreed to it.\n\nThanks,\n{FIRST}",
    "Account holder: {NAME}\nIBAN: {IBAN}\nPlease confirm you received my salary payment.",
    "I want to close my account and move the balance to {IBAN}.",
    "Contact me at {EMAIL} rather than by post please.",
    "The statement for {DATE} is missing. Send it to {EMAIL} or {ADDRESS}.",
    "I'm {FIRST} and I keep getting texts on {PHONE} about a loan I never took.",
    "hi its {LOWERNAME}, lost my card yesterday {DATE}, please block it",
    "Someone called {NAME} rang me pretending to be from the bank and asked for my PIN.",
    "{NAME}\n{ADDRESS}\n\nTo whom it may concern, I dispute the charge of {AMOUNT}.",
    "Top up of {AMOUNT} failed three times. My card is {CARD}.",
    "My daughter {FIRST} needs a card for her student account, what do we need?",
    "Can {NAME} be added as a second holder on the joint account?",
    "I sent money to sort code {SORT}, account {ACCOUNT} and it bounced back.",
    "The courier went to {ADDRESS} but I live at {ADDRESS}.",
    "Please remove {PHONE} from my profile, it isn't mine any more.",
    "Exchange rate on my {AMOUNT} payment looks wrong. {ORDER}",
    "From {EMAIL}: I never received the code to verify my phone {PHONE}.",
    "Thanks for the help earlier {FIRST}! The card works now.",
    "I live in {TOWN} and there is no branch near me, can I pay in cheques by post?",
    "Payment to {NAME} for the rent was blocked as suspicious, it's legit.",
    "Beneficiary {NAME}, IBAN {IBAN}, amount {AMOUNT}. It never arrived.",
    "{FIRST} {LAST} - card ending 4821 - disputed transaction {ORDER}",
    "Is my PIN the same on the new card? My old one was {CARD}.",
    "We spoke on {DATE}. I'm still waiting for the refund of {AMOUNT}.\n\nBest,\n{NAME}",
    "Ring {PHONE} after 5pm please, I work days.",
    "Update my email from {EMAIL} to {EMAIL}.",
    "Letter came addressed to {TITLED} at {ADDRESS} but that's not me.",
    "My partner {FIRST} and I want to open a joint account online.",
    "Why can't I send {AMOUNT} abroad? The payee is {NAME} in {TOWN}.",
    "Direct debit to the gym keeps failing, reference {ORDER}. Call {PHONE}.",
    "Card {CARD} shows a pending charge from {DATE} that I cancelled.",
)


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class Filler:
    """Values for a template's slots, each with the kind it is marked with (or none)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        locales = sorted({*NAME_LOCALES, *ADDRESS_LOCALES, *PHONE_LOCALES, *IBAN_LOCALES})
        self.fakers = {loc: Faker(loc) for loc in locales}
        for n, fake in enumerate(self.fakers.values()):
            fake.seed_instance(SEED + n)
        self.person = self._new_person()

    def _new_person(self) -> tuple[str, str]:
        fake = self.fakers[self.rng.choice(NAME_LOCALES)]
        return fake.first_name(), fake.last_name()

    def slot(self, name: str) -> tuple[str, str | None]:
        fills: dict[str, Callable[[], tuple[str, str | None]]] = {
            "NAME": lambda: (" ".join(self._new_person()), "NAME"),
            "FIRST": lambda: (self.person[0], "NAME"),
            "LAST": lambda: (self.person[1], "NAME"),
            "LOWERNAME": lambda: (" ".join(self._new_person()).lower(), "NAME"),
            "TITLED": lambda: (f"{self.rng.choice(['Mr', 'Mrs', 'Ms', 'Dr'])} "
                               f"{self._new_person()[1]}", "NAME"),
            "EMAIL": lambda: (self._email(), "EMAIL"),
            "PHONE": lambda: (self.fakers[self.rng.choice(PHONE_LOCALES)].phone_number(), "PHONE"),
            "CARD": lambda: (self._card(), "CARD"),
            "IBAN": lambda: (self._iban(), "IBAN"),
            "SORT": lambda: ("-".join(f"{self.rng.randrange(100):02d}" for _ in range(3)),
                             "ACCOUNT"),
            "ACCOUNT": lambda: (f"{self.rng.randrange(10**7, 10**8)}", "ACCOUNT"),
            "ADDRESS": lambda: (self._address(), "ADDRESS"),
            "TOWN": lambda: (self.rng.choice(TOWNS), "ADDRESS"),
            "ORDER": lambda: (self._reference(), None),
            "AMOUNT": lambda: (self._amount(), None),
            "DATE": lambda: (self._date(), None),
        }
        return fills[name]()

    def _email(self) -> str:
        first, last = (ascii_fold(part).lower() for part in self._new_person())
        domain = self.rng.choice(["gmail.com", "outlook.com", "yahoo.co.uk", "btinternet.com",
                                  "proton.me", "icloud.com"])
        local = self.rng.choice([f"{first}.{last}", f"{first}{self.rng.randrange(100)}",
                                 f"{first[0]}{last}", f"{last}.{first}+bank"])
        return f"{local}@{domain}"

    def _card(self) -> str:
        number = self.fakers["en_GB"].credit_card_number(
            self.rng.choice(["visa16", "mastercard", "amex", "visa16", "maestro"]))
        style = self.rng.randrange(3)
        if style == 0 or len(number) != 16:
            return number
        return (" " if style == 1 else "-").join(number[i:i + 4] for i in range(0, 16, 4))

    def _iban(self) -> str:
        iban = self.fakers[self.rng.choice(IBAN_LOCALES)].iban()
        return iban if self.rng.random() < 0.5 else " ".join(re.findall(".{1,4}", iban))

    def _address(self) -> str:
        fake = self.fakers[self.rng.choice(ADDRESS_LOCALES)]
        if fake.locales == ["en_US"]:
            return f"{fake.street_address()}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}"
        return ", ".join(line.strip() for line in fake.address().splitlines())

    def _reference(self) -> str:
        rng = self.rng
        return rng.choice([f"Order #{rng.randrange(10**5, 10**6)}",
                           f"ref {rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
                           f"case CS-{rng.randrange(10**6, 10**7)}",
                           f"transaction id TX{rng.randrange(10**9, 10**10)}"])

    def _amount(self) -> str:
        value = self.rng.randrange(100, 500000) / 100
        return self.rng.choice([f"£{value:,.2f}", f"€{value:.2f}", f"${value:,.2f}",
                                f"{value:.2f} GBP"])

    def _date(self) -> str:
        day, month = self.rng.randrange(1, 29), self.rng.randrange(1, 13)
        months = ["January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December"]
        return self.rng.choice([f"{day:02d}/{month:02d}/2026", f"{day} {months[month - 1]}",
                                f"2026-{month:02d}-{day:02d}", f"{months[month - 1]} {day}th"])


def generate(count: int = COUNT) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    filler = Filler(rng)
    rows = []
    for n in range(count):
        template = TEMPLATES[n % len(TEMPLATES)]
        filler.person = filler._new_person()

        def fill(match: re.Match[str]) -> str:
            value, kind = filler.slot(match.group(1))
            return f"⟦{kind}|{value}⟧" if kind else value

        rows.append({"id": f"gen-{n:04d}", "source": f"template-{n % len(TEMPLATES):02d}",
                     "marked": re.sub(r"\{([A-Z]+)\}", fill, template)})
    return rows


def main() -> None:
    rows = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} tickets -> {OUT}")


if __name__ == "__main__":
    main()

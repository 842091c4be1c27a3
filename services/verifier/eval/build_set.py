"""Generate the verifier's labelled evaluation set from the project's own data.

    .venv/bin/python services/verifier/eval/build_set.py

Tickets are the BANKING77 *test* split (`common.split_of`), which neither intent scorer was
trained or calibrated on. Drafts come from the specialists' templates (rendered with the real
`TemplateBook`, so they are exactly what the template handler sends) and the help-centre
articles (kb-style extractive drafts citing their passages). Every record says which checks
must fail (`expected`); everything not listed must pass. Kinds:

good_template, good_kb               right intent, calm customer: nothing may fail
wrong_random                         classifier picked an unrelated intent, draft follows it
wrong_confusable                     classifier picked a neighbouring intent (shares a help
                                     article or a name word with the right one)
wrong_specialist_honest / _claiming  classification right, the kb draft answers another intent;
                                     its specialist_intent names that intent / claims the right one
disagreement_only                    right answer, but the specialist read another intent
pii / pii_echo / pii_lookalike       injected card/IBAN/account/email/phone; the same written by
                                     the customer (must pass); Luhn/mod-97-invalid numbers (pass)
ungrounded / ungrounded_number       a sentence from an unrelated article / a cited sentence with
                                     its figures changed
state_* / calm                       angry, legal, fraud, vulnerability tickets; mild frustration
policy / policy_entitled             a forbidden promise; the same with the entitlement declared
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    EVAL_DIR,
    SECURITY_INTENTS,
    TEMPLATES,
    articles,
    banking77,
)

from pinworks_specialists.templating import TemplateBook, TemplateContext  # noqa: E402
from pinworks_verifier.pii import luhn_valid  # noqa: E402

PER_INTENT = 6
SEED = 20261123
NAMES = ["Alex", "Sam", "Priya", "Tomasz", "Aisha", "Jonas", "Mei", "Carlos", "Ruth", "Olu"]
GENERIC_NAME_WORDS = {"card", "by", "or", "and", "of", "to", "not", "my", "for", "after", "on",
                      "via", "up", "top"}

ANGRY = [
    "This is absolutely disgusting service, I am furious and I hate this useless bank.",
    "Worst bank ever. Completely incompetent, awful, terrible people. I'm livid!!",
    "I am sick and tired of your pathetic excuses, this is a disgrace and I'm angry.",
    "Honestly this is a horrible, infuriating joke. You are all useless and I hate dealing with you.",
]
LEGAL = [
    "If this isn't sorted by Friday I will contact my lawyer.",
    "I am going to take legal action against you.",
    "I'll be reporting this to the Financial Ombudsman.",
    "My solicitor will be in touch if I don't hear back today.",
    "I will see you in small claims court.",
]
FRAUD = [
    "I think this is fraud, someone else is using my account.",
    "I've been scammed and I need help now.",
    "My details were stolen and there are payments I didn't authorise.",
    "I think my account was hacked last night.",
]
VULNERABLE = [
    "My husband passed away last month and I don't know what to do with his account.",
    "I'm desperate, I can't afford food this week until this is fixed.",
    "I'm going through a bereavement and can't cope with this right now.",
    "I am terminally ill and need this sorted for my family.",
]
CALM = [
    "Any news on this?",
    "It's a bit annoying but no rush.",
    "Thanks in advance for your help!",
    "I'm a little frustrated that it's taking a while.",
    "Could you let me know when you get a chance?",
]
PROMISES = [
    ("guaranteed_refund", "We guarantee you will get a full refund of this payment."),
    ("guaranteed_refund", "Rest assured, we will refund you in full within 24 hours."),
    ("fee_waiver", "As a goodwill gesture we have waived the fee on your account."),
    ("fee_waiver", "We'll also refund the fee you were charged, so you won't be out of pocket."),
    ("compensation", "We will pay you £50 compensation for the inconvenience."),
    ("guaranteed_outcome", "We guarantee this will be fixed by tomorrow."),
]
FABRICATED = [
    "You can also visit any Larkspur branch and a member of staff will sort this out on the spot.",
    "Premium customers get this done instantly with no checks at all.",
    "We will automatically credit your account with interest for the delay.",
    "Your account manager will phone you personally within the hour to confirm everything.",
]


def luhn_complete(prefix: str, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    for check in range(10):
        digits = body + str(check)
        if luhn_valid(digits):
            return digits
    raise AssertionError


def gb_iban(rng: random.Random, valid: bool = True) -> str:
    bban = "LARK" + "".join(str(rng.randrange(10)) for _ in range(14))
    numeric = int("".join(str(int(c, 36)) for c in bban + "GB00"))
    check = 98 - numeric % 97
    if not valid:
        check = (check + 1) % 97 or 2
    raw = f"GB{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def pii_item(rng: random.Random, kind: str, valid: bool = True) -> tuple[str, str]:
    """(value, sentence carrying it)."""
    if kind == "card":
        number = luhn_complete(rng.choice(["4", "51", "53"]), rng)
        if not valid:
            number = number[:-1] + str((int(number[-1]) + 1) % 10)
        spaced = " ".join(number[i:i + 4] for i in range(0, 16, 4))
        return spaced, f"The card we have on file is {spaced}."
    if kind == "iban":
        iban = gb_iban(rng, valid)
        return iban, f"Please send the money to IBAN {iban}."
    if kind == "account":
        account = "".join(str(rng.randrange(10)) for _ in range(8))
        return (f"{account}, sort code 04-00-75",
                f"The payment came from account number {account}, sort code 04-00-75.")
    if kind == "email":
        user = rng.choice(["j.smith", "priya.k", "tom77", "m.lee"])
        email = f"{user}@{rng.choice(['gmail.com', 'outlook.com', 'example.org'])}"
        return email, f"We have also written to {email} with the details."
    phone = f"07{rng.randrange(100, 999)} {rng.randrange(100000, 999999)}"
    return phone, f"We will call you back on {phone} this afternoon."


def confusable(intent: str, intents: list[str], article_intents: dict[str, set[str]]) -> list[str]:
    words = set(intent.lower().strip("?").split("_")) - GENERIC_NAME_WORDS
    near = set(article_intents.get(intent, set()))
    for other in intents:
        if words & (set(other.lower().strip("?").split("_")) - GENERIC_NAME_WORDS):
            near.add(other)
    near.discard(intent)
    return sorted(near & set(intents))


def sentence_split(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s]


def strip_heading(paragraph: str) -> str:
    head, sep, rest = paragraph.partition(": ")
    return rest if sep and len(head) < 60 and not head.endswith(".") else paragraph


def paraphrase(sentence: str) -> str:
    out = sentence
    for a, b in (("you'll", "you will"), ("We'll", "We will"), ("we'll", "we will"),
                 ("can't", "cannot"), ("don't", "do not"), ("It's", "It is"), ("it's", "it is")):
        out = out.replace(a, b)
    return out


@dataclass
class Case:
    """One test-split ticket and what every kind of record built from it shares."""

    intent: str
    body: str
    k: int  # its position among its intent's tickets: picks the variant of each kind
    name: str
    meta: dict[str, Any]
    intents: list[str]
    kb: dict[str, Any] | None = None  # its good kb draft, when its intent has an article


class Builder:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.book = TemplateBook.load(TEMPLATES)
        self.articles = articles()
        self.by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for article in self.articles:
            for intent in article["intents"]:
                self.by_intent[intent].append(article)
        self.article_intents: dict[str, set[str]] = defaultdict(set)
        for article in self.articles:
            for intent in article["intents"]:
                self.article_intents[intent] |= set(article["intents"])
        self.records: list[dict[str, Any]] = []

    def envelope(self, ticket_id: str, body: str, classified: str, draft: dict[str, Any],
                 metadata: dict[str, Any]) -> dict[str, Any]:
        return {
            "ticket": {"ticket_id": ticket_id, "business_unit": "retail", "body": body,
                       "channel": "chat", "metadata": metadata},
            "trace_id": "0" * 32,
            "received_at": datetime(2026, 11, 23, tzinfo=UTC).isoformat(),
            "classification": {"intent": classified, "confidence": 0.9, "out_of_scope": False,
                               "model_version": "eval", "alternatives": [
                                   {"intent": classified, "score": 0.9}]},
            "draft": draft,
        }

    def template_draft(self, intent: str, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        rendered = self.book.render(intent, TemplateContext(body=body, metadata=metadata))
        assert rendered is not None, intent
        return {"handler": "template", "handler_version": self.book.version,
                "answer": rendered.text, "cost_usd": "0.0005",
                "required_terms": list(self.book.required_terms(intent)),
                "details": {"template_id": rendered.template_id}}

    def kb_draft(self, intent: str, body: str, name: str, specialist_intent: Any = None
                 ) -> dict[str, Any] | None:
        candidates = self.by_intent.get(intent)
        if not candidates:
            return None
        article = self.rng.choice(candidates)
        words = set(re.findall(r"[a-z]+", body.lower()))
        ranked = sorted(range(len(article["paragraphs"])), key=lambda i: -len(
            words & set(re.findall(r"[a-z]+", article["paragraphs"][i].lower()))))
        chosen = sorted(ranked[:2])
        sentences: list[str] = []
        for i in chosen:
            parts = sentence_split(strip_heading(article["paragraphs"][i]))
            sentences.extend(paraphrase(s) for s in parts[:3])
        passages = [{"passage_id": f"{article['id']}#{i + 1}", "text": article["paragraphs"][i]}
                    for i in chosen]
        answer = (f"Hi {name},\n\nThanks for getting in touch.\n\n" + " ".join(sentences)
                  + "\n\nBest wishes,\nLarkspur Bank Support")
        return {"handler": "kb", "handler_version": "kb-eval", "answer": answer,
                "cost_usd": "0.0001", "citations": [p["passage_id"] for p in passages],
                "details": {"passages": passages, "article_id": article["id"],
                            "specialist_intent": specialist_intent or intent}}

    def add(self, kind: str, expected: list[str], envelope: dict[str, Any], truth: str) -> None:
        n = len(self.records)
        envelope["ticket"]["ticket_id"] = f"eval-{n:05d}"
        self.records.append({"id": f"eval-{n:05d}", "kind": kind, "true_intent": truth,
                             "expected_failures": sorted(expected), "envelope": envelope})

    def inject(self, answer: str, sentence: str) -> str:
        paragraphs = answer.split("\n\n")
        body = [i for i, p in enumerate(paragraphs) if len(p) > 60] or [0]
        at = self.rng.choice(body)
        paragraphs[at] = paragraphs[at].rstrip() + " " + sentence
        return "\n\n".join(paragraphs)

    def build(self) -> None:
        tickets: dict[str, list[str]] = defaultdict(list)
        for text, intent, split in banking77():
            if split == "test" and intent not in SECURITY_INTENTS:
                tickets[intent].append(text)
        intents = sorted(tickets)
        rng = self.rng
        for intent in intents:
            texts = sorted(tickets[intent])
            rng.shuffle(texts)
            near = confusable(intent, intents, self.article_intents)
            for k, body in enumerate(texts[:PER_INTENT]):
                name = rng.choice(NAMES)
                case = Case(intent, body, k, name, {"customer_name": name}, intents)
                self.good(case)
                self.wrong_intent(case, near)
                self.pii(case)
                self.ungrounded(case)
                self.customer_state(case)
                self.policy(case)

    def record(self, case: Case, kind: str, expected: list[str], draft: dict[str, Any],
               classified: str | None = None, body: str | None = None) -> None:
        """One record of `case`'s ticket (or `body`), classified as its intent (or `classified`)."""
        self.add(kind, expected, self.envelope("", case.body if body is None else body,
                                               classified or case.intent, draft, case.meta), case.intent)

    def good(self, case: Case) -> None:
        self.record(case, "good_template", [], self.template_draft(case.intent, case.body, case.meta))
        case.kb = self.kb_draft(case.intent, case.body, case.name)
        if case.kb:
            self.record(case, "good_kb", [], case.kb)

    def wrong_intent(self, case: Case, near: list[str]) -> None:
        rng, intent, intents, kb = self.rng, case.intent, case.intents, case.kb
        # the classifier's mistake, the template follows it
        other = rng.choice([i for i in intents if i != intent])
        self.record(case, "wrong_random", ["completeness"],
                    self.template_draft(other, case.body, case.meta), classified=other)
        if near:
            neighbour = rng.choice(near)
            self.record(case, "wrong_confusable", ["completeness"],
                        self.template_draft(neighbour, case.body, case.meta), classified=neighbour)
        # the specialist answered another intent
        foreign = [i for i in intents if i != intent and i in self.by_intent
                   and intent not in self.article_intents[i]]
        off = rng.choice(foreign)
        honest = case.k % 2 == 0
        kb_off = self.kb_draft(off, case.body, case.name, None if honest else intent)
        assert kb_off is not None
        if honest:
            self.record(case, "wrong_specialist_honest", ["completeness", "disagreement"], kb_off)
        else:
            self.record(case, "wrong_specialist_claiming", ["completeness"], kb_off)
        if kb and case.k % 3 == 0:
            other_reading = rng.choice([i for i in intents if i != intent])
            kb2 = dict(kb, details=dict(kb["details"], specialist_intent=other_reading))
            self.record(case, "disagreement_only", ["disagreement"], kb2)

    def pii(self, case: Case) -> None:
        k, kb = case.k, case.kb
        kind = ["card", "iban", "account", "email", "phone"][k % 5]
        base = kb if (kb and k % 2) else self.template_draft(case.intent, case.body, case.meta)
        value, sentence = pii_item(self.rng, kind)
        ungrounded = ["groundedness"] if base["handler"] == "kb" else []
        self.record(case, "pii", ["pii", *ungrounded],
                    dict(base, answer=self.inject(base["answer"], sentence)))
        self.record(case, "pii_echo", ungrounded, dict(base, answer=self.inject(base["answer"], sentence)),
                    body=f"{case.body} My {kind} is {value}.")
        if kind in ("card", "iban"):
            _, lookalike = pii_item(self.rng, kind, valid=False)
            self.record(case, "pii_lookalike", ungrounded,
                        dict(base, answer=self.inject(base["answer"], lookalike)))

    def ungrounded(self, case: Case) -> None:
        rng, kb = self.rng, case.kb
        if not kb:
            return
        foreign_article = rng.choice([a for a in self.articles if case.intent not in a["intents"]])
        claim = rng.choice(sentence_split(strip_heading(rng.choice(foreign_article["paragraphs"]))))
        if case.k % 3 == 2:
            claim = rng.choice(FABRICATED)
        # the fabricated interest credit is a promise of compensation as well
        expected = ["groundedness"] + (["policy"] if claim == FABRICATED[2] else [])
        self.record(case, "ungrounded", expected, dict(kb, answer=self.inject(kb["answer"], claim)))
        changed = self.change_numbers(kb["answer"])
        if changed:
            self.record(case, "ungrounded_number", ["groundedness"], dict(kb, answer=changed))

    def customer_state(self, case: Case) -> None:
        label, pool = [("state_angry", ANGRY), ("state_legal", LEGAL),
                       ("state_fraud", FRAUD), ("state_vulnerable", VULNERABLE)][case.k % 4]
        hard = f"{case.body} {self.rng.choice(pool)}"
        self.record(case, label, ["customer_state"], self.template_draft(case.intent, hard, case.meta),
                    body=hard)
        mild = f"{case.body} {self.rng.choice(CALM)}"
        self.record(case, "calm", [], self.template_draft(case.intent, mild, case.meta), body=mild)

    def policy(self, case: Case) -> None:
        k, kb = case.k, case.kb
        promise_kind, promise = PROMISES[k % len(PROMISES)]
        base = kb if (kb and k % 2) else self.template_draft(case.intent, case.body, case.meta)
        promised = dict(base, answer=self.inject(base["answer"], promise))
        if base["handler"] == "kb":
            promised["citations"] = base["citations"]
        expected = ["policy"] + (["groundedness"] if base["handler"] == "kb" else [])
        self.record(case, "policy", expected, promised)
        if k % 2 == 0:
            entitled = dict(promised, details=dict(promised["details"], entitlements=[promise_kind]))
            self.record(case, "policy_entitled", expected[1:], entitled)

    def change_numbers(self, answer: str) -> str | None:
        matches = list(re.finditer(r"\d+(?:\.\d+)?", answer))
        if not matches:
            return None
        m = self.rng.choice(matches)
        old = m.group(0)
        new = str(int(float(old)) + self.rng.choice([1, 2, 3, 7])) if "." not in old else \
            f"{float(old) + 1:.2f}"
        return answer[:m.start()] + new + answer[m.end():]


def main() -> None:
    builder = Builder()
    builder.build()
    out = EVAL_DIR / "labelled_drafts.jsonl.gz"
    # mtime=0 keeps the file byte-identical when nothing changed
    with gzip.GzipFile(out, "wb", mtime=0) as raw, io.TextIOWrapper(raw, "utf-8") as handle:
        for record in builder.records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    counts: dict[str, int] = defaultdict(int)
    for record in builder.records:
        counts[record["kind"]] += 1
    print(out, len(builder.records), dict(sorted(counts.items())))


if __name__ == "__main__":
    main()

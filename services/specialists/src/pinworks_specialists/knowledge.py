"""The `kb` handler: answers composed from retrieved help-centre passages, with citations.

Retrieval is BM25 over article paragraphs (see :mod:`pinworks_specialists.kb`). Passages are
grouped by article; the article of the best passage is chosen (or, within 80% of its score, one
declaring the classified intent) and its retrieved paragraphs, plus any paragraph needed to cover
the intent's required terms, are quoted in article order and cited (``article-id#n``). The handler
declines, with a reason, when retrieval support is weak: the best article must contain enough of
the ticket's term weight (``min_coverage``) and its best passage must score ``min_score``. Both
thresholds were calibrated on paraphrased tickets in ``tests/data/kb_calibration.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pinworks_contracts.messages import Draft, TicketEnvelope
from pinworks_specialists.handlers import Declined, cost_of
from pinworks_specialists.kb import KnowledgeBase, Passage
from pinworks_specialists.settings import Price
from pinworks_specialists.templating import TemplateBook, TemplateContext

RETRIEVE_K = 10
"""Passages retrieved per ticket before grouping by article."""
INTENT_PRIOR = 0.8
"""An article declaring the classified intent wins when it has this share of the best support."""
MAX_QUOTED = 3
"""Most passages quoted in one answer."""
MIN_RELATIVE_SCORE = 0.4
"""A further passage is quoted only if it scores this share of the article's best passage."""
MAX_QUERY_CHARS = 4000


@dataclass(frozen=True)
class Retrieval:
    """What retrieval found for a ticket, and how well it supports an answer."""

    article_id: str | None
    title: str
    passages: tuple[Passage, ...]
    coverage: float
    top_score: float
    ranked: tuple[Passage, ...]


def ticket_query(subject: str | None, body: str) -> str:
    return " ".join(filter(None, [subject, body]))[:MAX_QUERY_CHARS]


def retrieve(kb: KnowledgeBase, query: str, intent: str | None = None) -> Retrieval:
    """Choose the best-supported article for the query and the passages of it to quote."""
    ranked = kb.search(query, k=RETRIEVE_K)
    if not ranked:
        return Retrieval(None, "", (), 0.0, 0.0, ())
    support: dict[str, float] = {}
    for passage in ranked:  # best first: an article's support is its best passage's score
        support.setdefault(passage.article_id, passage.score)
    best = ranked[0].article_id
    if intent is not None:
        for article_id in kb.articles_for_intent(intent):
            if article_id in support and support[article_id] >= INTENT_PRIOR * support[best]:
                best = article_id
                break
    own = [p for p in ranked if p.article_id == best]
    quoted = [p for p in own if p.score >= MIN_RELATIVE_SCORE * own[0].score][:MAX_QUOTED]
    quoted.sort(key=lambda p: int(p.passage_id.rsplit("#", 1)[1]))
    return Retrieval(
        article_id=best,
        title=own[0].title,
        passages=tuple(quoted),
        coverage=kb.coverage(query, best),
        top_score=own[0].score,
        ranked=tuple(ranked),
    )


def complete_with_required_terms(kb: KnowledgeBase, article_id: str,
                                 passages: Sequence[Passage], terms: Sequence[str],
                                 limit: int = MAX_QUOTED + 1) -> list[Passage]:
    """Add the article's first paragraph mentioning each required term the quoted passages miss.

    Retrieval finds the paragraph that best matches the customer's words ("the ATM swallowed my
    card"), which is often not the one saying what to do ("order a replacement"); the intent's
    required terms name what a complete answer covers."""
    article = kb.article(article_id)
    chosen = list(passages)
    if article is None:
        return chosen
    for term in terms:
        if len(chosen) >= limit:
            break
        if any(term in p.text.lower() for p in chosen):
            continue
        for number, text in enumerate(article.paragraphs, start=1):
            if term in text.lower():
                passage_id = f"{article_id}#{number}"
                if all(p.passage_id != passage_id for p in chosen):
                    chosen.append(Passage(passage_id, article_id, article.title, text, 0.0))
                break
    return sorted(chosen, key=lambda p: int(p.passage_id.rsplit("#", 1)[1]))


def compose_answer(greeting: str, passages: Sequence[Passage], sign_off: str) -> str:
    """The passages quoted in article order between greeting and sign-off.

    The text is the customer's: it carries no internal passage ids (they travel in the draft's
    `citations` and `details["passages"]`) and no sentence the passages do not support."""
    quoted = "\n\n".join(p.text for p in passages)
    return f"{greeting}\n\nThanks for getting in touch.\n\n{quoted}\n\n{sign_off}"


class KbHandler:
    """Answers from the help centre, citing the passages it quotes; declines on weak support."""

    name = "kb"

    def __init__(self, kb: KnowledgeBase, book: TemplateBook, price: Price, *,
                 min_coverage: float = 0.35, min_score: float = 6.0) -> None:
        self.kb = kb
        self.book = book
        self.price = price
        self.min_coverage = min_coverage
        self.min_score = min_score
        self.version = f"{kb.version}+kb-answer-1"

    async def handle(self, envelope: TicketEnvelope) -> Draft | Declined:
        return self.handle_now(envelope)

    def handle_now(self, envelope: TicketEnvelope) -> Draft | Declined:
        ticket = envelope.ticket
        classification = envelope.classification
        intent = classification.intent if classification and not classification.out_of_scope \
            else None
        query = ticket_query(ticket.subject, ticket.body)
        found = retrieve(self.kb, query, intent)
        support = {"coverage": round(found.coverage, 3), "top_score": round(found.top_score, 3),
                   "article_id": found.article_id,
                   "retrieved": [[p.passage_id, p.score] for p in found.ranked[:5]]}
        if found.article_id is None:
            return Declined("no help-centre passage shares a term with the ticket",
                            details=support)
        if found.coverage < self.min_coverage:
            return Declined(
                f"weak retrieval support: best article {found.article_id!r} covers "
                f"{found.coverage:.0%} of the ticket's terms (need {self.min_coverage:.0%})",
                details=support)
        if found.top_score < self.min_score:
            return Declined(
                f"weak retrieval support: best passage scores {found.top_score:.2f} "
                f"(need {self.min_score:.2f})", details=support)
        article = self.kb.article(found.article_id)
        assert article is not None
        specialist_intent = intent if intent in article.intents else article.intents[0]
        context = TemplateContext(body=ticket.body, subject=ticket.subject,
                                  metadata=ticket.metadata)
        required = list(self.book.required_terms(specialist_intent))
        quoted = complete_with_required_terms(self.kb, found.article_id, found.passages, required)
        answer = compose_answer(self.book.greeting(context), quoted, self.book.sign_off)
        return Draft(
            handler=self.name,
            handler_version=self.version,
            answer=answer,
            cost_usd=cost_of(self.price),
            citations=[p.passage_id for p in quoted],
            required_terms=required,
            details={
                **support,
                "specialist_intent": specialist_intent,
                "passages": [{"passage_id": p.passage_id, "text": p.text} for p in quoted],
                "retrieved_passages": [p.passage_id for p in found.passages],
                "input_tokens": 0, "output_tokens": 0,
            },
        )

    async def close(self) -> None:
        return None

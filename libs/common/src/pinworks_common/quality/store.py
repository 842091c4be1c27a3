"""Quality reviews, judged scopes and their events in Postgres.

- `quality_reviews`: one row per automatic answer (ticket and attempt) that entered the agents'
  quality review (`source` `sample`: drawn by the escalation service's quality sample) or that
  an agent corrected elsewhere (`source` `correction`). `status` is `pending`, `right` or
  `wrong`; a wrong one names the intent the agent says was right.
- `quality_scopes`: the guard's latest estimate per business unit and intent group, and whether
  the scope is tightened (its tickets go to people); `since` is when its evidence starts (the
  last loosening).
- `quality_events`: every tightening (by the guard) and loosening (by an operator), with why.

Every automatic answer is read from its stored outcome (`outcomes`, key `automation[@n]`,
resolved by automation), never from a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.records import unknown_agent
from pinworks_common.db.tables import outcomes, quality_events, quality_reviews, quality_scopes
from pinworks_common.quality.estimate import (
    Budgets,
    Estimate,
    Judged,
    ScopeKind,
    ScopeState,
    Tally,
    Verdict,
    decide,
    estimate,
    scope_keys,
    tightening_reason,
)

PENDING, RIGHT, WRONG = "pending", "right", "wrong"
SAMPLE, CORRECTION = "sample", "correction"
GUARD = "quality-guard"
AUTOMATION = "automation"


class QualityError(ValueError):
    """A review action that cannot be done; the message says why and `code` names the reason
    (the console shows a page's fixed message by it)."""

    code = "refused"


class NoReview(QualityError):
    """No such review, or not in the asker's business units (they read the same)."""

    code = "no_review"


class AlreadyMarked(QualityError):
    """Someone gave the review its verdict already."""

    code = "already_marked"


class NeedsIntent(QualityError):
    """A wrong verdict without the intent that was right."""

    code = "needs_intent"


class SameIntent(QualityError):
    """A wrong verdict naming the intent the automatic answer already had."""

    code = "same_intent"


@dataclass(frozen=True)
class AutomaticAnswer:
    ticket_id: str
    attempt: int
    business_unit: str
    intent: str | None
    confidence: float | None
    handler: str | None
    answer: str | None


def _attempt_of(outcome_key: str) -> int:
    _, _, attempt = outcome_key.partition("@")
    return int(attempt) if attempt else 0


async def automatic_answers(conn: AsyncConnection, ticket_ids: Sequence[str]
                            ) -> dict[str, AutomaticAnswer]:
    """Each ticket's latest automatic answer as stored (tickets without one are left out)."""
    if not ticket_ids:
        return {}
    rows = (await conn.execute(
        select(outcomes.c.ticket_id, outcomes.c.outcome_key, outcomes.c.payload)
        .where(outcomes.c.ticket_id.in_(list(ticket_ids)), outcomes.c.status == "resolved",
               outcomes.c.outcome_key.like("automation%"))
        .order_by(outcomes.c.id)
    )).all()
    found: dict[str, AutomaticAnswer] = {}
    for row in rows:
        payload = row.payload or {}
        if payload.get("resolved_by") != AUTOMATION or payload.get("handler") in (None, "human"):
            continue
        found[row.ticket_id] = AutomaticAnswer(
            row.ticket_id, _attempt_of(row.outcome_key), str(payload.get("business_unit") or ""),
            payload.get("intent"), payload.get("confidence"), payload.get("handler"),
            payload.get("answer"))
    return found


async def add_samples(conn: AsyncConnection, answers: Iterable[AutomaticAnswer]) -> int:
    """Queue these automatic answers for review (once per ticket and attempt); how many were new."""
    values = [{"ticket_id": a.ticket_id, "attempt": a.attempt, "business_unit": a.business_unit,
               "intent": a.intent, "confidence": a.confidence, "handler": a.handler,
               "answer": a.answer, "source": SAMPLE, "status": PENDING} for a in answers]
    if not values:
        return 0
    result = await conn.execute(
        insert(quality_reviews).values(values)
        .on_conflict_do_nothing(constraint="quality_reviews_once")
        .returning(quality_reviews.c.id))
    return len(result.all())


def intent_name(intent: str) -> str:
    name = intent.strip()
    if not re.fullmatch(r"[a-z0-9_]{1,64}", name):
        raise QualityError("an intent is 1-64 lowercase letters, digits or '_'")
    return name


@dataclass(frozen=True)
class Review:
    id: int
    ticket_id: str
    attempt: int
    business_unit: str
    intent: str | None
    confidence: float | None
    handler: str | None
    answer: str | None
    source: str
    status: str
    correct_intent: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {name: (value.isoformat() if isinstance(value, datetime) else value)
                for name, value in self.__dict__.items()}


def _review(row: Any) -> Review:
    return Review(**{name: getattr(row, name) for name in Review.__dataclass_fields__})


def _filtered(query: Any, status: str | None, business_units: Sequence[str] | None) -> Any:
    if status:
        query = query.where(quality_reviews.c.status == status)
    if business_units is not None:
        query = query.where(quality_reviews.c.business_unit.in_(list(business_units)))
    return query


async def list_reviews(conn: AsyncConnection, *, status: str | None = PENDING,
                       business_units: Sequence[str] | None = None, limit: int = 50,
                       offset: int = 0) -> list[Review]:
    """Reviews oldest first; `business_units` None: every unit's."""
    rows = (await conn.execute(
        _filtered(select(quality_reviews), status, business_units)
        .order_by(quality_reviews.c.created_at, quality_reviews.c.id)
        .limit(limit).offset(offset))).all()
    return [_review(row) for row in rows]


async def count_reviews(conn: AsyncConnection, *, status: str | None = PENDING,
                        business_units: Sequence[str] | None = None) -> int:
    """How many reviews `list_reviews` would list across all pages."""
    query = _filtered(select(func.count()).select_from(quality_reviews), status, business_units)
    return int((await conn.execute(query)).scalar_one())


async def get_review(conn: AsyncConnection, review_id: int,
                     business_units: Sequence[str] | None = None) -> Review:
    row = (await conn.execute(select(quality_reviews)
                              .where(quality_reviews.c.id == review_id))).first()
    if row is None or (business_units is not None and row.business_unit not in business_units):
        raise NoReview(f"no quality review {review_id}")
    return _review(row)


async def mark(conn: AsyncConnection, review_id: int, agent: str, *, wrong: bool,
               correct_intent: str | None = None,
               business_units: Sequence[str] | None = None) -> Review:
    """An agent's verdict on a pending review: right, or wrong with the intent that was right."""
    if wrong and not correct_intent:
        raise NeedsIntent("a wrong answer needs the intent that was right")
    intent = intent_name(correct_intent) if wrong and correct_intent else None
    review = await get_review(conn, review_id, business_units)
    if wrong and intent == review.intent:
        raise SameIntent(f"the automatic answer already had intent {intent}: mark it right")
    row = (await conn.execute(
        update(quality_reviews)
        .where(quality_reviews.c.id == review_id, quality_reviews.c.status == PENDING)
        .values(status=WRONG if wrong else RIGHT, correct_intent=intent, reviewed_by=agent,
                reviewed_at=func.now())
        .returning(*quality_reviews.c))).first()
    if row is None:
        marked = await get_review(conn, review_id)
        raise AlreadyMarked(f"quality review {review_id} was already marked {marked.status} "
                            f"by {marked.reviewed_by}")
    return _review(row)


async def record_correction(conn: AsyncConnection, ticket_id: str, agent: str,
                            intent: str) -> Review | None:
    """An agent gave a ticket another intent than its automatic answer had: that answer was
    wrong. Marks its pending review, or adds one; None when the ticket had no automatic answer
    or its intent was the agent's."""
    answer = (await automatic_answers(conn, [ticket_id])).get(ticket_id)
    if answer is None or answer.intent == intent:
        return None
    row = (await conn.execute(
        insert(quality_reviews).values(
            ticket_id=ticket_id, attempt=answer.attempt, business_unit=answer.business_unit,
            intent=answer.intent, confidence=answer.confidence, handler=answer.handler,
            answer=answer.answer, source=CORRECTION, status=WRONG, correct_intent=intent,
            reviewed_by=agent, reviewed_at=func.now())
        .on_conflict_do_update(
            constraint="quality_reviews_once",
            set_={"status": WRONG, "correct_intent": intent, "reviewed_by": agent,
                  "reviewed_at": func.now()},
            where=quality_reviews.c.status != WRONG)
        .returning(*quality_reviews.c))).first()
    return None if row is None else _review(row)


async def judged(conn: AsyncConnection, since: datetime | None = None) -> list[tuple[Judged, datetime]]:
    """Every judged automatic answer (with when it was judged), from `since` on."""
    query = (select(quality_reviews.c.business_unit, quality_reviews.c.intent,
                    quality_reviews.c.status, quality_reviews.c.reviewed_at)
             .where(quality_reviews.c.status.in_([RIGHT, WRONG])))
    if since is not None:
        query = query.where(quality_reviews.c.reviewed_at >= since)
    return [(Judged(r.business_unit, r.intent, r.status == WRONG), r.reviewed_at)
            for r in (await conn.execute(query)).all()]


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str
    state: ScopeState
    reviewed: int
    wrong: int
    rate: float
    lower_bound: float
    upper_bound: float
    max_wrong_rate: float
    confidence: float
    reason: str | None
    since: datetime | None
    changed_at: datetime | None
    evaluated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {name: (value.isoformat() if isinstance(value, datetime) else
                       value.value if isinstance(value, ScopeKind | ScopeState) else value)
                for name, value in self.__dict__.items()}


def _scope(row: Any) -> Scope:
    values = {name: getattr(row, name) for name in Scope.__dataclass_fields__}
    values["kind"], values["state"] = ScopeKind(row.kind), ScopeState(row.state)
    return Scope(**values)


async def scopes(conn: AsyncConnection) -> dict[tuple[ScopeKind, str], Scope]:
    rows = (await conn.execute(select(quality_scopes)
                               .order_by(quality_scopes.c.kind, quality_scopes.c.name))).all()
    return {(ScopeKind(r.kind), r.name): _scope(r) for r in rows}


async def tightened(conn: AsyncConnection) -> dict[tuple[ScopeKind, str], str]:
    """Every tightened scope and why (what the router acts on)."""
    rows = (await conn.execute(
        select(quality_scopes.c.kind, quality_scopes.c.name, quality_scopes.c.reason)
        .where(quality_scopes.c.state == ScopeState.tightened.value))).all()
    return {(ScopeKind(r.kind), r.name): r.reason or "tightened" for r in rows}


def _numbers(estimate: Estimate) -> dict[str, Any]:
    return {"reviewed": estimate.reviewed, "wrong": estimate.wrong, "rate": estimate.rate,
            "lower_bound": estimate.lower, "upper_bound": estimate.upper,
            "max_wrong_rate": estimate.max_wrong_rate, "confidence": estimate.confidence}


async def save_verdicts(conn: AsyncConnection, verdicts: Sequence[Verdict],
                        actor: str = GUARD) -> list[Estimate]:
    """Store each scope's latest estimate; tighten those the verdicts say to (a scope another
    replica tightened first is not tightened, or recorded, twice). The newly tightened."""
    newly: list[Estimate] = []
    for verdict in verdicts:
        estimate = verdict.estimate
        numbers = _numbers(estimate)
        await conn.execute(
            insert(quality_scopes).values(
                kind=estimate.kind.value, name=estimate.name, state=ScopeState.ok.value,
                evaluated_at=func.now(), **numbers)
            .on_conflict_do_update(index_elements=["kind", "name"],
                                   set_={**numbers, "evaluated_at": func.now()}))
        if not verdict.tighten:
            continue
        reason = tightening_reason(estimate)
        flipped = (await conn.execute(
            update(quality_scopes)
            .where(and_(quality_scopes.c.kind == estimate.kind.value,
                        quality_scopes.c.name == estimate.name,
                        quality_scopes.c.state == ScopeState.ok.value))
            .values(state=ScopeState.tightened.value, reason=reason, changed_at=func.now())
            .returning(quality_scopes.c.name))).first()
        if flipped is None:
            continue
        await conn.execute(insert(quality_events).values(
            kind=estimate.kind.value, name=estimate.name, action="tighten", actor=actor,
            reason=reason, details=numbers))
        newly.append(estimate)
    return newly


async def loosen(conn: AsyncConnection, kind: ScopeKind, name: str, actor: str,
                 note: str) -> Scope:
    """An operator lets automation answer a tightened scope again; its evidence restarts now.
    `actor` is who answers for it: an agent's name (`agents`, `pinworks agent list`), the
    identity every verdict and queue action is recorded under, never a free-form name."""
    if not note.strip():
        raise QualityError("say why the scope may be loosened (--reason)")
    if (refusal := await unknown_agent(conn, actor, "the loosening")) is not None:
        raise QualityError(refusal)
    row = (await conn.execute(
        update(quality_scopes)
        .where(quality_scopes.c.kind == kind.value, quality_scopes.c.name == name,
               quality_scopes.c.state == ScopeState.tightened.value)
        .values(state=ScopeState.ok.value, since=func.now(), changed_at=func.now(),
                reason=f"loosened by {actor}: {note.strip()}", reviewed=0, wrong=0, rate=0.0,
                lower_bound=0.0, upper_bound=1.0)
        .returning(*quality_scopes.c))).first()
    if row is None:
        raise QualityError(f"{kind.value} {name} is not tightened")
    await conn.execute(insert(quality_events).values(
        kind=kind.value, name=name, action="loosen", actor=actor, reason=note.strip(),
        details={}))
    return _scope(row)


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    name: str
    action: str
    actor: str
    reason: str
    details: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": self.created_at.isoformat()}


async def events(conn: AsyncConnection, limit: int = 50) -> list[Event]:
    rows = (await conn.execute(select(quality_events)
                               .order_by(quality_events.c.id.desc()).limit(limit))).all()
    return [Event(**{name: getattr(r, name) for name in Event.__dataclass_fields__})
            for r in rows]


async def evaluate(conn: AsyncConnection, budgets: Budgets, min_reviews: int,
                   actor: str = GUARD) -> tuple[list[Verdict], list[Estimate]]:
    """Estimate every scope from its evidence since its last loosening, store the estimates and
    tighten the scopes over budget: (every verdict, the scopes tightened now)."""
    known = await scopes(conn)
    starts = [scope.since for scope in known.values() if scope.since is not None]
    everything = await judged(conn, None if len(starts) < len(known) or not starts
                              else min(starts))
    counts: dict[tuple[ScopeKind, str], Tally] = {}
    for item, judged_at in everything:
        for key in scope_keys(item, budgets.groups):
            since = known[key].since if key in known else None
            if since is None or judged_at >= since:
                seen = counts.get(key, Tally())
                counts[key] = Tally(seen.reviewed + 1, seen.wrong + int(item.wrong))
    verdicts = []
    for key in sorted(set(counts) | set(known)):
        kind, name = key
        tally = counts.get(key, Tally())
        state = known[key].state if key in known else ScopeState.ok
        verdicts.append(decide(estimate(kind, name, tally, budgets.limit(kind, name)), state,
                               min_reviews))
    return verdicts, await save_verdicts(conn, verdicts, actor)


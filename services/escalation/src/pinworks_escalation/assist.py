"""Suggested replies for the agent, assembled from what the platform recorded, and how far the
reply an agent sends differs from the one they started from.

Sources, best first: the best-matching template filled with the ticket's variables, the
knowledge-base passages (with citations) the specialists' assist stage retrieved, and the drafts
specialists wrote for the ticket: a model's draft is marked unverified, a draft the verifier
stopped says so. The texts come from the audit (`decisions`), never from the browser.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pinworks_contracts.intents import intent_label
from pinworks_contracts.subjects import ASSIST_HANDLER, Stage

ASSIST_COMPONENT = f"specialist:{ASSIST_HANDLER}"
MODEL_PREFIX = "specialist:llm"
UNCHANGED_AT = 0.999


@dataclass(frozen=True)
class Suggestion:
    source: str
    """Stable id the form posts back: `template:<intent>`, `kb`, `draft:<handler>`."""
    label: str
    text: str
    kind: str
    """template, kb or draft."""
    verified: bool | None = None
    """None for templates and passages (the book and the help centre are the bank's own text);
    False for a model's draft nobody checked, or one the verifier stopped."""
    note: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def suggestions_for(envelope: dict[str, Any], decisions: Sequence[dict[str, Any]]
                    ) -> list[Suggestion]:
    """Every suggested reply for the ticket's latest automation attempt, best first."""
    found: list[Suggestion] = []
    assist = next((d for d in reversed(decisions)
                   if d["stage"] == Stage.SPECIALIST.value and d["component"] == ASSIST_COMPONENT),
                  None)
    output = assist["output"] if assist else {}
    out_of_scope = bool((envelope.get("classification") or {}).get("out_of_scope"))
    for template in output.get("templates", []):
        found.append(Suggestion(
            source=f"template:{template['intent']}",
            label=f"Template: {intent_label(template['intent'])}",
            text=template["text"], kind="template",
            note=f"{template['score'] * 100:.0f}% likely intent · template "
                 f"{template['template_id']}"
                 + (f" · filled: {', '.join(sorted(template['variables']))}"
                    if template.get("variables") else "")
                 + (" · the classifier read the ticket as out of scope" if out_of_scope else ""),
        ))
    if output.get("kb_reply"):
        article = output.get("article") or {}
        found.append(Suggestion(
            source="kb", label=f"Help centre: {article.get('title', 'passages')}",
            text=output["kb_reply"], kind="kb",
            note=f"article {article.get('article_id')} · coverage "
                 f"{float(article.get('coverage') or 0):.2f}",
            citations=list(output.get("passages", [])),
        ))
    stopped = _verifier_reasons(decisions)
    seen_drafts: set[str] = set()
    for decision in reversed(decisions):
        if decision["stage"] != Stage.SPECIALIST.value or "draft" not in decision["output"]:
            continue
        draft = decision["output"]["draft"]
        handler = draft.get("handler", decision["component"].removeprefix("specialist:"))
        if handler in seen_drafts:
            continue
        seen_drafts.add(handler)
        model = decision["component"].startswith(MODEL_PREFIX)
        notes = []
        if model:
            notes.append("model draft, UNVERIFIED: check every fact before sending")
        if stopped:
            notes.append("the verifier stopped this draft: " + "; ".join(stopped))
        found.append(Suggestion(
            source=f"draft:{handler}",
            label=f"{'Model' if model else 'Specialist'} draft ({handler})",
            text=draft.get("answer", ""), kind="draft",
            verified=False if (model or stopped) else None,
            note=" · ".join(notes) or f"{handler} {draft.get('handler_version', '')}",
            citations=[{"passage_id": c} for c in draft.get("citations", [])],
        ))
    return [s for s in found if s.text.strip()]


def _verifier_reasons(decisions: Sequence[dict[str, Any]]) -> list[str]:
    verdict = next((d for d in reversed(decisions) if d["stage"] == Stage.VERIFIER.value), None)
    if verdict is None:
        return []
    return [reason for check in verdict["output"].get("checks", [])
            for reason in check.get("reasons", []) if not check.get("passed", True)]


def similarity(a: str, b: str) -> float:
    """1.0 for the same text; the share of characters in matching runs otherwise."""
    return round(difflib.SequenceMatcher(None, a.strip(), b.strip(), autojunk=False).ratio(), 4)


def compare(reply: str, suggestions: Sequence[Suggestion], used: str | None) -> dict[str, Any]:
    """How the sent reply relates to the suggestions: the one the agent inserted (if any) and
    the closest one, with their similarity."""
    by_source = {s.source: s for s in suggestions}
    closest = max(suggestions, key=lambda s: similarity(reply, s.text), default=None)
    result: dict[str, Any] = {
        "offered": [s.source for s in suggestions],
        "used": None, "similarity": None, "unchanged": False,
        "closest": closest.source if closest else None,
        "closest_similarity": similarity(reply, closest.text) if closest else None,
        "reply_chars": len(reply),
    }
    start = by_source.get(used) if used else None
    if start is not None:
        score = similarity(reply, start.text)
        result.update(used=start.source, similarity=score, unchanged=score >= UNCHANGED_AT,
                      suggested_chars=len(start.text))
    return result

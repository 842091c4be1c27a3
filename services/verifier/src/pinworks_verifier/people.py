"""Other people: names and postal addresses in a draft that belong to anyone but the customer.

Found with the shared detector (`pinworks_common.personal_data`). A name or address is allowed
when the customer's own record holds it (the ticket's subject, body and metadata, whose name
fields give the customer's name), when the passages the draft was written from hold it, or when
it is the bank's own (`allowed`); anything else was leaked from another record or invented.
"""

from __future__ import annotations

from collections.abc import Iterable

from pinworks_common.personal_data import Kind, find, known_names
from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.result import CheckResult

KINDS = (Kind.NAME, Kind.ADDRESS)


class PeopleCheck:
    name = "people"
    version = "people-1"

    def __init__(self, allowed: Iterable[str] = ("Larkspur Bank", "Larkspur")) -> None:
        self.allowed = tuple(a.lower() for a in allowed)

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        if draft is None:
            return CheckResult(self.name, self.version, True)
        ticket = envelope.ticket
        metadata = {k: v for k, v in ticket.metadata.items()}
        own = known_names(metadata)
        context = " ".join([ticket.subject or "", ticket.body,
                            *(str(v) for v in metadata.values()),
                            *(str(p.get("text", "")) for p in draft.details.get("passages", [])
                              if isinstance(p, dict)), *self.allowed]).lower()
        reasons: list[str] = []
        kinds: list[str] = []
        for finding in find(draft.answer, known_names=own):
            if finding.kind not in KINDS or " ".join(finding.text.split()).lower() in context:
                continue
            kinds.append(finding.kind.value.lower())
            reasons.append(f"people: the draft contains a {finding.kind.value.lower()} that is "
                           "neither the customer's nor in the passages")
        return CheckResult(self.name, self.version, not reasons, tuple(dict.fromkeys(reasons)),
                           {"kinds": sorted(set(kinds))})

"""Which routing policies a router replica loads: only those `pinworks policy apply` recorded.

The KV bucket carries the live and the shadow policy to every replica, but whoever may write the
bucket could put any text there. So a replica loads a KV value only when `routing_policies`
holds a row with exactly that content for that key (a live row, or for the shadow key a row
whose source is `shadow:FILE`), read with the router's own Postgres role. Any other value, or
one that is not a valid policy, is refused: logged, counted in
`pinworks_refusals_total{stage="router"}` and recorded in `policy_refusals`; the running policy
stays.

A value the replica cannot check (Postgres unreachable) is refused, logged and counted as
`unverified_policy` as well, and its watcher checks it again every
`ROUTER_POLICY_RECHECK_SECONDS` until Postgres answers (`PolicyWatcher._recheck`): then a
recorded value that is still the key's newest loads, and any other is refused again with its
real verdict, so its refusal is audited after all.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import insert, not_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.tables import policy_refusals, routing_policies
from pinworks_common.provenance import REFUSALS
from pinworks_contracts.subjects import ROUTER_SHADOW_KEY
from pinworks_router.policy import Policy, PolicyError, content_version, parse_policy

log = logging.getLogger("pinworks.router.policy")

SHADOW_SOURCE = "shadow:"
"""`pinworks policy apply --shadow` records its row with source `shadow:FILE`."""
STAGE = "router"
INVALID_POLICY = "invalid_policy"
UNRECORDED_POLICY = "unrecorded_policy"
UNVERIFIED_POLICY = "unverified_policy"
EXCERPT = 2000
"""Characters of a refused value kept in the audit (its digest covers all of it)."""


@dataclass(frozen=True)
class Verdict:
    """A checked KV value: the policy to load, or why not (`kind` is a bounded metric label)."""

    policy: Policy | None
    kind: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Offered:
    """One revision of a policy key in the KV bucket."""

    bucket: str
    key: str
    revision: int
    text: str

    @property
    def source(self) -> str:
        return f"kv:{self.bucket}/{self.key}@{self.revision}"


def _text(value: str) -> str:
    """Postgres text holds no NUL: a value must not escape its audit row by carrying one."""
    return value.replace("\x00", "\ufffd")[:EXCERPT]


def _is_shadow(key: str) -> bool:
    return key == ROUTER_SHADOW_KEY


class PolicyRecords:
    """The recorded policy history as a router replica reads it, and its refusals' audit."""

    def __init__(self, engine: AsyncEngine, replica: str) -> None:
        self.engine, self.replica = engine, replica

    async def verify(self, offered: Offered) -> Verdict:
        """Load `offered` only if it parses and `routing_policies` records it for its key."""
        try:
            policy = parse_policy(offered.text, offered.source)
        except PolicyError as exc:
            return Verdict(None, INVALID_POLICY, str(exc))
        try:
            recorded = await self.recorded(offered.text, offered.key)
        except (SQLAlchemyError, OSError) as exc:
            return Verdict(None, UNVERIFIED_POLICY,
                           f"{policy.version}: cannot check routing_policies: {exc}")
        if not recorded:
            role = "shadow" if _is_shadow(offered.key) else "live"
            return Verdict(None, UNRECORDED_POLICY,
                           f"{policy.version} from {offered.source} matches no recorded {role} "
                           "policy in routing_policies (not applied with `pinworks policy apply`)")
        return Verdict(policy)

    async def recorded(self, text: str, key: str) -> bool:
        shadow_row = routing_policies.c.source.startswith(SHADOW_SOURCE, autoescape=True)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(routing_policies.c.id).where(
                routing_policies.c.version == content_version(text),
                routing_policies.c.content == text,
                shadow_row if _is_shadow(key) else not_(shadow_row),
            ).limit(1))).first()
        return row is not None

    async def latest_live(self) -> Policy | None:
        """The newest recorded live policy (what the last `pinworks policy apply` set)."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(routing_policies.c.id, routing_policies.c.content)
                .where(not_(routing_policies.c.source.startswith(SHADOW_SOURCE, autoescape=True)))
                .order_by(routing_policies.c.id.desc()).limit(1))).first()
        if row is None:
            return None
        return parse_policy(row.content, f"routing_policies#{row.id}")

    async def refuse(self, offered: Offered, verdict: Verdict, kept: str | None) -> None:
        """Log, count and audit one refused value; the caller keeps its running policy."""
        log.error("refused policy %s; keeping %s: %s%s", offered.source, kept or "no shadow",
                  verdict.reason, "; it is checked again until Postgres answers"
                  if verdict.kind == UNVERIFIED_POLICY else "")
        REFUSALS.labels(STAGE, verdict.kind).inc()
        if verdict.kind == UNVERIFIED_POLICY:
            return  # audited once it can be checked (PolicyWatcher._recheck)
        version = content_version(offered.text) if verdict.kind == UNRECORDED_POLICY else None
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(policy_refusals).values(
                    bucket=offered.bucket, key=offered.key, revision=offered.revision,
                    kind=verdict.kind, reason=_text(verdict.reason), version=version,
                    content_sha256=hashlib.sha256(offered.text.encode()).hexdigest(),
                    excerpt=_text(offered.text), kept_version=kept, replica=self.replica))
        except (SQLAlchemyError, OSError):
            log.exception("could not audit the refusal of %s", offered.source)

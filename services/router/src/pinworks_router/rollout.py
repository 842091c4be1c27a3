"""Policy rollout without restart: history in Postgres, distribution through a NATS KV bucket.

`pinworks policy apply` validates a policy, appends it to `routing_policies` and puts its text
under `ROUTER_POLICY_KEY` in the KV bucket. Every router replica watches that key and swaps its
`PolicyHolder` in one assignment; the stage reads the holder once per batch, so a batch is routed
by exactly one version. A value that does not parse, or that `routing_policies` does not record
(written to the bucket around the CLI), is refused, logged and audited: the running policy stays
(pinworks_router.policy_trust).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.background import BackgroundTask
from pinworks_common.db.tables import routing_policies
from pinworks_contracts.subjects import ROUTER_POLICY_BUCKET, ROUTER_POLICY_KEY
from pinworks_router.policy import Policy, PolicyError, parse_policy
from pinworks_router.policy_trust import UNVERIFIED_POLICY, Offered, PolicyRecords, Verdict

log = logging.getLogger(__name__)
KV_HISTORY = 16
RECHECK_SECONDS = 5.0
"""How often a policy value Postgres could not check is checked again (the router's setting
ROUTER_POLICY_RECHECK_SECONDS)."""
_WAKERS: set[asyncio.Task[None]] = set()


class _Watched:
    """Lets a test (or an operator tool) wait, event-driven, for a holder to change."""

    _changed: asyncio.Condition | None = None

    def _notify(self) -> None:
        if self._changed is not None:
            changed = self._changed

            async def wake() -> None:
                async with changed:
                    changed.notify_all()
            with contextlib.suppress(RuntimeError):
                task = asyncio.get_running_loop().create_task(wake())
                _WAKERS.add(task)
                task.add_done_callback(_WAKERS.discard)

    async def wait_for(self, predicate: Callable[[Any], bool], seconds: float) -> None:
        """Wait until `predicate(self)` holds; TimeoutError otherwise."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: predicate(self))


@dataclass
class PolicyHolder(_Watched):
    """The policy a router replica routes with; replaced atomically, never by a refused one."""

    policy: Policy
    rejected: list[str] = field(default_factory=list)

    def load(self, candidate: Policy, source: str) -> None:
        if candidate.version != self.policy.version:
            log.info("routing policy %s -> %s (%s)", self.policy.version, candidate.version, source)
            self.policy = candidate
        self._notify()

    def refuse(self, reason: str) -> None:
        """Keep the running policy; `rejected` tells a test and `policy replicas` why."""
        self.rejected.append(reason)
        self._notify()


@dataclass
class ShadowHolder(_Watched):
    """The candidate policy run beside the live one, or None; a refused value never loads."""

    policy: Policy | None = None
    rejected: list[str] = field(default_factory=list)

    def load(self, candidate: Policy, source: str) -> None:
        self.policy = candidate
        log.info("shadow policy %s (%s)", candidate.version, source)
        self._notify()

    def refuse(self, reason: str) -> None:
        self.rejected.append(reason)
        self._notify()

    def clear(self, source: str) -> None:
        log.info("shadow policy cleared (%s)", source)
        self.policy = None
        self._notify()


async def policy_bucket(js: JetStreamContext, bucket: str = ROUTER_POLICY_BUCKET) -> KeyValue:
    """The KV bucket, created (file storage, some history) when it does not exist yet."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(
            bucket=bucket, history=KV_HISTORY, storage=StorageType.FILE,
            description="Live pinworks routing policy (YAML) for every router replica."))


async def live_policy_text(kv: KeyValue, key: str = ROUTER_POLICY_KEY) -> str | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


async def publish_policy(kv: KeyValue, policy: Policy, text: str,
                         key: str = ROUTER_POLICY_KEY) -> int:
    """Put a validated policy's text as the live (or shadow) one; returns the KV revision."""
    if parse_policy(text, policy.source).version != policy.version:
        raise PolicyError(f"{policy.source}: text does not match version {policy.version}")
    return int(await kv.put(key, text.encode()))


async def record_policy(conn: AsyncConnection, policy: Policy, text: str, applied_by: str) -> int:
    result = await conn.execute(insert(routing_policies).values(
        version=policy.version, content=text, source=policy.source, applied_by=applied_by,
    ).returning(routing_policies.c.id))
    return int(result.scalar_one())


@dataclass(frozen=True)
class AppliedPolicy:
    id: int
    version: str
    source: str
    applied_by: str
    created_at: datetime
    content: str


async def policy_history(conn: AsyncConnection, limit: int = 50) -> list[AppliedPolicy]:
    rows = (await conn.execute(
        select(routing_policies).order_by(routing_policies.c.id.desc()).limit(limit))).all()
    return [AppliedPolicy(r.id, r.version, r.source, r.applied_by, r.created_at, r.content)
            for r in rows]


async def policy_by_version(conn: AsyncConnection, version: str) -> AppliedPolicy | None:
    row = (await conn.execute(
        select(routing_policies).where(routing_policies.c.version == version)
        .order_by(routing_policies.c.id.desc()).limit(1))).first()
    return None if row is None else AppliedPolicy(
        row.id, row.version, row.source, row.applied_by, row.created_at, row.content)


REPLICAS_PREFIX = "replicas"


def replica_key(replica: str, key: str = ROUTER_POLICY_KEY) -> str:
    safe = re.sub(r"[^-A-Za-z0-9_]", "_", replica)[:100]
    return f"{REPLICAS_PREFIX}.{key}.{safe}"


def replica_name() -> str:
    """This process: host and pid (a replica that restarts reports afresh)."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def replica_states(kv: KeyValue) -> list[dict[str, Any]]:
    """What every replica last reported running (stale entries stay until the bucket's TTL)."""
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    states = []
    for key in sorted(k for k in keys if k.startswith(f"{REPLICAS_PREFIX}.")):
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(key)
            if entry.value:
                states.append(json.loads(entry.value))
    return states


class PolicyWatcher:
    """Follows a policy key and loads every new value that `records` verifies (policy_trust)."""

    def __init__(self, kv: KeyValue, holder: PolicyHolder | ShadowHolder, records: PolicyRecords,
                 bucket: str = ROUTER_POLICY_BUCKET, key: str = ROUTER_POLICY_KEY,
                 replica: str | None = None, recheck_seconds: float = RECHECK_SECONDS) -> None:
        """`replica`: when given, the version this replica runs is reported under
        `replicas.<replica>` in the bucket after start and after every change.
        `recheck_seconds`: how often a value that could not be checked (Postgres unreachable)
        is checked again."""
        self.kv, self.holder, self.records, self.bucket, self.key = kv, holder, records, bucket, key
        self.replica = replica
        self.recheck_seconds = recheck_seconds
        self._follow_task = BackgroundTask("router-policy-watch")
        self._recheck_task = BackgroundTask("router-policy-recheck")
        self._watcher: Any = None
        self._newest = 0
        """Revision of the newest entry of the key this watcher has seen."""
        self.unchecked: dict[int, Offered] = {}
        """Values refused because Postgres could not say whether they were recorded, by
        revision: checked again until it can (`_recheck`), so none goes unaudited."""
        self._unchecked_waiting = asyncio.Event()

    async def start(self) -> None:
        """Load the live policy (if any) before returning, then follow changes in the background.

        A refused value at start is no reason to route by the file policy: the replica takes
        the last good one instead (`_recover`)."""
        self._watcher = await self.kv.watch(self.key)
        loaded = True
        while True:  # initial value(s), then the None marker
            entry = await self._watcher.updates(timeout=10)
            if entry is None:
                break
            loaded = await self._offer(entry)
        if not loaded:
            await self._recover()
        await self._report()
        self._follow_task.start(self._follow())
        self._recheck_task.start(self._recheck())

    async def _recover(self) -> None:
        """The key holds a refused value: load the newest revision in its KV history that is
        recorded (a deletion there clears the shadow), else for the live key the newest
        recorded live policy, else keep the file policy."""
        with contextlib.suppress(NoKeysError, KeyNotFoundError):
            for entry in reversed(await self.kv.history(self.key)):
                if self._deleted(entry):
                    if isinstance(self.holder, ShadowHolder):
                        self.holder.clear(f"{self._offered(entry).source}, last good")
                        return
                    continue
                offered = self._offered(entry)
                verdict = await self.records.verify(offered)
                if verdict.policy is not None:
                    self.holder.load(verdict.policy, f"{offered.source}, last good")
                    return
        if isinstance(self.holder, PolicyHolder):
            try:
                latest = await self.records.latest_live()
            except (SQLAlchemyError, OSError, PolicyError):
                log.exception("no recorded policy to fall back to; keeping %s",
                              self.holder.policy.version)
                return
            if latest is not None:
                self.holder.load(latest, f"{latest.source}, last recorded")

    async def _report(self) -> None:
        if self.replica is None:
            return
        policy = self.holder.policy
        state = {"replica": self.replica, "key": self.key, "at": datetime.now(UTC).isoformat(),
                 "version": policy.version if policy else None,
                 "rejected": self.holder.rejected[-1:]}
        try:
            await self.kv.put(replica_key(self.replica, self.key), json.dumps(state).encode())
        except Exception:  # reporting is best effort; routing goes on with the swapped policy
            log.exception("could not report the running policy version")

    @staticmethod
    def _deleted(entry: Any) -> bool:
        return entry.operation in (KV_DEL, KV_PURGE) or not entry.value

    def _offered(self, entry: Any) -> Offered:
        text = entry.value.decode(errors="replace") if entry.value else ""
        return Offered(self.bucket, self.key, int(entry.revision), text)

    async def _offer(self, entry: Any) -> bool:
        """Load the entry if verified (True); refuse, audit and keep the running one if not."""
        offered = self._offered(entry)
        self._newest = max(self._newest, offered.revision)
        if self._deleted(entry):
            if isinstance(self.holder, ShadowHolder):
                self.holder.clear(offered.source)
            else:
                log.warning("live policy key deleted; keeping %s", self.holder.policy.version)
            return True
        verdict = await self.records.verify(offered)
        if verdict.policy is None:
            await self._refuse(offered, verdict)
            return False
        self.holder.load(verdict.policy, offered.source)
        return True

    async def _refuse(self, offered: Offered, verdict: Verdict) -> None:
        kept = self.holder.policy.version if self.holder.policy else None
        await self.records.refuse(offered, verdict, kept)
        self.holder.refuse(verdict.reason)
        if verdict.kind == UNVERIFIED_POLICY:
            self.unchecked[offered.revision] = offered
            while len(self.unchecked) > KV_HISTORY:
                dropped = self.unchecked.pop(min(self.unchecked))
                log.error("policy %s was never checked against routing_policies and is no "
                          "longer tracked: %d newer values wait to be checked", dropped.source,
                          KV_HISTORY)
            self._unchecked_waiting.set()

    async def _recheck(self) -> None:
        """Check every unchecked value again once Postgres answers: a recorded one that is still
        the key's newest loads; any other is refused again with its real verdict, so its refusal
        is audited in `policy_refusals` (and counted under that kind) after all."""
        while True:
            await self._unchecked_waiting.wait()
            await asyncio.sleep(self.recheck_seconds)
            for revision in sorted(self.unchecked):
                offered = self.unchecked[revision]
                verdict = await self.records.verify(offered)
                if verdict.kind == UNVERIFIED_POLICY:
                    break  # still unreachable: the next round tries again
                del self.unchecked[revision]
                if verdict.policy is None:
                    log.warning("policy %s, refused while Postgres was unreachable, is checked "
                                "now: %s", offered.source, verdict.reason)
                    await self._refuse(offered, verdict)
                elif revision == self._newest:
                    self.holder.load(verdict.policy, f"{offered.source}, checked again")
                    await self._report()
                else:
                    log.info("policy %s is recorded; a newer value of %s came since",
                             offered.source, self.key)
            if not self.unchecked:
                self._unchecked_waiting.clear()

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is not None:
                await self._offer(entry)
                await self._report()

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        await self._follow_task.stop()
        await self._recheck_task.stop()

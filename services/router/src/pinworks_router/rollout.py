"""Policy rollout without restart: history in Postgres, distribution through a NATS KV bucket.

`pinworks policy apply` validates a policy, appends it to `routing_policies` and puts its text
under `ROUTER_POLICY_KEY` in the KV bucket. Every router replica watches that key and swaps its
`PolicyHolder` in one assignment; the stage reads the holder once per batch, so a batch is routed
by exactly one version. A value that does not parse is refused and logged: the running policy
stays.
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
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.background import BackgroundTask
from pinworks_common.db.tables import routing_policies
from pinworks_contracts.subjects import ROUTER_POLICY_BUCKET, ROUTER_POLICY_KEY
from pinworks_router.policy import Policy, PolicyError, parse_policy

log = logging.getLogger(__name__)
KV_HISTORY = 16
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
    """The policy a router replica routes with; replaced atomically, never by a broken one."""

    policy: Policy
    rejected: list[str] = field(default_factory=list)

    def offer(self, text: str, source: str) -> bool:
        """Parse `text`; swap it in when valid (True), keep the running policy when not."""
        try:
            candidate = parse_policy(text, source)
        except PolicyError as exc:
            self.rejected.append(str(exc))
            log.error("refused policy from %s; keeping %s: %s", source, self.policy.version, exc)
            self._notify()
            return False
        if candidate.version != self.policy.version:
            log.info("routing policy %s -> %s (%s)", self.policy.version, candidate.version, source)
            self.policy = candidate
        self._notify()
        return True


@dataclass
class ShadowHolder(_Watched):
    """The candidate policy run beside the live one, or None; a broken value is refused."""

    policy: Policy | None = None
    rejected: list[str] = field(default_factory=list)

    def offer(self, text: str, source: str) -> bool:
        try:
            self.policy = parse_policy(text, source)
        except PolicyError as exc:
            self.rejected.append(str(exc))
            log.error("refused shadow policy from %s: %s", source, exc)
            self._notify()
            return False
        log.info("shadow policy %s (%s)", self.policy.version, source)
        self._notify()
        return True

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
    """Follows the live-policy key and offers every new value to the holder."""

    def __init__(self, kv: KeyValue, holder: PolicyHolder | ShadowHolder,
                 bucket: str = ROUTER_POLICY_BUCKET, key: str = ROUTER_POLICY_KEY,
                 replica: str | None = None) -> None:
        """`replica`: when given, the version this replica runs is reported under
        `replicas.<replica>` in the bucket after start and after every change."""
        self.kv, self.holder, self.bucket, self.key = kv, holder, bucket, key
        self.replica = replica
        self._follow_task = BackgroundTask("router-policy-watch")
        self._watcher: Any = None

    async def start(self) -> None:
        """Load the live policy (if any) before returning, then follow changes in the background."""
        self._watcher = await self.kv.watch(self.key)
        while True:  # initial value(s), then the None marker
            entry = await self._watcher.updates(timeout=10)
            if entry is None:
                break
            self._offer(entry)
        await self._report()
        self._follow_task.start(self._follow())

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

    def _offer(self, entry: Any) -> None:
        source = f"kv:{self.bucket}/{self.key}@{entry.revision}"
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            if isinstance(self.holder, ShadowHolder):
                self.holder.clear(source)
            else:
                log.warning("live policy key deleted; keeping %s", self.holder.policy.version)
            return
        self.holder.offer(entry.value.decode(), source)

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is not None:
                self._offer(entry)
                await self._report()

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        await self._follow_task.stop()

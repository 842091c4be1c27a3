"""Counting the deliveries a stage began and never finished.

A message that kills its process on every delivery (a segfault, an OOM kill, `os._exit`) raises
nothing a stage could count, and JetStream would hand it out for ever. JetStream's own delivery
count cannot tell such a message from one whose deliveries were waited out through an
infrastructure fault (each nak is a delivery too), nor from the innocent messages of the batch
it took down with it. So the stage runner counts, in Postgres and committed before it begins,
each redelivered message it takes up without having settled the earlier delivery itself (a
suspect): the count survives the crash it is there to see, and it grows only for the messages
in hand when the process died. Suspects never counted yet (after a restart, every message the
dead process held) are counted together in one statement and taken up together, as one batch
after the fresh messages; a suspect counted before (its group, or itself, died in hand) is
taken up alone, the least-often begun first, so a message that kills its process is isolated
on its next delivery and its count then grows alone. A finished delivery (acknowledged,
dead-lettered) deletes its row; one the stage settled itself (a nak for an infrastructure fault
or for its own failure) takes its count back.

A row can outlive its message: the deletion after the ack is lost to a crash or a database
error, or the message never comes back (deleted from its stream, as an erasure deletes a
submission, or aged out of it while its count waited). Such a row is never read again (stream
sequences are not reused), so nothing goes wrong, but the table would grow for ever. Each
service therefore sweeps its stages' rows (`UnfinishedSweep`, every
`PINWORKS_UNFINISHED_SWEEP_SECONDS`): a row not updated for longer than its stream's max age
(`streams.STREAM_MAX_AGE_SECONDS`) is deleted. That rule needs nothing from NATS and can never
take a live count: a row is updated on every delivery it counts, each after the message was
published, and JetStream deletes a message once it is older than its stream's max age, so a
row that old has no message left to count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.background import BackgroundTask

log = logging.getLogger("pinworks.deliveries")

SWEEP_BATCH_ROWS = 1000
"""Rows one sweep statement deletes at most: a backlog is deleted in short transactions."""


class UnfinishedDeliveries(Protocol):
    """Per stage and stream sequence, how often a delivery was begun and never finished."""

    async def counts(self, stage: str, seqs: Collection[int]) -> dict[int, int]:
        """The count of each of `seqs` that has one."""

    async def begin(self, stage: str, seqs: Collection[int]) -> None:
        """One more delivery begun of each of `seqs`, committed before this returns."""

    async def take_back(self, stage: str, seqs: Collection[int]) -> None:
        """The deliveries just begun ended, settled by the stage (they will come again)."""

    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        """The messages are done with (acknowledged or dead-lettered)."""

    async def sweep(self, stage: str, older_than_seconds: float, limit: int) -> int:
        """Delete at most `limit` of the stage's rows not updated for `older_than_seconds`;
        how many were deleted."""


class PostgresUnfinishedDeliveries:
    """`unfinished_deliveries` rows, each call one statement in its own transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def counts(self, stage: str, seqs: Collection[int]) -> dict[int, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT stream_seq, started FROM unfinished_deliveries "
                "WHERE stage = :stage AND stream_seq = ANY(:seqs)"),
                {"stage": stage, "seqs": list(seqs)})
            return {int(seq): int(started) for seq, started in rows}

    async def begin(self, stage: str, seqs: Collection[int]) -> None:
        await self._execute(
            "INSERT INTO unfinished_deliveries (stage, stream_seq, started) "
            "SELECT :stage, seq, 1 FROM unnest(CAST(:seqs AS bigint[])) AS seq "
            "ON CONFLICT (stage, stream_seq) DO UPDATE "
            "SET started = unfinished_deliveries.started + 1, updated_at = now()", stage, seqs)

    async def take_back(self, stage: str, seqs: Collection[int]) -> None:
        await self._execute(
            "UPDATE unfinished_deliveries SET started = started - 1, updated_at = now() "
            "WHERE stage = :stage AND stream_seq = ANY(:seqs) AND started > 0", stage, seqs)

    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        # Not waiting for the WAL flush (a commit's fsync, the most of a small transaction's
        # time): a forgetting lost to a crash only leaves a row behind a message that is done
        # with, which nothing reads again.
        await self._execute(
            "DELETE FROM unfinished_deliveries WHERE stage = :stage AND stream_seq = ANY(:seqs)",
            stage, seqs, durable=False)

    async def sweep(self, stage: str, older_than_seconds: float, limit: int) -> int:
        # The age is checked again outside the subquery: a row a delivery updates meanwhile
        # is re-read by the DELETE (READ COMMITTED) and kept.
        async with self.engine.begin() as conn:
            result = await conn.execute(text(
                "DELETE FROM unfinished_deliveries "
                "WHERE stage = :stage AND updated_at < now() - make_interval(secs => :age) "
                "AND stream_seq IN (SELECT stream_seq FROM unfinished_deliveries "
                "WHERE stage = :stage AND updated_at < now() - make_interval(secs => :age) "
                "ORDER BY stream_seq LIMIT :limit)"),
                {"stage": stage, "age": older_than_seconds, "limit": limit})
            return int(result.rowcount)

    async def _execute(self, statement: str, stage: str, seqs: Collection[int], *,
                       durable: bool = True) -> None:
        async with self.engine.begin() as conn:
            if not durable:
                await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await conn.execute(text(statement), {"stage": stage, "seqs": sorted(set(seqs))})


class MemoryUnfinishedDeliveries:
    """The same counts in memory (component tests; a process's crash forgets them); `clock`
    (seconds) stamps each change, as `updated_at` does."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.started: dict[tuple[str, int], int] = {}
        self.updated: dict[tuple[str, int], float] = {}
        self.clock = clock

    async def counts(self, stage: str, seqs: Collection[int]) -> dict[int, int]:
        return {seq: self.started[stage, seq] for seq in seqs if (stage, seq) in self.started}

    async def begin(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            self.started[stage, seq] = self.started.get((stage, seq), 0) + 1
            self.updated[stage, seq] = self.clock()

    async def take_back(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            if self.started.get((stage, seq), 0) > 0:
                self.started[stage, seq] -= 1
                self.updated[stage, seq] = self.clock()

    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            self.started.pop((stage, seq), None)
            self.updated.pop((stage, seq), None)

    async def sweep(self, stage: str, older_than_seconds: float, limit: int) -> int:
        cutoff = self.clock() - older_than_seconds
        old = sorted(seq for (row_stage, seq), at in self.updated.items()
                     if row_stage == stage and at < cutoff)[:limit]
        for seq in old:
            del self.started[stage, seq], self.updated[stage, seq]
        return len(old)


class UnfinishedSweep:
    """Every `interval_seconds` (and once at start), deletes each added stage's rows not
    updated for longer than its stream's max age (see the module), `SWEEP_BATCH_ROWS` per
    statement until none is left; a failed round is logged and tried again next time."""

    def __init__(self, interval_seconds: float, batch_rows: int = SWEEP_BATCH_ROWS) -> None:
        self.interval_seconds = interval_seconds
        self.batch_rows = batch_rows
        self.stages: list[tuple[UnfinishedDeliveries, str, float]] = []
        self._task = BackgroundTask("unfinished-deliveries-sweep")

    def add(self, unfinished: UnfinishedDeliveries, stage: str, max_age_seconds: float) -> None:
        """Sweep `stage`'s rows in `unfinished`, whose messages' stream keeps them
        `max_age_seconds`."""
        self.stages.append((unfinished, stage, max_age_seconds))

    async def run_once(self) -> int:
        """How many rows were deleted."""
        deleted = 0
        for unfinished, stage, max_age in self.stages:
            while True:
                swept = await unfinished.sweep(stage, max_age, self.batch_rows)
                deleted += swept
                if swept < self.batch_rows:
                    break
        return deleted

    async def start(self) -> None:
        if self.stages and not self._task.running:
            self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                if deleted := await self.run_once():
                    log.info("deleted %d unfinished-delivery count(s) older than their "
                             "stream's max age", deleted)
            except Exception as error:  # noqa: BLE001 - the rows wait for the next round
                log.warning("sweeping unfinished-delivery counts failed: %r", error)
            await asyncio.sleep(self.interval_seconds)

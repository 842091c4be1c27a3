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
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


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

    async def _execute(self, statement: str, stage: str, seqs: Collection[int], *,
                       durable: bool = True) -> None:
        async with self.engine.begin() as conn:
            if not durable:
                await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await conn.execute(text(statement), {"stage": stage, "seqs": sorted(set(seqs))})


class MemoryUnfinishedDeliveries:
    """The same counts in memory (component tests; a process's crash forgets them)."""

    def __init__(self) -> None:
        self.started: dict[tuple[str, int], int] = {}

    async def counts(self, stage: str, seqs: Collection[int]) -> dict[int, int]:
        return {seq: self.started[stage, seq] for seq in seqs if (stage, seq) in self.started}

    async def begin(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            self.started[stage, seq] = self.started.get((stage, seq), 0) + 1

    async def take_back(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            if self.started.get((stage, seq), 0) > 0:
                self.started[stage, seq] -= 1

    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        for seq in set(seqs):
            self.started.pop((stage, seq), None)

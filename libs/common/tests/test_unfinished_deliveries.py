"""A message its process dies on is dead-lettered after PINWORKS_MAX_UNFINISHED_DELIVERIES
deliveries, its batch-mates get through, and deliveries the stage settled itself (infrastructure
faults waited out, its own failures) never count. A process's death is a BaseException out of
`process`; each new runner is the restarted process, the counts are what Postgres keeps."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from sqlalchemy import exc as sa_exc

from pinworks_common.deliveries import MemoryUnfinishedDeliveries, UnfinishedSweep
from pinworks_common.ledger import Entries, Ledger, Publication
from pinworks_common.ledger.memory import MemoryBooks, MemoryMessage
from pinworks_common.stage import Delivery, StageRunner, Work
from pinworks_contracts.messages import Outcome

MAX_UNFINISHED = 3


class Died(BaseException):
    """The process dying (a segfault, an OOM kill): nothing the runner can catch."""


class Logic:
    stage = "test"

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.batches: list[list[str]] = []

    def decode(self, delivery: Delivery) -> str:
        return delivery.data.decode()

    async def apply(self, ledger: Ledger, work: Sequence[Work[str]]) -> Entries:
        for item in work:
            if item.value == "dies":
                raise Died
            if item.value == "outage":
                raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("down"))
            if item.value == "fails":
                raise ValueError("cannot")
        self.applied.extend(item.value for item in work)
        self.batches.append([item.value for item in work])
        return Entries()


class CountedStatements(MemoryUnfinishedDeliveries):
    """The counts, and how many statements changed them (each is one on Postgres)."""

    def __init__(self) -> None:
        super().__init__()
        self.statements = 0

    async def begin(self, stage: str, seqs: Collection[int]) -> None:
        self.statements += 1
        await super().begin(stage, seqs)

    async def take_back(self, stage: str, seqs: Collection[int]) -> None:
        self.statements += 1
        await super().take_back(stage, seqs)

    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        self.statements += 1
        await super().forget(stage, seqs)

    async def sweep(self, stage: str, older_than_seconds: float, limit: int) -> int:
        self.statements += 1
        return await super().sweep(stage, older_than_seconds, limit)


class Platform:
    """The durable part (ledger, counts, published dead letters) and a process over it."""

    def __init__(self, max_unfinished: int = MAX_UNFINISHED) -> None:
        self.max_unfinished = max_unfinished
        self.books = MemoryBooks()
        self.unfinished: MemoryUnfinishedDeliveries = CountedStatements()
        self.published: list[Publication] = []
        self.logic = Logic()
        self.runner = self.restart()

    def restart(self) -> StageRunner[str]:
        async def publish(publication: Publication) -> None:
            self.published.append(publication)

        self.runner = StageRunner(self.logic, self.books, publish, max_deliveries=3,
                                  max_unfinished_deliveries=self.max_unfinished,
                                  unfinished=self.unfinished)
        return self.runner

    def deliver(self, *messages: MemoryMessage) -> bool:
        """Whether the process survived the batch (else it is restarted)."""
        try:
            asyncio.run(self.runner.process(messages))  # type: ignore[arg-type]
        except Died:
            self.restart()
            return False
        return True

    def dead_letters(self) -> list[dict[str, object]]:
        return list(self.books.store.rows("dead_letters"))


def test_a_message_its_process_dies_on_is_dead_lettered_and_its_batch_mates_get_through() -> None:
    platform = Platform()
    batch = [MemoryMessage(b"a", 1), MemoryMessage(b"dies", 2), MemoryMessage(b"b", 3)]
    assert not platform.deliver(*batch)
    assert platform.logic.applied == []
    pending = [message.redelivered() for message in batch]
    crashes = 1
    while pending:
        survived = platform.deliver(*pending)
        if platform.dead_letters():  # the least-often begun go first: a and b got through
            assert sorted(platform.logic.applied) == ["a", "b"]
        crashes += not survived
        pending = [message.redelivered() for message in pending if not message.acked]
        assert crashes <= MAX_UNFINISHED, "dead-lettered after MAX_UNFINISHED deaths"
    assert crashes == MAX_UNFINISHED
    assert sorted(platform.logic.applied) == ["a", "b"], "each batch-mate processed once"
    [letter] = platform.dead_letters()
    assert letter["stream_seq"] == 2 and letter["deliveries"] == MAX_UNFINISHED + 1
    assert "begun 3 times and never finished" in str(letter["error"])
    assert [p.subject for p in platform.published] == ["pinworks.deadletter.test"]
    assert platform.unfinished.started == {}, "finished messages leave no count behind"


def test_deliveries_settled_by_the_stage_never_count() -> None:
    platform = Platform()
    message = MemoryMessage(b"outage", 7)
    for _ in range(10):  # an outage waited out: every delivery a nak of this process
        assert platform.deliver(message)
        assert message.naked is not None and not message.acked
        message = message.redelivered()
    assert platform.unfinished.started == {} and platform.dead_letters() == []
    platform.restart()  # a restart forgets those naks: the message is a suspect once
    assert platform.deliver(message)
    assert message.naked is not None and platform.unfinished.started == {("test", 7): 0}
    for _ in range(10):
        message = message.redelivered()
        assert platform.deliver(message)
    assert platform.dead_letters() == [], "each suspect delivery settled is taken back"


def test_a_suspect_failing_on_its_own_merits_is_dead_lettered_at_its_budget() -> None:
    platform = Platform()
    message = MemoryMessage(b"fails", 9, num_delivered=2)  # an earlier process died meanwhile
    for _ in range(3):
        assert platform.deliver(message)
        message = message.redelivered()
    [letter] = platform.dead_letters()
    assert "ValueError: cannot" in str(letter["error"])
    assert platform.unfinished.started == {}


class Unreachable(MemoryUnfinishedDeliveries):
    async def counts(self, stage: str, seqs: Collection[int]) -> dict[int, int]:
        raise ConnectionRefusedError("database down")


def test_a_suspect_whose_count_cannot_be_read_waits() -> None:
    platform = Platform()
    platform.unfinished = Unreachable()
    platform.restart()
    message = MemoryMessage(b"a", 4, num_delivered=MAX_UNFINISHED + 5)
    assert platform.deliver(message)
    assert message.naked is not None and not message.acked
    assert platform.dead_letters() == [] and platform.logic.applied == []


def test_a_restarts_suspects_are_counted_in_one_statement_and_processed_as_one_batch() -> None:
    platform = Platform()
    held = [MemoryMessage(f"m{n}".encode(), n, num_delivered=2) for n in range(1, 101)]
    assert platform.deliver(*held)  # what a process that died held, to its successor
    assert all(message.acked for message in held)
    assert platform.logic.batches == [[f"m{n}" for n in range(1, 101)]]
    assert isinstance(platform.unfinished, CountedStatements)
    assert platform.unfinished.statements == 2, "counted together, forgotten together"
    assert platform.unfinished.started == {}


def test_a_dying_message_in_a_group_is_isolated_and_dies_no_more_often_than_alone() -> None:
    platform = Platform()
    values = [f"m{n}" for n in range(40)]
    values[17] = "dies"
    batch = [MemoryMessage(value.encode(), seq) for seq, value in enumerate(values, 1)]
    pending, crashes = batch, 0
    while pending:
        crashes += not platform.deliver(*pending)
        pending = [message.redelivered() for message in pending if not message.acked]
        assert crashes <= MAX_UNFINISHED
    assert crashes == MAX_UNFINISHED, "the group's death counts as the dying message's own"
    assert sorted(platform.logic.applied) == sorted(v for v in values if v != "dies")
    [letter] = platform.dead_letters()
    assert letter["stream_seq"] == 18 and letter["deliveries"] == MAX_UNFINISHED + 1
    assert platform.unfinished.started == {}


def test_below_three_unfinished_deliveries_each_suspect_is_taken_up_alone() -> None:
    platform = Platform(max_unfinished=2)
    batch = [MemoryMessage(b"a", 1), MemoryMessage(b"dies", 2), MemoryMessage(b"b", 3)]
    pending = batch
    while pending:  # a group's death would count 2 for a and b: dead-lettered for dies' sake
        platform.deliver(*pending)
        pending = [message.redelivered() for message in pending if not message.acked]
    assert sorted(platform.logic.applied) == ["a", "b"]
    assert [letter["stream_seq"] for letter in platform.dead_letters()] == [2]
    assert platform.logic.batches == [["a"], ["b"]]


WEEK = 7 * 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_counts_their_messages_outlived_are_swept_once_older_than_the_streams_max_age() -> None:
    clock = Clock()
    platform = Platform()
    platform.unfinished = MemoryUnfinishedDeliveries(clock)
    platform.restart()
    batch = [MemoryMessage(b"a", 1), MemoryMessage(b"dies", 2), MemoryMessage(b"b", 3)]
    assert not platform.deliver(*batch)
    assert not platform.deliver(*(message.redelivered() for message in batch))
    assert platform.unfinished.started == {("test", 1): 1, ("test", 2): 1, ("test", 3): 1}
    # the stream drops the messages (aged out, or erased): they never come back
    clock.now += WEEK / 2
    asyncio.run(platform.unfinished.begin("other", [2]))
    sweep = UnfinishedSweep(3600.0)
    sweep.add(platform.unfinished, "test", WEEK)
    sweep.add(platform.unfinished, "other", WEEK)
    clock.now += WEEK / 2 - 1
    assert asyncio.run(sweep.run_once()) == 0, "a message younger than the max age may come back"
    clock.now += 2
    assert asyncio.run(sweep.run_once()) == 3
    assert platform.unfinished.started == {("other", 2): 1}, "a younger count stays"


class ForgetsNothing(MemoryUnfinishedDeliveries):
    async def forget(self, stage: str, seqs: Collection[int]) -> None:
        raise ConnectionRefusedError("database down")


def test_a_count_a_lost_deletion_left_behind_a_finished_message_is_swept() -> None:
    clock = Clock()
    platform = Platform()
    platform.unfinished = ForgetsNothing(clock)
    platform.restart()
    message = MemoryMessage(b"a", 5, num_delivered=2)
    assert platform.deliver(message) and message.acked
    assert platform.unfinished.started == {("test", 5): 1}, "the deletion after the ack was lost"
    sweep = UnfinishedSweep(3600.0)
    sweep.add(platform.unfinished, "test", WEEK)
    clock.now += WEEK + 1
    assert asyncio.run(sweep.run_once()) == 1 and platform.unfinished.started == {}


def test_a_backlog_is_swept_in_statements_of_a_bounded_size() -> None:
    clock = Clock()
    counts = CountedStatements()
    counts.clock = clock
    asyncio.run(counts.begin("test", range(1, 2501)))
    clock.now += WEEK + 1
    asyncio.run(counts.begin("test", [2501]))
    sweep = UnfinishedSweep(3600.0, batch_rows=1000)
    sweep.add(counts, "test", WEEK)
    counts.statements = 0
    assert asyncio.run(sweep.run_once()) == 2500
    assert counts.statements == 3 and counts.started == {("test", 2501): 1}


def test_a_service_sweeps_each_stage_it_mounts_by_its_own_streams_max_age() -> None:
    from pinworks_common.db.engine import create_engine
    from pinworks_common.service import ServiceRuntime, create_broker, mount_stage
    from pinworks_common.settings import CommonSettings
    from pinworks_contracts.subjects import OUTCOMES_STREAM, WORK_STREAM

    settings = CommonSettings(NATS_URL="nats://127.0.0.1:9", DATABASE_URL="postgresql://x@127.0.0.1:9/x")
    runtime = ServiceRuntime("test", settings, create_broker(settings, "test"),
                             create_engine(settings.database_url))
    runners = {}
    for stage, subject, stream in (("on-work", "pinworks.work.x", WORK_STREAM),
                                   ("on-outcomes", "tickets.outcome.x", OUTCOMES_STREAM)):
        logic = Logic()
        logic.stage = stage
        runners[stage] = mount_stage(runtime, logic, MemoryBooks(), subject=subject, stream=stream,
                                     description="test", payload=Outcome)
    for stage, runner in runners.items():
        counts = runner.unfinished
        assert isinstance(counts, MemoryUnfinishedDeliveries)
        asyncio.run(counts.begin(stage, [1, 2]))
        counts.updated[stage, 1] -= 8 * 24 * 3600  # a week and a day: past the work stream's age
    assert asyncio.run(runtime.sweep.run_once()) == 1
    assert [sorted(runner.unfinished.started) for runner in runners.values()] == [  # type: ignore[attr-defined]
        [("on-work", 2)], [("on-outcomes", 1), ("on-outcomes", 2)]]

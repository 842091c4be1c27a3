"""Where a paced ticket's time goes, hop by hop, read from the audit after the run.

Every stage stamps its audit rows with the start of the transaction that records them
(`created_at`), so each ticket's path is: the bench's publish, the first row of each stage it
went through in the order they came, and the outcome's arrival at the bench. A hop `a→b` is the
time from one of those moments to the next: stage `a`'s decision, commit and publish, and
stage `b`'s wait for the message until its own transaction starts (the first hop is the
classifier's wait and its work before the transaction; the last is the deciding stage's
commit and publish and the outcome's way to the platform). Both clocks are this machine's,
so it needs the platform on the same host as the bench, as CPU figures do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from pinworks_cli.bench_figures import percentile

SUBMITTED = "submitted"
OUTCOME = "outcome"

STAGE_TIMES_SQL = """
SELECT ticket_id, stage, extract(epoch FROM min(created_at)) AS at
FROM decisions WHERE ticket_id = ANY(:ids) GROUP BY ticket_id, stage
"""


PATH_ORDER = (SUBMITTED, "classifier", "router", "specialist", "verifier", "escalation")
"""The order hops are printed in (a stage not named here comes after these, the outcome last)."""


def hop_times(stage_times: Mapping[str, Mapping[str, float]], sent: Mapping[str, float],
              received: Mapping[str, float]) -> dict[str, list[float]]:
    """Seconds of each hop `a→b` of the tickets with a publish, an outcome and stage times
    (wall-clock seconds, by ticket id and stage); a stage's rows written after the outcome
    arrived (an agent's later work) are not on its way."""
    hops: dict[str, list[float]] = defaultdict(list)
    for ticket, stages in stage_times.items():
        if ticket not in sent or ticket not in received:
            continue
        end = received[ticket]
        path = [(SUBMITTED, sent[ticket]),
                *sorted(((stage, at) for stage, at in stages.items() if at <= end),
                        key=lambda item: item[1]),
                (OUTCOME, end)]
        for (before, at), (after, then) in zip(path, path[1:], strict=False):
            hops[f"{before}→{after}"].append(then - at)
    return dict(hops)


def _place(hop: str) -> tuple[int, int]:
    def rank(stage: str) -> int:
        if stage == OUTCOME:
            return len(PATH_ORDER) + 1
        return PATH_ORDER.index(stage) if stage in PATH_ORDER else len(PATH_ORDER)

    before, after = hop.split("→")
    return rank(before), rank(after)


async def read_stage_times(database_url: str, ids: Mapping[str, str]
                           ) -> dict[str, dict[str, float]]:
    """The first audit time of each stage (wall-clock seconds) of each ticket, by the bench's
    ticket id; `ids` maps pinworks' ticket id (`P~T` for platform P) to the bench's."""
    from sqlalchemy import bindparam, text
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.types import Text

    from pinworks_common.db.engine import create_engine

    query = text(STAGE_TIMES_SQL).bindparams(bindparam("ids", type_=ARRAY(Text)))
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query, {"ids": list(ids)})).all()
    finally:
        await engine.dispose()
    times: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        times[ids[row.ticket_id]][row.stage] = float(row.at)
    return dict(times)


def format_hops(hops: Mapping[str, Sequence[float]], tickets: int) -> list[str]:
    """Per hop, in the pipeline's order: how many tickets took it, p50 and p99 in ms."""
    if not hops:
        return ["  hops        no audit rows of the paced run's tickets"]
    lines = [f"  hops        (paced, from the audit's stage times; p50 / p99 ms, "
             f"tickets of {tickets})"]
    for name in sorted(hops, key=_place):
        seconds = hops[name]
        p50, p99 = percentile(seconds, 50), percentile(seconds, 99)
        lines.append(f"  {'':<11} {name:<28} {len(seconds):>5}  "
                     f"{(p50 or 0) * 1000:7.1f} / {(p99 or 0) * 1000:7.1f}")
    return lines

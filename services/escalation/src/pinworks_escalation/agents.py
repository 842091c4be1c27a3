"""`python -m pinworks_escalation.agents add NAME --business-unit X`: create a console agent from
inside the escalation image (a Kubernetes deployment has no `pinworks` CLI; the chart's NOTES
show the `kubectl exec` line). The password comes from PINWORKS_AGENT_PASSWORD or a prompt."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from pinworks_escalation.auth import MIN_PASSWORD_CHARS, hash_password


def _password() -> str:
    given = os.environ.get("PINWORKS_AGENT_PASSWORD")
    if given is not None:
        return given
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("error: the passwords differ")
    return first


async def _save(database_url: str, name: str, units: list[str], password_hash: str) -> str:
    from pinworks_common.db.engine import create_engine
    from pinworks_escalation.queue import save_agent

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            agent = await save_agent(conn, name, password_hash, units)
    finally:
        await engine.dispose()
    return f"agent {agent.name} works {', '.join(agent.business_units)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinworks_escalation.agents",
                                     description="Console agents.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="Create an agent, or replace its password and units.")
    add.add_argument("name")
    add.add_argument("--business-unit", action="append", required=True, dest="units",
                     help="A business unit whose tickets this agent works (repeatable).")
    args = parser.parse_args(argv)
    password = _password()
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"error: a password needs at least {MIN_PASSWORD_CHARS} characters", file=sys.stderr)
        return 1
    from pinworks_escalation.queue import QueueError
    from pinworks_escalation.settings import EscalationSettings

    try:
        print(asyncio.run(_save(EscalationSettings().database_url, args.name, args.units,
                                hash_password(password))))
    except QueueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot reach Postgres ({error}); check DATABASE_URL", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`pinworks agent …`: the escalation console's agents, created and listed from a terminal.

The `pinworks` CLI mounts `agent_app` through the entry point `pinworks.cli` / `agent`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pinworks_common.commands.platform import run_command, with_platform_db
from pinworks_common.commands.terminal import LazyConsole

agent_app = typer.Typer(help="Agents of the escalation console.", no_args_is_help=True)
console = LazyConsole()


@agent_app.command("add")
def agent_add(
    name: str,
    business_unit: Annotated[list[str], typer.Option(
        "--business-unit", help="A business unit whose tickets this agent works (repeatable).")],
    password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True,
        envvar="PINWORKS_AGENT_PASSWORD",
        help="At least 8 characters; prompted for when not given.")],
) -> None:
    """Create a console agent (or replace an agent's password and business units)."""
    from argon2 import PasswordHasher

    from pinworks_escalation.queue import QueueError, save_agent

    if len(password) < 8:
        console.print("[red]a password needs at least 8 characters[/]")
        raise typer.Exit(1)
    password_hash = PasswordHasher().hash(password)
    try:
        agent = run_command(with_platform_db(
            lambda conn: save_agent(conn, name, password_hash, business_unit), write=True))
    except QueueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"agent {agent.name} works {', '.join(agent.business_units)}",
                  highlight=False)


@agent_app.command("list")
def agent_list() -> None:
    """List console agents and their business units."""
    from pinworks_escalation.queue import list_agents

    for agent in run_command(with_platform_db(list_agents)):
        typer.echo(f"{agent.name}\t{', '.join(agent.business_units)}")

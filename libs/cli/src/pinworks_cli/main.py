"""`pinworks`: run the platform, submit and replay tickets, read the audit, work the queue.

This module only composes the app: the CLI's own commands live in `ticket_commands`,
`platform_commands` and `report`; each service's command group (`classifier`, `policy`,
`queue`, `agent`, ...) is mounted from the entry-point group `pinworks.cli`, so the CLI imports
no service and a service that is not installed simply has no commands.

Imports stay inside the commands: `pinworks --help` and simple commands start in a fraction of
a second because nothing heavy (NATS, SQLAlchemy, the classifier) loads until a command uses it.
"""

from __future__ import annotations

from typing import Any

import typer

from pinworks_cli import nats_commands, platform_commands, report, session_commands, ticket_commands
from pinworks_common.commands.plugins import command_groups
from pinworks_common.commands.terminal import plain_usage


def build_app(service_groups: list[tuple[str, Any]]) -> typer.Typer:
    """The `pinworks` app: the CLI's own commands and groups, and the given services' groups
    (every group in alphabetical order)."""
    app = typer.Typer(help="pinworks: a team of AI components answering support tickets.",
                      no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)
    app.command()(ticket_commands.submit)
    app.command(help=ticket_commands.REPLAY_HELP)(ticket_commands.replay)
    app.command()(ticket_commands.audit)
    for command in (session_commands.login, session_commands.logout, session_commands.whoami):
        app.command()(command)
    for command in (platform_commands.asyncapi, platform_commands.run, platform_commands.top,
                    platform_commands.bench, platform_commands.chaos):
        app.command()(command)
    db_app = typer.Typer(help="Database schema and roles.", no_args_is_help=True)
    db_app.command("upgrade")(platform_commands.db_upgrade)
    db_app.command("roles")(platform_commands.db_roles)
    own_groups = [("db", db_app), ("nats", nats_commands.nats_app), ("report", report.report_app)]
    for name, group in sorted([*own_groups, *service_groups], key=lambda named: named[0]):
        app.add_typer(group, name=name)
    plain_usage(app)
    return app


app = build_app(command_groups())

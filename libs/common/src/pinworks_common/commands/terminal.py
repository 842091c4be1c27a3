"""What the CLI prints with: a console built on first use, and click-style usage lines.

Building a rich Console costs a tenth of a second, so `--help` and commands that print plain
text never pay for it. Typer writes a required argument as `{body}` in usage lines; click's
convention (`BODY`, `[TICKET_ID]`) is what people read in every other tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperArgument, TyperCommand

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """Forwards to a rich Console created the first time something is printed."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


class PlainUsageCommand(TyperCommand):
    """A command whose usage line names arguments the click way: `BODY`, `[TICKET_ID]`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or param.name or "").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def plain_usage(app: typer.Typer) -> None:
    """Give every command of ``app`` and its sub-apps click-style usage lines."""
    for command in app.registered_commands:
        if command.cls is None or command.cls is TyperCommand:
            command.cls = PlainUsageCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_usage(group.typer_instance)

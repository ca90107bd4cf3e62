"""One way every ``vlagent`` command ends on bad input: one red line and exit code 2 (1 for an
engine that cannot run here: ``EngineCrashError.exit_code``)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from vlagent.errors import VlagentError
from vlagent.index.progress import STDERR

err_console = STDERR  # one Console for every bar: rich nests live displays on one Console only


def print_error(exc: BaseException) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


class UserErrorGroup(TyperGroup):
    """A command group whose commands' :class:`VlagentError` becomes one line, not a trace."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VlagentError as exc:
            print_error(exc)
            raise typer.Exit(getattr(exc, "exit_code", 2)) from None


def typer_app(**kwargs: Any) -> typer.Typer:
    """A ``typer.Typer`` with that error handling (the main app and every group)."""
    kwargs.setdefault("no_args_is_help", True)
    kwargs.setdefault("pretty_exceptions_enable", False)
    return typer.Typer(cls=UserErrorGroup, **kwargs)

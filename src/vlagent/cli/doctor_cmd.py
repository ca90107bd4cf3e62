"""``vlagent doctor``: can every model role run here? One tiny real inference each, in a child process."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlagent.settings import Settings
from vlagent.models.selfcheck import check_all

console = Console()


def doctor(
    profile: Annotated[Optional[str], typer.Option("--profile", help="hub | offline (env VLAGENT_PROFILE)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="run one inference per role (--no-run: only where each model is)")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds one role's check may take")] = 300.0,
) -> None:
    """For every role (llm, clip, caption, vqa, ocr, text_embedder): what the settings resolve to,
    whether it is here, and one tiny real inference in a child process, so that a native crash
    (SIGSEGV, SIGILL, out of memory) is one line naming the role, the engine and what to do.
    Exits 1 when a role the profile needs cannot run."""

    settings = Settings(profile=profile) if profile else Settings()
    if as_json:
        checks = check_all(settings, run=run, timeout=timeout)
    else:
        with console.status("checking each model role in a child process…"):
            checks = check_all(settings, run=run, timeout=timeout)
    if as_json:
        print(json.dumps([c.model_dump() for c in checks], ensure_ascii=False, indent=2))
    else:
        table = Table(title=f"vlagent doctor (profile {settings.profile})")
        for column in ("role", "backend", "model", "here", "runs", "s", "detail"):
            table.add_column(column, overflow="fold")
        for c in checks:
            here = "[green]yes[/]" if c.available else ("[dim]off[/]" if c.backend == "none" else "[red]no[/]")
            runs = "-" if not c.ran else ("[green]ok[/]" if c.ok else "[red]FAILED[/]")
            need = "" if c.required else " [dim](optional)[/]"
            detail = c.detail if c.ok or not c.fix else f"{c.detail}; {c.fix}"
            seconds = f"{c.seconds:.1f}" if c.seconds is not None else ""
            table.add_row(c.role + need, c.backend, escape(c.model), here, runs, seconds, escape(detail or c.where))
        console.print(table)
        for c in checks:
            if c.blocking:
                console.print(f"[bold red]cannot run:[/] {escape(c.line())}", highlight=False, soft_wrap=True)
    if any(c.blocking for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)

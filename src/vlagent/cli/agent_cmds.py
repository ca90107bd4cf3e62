"""``vlagent ask`` and ``vlagent chat``: the agent from the command line."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from vlagent.agent.types import Answer
from vlagent.cli.errors import err_console
from vlagent.cli.options import AnnotationsOpt, CatalogueOpt
from vlagent.data.queries import check_question
from vlagent.errors import VlagentError, one_line
from vlagent.settings import Settings

console = Console()

ImagesOpt = Annotated[
    Optional[list[Path]], typer.Option("--image", "-i", help="image attached to the question (repeatable)")
]


def _agent(catalogue: list[Path] | None, annotations: Path | None, allow_files: list[Path] | None = None):  # type: ignore[no-untyped-def]
    """The agent; images come from the catalogue, ``allow_files`` and VLAGENT_IMAGE_ROOTS only."""
    from vlagent.agent.build import build_agent  # lazy: start-up time of `vlagent --help` (langgraph)

    with console.status("loading models ..."):
        agent = build_agent(images=list(catalogue or []), annotations=annotations, allow_files=list(allow_files or []))
    for name, why in agent.parts.unavailable.items():  # on stderr: `ask --json` stdout stays JSON
        err_console.print(f"[dim]{name} unavailable: {escape(why)}[/]", highlight=False)
    return agent


def trace_table(answer: Answer) -> Table:
    table = Table(title="trace")
    for col in ("step", "arguments", "seconds", "status"):
        table.add_column(col)
    for t in answer.trace:
        args = json.dumps(t.args, ensure_ascii=False)
        status = "[green]ok[/]" if t.ok else f"[red]{t.error or 'error'}[/]"
        table.add_row(t.name, args[:80], f"{t.duration_s:.2f}", status)
    return table


def show_answer(answer: Answer) -> None:
    console.print(Panel(answer.text, title=f"{answer.type} ({answer.classifier})", expand=False))
    if answer.images:
        table = Table(title="images")
        for col in ("#", "file", "score", "by", "title"):  # score: the similarity of the ranking `by`
            table.add_column(col)
        for n, hit in enumerate(answer.images[:5], 1):
            table.add_row(str(n), hit.image, f"{hit.score:.3f}", hit.by, hit.title)
        console.print(table)


def ask(
    question: Annotated[str, typer.Argument(help="the question, Chinese or English")],
    image: ImagesOpt = None,
    catalogue: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the typed result as JSON")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="show the tools that ran")] = False,
) -> None:
    """Answer one question, e.g. vlagent ask "这件衣服是什么颜色的？" --image a.jpg

    When nothing the question needs could be read (the image is missing, unreadable or
    outside the allowed folders; every tool failed), prints one error line and exits 1. An
    empty question, or one longer than VLAGENT_QUESTION_MAX_CHARS, is one error line and exit
    code 2, before any model loads."""
    check_question(question, Settings().question_max_chars)
    agent = _agent(catalogue, annotations, allow_files=list(image or []))
    answer = agent.invoke(question, images=[str(p) for p in image or []])
    if as_json:
        print(answer.model_dump_json(indent=2))
        if answer.error is not None:
            raise typer.Exit(1)
        return
    if answer.error is not None:  # no evidence to answer from: say why, in one line
        if trace:
            console.print(trace_table(answer))
        print_error_line(answer.error.line())
        raise typer.Exit(1)
    show_answer(answer)
    if trace:
        console.print(trace_table(answer))


def print_error_line(text: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


CHAT_HELP = (
    "commands: /image PATH [PATH ...] attach images to the next question · /reset new conversation · "
    "/trace tools of the last answer · /help · /quit"
)


def chat(
    catalogue: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
) -> None:
    """Multi-turn chat: follow-up questions refer to the previous turn's image."""
    agent = _agent(catalogue, annotations)
    thread = uuid.uuid4().hex
    pending: list[str] = []
    last: Answer | None = None
    console.print(f"[bold]vlagent chat[/] — {CHAT_HELP}")
    while True:
        try:
            line = console.input("[bold cyan]> [/]").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return
        if line == "/help":
            console.print(CHAT_HELP)
        elif line == "/reset":
            thread, pending, last = uuid.uuid4().hex, [], None
            console.print("[dim]new conversation[/]")
        elif line == "/trace":
            console.print(trace_table(last) if last else "[dim]no answer yet[/]")
        elif line.startswith("/image"):
            paths = line.split()[1:]
            missing = [p for p in paths if not Path(p).expanduser().is_file() and p not in _catalogue_names(agent)]
            if not paths or missing:
                console.print(f"[red]no such image: {' '.join(missing) or '(give a path)'}[/]", soft_wrap=True)
                continue
            if agent.ctx is not None:  # a file named here may be read (and only that file)
                for p in paths:
                    if Path(p).expanduser().is_file():
                        agent.ctx.resolver.allow(p)
            pending = paths
            console.print(f"[dim]attached: {', '.join(pending)}[/]", soft_wrap=True)
        elif line.startswith("/"):
            console.print(f"[red]unknown command {line.split()[0]}[/] — {CHAT_HELP}")
        else:
            try:
                last = agent.invoke(line, images=pending, thread_id=thread)
            except VlagentError as exc:
                console.print(f"[red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
                continue
            pending = []
            if last.error is not None:
                console.print(f"[red]error:[/] {escape(last.error.line())}", highlight=False, soft_wrap=True)
            else:
                show_answer(last)


def _catalogue_names(agent) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    if agent.ctx is not None:
        for source in agent.ctx.resolver.sources:
            names.update(source.names())
    return names


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(chat)

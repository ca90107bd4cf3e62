"""``vlagent serve llm|vlm|all``: start vLLM or llama.cpp's server with the project's settings."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from vlagent.cli.errors import err_console, typer_app
from vlagent.cli.options import AnnotationsOpt, CatalogueOpt, VerboseOpt
from vlagent.errors import ModelLoadError, VlagentError
from vlagent.settings import Settings
from vlagent.serving.commands import build_specs, require_engine, vllm_llm_model
from vlagent.serving.process import ServerProcess, free_port, serve_until_stopped

console = Console()

app = typer_app(
    help="Serve the LLM / VLM behind an OpenAI-compatible API (vLLM on GPUs, llama.cpp on CPU).",
)

EngineOpt = Annotated[
    Optional[str],
    typer.Option(
        "--engine", "-e",
        help="vllm | llama-cpp (default VLAGENT_SERVE_ENGINE=auto: vLLM if installed here or in VLAGENT_VLLM_PYTHON)",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the command lines and exit")]
HostOpt = Annotated[Optional[str], typer.Option("--host", help="listen address (env VLAGENT_SERVE_HOST)")]
PortOpt = Annotated[
    Optional[int], typer.Option("--port", "-p", help="LLM port (env VLAGENT_SERVE_LLM_PORT; 0 = any free port)")
]
VlmPortOpt = Annotated[Optional[int], typer.Option("--vlm-port", help="VLM port (env VLAGENT_SERVE_VLM_PORT)")]
TpOpt = Annotated[
    Optional[int], typer.Option("--tensor-parallel-size", "--tp", help="GPUs per model (vLLM)")
]


def _settings(host: str | None, port: int | None, vlm_port: int | None, tp: int | None) -> Settings:
    values: dict[str, object] = {}
    if host:
        values["serve_host"] = host
    if port is not None:
        values["serve_llm_port"] = port or free_port()
    if vlm_port is not None:
        values["serve_vlm_port"] = vlm_port or free_port()
    if tp:
        values["serve_tensor_parallel_size"] = tp
    return Settings(**values)


def run(
    what: Literal["llm", "vlm", "all"],
    settings: Settings,
    engine: str | None = None,
    dry_run: bool = False,
) -> None:
    """Build the commands; print them (dry run) or start the servers and wait until stopped."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


    specs = build_specs(settings, what, engine)
    if dry_run:
        for spec in specs:
            console.print(f"# {spec.role} ({spec.engine}) → {spec.base_url}", highlight=False)
            console.print(spec.command_line, highlight=False, soft_wrap=True)
        return
    for spec in specs:
        require_engine(spec.engine, settings)
        if spec.engine == "vllm" and spec.role == "llm" and vllm_llm_model(settings).endswith(".gguf"):
            err_console.print(
                f"[yellow]note[/] vLLM reads {settings.resolved_gguf.name} itself but takes its tokenizer from the "
                "hub; with no hub run `vlagent models convert offline` first (a folder vLLM loads offline)",
                highlight=False,
            )
        if spec.engine == "llama-cpp" and not settings.resolved_gguf.is_file():
            raise ModelLoadError(
                f"GGUF model file {settings.resolved_gguf} not found: run `vlagent models fetch offline` "
                "or set VLAGENT_LLM_GGUF"
            )
    logs = settings.home / "logs"
    servers = [ServerProcess(spec, logs / f"serve-{spec.role}-{spec.engine}.log") for spec in specs]
    started: list[ServerProcess] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            for server in servers:
                task = bar.add_task(f"starting {server.spec.engine} for the {server.spec.role} ({server.spec.served_name})")
                served = server.wait_ready(settings.serve_startup_timeout, progress=lambda _t, task=task: bar.update(task))
                err_console.print(
                    f"[green]ready[/] {server.spec.role}: {server.spec.base_url} serving {', '.join(served)}"
                    f"  (log {server.log_path})",
                    highlight=False,
                )
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    for server in servers:
        console.print(server.spec.agent_env(), highlight=False, soft_wrap=True)
    err_console.print("[dim]Ctrl-C stops the server(s).[/]")
    reason = serve_until_stopped(servers)
    if reason.startswith("exited"):
        dead = next(s for s in servers if s.proc is not None and s.proc.returncode is not None)
        raise VlagentError(f"a server stopped by itself ({reason}); log {dead.log_path}:\n{dead.log_tail()}")
    err_console.print("[yellow]stopped[/]")


@app.command("llm")
def serve_llm(
    engine: EngineOpt = None, dry_run: DryRunOpt = False, host: HostOpt = None, port: PortOpt = None, tp: TpOpt = None
) -> None:
    """Serve the LLM (settings.llm_model, or the GGUF under the offline profile)."""
    run("llm", _settings(host, port, None, tp), engine, dry_run)


@app.command("vlm")
def serve_vlm(
    dry_run: DryRunOpt = False, host: HostOpt = None, port: VlmPortOpt = None, tp: TpOpt = None
) -> None:
    """Serve the VLM behind the vqa tool (settings.vqa_model) with vLLM."""
    run("vlm", _settings(host, None, port, tp), "vllm", dry_run)


@app.command("all")
def serve_all(
    engine: EngineOpt = None,
    dry_run: DryRunOpt = False,
    host: HostOpt = None,
    port: PortOpt = None,
    vlm_port: VlmPortOpt = None,
    tp: TpOpt = None,
) -> None:
    """Serve the LLM and the VLM (two servers, two ports)."""
    run("all", _settings(host, port, vlm_port, tp), engine, dry_run)


@app.command("api")
def serve_api(
    catalogue: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
    host: Annotated[Optional[str], typer.Option("--host", help="listen address (env VLAGENT_WEB_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="port (env VLAGENT_WEB_API_PORT, 8080)")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the agent over HTTP (FastAPI + uvicorn): POST /v1/answer, OpenAI-compatible
    POST /v1/chat/completions (model "vlagent"), GET /health. Bearer token: VLAGENT_API_TOKEN."""
    from vlagent.api.server import serve_api as run_api  # lazy: start-up time of `vlagent --help` (fastapi)

    values = {k: v for k, v in {"web_host": host, "web_api_port": port}.items() if v is not None}
    run_api(Settings(**values), catalogue, annotations, console, verbose)

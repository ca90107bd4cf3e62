"""``vlagent ui``: the Gradio web UI (Search, Chat, Evaluate) on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from vlagent.cli.options import AnnotationsOpt, CatalogueOpt, VerboseOpt
from vlagent.errors import VlagentError
from vlagent.settings import Settings
from vlagent.evals.bundle import run_to_folder

console = Console()


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise VlagentError("--auth / VLAGENT_WEB_AUTH must be USER:PASSWORD")
    return user, password


def ui(
    catalogue: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
    host: Annotated[Optional[str], typer.Option("--host", help="listen address (env VLAGENT_WEB_HOST, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="port (env VLAGENT_WEB_UI_PORT, 7860)")] = None,
    share: Annotated[bool, typer.Option("--share/--no-share", help="a public Gradio share link (off; needs internet)")] = False,
    auth: Annotated[
        Optional[str], typer.Option("--auth", help="basic auth USER:PASSWORD (better: env VLAGENT_WEB_AUTH)")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """The web UI: search the catalogue, chat about uploaded images, run the evaluation harness."""
    from vlagent.api.server import quiet_third_party  # lazy: start-up time of `vlagent --help` (fastapi)
    from vlagent.api.service import AgentService  # lazy: start-up time of `vlagent --help` (langgraph)

    try:
        from vlagent.web.ui import launch  # gradio: the optional web extra
    except ImportError as exc:
        raise VlagentError(f"the web UI needs the web extra: pip install 'vlagent[web]' ({exc})") from None

    values = {k: v for k, v in {"web_host": host, "web_ui_port": port}.items() if v is not None}
    settings = Settings(**values)
    credentials = parse_auth(auth or (settings.web_auth.get_secret_value() if settings.web_auth else None))
    quiet_third_party(verbose)
    with console.status("loading the agent ..."):
        service = AgentService.from_settings(settings, catalogue, annotations)
    for name, why in service.agent.parts.unavailable.items():
        console.print(f"[dim]{name} unavailable: {why}[/]", highlight=False)
    url = f"http://{settings.web_host}:{settings.web_ui_port}"
    console.print(f"[green]ready[/] ui: {url}" + ("  (basic auth)" if credentials else ""), highlight=False)
    try:
        launch(service, host=settings.web_host, port=settings.web_ui_port, share=share, auth=credentials,
               evaluate=run_to_folder, quiet=not verbose)  # fmt: skip
    finally:
        service.close()


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)

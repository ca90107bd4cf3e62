"""Run the API with uvicorn: the agent is built first (a model that cannot load is one line
before anything listens), then one process serves it."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from vlagent.settings import Settings
from vlagent.api.app import create_app
from vlagent.api.service import AgentService


def quiet_third_party(verbose: bool) -> None:
    """Third-party chatter (uvicorn access lines, httpx, gradio) only with ``-v``."""
    level = logging.INFO if verbose else logging.WARNING
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "httpcore", "gradio", "chromadb", "transformers"):
        logging.getLogger(name).setLevel(level)


def serve_api(
    settings: Settings,
    images: list[Path] | None,
    annotations: Path | None,
    console: Console,
    verbose: bool = False,
) -> None:
    import uvicorn


    quiet_third_party(verbose)
    with console.status("loading the agent ..."):
        service = AgentService.from_settings(settings, images, annotations)
    for name, why in service.agent.parts.unavailable.items():
        console.print(f"[dim]{name} unavailable: {why}[/]", highlight=False)
    app = create_app(service)
    url = f"http://{settings.web_host}:{settings.web_api_port}"
    auth = "bearer token required" if settings.api_token else "no auth (set VLAGENT_API_TOKEN to require a token)"
    console.print(f"[green]ready[/] api: {url}  (POST /v1/answer, /v1/chat/completions model=vlagent; docs {url}/docs; {auth})",
                  highlight=False, soft_wrap=True)  # fmt: skip
    try:
        uvicorn.run(app, host=settings.web_host, port=settings.web_api_port,
                    log_level="info" if verbose else "warning", access_log=verbose)  # fmt: skip
    finally:
        service.close()
